//! Helpers shared by the integration tests: hex literals in, responses out.
#![allow(dead_code)]

use iotsafe_vcard::store::{attr, KeyAttributes, ObjectStore, PrivateKeyObject, PublicKeyObject};
use iotsafe_vcard::{CardHandler, VirtualCard};

/// Bytes from a hex literal; spaces and `‖` separators are ignored.
pub fn h(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex literal {text}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Uppercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Sends the APDU written as hex, returns the whole response.
pub fn send(card: &mut VirtualCard, apdu_hex: &str) -> Vec<u8> {
    card.process(&h(apdu_hex))
}

/// The status word of a response.
pub fn sw(response: &[u8]) -> u16 {
    let n = response.len();
    assert!(
        n >= 2,
        "response shorter than a status word: {response:02X?}"
    );
    u16::from_be_bytes([response[n - 2], response[n - 1]])
}

/// The data of a response.
pub fn data(response: &[u8]) -> &[u8] {
    &response[..response.len() - 2]
}

/// Sends and checks the status word, returning the data.
pub fn expect(card: &mut VirtualCard, apdu_hex: &str, want_sw: u16) -> Vec<u8> {
    let r = send(card, apdu_hex);
    assert_eq!(sw(&r), want_sw, "APDU {apdu_hex} answered {}", hex(&r));
    data(&r).to_vec()
}

/// A P-256 key pair with the given private and public IDs, allowing everything a trace needs.
pub fn key_pair(private_id: &[u8], public_id: &[u8]) -> (PrivateKeyObject, PublicKeyObject) {
    let attributes = KeyAttributes {
        key_type: attr::KEY_TYPE_P256_PERSISTENT,
        usage: attr::USAGE_GENERAL,
        functions: attr::FUNCTION_SIGNATURE | attr::FUNCTION_KEY_GENERATION,
        signature_algorithms: Some(attr::SIGNATURE_ECDSA),
        hash_algorithms: Some(attr::HASH_SHA256),
        key_agreement: None,
    };
    (
        PrivateKeyObject {
            id: private_id.to_vec(),
            label: None,
            access: attr::ACCESS_UPDATE,
            attributes: attributes.clone(),
            public_key_id: Some(public_id.to_vec()),
            scalar: None,
        },
        PublicKeyObject {
            id: public_id.to_vec(),
            label: None,
            access: attr::ACCESS_READ,
            attributes: KeyAttributes {
                functions: attr::FUNCTION_SIGNATURE,
                ..attributes
            },
            point: None,
        },
    )
}

/// A store holding one key pair (generated) with the given IDs.
pub fn store_with_pair(private_id: &[u8], public_id: &[u8]) -> ObjectStore {
    let (private, public) = key_pair(private_id, public_id);
    let mut store = ObjectStore {
        private_keys: vec![private],
        public_keys: vec![public],
        ..ObjectStore::default()
    };
    store
        .generate_key_pair(iotsafe_vcard::store::ObjectRef::Id(private_id))
        .unwrap();
    store
}

/// The device key's public point in the default layout.
pub fn device_point(card: &VirtualCard) -> Vec<u8> {
    card.store().public_keys[0].point.clone().unwrap()
}

/// Verifies a raw `r‖s` ECDSA P-256 signature over a SHA-256 digest with p256 (not the card).
pub fn verify_raw(point: &[u8], digest: &[u8], r_s: &[u8]) -> bool {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(r_s).unwrap();
    key.verify_prehash(digest, &sig).is_ok()
}
