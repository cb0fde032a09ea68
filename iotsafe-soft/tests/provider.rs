//! What [`iotsafe_soft::provider`] assembles, and that rustls accepts it for a no_std client.

use std::sync::Arc;

use iotsafe_soft::{CIPHER_SUITES, DRBG, NO_PRIVATE_KEYS};
use rustls::client::ClientConfig;
use rustls::crypto::{ActiveKeyExchange, SupportedKxGroup};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{CipherSuite, Error, NamedGroup, SignatureScheme};

/// A group that only has to be passed through (the SIM's, on the device).
#[derive(Debug)]
struct CardGroup;

static CARD_GROUP: CardGroup = CardGroup;

impl SupportedKxGroup for CardGroup {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        Err(Error::General("no card in this test".into()))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

#[derive(Debug)]
struct Clock;

impl TimeProvider for Clock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::now())
    }
}

#[test]
fn the_provider_has_the_suites_the_groups_the_verifiers_and_a_seeded_rng() {
    let provider = iotsafe_soft::provider([7; 32], vec![&CARD_GROUP]);
    let suites: Vec<CipherSuite> = provider.cipher_suites.iter().map(|s| s.suite()).collect();
    assert_eq!(
        suites,
        [
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            CipherSuite::TLS13_AES_128_GCM_SHA256
        ]
    );
    assert_eq!(CIPHER_SUITES.len(), 2);
    assert!(provider
        .cipher_suites
        .iter()
        .all(|s| s.version() == &rustls::version::TLS13));
    assert_eq!(provider.kx_groups.len(), 1);
    assert_eq!(provider.kx_groups[0].name(), NamedGroup::secp256r1);
    assert_eq!(
        provider
            .signature_verification_algorithms
            .supported_schemes(),
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    );
    assert!(DRBG.is_seeded());
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    provider.secure_random.fill(&mut a).unwrap();
    provider.secure_random.fill(&mut b).unwrap();
    assert_ne!(a, b);
    assert!(!provider.fips());
}

#[test]
fn rustls_takes_it_for_a_tls13_client_without_std() {
    let provider = iotsafe_soft::provider([9; 32], vec![&CARD_GROUP]);
    let config = ClientConfig::builder_with_details(Arc::new(provider), Arc::new(Clock))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    assert!(config.crypto_provider().kx_groups.len() == 1);
}

#[test]
fn no_private_key_is_loaded() {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(vec![0x30, 0x00]));
    let Err(Error::General(why)) = NO_PRIVATE_KEYS.load_private_key(key) else {
        panic!("a key was loaded");
    };
    assert!(why.contains("SIM"), "{why}");

    // Through rustls: a client certificate with a software key is refused.
    let provider = iotsafe_soft::provider([1; 32], vec![&CARD_GROUP]);
    let refused = ClientConfig::builder_with_details(Arc::new(provider), Arc::new(Clock))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(
            vec![],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(vec![0x30, 0x00])),
        );
    assert!(matches!(refused, Err(Error::General(why)) if why.contains("SIM")));
}
