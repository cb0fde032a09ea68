//! In-memory TLS 1.3 mutual-auth handshakes (rustls client ⇄ rustls server, no sockets) with the
//! in-process virtual card, or with a software P-256 client key, for the APDU budget tests and
//! the benchmarks. Also the latency model arithmetic (critical-path floor, card-busy time).

use iotsafe_core::{Card, CardConfig, CardStats, ObjectRef, Operation};
use iotsafe_rustls::{software_provider, IotSafeTls, KxOptions};
use iotsafe_vcard::{
    foreign_client_pki, provision, CardOptions, InProcessTransport, Latency, VirtualCard,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConnection;
use rustls::{ClientConfig, ClientConnection, NamedGroup, RootCertStore, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

/// A provisioned virtual card opened through the core session, rustls configs around it, and a
/// software client with its own P-256 key for comparison.
pub struct TlsFixture {
    /// The card session.
    pub card: Arc<Card>,
    /// The card's TLS setup (resumption off: every handshake is a full one).
    pub tls: IotSafeTls,
    /// Client config signing and doing ECDHE on the card.
    pub card_client: Arc<ClientConfig>,
    /// Client config with an in-memory software P-256 key (ring), ECDHE on secp256r1 only, so
    /// that it does the same work as the card client.
    pub software_client: Arc<ClientConfig>,
    /// The roots the clients trust (the test CA).
    pub roots: Arc<RootCertStore>,
    /// The software rustls server: requires a client certificate, no session tickets.
    pub server: Arc<ServerConfig>,
    _dir: tempfile::TempDir,
}

impl TlsFixture {
    /// A fresh card with `options` (transport mode, latency), opened with `config`;
    /// `pregenerate` turns on the card key-exchange group's background pre-generation.
    pub fn new(options: CardOptions, config: CardConfig, pregenerate: bool) -> TlsFixture {
        TlsFixture::over(options, pregenerate, |vcard| {
            Arc::new(
                Card::open(InProcessTransport::new(vcard), config).expect("open the card session"),
            )
        })
    }

    /// Like [`TlsFixture::new`], with the card session opened by `open` on the freshly
    /// provisioned virtual card (to put a real transport between them, e.g. pcscd + vpcd).
    pub fn over(
        options: CardOptions,
        pregenerate: bool,
        open: impl FnOnce(VirtualCard) -> Arc<Card>,
    ) -> TlsFixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("card-state.json");
        let pki = dir.path().join("pki");
        let report = provision(&state, &pki, options.clone()).expect("provision the vcard");
        let vcard = VirtualCard::open_state(&state, options).expect("open the vcard state");
        let card = open(vcard);
        let tls = IotSafeTls::builder(card.clone())
            .kx_options(KxOptions::pregenerating(pregenerate))
            .resumption(false)
            .build()
            .expect("IotSafeTls from the card");

        let foreign = foreign_client_pki(&pki.join("foreign")).expect("software client PKI");
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(report.ca_cert_der.clone()))
            .expect("test CA");
        let roots = Arc::new(roots);
        // The server trusts both the card's CA and the software client's CA.
        let mut client_roots = (*roots).clone();
        for ca in pem_certs(&foreign.ca_pem) {
            client_roots.add(ca).expect("software client CA");
        }

        let card_client = Arc::new(tls.client_config(roots.clone()).expect("card client"));

        let mut provider = software_provider();
        provider
            .kx_groups
            .retain(|g| g.name() == NamedGroup::secp256r1);
        let provider = Arc::new(provider);
        let mut software_client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(pem_certs(&foreign.client_pem), pem_key(&foreign.client_key))
            .expect("software client key");
        software_client.resumption = rustls::client::Resumption::disabled();

        let server_provider: Arc<CryptoProvider> = Arc::new(software_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(client_roots),
            server_provider.clone(),
        )
        .build()
        .expect("client verifier");
        let mut server = ServerConfig::builder_with_provider(server_provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                pem_certs(&pki.join("server.pem")),
                pem_key(&pki.join("server.key")),
            )
            .expect("server certificate");
        server.send_tls13_tickets = 0;

        TlsFixture {
            card,
            tls,
            card_client,
            software_client: Arc::new(software_client),
            roots,
            server: Arc::new(server),
            _dir: dir,
        }
    }

    /// One full handshake with the card client; returns the card work it caused.
    pub fn card_handshake(&self) -> Result<CardStats, String> {
        let before = self.card.stats();
        handshake(&self.card_client, &self.server)?;
        Ok(self.card.stats().since(&before))
    }

    /// One full handshake with the software client.
    pub fn software_handshake(&self) -> Result<(), String> {
        handshake(&self.software_client, &self.server)
    }

    /// What the card's ephemeral slot queue saw (turns, waits, the longest wait).
    pub fn queue_stats(&self) -> iotsafe_rustls::QueueStats {
        self.tls
            .kx_group()
            .map(|kx| kx.queue_stats())
            .unwrap_or_default()
    }

    /// Waits for the key-exchange group's background generation to finish (no-op without one).
    pub fn wait_for_background(&self) {
        if let Some(kx) = self.tls.kx_group() {
            assert!(
                kx.wait_for_background(Duration::from_secs(30)),
                "background key generation finished"
            );
        }
    }

    /// Generates the next ephemeral key now on this thread, if none is ready (the "generate
    /// after the handshake completed" scheme, driven by the caller).
    pub fn pregenerate_now(&self) {
        if let Some(kx) = self.tls.kx_group() {
            kx.pregenerate_now()
                .expect("GENERATE KEY PAIR ahead of time");
        }
    }
}

/// A card client config for a real TLS peer (openssl s_server): resumption off, so that every
/// connection is a full handshake on the card, trusting the CA certificates in `ca_pem`.
pub fn card_client_config(card: Arc<Card>, ca_pem: &std::path::Path) -> Arc<ClientConfig> {
    let tls = IotSafeTls::builder(card)
        .resumption(false)
        .build()
        .expect("IoT SAFE TLS from the card");
    let mut roots = RootCertStore::empty();
    for ca in pem_certs(ca_pem) {
        roots.add(ca).expect("trust anchor");
    }
    Arc::new(tls.client_config(roots).expect("client config"))
}

fn pem_certs(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .expect("certificate PEM")
        .collect::<Result<_, _>>()
        .expect("certificate PEM")
}

fn pem_key(path: &std::path::Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).expect("key PEM")
}

/// The name the test server certificate carries.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("server name")
}

/// Runs one full handshake in memory until neither side has anything to send, and checks both
/// sides finished (with mutual authentication the server has verified the client's signature).
pub fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Result<(), String> {
    handshake_over(client, server, Duration::ZERO)
}

/// [`handshake`] over a network whose every flight takes `one_way` to arrive (half a round trip),
/// as between a device on a cellular link and its server.
pub fn handshake_over(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    one_way: Duration,
) -> Result<(), String> {
    let mut c = ClientConnection::new(client.clone(), server_name()).map_err(|e| e.to_string())?;
    let mut s = ServerConnection::new(server.clone()).map_err(|e| e.to_string())?;
    pump_over(&mut c, &mut s, one_way)?;
    if c.is_handshaking() || s.is_handshaking() {
        return Err("handshake did not finish".into());
    }
    if s.peer_certificates().is_none_or(|chain| chain.is_empty()) {
        return Err("server saw no client certificate".into());
    }
    Ok(())
}

/// Moves TLS records between the two connections until neither has anything to send.
pub fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), String> {
    pump_over(client, server, Duration::ZERO)
}

/// [`pump`], each flight (everything one side has to send at once) arriving `one_way` later.
pub fn pump_over(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
    one_way: Duration,
) -> Result<(), String> {
    let mut buf = Vec::with_capacity(8192);
    let travel = || {
        if !one_way.is_zero() {
            std::thread::sleep(one_way);
        }
    };
    loop {
        let mut moved = false;
        if client.wants_write() {
            travel();
        }
        while client.wants_write() {
            buf.clear();
            client.write_tls(&mut buf).map_err(|e| e.to_string())?;
            moved = true;
            server.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            server
                .process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
        }
        if server.wants_write() {
            travel();
        }
        while server.wants_write() {
            buf.clear();
            server.write_tls(&mut buf).map_err(|e| e.to_string())?;
            moved = true;
            client.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            client
                .process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if !moved {
            return Ok(());
        }
    }
}

/// Card-busy time the latency model charges for the operations in `stats`: every APDU costs
/// `latency.apdu`, and each operation its own delay once.
pub fn modelled_busy(latency: &Latency, stats: &CardStats) -> Duration {
    let per_op = |op: Operation, d: Duration| d * stats.count(op) as u32;
    latency.apdu * stats.apdus as u32
        + per_op(Operation::GenerateKeyPair, latency.keygen)
        + per_op(Operation::PutPublicKey, latency.put_key)
        + per_op(Operation::Dh, latency.dh)
        + per_op(Operation::Sign, latency.sign)
        + per_op(Operation::Verify, latency.verify)
        + per_op(Operation::Hkdf, latency.hkdf)
}

/// The critical-path floor of one card-client handshake under `latency`: the card operations that
/// cannot be avoided or overlapped (sign + DH + PUT PUBLIC KEY, plus key generation when it is not
/// done ahead of time), each APDU at `latency.apdu`. `apdus` is the handshake's APDU count on the
/// critical path.
pub fn critical_path_floor(latency: &Latency, apdus: u64, keygen: bool) -> Duration {
    let keygen = if keygen {
        latency.keygen
    } else {
        Duration::ZERO
    };
    latency.apdu * apdus as u32 + latency.sign + latency.dh + latency.put_key + keygen
}

/// The card calls wolfSSL's IoT-SAFE port makes for one TLS 1.3 mutual-auth handshake
/// (`docs/protocol.md#wolfssl-handshake-sequence`), replayed through `card` (open it with
/// [`CardConfig::wolfssl_compatible`]): GENERATE KEY PAIR; PUT PUBLIC KEY + COMPUTE DH;
/// HKDF-Extract ×2; `verifies` × (PUT PUBLIC KEY + VERIFY SIGNATURE) with genuine signatures;
/// HKDF-Extract; COMPUTE SIGNATURE. Returns the card work.
pub fn replay_wolfssl_handshake(card: &Card, verifies: usize) -> CardStats {
    use iotsafe_core::{EcPoint, HashAlgorithm};
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use sha2::{Digest, Sha256};

    let eph_slot = ObjectRef::id([0x04]);
    let peer_slot = ObjectRef::id([0x05]);
    let device = ObjectRef::id([0x01]);
    // The server's ephemeral share and its signing key, made in software (not counted).
    let server_eph = p256::SecretKey::random(&mut rand_core::OsRng);
    let server_point =
        EcPoint::from_slice(server_eph.public_key().to_encoded_point(false).as_bytes())
            .expect("server share");
    let server_key = SigningKey::random(&mut rand_core::OsRng);
    let server_pub = EcPoint::from_slice(
        server_key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes(),
    )
    .expect("server key");
    let signed: Vec<([u8; 32], Vec<u8>)> = (0..verifies)
        .map(|i| {
            let digest: [u8; 32] = Sha256::digest([i as u8; 100]).into();
            let sig: Signature = server_key
                .sign_prehash(&digest)
                .expect("software signature");
            (digest, sig.to_bytes().to_vec())
        })
        .collect();

    let before = card.stats();
    let eph = card
        .generate_ephemeral(&eph_slot)
        .expect("GENERATE KEY PAIR");
    let early = card
        .hkdf_extract(&[], &[], HashAlgorithm::Sha256)
        .expect("HKDF early secret");
    let shared = card
        .ephemeral_agreement(&eph, &peer_slot, &server_point)
        .expect("PUT PUBLIC KEY + COMPUTE DH");
    let handshake_secret = card
        .hkdf_extract(&shared, &early, HashAlgorithm::Sha256)
        .expect("HKDF handshake secret");
    for (digest, rs) in &signed {
        card.put_public_key(&peer_slot, &server_pub)
            .expect("PUT PUBLIC KEY");
        let ok = card
            .verify_digest(&peer_slot, HashAlgorithm::Sha256, digest, rs)
            .expect("VERIFY SIGNATURE");
        assert!(ok, "the card verified a genuine signature");
    }
    card.hkdf_extract(&[], &handshake_secret, HashAlgorithm::Sha256)
        .expect("HKDF master secret");
    let digest: [u8; 32] = Sha256::digest(b"client CertificateVerify").into();
    card.sign_digest(&device, HashAlgorithm::Sha256, &digest)
        .expect("COMPUTE SIGNATURE");
    card.stats().since(&before)
}
