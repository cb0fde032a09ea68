//! Interop: full TLS 1.3 handshakes and application data, in memory, between a rustls client on
//! this crate's provider and a rustls server on the ring provider, once per cipher suite, on the
//! buffered API and on the unbuffered one the firmware uses.
//!
//! The SIM's ECDHE lives in another crate; here a software P-256 group (p256's ECDH) stands in
//! for it. The server's chain is a P-256 root, a P-256 intermediate and a P-256 leaf (rcgen).

use std::io::{Read, Write};
use std::sync::Arc;

use p256::ecdh::EphemeralSecret;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::{ClientConfig, ClientConnection, UnbufferedClientConnection};
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ServerConfig, ServerConnection};
use rustls::time_provider::TimeProvider;
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use rustls::{
    CertificateError, CipherSuite, Error, NamedGroup, PeerMisbehaved, ProtocolVersion,
    RootCertStore, SupportedCipherSuite,
};

// ---------------------------------------------------------------- the stand-ins

/// Software ECDHE on P-256, where the device has the SIM's group.
#[derive(Debug)]
struct SoftP256;

static SOFT_P256: SoftP256 = SoftP256;

impl SupportedKxGroup for SoftP256 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = EphemeralSecret::random(&mut OsRng);
        let pub_key = secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Ok(Box::new(SoftP256Exchange { secret, pub_key }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

struct SoftP256Exchange {
    secret: EphemeralSecret,
    pub_key: Vec<u8>,
}

impl ActiveKeyExchange for SoftP256Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        let peer = p256::PublicKey::from_sec1_bytes(peer_pub_key)
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self.secret.diffie_hellman(&peer);
        Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.pub_key
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// The clock a no_std client must be given; the firmware's would read the modem's or an RTC.
#[derive(Debug)]
struct SystemClock;

impl TimeProvider for SystemClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::now())
    }
}

// ---------------------------------------------------------------- certificates and configs

struct Pki {
    root: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

/// Root → intermediate → leaf for "localhost", all P-256 ECDSA with SHA-256.
fn pki() -> Pki {
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let root = ca_params("iotsafe-soft test root")
        .self_signed(&root_key)
        .unwrap();
    let root_issuer = Issuer::new(ca_params("iotsafe-soft test root"), root_key);

    let mid_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mid_params = ca_params("iotsafe-soft test intermediate");
    let mid = mid_params.signed_by(&mid_key, &root_issuer).unwrap();
    let mid_issuer = Issuer::new(mid_params, mid_key);

    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &mid_issuer)
        .unwrap();

    Pki {
        root: root.der().clone(),
        chain: vec![leaf.der().clone(), mid.der().clone()],
        key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

/// A root with the same name as `pki()`'s but another key: the chain's signatures fail under it.
fn impostor_root() -> CertificateDer<'static> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    ca_params("iotsafe-soft test root")
        .self_signed(&key)
        .unwrap()
        .der()
        .clone()
}

/// The peer: rustls on ring, TLS 1.3, offering only `suites`.
fn ring_server(pki: &Pki, suites: &[SupportedCipherSuite]) -> Arc<ServerConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = suites.to_vec();
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), PrivateKeyDer::Pkcs8(pki.key.clone_key()))
        .unwrap();
    Arc::new(config)
}

/// The device: this crate's provider with the stand-in group, built the way a no_std firmware
/// must (`builder_with_details`, its own clock).
fn soft_client(root: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let provider = iotsafe_soft::provider(seed, vec![&SOFT_P256]);
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = ClientConfig::builder_with_details(Arc::new(provider), Arc::new(SystemClock))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

fn ring_suites() -> [(CipherSuite, SupportedCipherSuite); 2] {
    use rustls::crypto::ring::cipher_suite as ring;
    [
        (
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            ring::TLS13_AES_128_GCM_SHA256,
        ),
        (
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            ring::TLS13_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

// ---------------------------------------------------------------- the buffered API

/// Moves records both ways until neither side has anything to send. Returns the plaintext the
/// client received, read as it arrives (rustls holds at most 16 KiB unread).
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<Vec<u8>, Error> {
    let mut received = Vec::new();
    for _ in 0..100 {
        let mut moved = false;
        while client.wants_write() {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets()?;
            }
            moved = true;
        }
        while server.wants_write() {
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets()?;
                received.extend(read_available(&mut client.reader()));
            }
            moved = true;
        }
        if !moved {
            return Ok(received);
        }
    }
    panic!("the connection never settled");
}

fn read_available(reader: &mut dyn Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn connected(suite: SupportedCipherSuite) -> (ClientConnection, ServerConnection) {
    let pki = pki();
    let mut client = ClientConnection::new(soft_client(&pki.root), localhost()).unwrap();
    let mut server = ServerConnection::new(ring_server(&pki, &[suite])).unwrap();
    pump(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking() && !server.is_handshaking());
    (client, server)
}

#[test]
fn handshake_and_data_with_each_suite() {
    for (name, suite) in ring_suites() {
        let (mut client, mut server) = connected(suite);
        assert_eq!(
            client.negotiated_cipher_suite().map(|s| s.suite()),
            Some(name)
        );
        assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(
            client.negotiated_key_exchange_group().map(|g| g.name()),
            Some(NamedGroup::secp256r1)
        );

        // Both directions, and more than one record's worth (16 KiB) from the server.
        client.writer().write_all(b"telemetry 42").unwrap();
        pump(&mut client, &mut server).unwrap();
        assert_eq!(read_available(&mut server.reader()), b"telemetry 42");
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        server.writer().write_all(&big).unwrap();
        assert_eq!(pump(&mut client, &mut server).unwrap(), big, "{name:?}");

        // A clean close: the server reads the end of the stream.
        client.send_close_notify();
        pump(&mut client, &mut server).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(server.reader().read(&mut buf).unwrap(), 0);
    }
}

#[test]
fn the_client_prefers_chacha20_poly1305() {
    let pki = pki();
    let both: Vec<_> = ring_suites().iter().map(|(_, s)| *s).collect();
    let mut client = ClientConnection::new(soft_client(&pki.root), localhost()).unwrap();
    let mut server = ServerConnection::new(ring_server(&pki, &both)).unwrap();
    pump(&mut client, &mut server).unwrap();
    assert_eq!(
        client.negotiated_cipher_suite().map(|s| s.suite()),
        Some(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
    );
}

#[test]
fn a_tampered_server_record_is_refused() {
    for (name, suite) in ring_suites() {
        let (mut client, mut server) = connected(suite);
        server.writer().write_all(b"firmware update").unwrap();
        let mut record = Vec::new();
        server.write_tls(&mut record).unwrap();
        let last = record.len() - 1;
        record[last] ^= 0x01; // the tag
        client.read_tls(&mut &record[..]).unwrap();
        assert_eq!(
            client.process_new_packets().err(),
            Some(Error::DecryptError),
            "{name:?}"
        );
    }
}

#[test]
fn a_chain_that_does_not_verify_is_refused() {
    // The client trusts a root named like the real one, with another key: the intermediate's
    // signature fails under it (verify.rs, through webpki).
    let pki = pki();
    let mut client = ClientConnection::new(soft_client(&impostor_root()), localhost()).unwrap();
    let mut server = ServerConnection::new(ring_server(&pki, &[ring_suites()[0].1])).unwrap();
    assert_eq!(
        pump(&mut client, &mut server).err(),
        Some(Error::InvalidCertificate(CertificateError::BadSignature))
    );
}

// ---------------------------------------------------------------- the unbuffered API

fn to_server(server: &mut ServerConnection, mut data: &[u8]) {
    while !data.is_empty() {
        server.read_tls(&mut data).unwrap();
        server.process_new_packets().unwrap();
    }
}

fn from_server(server: &mut ServerConnection, mut buf: &mut [u8]) -> usize {
    let room = buf.len();
    while server.wants_write() && !buf.is_empty() {
        server.write_tls(&mut buf).unwrap();
    }
    room - buf.len()
}

/// Drives an [`UnbufferedClientConnection`] the way firmware does: fixed buffers for each
/// direction, one state at a time. Sends `request` once the handshake allows, reads until the
/// server's `response` is in, then closes. Returns what it read and the suite it negotiated.
fn unbuffered_exchange(
    config: Arc<ClientConfig>,
    server: &mut ServerConnection,
    request: &[u8],
    response: &[u8],
) -> (Vec<u8>, CipherSuite) {
    let mut conn = UnbufferedClientConnection::new(config, localhost()).unwrap();
    let mut incoming = vec![0u8; 32 * 1024];
    let mut incoming_used = 0;
    let mut outgoing = vec![0u8; 32 * 1024];
    let mut outgoing_used = 0;
    let mut received = Vec::new();
    let (mut request_sent, mut close_sent) = (false, false);

    for _ in 0..1000 {
        let UnbufferedStatus { mut discard, state } =
            conn.process_tls_records(&mut incoming[..incoming_used]);
        let mut need_input = false;
        match state.expect("client state") {
            ConnectionState::EncodeTlsData(mut state) => {
                outgoing_used += state.encode(&mut outgoing[outgoing_used..]).unwrap();
            }
            ConnectionState::TransmitTlsData(state) => {
                to_server(server, &outgoing[..outgoing_used]);
                outgoing_used = 0;
                state.done();
            }
            ConnectionState::BlockedHandshake => need_input = true,
            ConnectionState::WriteTraffic(mut state) => {
                if !request_sent {
                    let n = state.encrypt(request, &mut outgoing).unwrap();
                    to_server(server, &outgoing[..n]);
                    request_sent = true;
                    assert_eq!(read_available(&mut server.reader()), request);
                    server.writer().write_all(response).unwrap();
                } else if received.len() < response.len() {
                    need_input = true;
                } else if !close_sent {
                    let n = state.queue_close_notify(&mut outgoing).unwrap();
                    to_server(server, &outgoing[..n]);
                    close_sent = true;
                    let mut buf = [0u8; 1];
                    assert_eq!(server.reader().read(&mut buf).unwrap(), 0);
                    server.send_close_notify();
                } else {
                    need_input = true;
                }
            }
            ConnectionState::ReadTraffic(mut state) => {
                while let Some(record) = state.next_record() {
                    let record = record.unwrap();
                    discard += record.discard;
                    received.extend_from_slice(record.payload);
                }
            }
            ConnectionState::PeerClosed => {}
            ConnectionState::Closed => {
                let suite = conn.negotiated_cipher_suite().unwrap().suite();
                return (received, suite);
            }
            other => panic!("unexpected state {other:?}"),
        }
        if discard > 0 {
            incoming.copy_within(discard..incoming_used, 0);
            incoming_used -= discard;
        }
        if need_input {
            let n = from_server(server, &mut incoming[incoming_used..]);
            assert!(
                n > 0,
                "the client waits for the server, which has nothing to send"
            );
            incoming_used += n;
        }
    }
    panic!("the unbuffered connection never closed");
}

#[test]
fn unbuffered_handshake_and_data_with_each_suite() {
    for (name, suite) in ring_suites() {
        let pki = pki();
        let mut server = ServerConnection::new(ring_server(&pki, &[suite])).unwrap();
        let response: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        let (received, negotiated) = unbuffered_exchange(
            soft_client(&pki.root),
            &mut server,
            b"GET /config HTTP/1.0\r\n\r\n",
            &response,
        );
        assert_eq!(negotiated, name);
        assert_eq!(received, response, "{name:?}");
    }
}
