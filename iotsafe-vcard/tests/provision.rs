//! Provisioning: the test PKI around a card whose device key never leaves it.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use iotsafe_vcard::{foreign_client_pki, provision, CardOptions, VirtualCard};

fn pem_body(text: &str) -> Vec<u8> {
    // Decode the base64 body of a PEM file without a base64 crate: enough for a size check.
    text.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn provision_writes_card_and_pki() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    let pki = dir.path().join("pki");
    let report = provision(&state, &pki, CardOptions::default()).unwrap();
    assert_eq!(report.device_public_key.len(), 65);
    for (name, mode) in [
        ("ca.pem", 0o644),
        ("ca.key", 0o600),
        ("server.pem", 0o644),
        ("server.key", 0o644),
        ("device.pem", 0o644),
    ] {
        let meta = std::fs::metadata(pki.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
    }
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!pem_body(&std::fs::read_to_string(pki.join("device.pem")).unwrap()).is_empty());

    // The card holds both certificates and reads them back through the APDUs wolfSSL sends.
    let mut card = VirtualCard::open_state(&state, CardOptions::default()).unwrap();
    assert_eq!(
        card.store().public_keys[0].point.as_ref().unwrap(),
        &report.device_public_key
    );
    expect(&mut card, "01A4040007A0000005590010", 0x9000);
    let info = expect(&mut card, "81CBC300038301 02", 0x9000);
    let size = u16::from_be_bytes([info[info.len() - 2], info[info.len() - 1]]) as usize;
    assert_eq!(size, report.device_cert_der.len());
    let mut cert = Vec::new();
    while cert.len() < size {
        let offset = cert.len() as u16;
        let apdu = format!("81B0{:04X}03830102", offset);
        cert.extend(expect(&mut card, &apdu, 0x9000));
    }
    assert_eq!(cert, report.device_cert_der);
    let ca = expect(&mut card, "81B00000038301 03", 0x9000);
    assert_eq!(&ca[..], &report.ca_cert_der[..ca.len()]);

    // The device certificate certifies the card's key: its SPKI holds the card's point.
    assert!(report
        .device_cert_der
        .windows(65)
        .any(|w| w == report.device_public_key.as_slice()));
    // The private scalar appears in no PKI file.
    let scalar = hex(card.store().private_keys[0]
        .scalar
        .as_ref()
        .unwrap()
        .expose());
    for file in &report.files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.to_uppercase().contains(&scalar));
    }
}

#[test]
fn foreign_pki_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pki = foreign_client_pki(dir.path()).unwrap();
    assert!(std::fs::read_to_string(&pki.ca_pem)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(std::fs::read_to_string(&pki.client_pem)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(std::fs::read_to_string(&pki.client_key)
        .unwrap()
        .contains("PRIVATE KEY"));
    assert_eq!(
        std::fs::metadata(&pki.client_key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}
