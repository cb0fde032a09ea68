//! A certificate chain from the device's file system (an enrolled certificate) with the key on
//! the card: used when it certifies the card key, refused before any handshake when it does not.

mod common;

use common::*;
use iotsafe_rustls::{software_provider, CertificateSource, IotSafeTls};
use rustls::{ClientConnection, ServerConnection};
use std::sync::Arc;

#[test]
fn a_chain_for_the_card_key_is_sent_instead_of_the_cards() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    // The card's certificate, then the CA, as an enrolment would store them.
    let path = dir.path().join("device.pem");
    let pem = [fx.device_cert.as_ref(), fx.ca.as_ref()]
        .iter()
        .map(|der| pem_block(der))
        .collect::<String>();
    std::fs::write(&path, pem).unwrap();
    let chain = iotsafe_rustls::read_pem_chain(&path).unwrap();
    assert_eq!(chain.len(), 2);
    let tls = IotSafeTls::builder(fx.card.clone())
        .certificate_chain(path.display().to_string(), chain)
        .build()
        .unwrap();
    assert_eq!(
        tls.resolver().certificate_source(),
        &CertificateSource::Given(path.display().to_string())
    );
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(software_provider(), ClientAuth::Required);
    let mut client = ClientConnection::new(client_config, server_name()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    handshake_and_talk(&mut client, &mut server).expect("handshake");
    let seen = server.peer_certificates().unwrap();
    assert_eq!(seen.len(), 2, "the whole given chain is sent");
    assert_eq!(seen[0].as_ref(), fx.device_cert.as_ref());
}

#[test]
fn a_chain_for_another_key_or_none_is_refused_before_any_handshake() {
    let fx = Fixture::new();
    let other = IotSafeTls::builder(fx.card.clone())
        .certificate_chain("ca.pem", vec![fx.ca.clone()])
        .build();
    assert!(
        matches!(other, Err(iotsafe_rustls::Error::KeyMismatch { ref file, .. }) if file == "ca.pem"),
        "{other:?}"
    );
    let empty = IotSafeTls::builder(fx.card.clone())
        .certificate_chain("empty.pem", vec![])
        .build();
    assert!(
        matches!(empty, Err(iotsafe_rustls::Error::Certificate(_))),
        "{empty:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    assert!(iotsafe_rustls::read_pem_chain(&junk).is_err());
    assert!(iotsafe_rustls::read_pem_chain(&dir.path().join("missing.pem")).is_err());
}

/// One PEM CERTIFICATE block.
fn pem_block(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}
