//! In-memory rustls client ⇄ rustls server handshakes with the in-process virtual card
//! (`iotsafe-vcard`), counting what the card did.
//!
//! APDU budget with the default `CardConfig` (sessions closed after use), full TLS 1.3 handshake
//! with client authentication: GENERATE KEY PAIR (1) + PUT PUBLIC KEY Init/Update/close (3) +
//! COMPUTE DH (1) + COMPUTE SIGNATURE Init/Update/close (3) = 8.

mod common;

use common::*;
use iotsafe_core::Operation;
use iotsafe_rustls::provider::CardProvider;
use iotsafe_rustls::{software_provider, EcdheOn, IotSafeTls, KxOptions, BACKEND};
use rustls::crypto::SupportedKxGroup;
use rustls::{ClientConnection, HandshakeKind, NamedGroup, ServerConnection};
use std::sync::Arc;
use std::time::Duration;

const FULL_HANDSHAKE_APDUS: u64 = 6;
const KX_APDUS: u64 = 4;
const SIGN_APDUS: u64 = 2;

fn backend_kx(name: NamedGroup) -> &'static dyn SupportedKxGroup {
    *software_provider()
        .kx_groups
        .iter()
        .find(|g| g.name() == name)
        .expect("backend group")
}

fn card_tls(fx: &Fixture) -> IotSafeTls {
    IotSafeTls::builder(fx.card.clone())
        .build()
        .expect("build IotSafeTls")
}

#[test]
fn full_tls13_handshake_uses_the_card_once_each_within_the_apdu_budget() {
    let fx = Fixture::new();
    let tls = card_tls(&fx);
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);

    let before = fx.stats();
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    // start() ran inside ClientConnection::new: the key pair exists already.
    assert_eq!(ops(&fx.stats().since(&before)), (1, 0, 0));
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");

    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 1), "keygen, DH, sign: {used:?}");
    assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS, "{used:?}");
    assert_eq!(used.of(Operation::GenerateKeyPair).apdus, 1);
    assert_eq!(used.of(Operation::PutPublicKey).apdus, 2);
    assert_eq!(used.of(Operation::Dh).apdus, 1);
    assert_eq!(used.of(Operation::Sign).apdus, SIGN_APDUS);
    assert_eq!(client.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(
        client.negotiated_key_exchange_group().map(|g| g.name()),
        Some(NamedGroup::secp256r1)
    );
    // The server saw the card's certificate.
    assert_eq!(
        server.peer_certificates().unwrap()[0].as_ref(),
        fx.device_cert.as_ref()
    );
    assert_eq!(
        server.peer_certificates().unwrap().len(),
        1,
        "end-entity only"
    );
    eprintln!("backend {BACKEND}: {used:?}");
}

#[test]
fn hello_retry_request_moves_the_key_exchange_to_the_card() {
    let fx = Fixture::new();
    let tls = card_tls(&fx);
    let kx = tls.kx_group().unwrap();
    // Client offers [X25519 (software), card secp256r1]; the server only takes secp256r1.
    let provider = CardProvider::card_ecdhe(kx)
        .prepend_kx_group(backend_kx(NamedGroup::X25519))
        .build();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(fx.roots.clone())
        .with_client_cert_resolver(tls.resolver().clone());
    let mut server_provider = software_provider();
    server_provider.kx_groups = vec![backend_kx(NamedGroup::secp256r1)];
    let server_config = fx.server_config(server_provider, ClientAuth::Required);

    let before = fx.stats();
    let mut client = ClientConnection::new(Arc::new(client_config), server_name()).unwrap();
    assert_eq!(
        ops(&fx.stats().since(&before)),
        (0, 0, 0),
        "X25519 share first"
    );
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    let used = fx.stats().since(&before);
    assert_eq!(
        client.handshake_kind(),
        Some(HandshakeKind::FullWithHelloRetryRequest)
    );
    assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
    assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS);
}

#[test]
fn server_without_certificate_request_gets_no_card_signature() {
    let fx = Fixture::new();
    let tls = card_tls(&fx);
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::None);
    let before = fx.stats();
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 0), "{used:?}");
    assert_eq!(used.apdus, KX_APDUS);
    assert!(server.peer_certificates().is_none());
}

#[test]
fn aes_256_gcm_sha384_suite_still_signs_with_sha256_over_146_bytes() {
    use rustls::client::ResolvesClientCert;
    use rustls::sign::{CertifiedKey, Signer, SigningKey};
    use rustls::{SignatureAlgorithm, SignatureScheme};
    use std::sync::Mutex;

    /// Records the length of what rustls asks the card key to sign.
    #[derive(Debug)]
    struct Recording {
        inner: iotsafe_rustls::CardSigningKey,
        lengths: Arc<Mutex<Vec<usize>>>,
    }
    #[derive(Debug)]
    struct RecordingSigner {
        inner: Box<dyn Signer>,
        lengths: Arc<Mutex<Vec<usize>>>,
    }
    impl SigningKey for Recording {
        fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
            let inner = self.inner.choose_scheme(offered)?;
            Some(Box::new(RecordingSigner {
                inner,
                lengths: self.lengths.clone(),
            }))
        }
        fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
            self.inner.public_key()
        }
        fn algorithm(&self) -> SignatureAlgorithm {
            self.inner.algorithm()
        }
    }
    impl Signer for RecordingSigner {
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
            self.lengths.lock().unwrap().push(message.len());
            self.inner.sign(message)
        }
        fn scheme(&self) -> SignatureScheme {
            self.inner.scheme()
        }
    }
    #[derive(Debug)]
    struct Resolver(Arc<CertifiedKey>);
    impl ResolvesClientCert for Resolver {
        fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
        fn has_certs(&self) -> bool {
            true
        }
    }

    let fx = Fixture::new();
    let tls = card_tls(&fx);
    let lengths = Arc::new(Mutex::new(Vec::new()));
    let recording = Recording {
        inner: tls.resolver().signing_key().clone(),
        lengths: lengths.clone(),
    };
    let certified = CertifiedKey::new(
        tls.resolver().certified_key().cert.clone(),
        Arc::new(recording),
    );
    certified.keys_match().unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(tls.provider().clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(fx.roots.clone())
        .with_client_cert_resolver(Arc::new(Resolver(Arc::new(certified))));
    let mut server_provider = software_provider();
    server_provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    let server_config = fx.server_config(server_provider, ClientAuth::Required);

    let before = fx.stats();
    let mut client = ClientConnection::new(Arc::new(client_config), server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    assert_eq!(
        client.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
    );
    assert_eq!(*lengths.lock().unwrap(), vec![146]);
    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 1));
    assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS);
}

#[test]
fn server_offering_no_ecdsa_scheme_gets_no_certificate_and_refuses() {
    use rustls::client::danger::HandshakeSignatureValid;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
    use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

    /// The WebPKI verifier, but its CertificateRequest lists no ECDSA scheme.
    #[derive(Debug)]
    struct NoEcdsa(Arc<dyn ClientCertVerifier>);
    impl ClientCertVerifier for NoEcdsa {
        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            self.0.root_hint_subjects()
        }
        fn verify_client_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            now: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            self.0.verify_client_cert(end_entity, intermediates, now)
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::RSA_PSS_SHA256, SignatureScheme::ED25519]
        }
    }

    let fx = Fixture::new();
    let tls = card_tls(&fx);
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_provider = Arc::new(software_provider());
    let verifier = Arc::new(NoEcdsa(fx.client_verifier(&server_provider)));
    let server_config = fx.server_config(software_provider(), ClientAuth::Custom(verifier));
    let before = fx.stats();
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    let result = handshake_and_talk(&mut client, &mut server);
    match result {
        Err(Failure::Server(rustls::Error::NoCertificatesPresented)) => {}
        other => panic!("expected the server to refuse a client without certificate: {other:?}"),
    }
    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 0), "no card signature: {used:?}");
}

fn resumption_run(resumption: bool) -> (HandshakeKind, iotsafe_core::CardStats) {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .resumption(resumption)
        .build()
        .unwrap();
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    let mut first = ClientConnection::new(client_config.clone(), server_name()).unwrap();
    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    handshake_and_talk(&mut first, &mut server).expect("first handshake");
    assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full));

    let before = fx.stats();
    let mut second = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut second, &mut server).expect("second handshake");
    (second.handshake_kind().unwrap(), fx.stats().since(&before))
}

#[test]
fn resumption_on_skips_the_signature_but_keeps_card_ecdhe() {
    let (kind, used) = resumption_run(true);
    assert_eq!(kind, HandshakeKind::Resumed);
    assert_eq!(ops(&used), (1, 1, 0), "{used:?}");
    assert_eq!(used.apdus, KX_APDUS);
}

#[test]
fn resumption_off_signs_every_handshake() {
    let (kind, used) = resumption_run(false);
    assert_eq!(kind, HandshakeKind::Full);
    assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
    assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS);
}

#[test]
fn card_returning_der_signatures_still_interoperates() {
    let mut options = iotsafe_vcard::CardOptions::default();
    options.quirks.signature_format = iotsafe_vcard::SignatureFormat::Der;
    let fx = Fixture::with_options(options);
    let tls = card_tls(&fx);
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    let before = fx.stats();
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
    assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS);
    // And many signatures straight from the DER-answering card are minimal and verify.
    assert_many_signatures_verify(&tls.resolver().signing_key().clone());
}

#[test]
fn signatures_verify_over_many_handshakes() {
    // Many signatures: about 1 in 128 has r or s with a leading zero byte or high bit patterns
    // that a naive converter gets wrong; every one must verify at the server.
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .resumption(false)
        .build()
        .unwrap();
    assert_many_signatures_verify(&tls.resolver().signing_key().clone());
}

fn assert_many_signatures_verify(key: &iotsafe_rustls::CardSigningKey) {
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key.public_point().as_bytes()).unwrap();
    use p256::ecdsa::signature::Verifier;
    for i in 0..64u32 {
        let msg = format!("message {i}").into_bytes();
        let der = key.sign_message(&msg).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).expect("minimal DER");
        assert_eq!(sig.to_der().as_bytes(), &der[..], "minimal encoding");
        vk.verify(&msg, &sig).expect("verifies");
    }
}

#[test]
fn stale_complete_fails_cleanly_without_the_queue() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::default().unqueued())
        .build()
        .unwrap();
    let kx = tls.kx_group().unwrap();
    let first = kx.start().unwrap();
    let second = kx.start().unwrap(); // regenerates the single slot
    let peer = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let peer_point = {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        peer.public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    };
    let before = fx.stats();
    let err = match first.complete(&peer_point) {
        Ok(_) => panic!("a replaced ephemeral key must not be used"),
        Err(e) => e,
    };
    // Typed, and naming the cause.
    match iotsafe_rustls::KxError::from_rustls(&err) {
        Some(iotsafe_rustls::KxError::TakenOver { queued: false, .. }) => {}
        other => panic!("expected KxError::TakenOver: {other:?} ({err})"),
    }
    let text = err.to_string();
    assert!(
        text.contains("given to another key exchange") && text.contains("queue is off"),
        "{text}"
    );
    assert_eq!(
        fx.stats().since(&before).apdus,
        0,
        "nothing sent to the card"
    );

    // The current exchange still works, and the secret is the real ECDH result.
    let card_point = second.pub_key().to_vec();
    let secret = second.complete(&peer_point).unwrap();
    let card_pk = p256::PublicKey::from_sec1_bytes(&card_point).unwrap();
    let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), card_pk.as_affine());
    assert_eq!(secret.secret_bytes(), &expected.raw_secret_bytes()[..]);
}

#[test]
fn interleaved_handshakes_without_the_queue_fail_the_stale_one_and_finish_the_other() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::default().unqueued())
        .resumption(false)
        .build()
        .unwrap();
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    let mut c1 = ClientConnection::new(client_config.clone(), server_name()).unwrap();
    let mut c2 = ClientConnection::new(client_config, server_name()).unwrap();
    let mut s1 = ServerConnection::new(server_config.clone()).unwrap();
    let mut s2 = ServerConnection::new(server_config).unwrap();
    match pump(&mut c1, &mut s1) {
        Err(Failure::Client(e)) => assert!(e.to_string().contains("IoT SAFE card"), "{e}"),
        other => panic!("expected a clean client error: {other:?}"),
    }
    handshake_and_talk(&mut c2, &mut s2).expect("the current handshake");
}

fn peer_point(seed: u8) -> (p256::SecretKey, Vec<u8>) {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let peer = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
    let point = peer
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    (peer, point)
}

#[test]
fn a_queued_start_waits_for_the_exchange_in_flight_and_both_succeed() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::default().queued(Duration::from_secs(30)))
        .resumption(false)
        .build()
        .unwrap();
    let kx = tls.kx_group().unwrap();
    let first = kx.start().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiting = std::thread::spawn(move || {
        let second = kx.start().expect("the queued start");
        tx.send(()).unwrap();
        second
    });
    // The second start stays queued while the first exchange is in flight (no card work).
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the second start did not wait"
    );
    let (_, point) = peer_point(7);
    first
        .complete(&point)
        .expect("the first exchange kept its key");
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the second start went ahead once the first completed");
    let second = waiting.join().unwrap();
    second.complete(&point).expect("the second exchange");
}

#[test]
fn a_queued_start_goes_ahead_after_its_limit_and_the_stuck_exchange_fails_cleanly() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::default().queued(Duration::from_millis(200)))
        .resumption(false)
        .build()
        .unwrap();
    let kx = tls.kx_group().unwrap();
    // A handshake whose peer never answers: its exchange stays in flight.
    let stuck = kx.start().unwrap();
    let second = std::thread::spawn(move || kx.start().expect("went ahead after the limit"))
        .join()
        .unwrap();
    let (_, point) = peer_point(9);
    second.complete(&point).expect("the newer exchange works");
    let err = stuck
        .complete(&point)
        .err()
        .expect("the stuck key was replaced");
    assert!(err.to_string().contains("IoT SAFE card"), "{err}");
}

#[test]
fn peer_point_off_the_curve_is_refused_before_the_card() {
    let fx = Fixture::new();
    let tls = card_tls(&fx);
    let kx = tls.kx_group().unwrap();
    let active = kx.start().unwrap();
    let mut bad = active.pub_key().to_vec();
    bad[64] ^= 1;
    let before = fx.stats();
    let err = active.complete(&bad).err().expect("refused");
    assert_eq!(
        err,
        rustls::Error::PeerMisbehaved(rustls::PeerMisbehaved::InvalidKeyShare)
    );
    assert_eq!(fx.stats().since(&before).apdus, 0);
}

#[test]
fn pregenerated_key_costs_connect_one_confirming_apdu() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::pregenerating(true))
        .resumption(false)
        .build()
        .unwrap();
    let kx = tls.kx_group().unwrap();
    assert!(kx.wait_for_background(Duration::from_secs(10)));
    assert!(kx.has_pregenerated_key());
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    for round in 0..3 {
        assert!(kx.wait_for_background(Duration::from_secs(10)));
        let before = fx.stats();
        let mut client = ClientConnection::new(client_config.clone(), server_name()).unwrap();
        // One READ PUBLIC KEY confirms the card still holds the key made ahead of time.
        let connect = fx.stats().since(&before);
        assert_eq!(
            (connect.apdus, connect.count(Operation::ReadPublicKey)),
            (1, 1),
            "round {round}: connect used the pre-generated key"
        );
        let mut server = ServerConnection::new(server_config.clone()).unwrap();
        handshake_and_talk(&mut client, &mut server).expect("handshake");
        assert!(kx.wait_for_background(Duration::from_secs(10)));
        assert!(kx.has_pregenerated_key(), "next key ready");
        let used = fx.stats().since(&before);
        // The handshake's DH + signature, and the next key generated in the background.
        assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
        assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS + 1);
    }
}

#[test]
fn pregenerated_key_replaced_on_the_card_is_not_used() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::pregenerating(true))
        .build()
        .unwrap();
    let kx = tls.kx_group().unwrap();
    assert!(kx.wait_for_background(Duration::from_secs(10)));
    // Someone else regenerates the slot behind the group's back.
    fx.card
        .generate_ephemeral(&iotsafe_core::ObjectRef::id([0x04]))
        .unwrap();
    let before = fx.stats();
    let active = kx.start().unwrap();
    assert_eq!(ops(&fx.stats().since(&before)), (1, 0, 0), "fresh key");
    let peer = p256::SecretKey::from_slice(&[9u8; 32]).unwrap();
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let point = peer.public_key().to_encoded_point(false);
    active
        .complete(point.as_bytes())
        .expect("fresh key is current");
}

#[test]
fn host_ecdhe_option_signs_on_the_card_only() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .ecdhe_on(EcdheOn::Host)
        .build()
        .unwrap();
    assert!(tls.kx_group().is_none());
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    let before = fx.stats();
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (0, 0, 1), "{used:?}");
    assert_eq!(used.apdus, SIGN_APDUS);
}

#[test]
fn device_as_tls_server_signs_and_does_ecdhe_on_the_card() {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// Pins the device certificate (it is a clientAuth cert without SAN) but checks the
    /// CertificateVerify signature for real.
    #[derive(Debug)]
    struct PinDevice(CertificateDer<'static>, Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for PinDevice {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            assert_eq!(end_entity.as_ref(), self.0.as_ref());
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.1.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.1.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.1.signature_verification_algorithms.supported_schemes()
        }
    }

    let fx = Fixture::new();
    let tls = card_tls(&fx);
    let server_config = Arc::new(
        tls.server_config(Arc::new(rustls::server::NoClientAuth))
            .unwrap(),
    );
    let software = Arc::new(software_provider());
    let client_config = rustls::ClientConfig::builder_with_provider(software.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinDevice(fx.device_cert.clone(), software)))
        .with_no_client_auth();
    let before = fx.stats();
    let mut client = ClientConnection::new(Arc::new(client_config), server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    let used = fx.stats().since(&before);
    // The software client's first share is X25519: the card server asks for secp256r1 (HRR).
    assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
    assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS);
}

#[cfg(feature = "tls12")]
#[test]
fn tls12_ecdhe_ecdsa_with_the_card() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .tls12(true)
        .build()
        .unwrap();
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let provider = Arc::new(software_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_client_cert_verifier(fx.client_verifier(&provider))
        .with_single_cert(fx.server_chain.clone(), fx.server_key())
        .unwrap();
    let before = fx.stats();
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let used = fx.stats().since(&before);
    // The speculative TLS 1.3 key share was made on the card too: two key generations.
    assert_eq!(ops(&used), (2, 1, 1), "{used:?}");
    assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS + 1);
}

#[test]
fn concurrent_handshakes_with_pregeneration_succeed_or_fail_cleanly() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::pregenerating(true))
        .resumption(false)
        .build()
        .unwrap();
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let client_config = client_config.clone();
            let server_config = server_config.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for _ in 0..5 {
                    let mut client =
                        ClientConnection::new(client_config.clone(), server_name()).unwrap();
                    let mut server = ServerConnection::new(server_config.clone()).unwrap();
                    outcomes.push(handshake_and_talk(&mut client, &mut server));
                }
                outcomes
            })
        })
        .collect();
    let mut ok = 0;
    for t in threads {
        for outcome in t.join().unwrap() {
            match outcome {
                Ok(()) => ok += 1,
                // The only acceptable failure: this handshake's card key was replaced by another
                // handshake's start() (one ephemeral slot), reported by the client, never a wrong
                // secret (which would surface as a decrypt error at the server).
                Err(Failure::Client(e)) => {
                    assert!(e.to_string().contains("was replaced"), "{e}")
                }
                Err(other) => panic!("unclean failure: {other:?}"),
            }
        }
    }
    assert!(ok > 0, "some handshakes complete");
    let kx = tls.kx_group().unwrap();
    assert!(kx.wait_for_background(Duration::from_secs(10)));
    assert!(
        kx.has_pregenerated_key(),
        "idle group has the next key ready"
    );
    // And a lone handshake afterwards uses it and succeeds.
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake after the storm");
}

#[test]
fn t0_card_adds_one_get_response_per_data_bearing_answer() {
    let options = iotsafe_vcard::CardOptions {
        transport: iotsafe_vcard::TransportMode::T0,
        ..Default::default()
    };
    let fx = Fixture::with_options(options);
    let tls = card_tls(&fx);
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    let before = fx.stats();
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
    // Key pair, shared secret and signature come back through GET RESPONSE: 6 + 3.
    assert_eq!(used.apdus, FULL_HANDSHAKE_APDUS + 3, "{used:?}");
}

#[test]
fn pregeneration_takes_key_generation_off_connect_on_a_slow_card() {
    const KEYGEN: Duration = Duration::from_millis(300);
    let mut options = iotsafe_vcard::CardOptions::default();
    options.latency.keygen = KEYGEN;
    let fx = Fixture::with_options(options);
    let server_name = server_name();

    let plain = IotSafeTls::builder(fx.card.clone()).build().unwrap();
    let config = Arc::new(plain.client_config(fx.roots.clone()).unwrap());
    let started = std::time::Instant::now();
    let client = ClientConnection::new(config, server_name.clone()).unwrap();
    let without = started.elapsed();
    // Abandoned: its key exchange releases the card's slot (which it holds while in flight).
    drop(client);
    assert!(
        without >= KEYGEN,
        "connect waited for the card: {without:?}"
    );

    let pregen = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::pregenerating(true))
        .build()
        .unwrap();
    assert!(pregen
        .kx_group()
        .unwrap()
        .wait_for_background(Duration::from_secs(10)));
    let config = Arc::new(pregen.client_config(fx.roots.clone()).unwrap());
    let started = std::time::Instant::now();
    let _client = ClientConnection::new(config, server_name).unwrap();
    let with = started.elapsed();
    assert!(
        with < KEYGEN,
        "connect used the pre-generated key: {with:?}"
    );
    eprintln!("ClientConnection::new: {without:?} without, {with:?} with pre-generation");
}

#[test]
fn pregeneration_waits_for_the_signature_so_it_never_delays_it() {
    // The card's command order decides the critical path: a background GENERATE KEY PAIR between
    // COMPUTE DH and COMPUTE SIGNATURE would hold the card while the signature waits.
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::pregenerating(true))
        .resumption(false)
        .build()
        .unwrap();
    let kx = tls.kx_group().unwrap();
    assert!(kx.wait_for_background(Duration::from_secs(10)));
    let order = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = order.clone();
    fx.card
        .set_trace(Some(Arc::new(move |e: &iotsafe_core::TraceEvent| {
            if e.direction == iotsafe_core::Direction::Command {
                // The trace text is hex: the INS is the second byte.
                if let Some(ins) = e
                    .text
                    .get(2..4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    sink.lock().unwrap().push(ins);
                }
            }
        })));
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    for _ in 0..3 {
        let mut client = ClientConnection::new(client_config.clone(), server_name()).unwrap();
        let mut server = ServerConnection::new(server_config.clone()).unwrap();
        handshake_and_talk(&mut client, &mut server).expect("handshake");
        assert!(kx.wait_for_background(Duration::from_secs(10)));
    }
    // Per handshake: READ PUBLIC KEY (the key made ahead is still there), PUT PUBLIC KEY ×2,
    // COMPUTE DH, COMPUTE SIGNATURE ×2 (the sessions left open), then the next key.
    let one = [0xCD, 0x24, 0xD8, 0x46, 0x2A, 0x2B, 0xB9];
    let expected: Vec<u8> = one.iter().copied().cycle().take(one.len() * 3).collect();
    assert_eq!(*order.lock().unwrap(), expected);
}
