//! Resolver, CSR, entropy and Debug behaviour against the in-process virtual card.

mod common;

use common::*;
use iotsafe_core::{ObjectRef, Operation};
use iotsafe_rustls::{CardCertResolver, ChainPolicy, Error, IotSafeTls, Reseed};
use rustls::{ClientConnection, ServerConnection};
use std::sync::Arc;

#[test]
fn resolver_finds_the_device_certificate_by_its_key() {
    let fx = Fixture::new();
    let before = fx.stats();
    let resolver = CardCertResolver::builder(fx.card.clone()).build().unwrap();
    assert_eq!(
        resolver.device_certificate().as_ref(),
        fx.device_cert.as_ref()
    );
    assert_eq!(resolver.certified_key().cert.len(), 1);
    resolver.certified_key().keys_match().unwrap();
    let used = fx.stats().since(&before);
    assert_eq!(used.count(Operation::Sign), 0);
    assert!(used.count(Operation::ReadFile) >= 1);
}

#[test]
fn wrong_certificate_file_is_named_in_the_error() {
    let fx = Fixture::new();
    let err = CardCertResolver::builder(fx.card.clone())
        .certificate_file(ObjectRef::id([0x03]))
        .build()
        .expect_err("the CA certificate does not certify the device key");
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "certificate in file ID 03 does not match key ID 01"
    );
}

#[test]
fn missing_key_is_reported_with_the_step() {
    let fx = Fixture::new();
    let err = CardCertResolver::builder(fx.card.clone())
        .key(ObjectRef::id([0x7E]))
        .build()
        .expect_err("no key 7E");
    let text = err.to_string();
    assert!(text.contains("reading the public key of ID 7E"), "{text}");
}

#[test]
fn chain_with_card_ca_is_sent_when_configured() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .chain(ChainPolicy::WithCardCa)
        .build()
        .unwrap();
    assert_eq!(tls.resolver().certified_key().cert.len(), 2);
    assert_eq!(
        tls.resolver().certified_key().cert[1].as_ref(),
        fx.ca.as_ref()
    );
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(iotsafe_rustls::software_provider(), ClientAuth::Required);
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    assert_eq!(server.peer_certificates().unwrap().len(), 2);
}

#[cfg(feature = "rcgen")]
#[test]
fn card_signs_its_own_csr() {
    use p256::ecdsa::signature::Verifier;
    use x509_parser::prelude::FromDer;
    let fx = Fixture::new();
    let before = fx.stats();
    let pem =
        iotsafe_rustls::card_csr(fx.card.clone(), &ObjectRef::id([0x01]), "device-0001").unwrap();
    assert_eq!(fx.stats().since(&before).count(Operation::Sign), 1);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der.contents)
            .unwrap();
    let info = &csr.certification_request_info;
    let cn = info
        .subject
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(cn, "device-0001");
    let point = fx.card.read_public_key(&ObjectRef::id([0x01])).unwrap();
    assert_eq!(
        info.subject_pki.subject_public_key.data.as_ref(),
        point.as_bytes().as_slice()
    );
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point.as_bytes()).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&csr.signature_value.data).unwrap();
    vk.verify(info.raw, &sig)
        .expect("CSR signature by the card key");
}

#[test]
fn card_entropy_seeded_once_costs_no_handshake_apdu() {
    let fx = Fixture::new();
    let before = fx.stats();
    let tls = IotSafeTls::builder(fx.card.clone())
        .card_entropy(Reseed::Never)
        .build()
        .unwrap();
    assert_eq!(fx.stats().since(&before).count(Operation::Random), 1);
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(iotsafe_rustls::software_provider(), ClientAuth::Required);
    let before = fx.stats();
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    let used = fx.stats().since(&before);
    assert_eq!(used.count(Operation::Random), 0);
    assert_eq!(used.apdus, 6);
}

#[test]
fn card_entropy_reseeding_uses_get_random_and_output_differs() {
    let fx = Fixture::new();
    let software = iotsafe_rustls::software_provider().secure_random;
    let rng = iotsafe_rustls::CardEntropyRng::new(fx.card.clone(), software, Reseed::EveryCalls(2))
        .unwrap();
    use rustls::crypto::SecureRandom;
    let before = fx.stats();
    let mut a = [0u8; 48];
    let mut b = [0u8; 48];
    rng.fill(&mut a).unwrap();
    rng.fill(&mut b).unwrap();
    assert_ne!(a, b);
    assert_ne!(a, [0u8; 48]);
    assert_eq!(fx.stats().since(&before).count(Operation::Random), 1);
    assert!(!format!("{rng:?}").is_empty());
}

#[test]
fn debug_output_is_safe() {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone()).build().unwrap();
    let client_config = tls.client_config(fx.roots.clone()).unwrap();
    let text = format!("{tls:?} {client_config:?} {:?}", tls.kx_group());
    assert!(text.contains("CardKxGroup"), "{text}");
    assert!(text.contains("CardCertResolver"), "{text}");
}

#[test]
fn card_without_the_ephemeral_slot_is_refused_at_build_time() {
    let fx = Fixture::new();
    let options = iotsafe_rustls::KxOptions {
        ephemeral_slot: ObjectRef::id([0x7E]),
        ..Default::default()
    };
    let err = IotSafeTls::builder(fx.card.clone())
        .kx_options(options)
        .build()
        .expect_err("slot 7E does not exist");
    let text = err.to_string();
    assert!(text.contains("no private key ID 7E"), "{text}");
    assert!(text.contains("EcdheOn::Host"), "{text}");
    // The device key cannot do ECDHE key generation: refused with its functions.
    let options = iotsafe_rustls::KxOptions {
        ephemeral_slot: ObjectRef::id([0x01]),
        ..Default::default()
    };
    let err = iotsafe_rustls::check_slots(&fx.card, &options).expect_err("device key");
    assert!(err.to_string().contains("not key generation"), "{err}");
}
