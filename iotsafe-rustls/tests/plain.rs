//! The pieces a device without `std` uses (`PlainCardKxGroup`, `CardCertifiedKey`, the card
//! signer), here on the host: a TLS 1.3 handshake with client authentication against a rustls
//! server on the in-process virtual card, with the same card work and APDUs as the host's
//! configs, and the typed refusals.

mod common;

use common::*;
use iotsafe_core::{ObjectRef, Operation};
use iotsafe_rustls::{software_provider, CardCertifiedKey, CardSigningKey, PlainCardKxGroup};
use rustls::{ClientConfig, ClientConnection, NamedGroup, ServerConnection};
use std::sync::Arc;

/// A client config as firmware builds it: the software provider's cipher suites, the card's
/// plain key exchange as the only group, the card key and certificate from file `02`.
fn plain_client(fx: &Fixture) -> ClientConfig {
    let kx = PlainCardKxGroup::new(
        fx.card.clone(),
        ObjectRef::id([0x04]),
        ObjectRef::id([0x05]),
    )
    .leak();
    let mut provider = software_provider();
    provider.kx_groups = vec![kx];
    let key = CardSigningKey::new(fx.card.clone(), ObjectRef::id([0x01])).unwrap();
    let certified = CardCertifiedKey::read(key, ObjectRef::id([0x02])).unwrap();
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(fx.roots.clone())
        .with_client_cert_resolver(Arc::new(certified))
}

#[test]
fn a_plain_card_group_and_certified_key_make_the_host_handshake_with_its_apdus() {
    let fx = Fixture::new();
    let config = Arc::new(plain_client(&fx));
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    let before = fx.stats();
    let mut client = ClientConnection::new(config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");

    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 1), "keygen, DH, sign: {used:?}");
    assert_eq!(used.apdus, 6, "{used:?}");
    assert_eq!(used.of(Operation::PutPublicKey).apdus, 2);
    assert_eq!(
        client.negotiated_key_exchange_group().map(|g| g.name()),
        Some(NamedGroup::secp256r1)
    );
    assert_eq!(
        server.peer_certificates().unwrap()[0].as_ref(),
        fx.device_cert.as_ref()
    );
}

#[test]
fn a_certificate_of_another_key_is_refused() {
    let fx = Fixture::new();
    // The CA certificate (file 03) does not certify the device key.
    let key = CardSigningKey::new(fx.card.clone(), ObjectRef::id([0x01])).unwrap();
    let refused = CardCertifiedKey::read(key, ObjectRef::id([0x03])).unwrap_err();
    assert!(
        matches!(refused, iotsafe_rustls::Error::KeyMismatch { .. }),
        "{refused}"
    );
    let read = CardCertifiedKey::read(
        CardSigningKey::new(fx.card.clone(), ObjectRef::id([0x01])).unwrap(),
        ObjectRef::id([0x02]),
    )
    .unwrap();
    assert_eq!(read.certificate().as_ref(), fx.device_cert.as_ref());
}

#[test]
fn a_second_key_generation_on_the_slot_makes_the_first_exchange_fail_typed() {
    let fx = Fixture::new();
    let group = PlainCardKxGroup::new(
        fx.card.clone(),
        ObjectRef::id([0x04]),
        ObjectRef::id([0x05]),
    );
    use rustls::crypto::SupportedKxGroup;
    let first = group.start().unwrap();
    let second = group.start().unwrap();
    let peer = p256::SecretKey::from_slice(&[7; 32]).unwrap();
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let peer_point = peer.public_key().to_encoded_point(false);
    let Err(stale) = first.complete(peer_point.as_bytes()) else {
        panic!("a DH with a key the slot no longer holds");
    };
    assert!(
        matches!(
            iotsafe_rustls::KxError::from_rustls(&stale),
            Some(
                iotsafe_rustls::KxError::Replaced { queued: false, .. }
                    | iotsafe_rustls::KxError::TakenOver { queued: false, .. }
            )
        ),
        "typed: {stale}"
    );
    let ours = p256::PublicKey::from_sec1_bytes(second.pub_key()).unwrap();
    let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), ours.as_affine());
    let secret = second.complete(peer_point.as_bytes()).unwrap();
    assert_eq!(secret.secret_bytes(), &expected.raw_secret_bytes()[..]);
}
