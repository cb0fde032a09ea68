//! The module's logic without its C ABI: [`Module`] driven from safe Rust on a virtual card opened
//! in-process, as the FFI layer drives it. Two cards make two slots; objects, signatures,
//! derivation and generation behave per token. (Here, inside the crate, because the crate's
//! modules are private: its interface is the C ABI, which the `tests/ffi_*.rs` drive.)

use super::Module;
use crate::attributes::{ulong, Attribute, Lookup};
use crate::config::CardSpec;
use crate::der::P256_PARAMS;
use crate::mechanisms::{EcdhParams, Mechanism, Params};
use crate::sign::Signed;
use cryptoki_sys::*;
use iotsafe_cli::CardSelection;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A provisioned card state in `dir`, and its device key.
fn card(dir: &std::path::Path, name: &str) -> (CardSpec, p256::ecdsa::VerifyingKey) {
    let state = dir.join(format!("{name}.json"));
    let report = iotsafe_vcard::provision(&state, &dir.join(name), Default::default()).unwrap();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&report.device_public_key).unwrap();
    let spec = CardSpec {
        selection: CardSelection::virtual_card(state),
        label: Some(format!("card {name}")),
    };
    (spec, key)
}

/// The one object of `class` labelled `label` in the session's token.
fn object(
    m: &Module,
    s: CK_SESSION_HANDLE,
    class: CK_OBJECT_CLASS,
    label: &str,
) -> CK_OBJECT_HANDLE {
    let template = [
        Attribute::new(CKA_CLASS, ulong(class)),
        Attribute::new(CKA_LABEL, label.as_bytes()),
    ];
    m.find_init(s, &template).unwrap();
    let found = m.find_next(s, 10).unwrap();
    m.find_final(s).unwrap();
    assert_eq!(found.len(), 1, "{label}");
    found[0]
}

/// `CKM_ECDH1_DERIVE` with `peer`'s public point (raw), `CKD_NULL`.
fn ecdh_with(peer: &p256::SecretKey) -> Mechanism {
    let point = peer.public_key().to_encoded_point(false);
    Mechanism {
        kind: CKM_ECDH1_DERIVE,
        params: Params::Ecdh(EcdhParams {
            kdf: CKD_NULL,
            shared_data: Vec::new(),
            public_data: point.as_bytes().to_vec(),
        }),
    }
}

#[test]
fn two_cards_two_slots_each_its_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (a, key_a) = card(dir.path(), "a");
    let (b, key_b) = card(dir.path(), "b");
    let m = Module::new(vec![a, b]);
    assert_eq!(m.slot_list(true), vec![0, 1]);
    assert_eq!(m.token_info(1).unwrap().label, "card b");
    assert_eq!(
        m.open_session(2, CKF_SERIAL_SESSION).map_err(|e| e.rv()),
        Err(CKR_SLOT_ID_INVALID)
    );
    for (slot, key) in [(0, key_a), (1, key_b)] {
        let s = m.open_session(slot, CKF_SERIAL_SESSION).unwrap();
        let device = object(&m, s, CKO_PRIVATE_KEY, "device");
        m.sign_init(s, &Mechanism::plain(CKM_ECDSA_SHA256), device)
            .unwrap();
        assert_eq!(
            m.sign(s, b"slot", None).map_err(|e| e.rv()),
            Ok(Signed::Length(64))
        );
        let Signed::Signature(sig) = m.sign(s, b"slot", Some(64)).unwrap() else {
            panic!("no signature");
        };
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        key.verify_prehash(&Sha256::digest(b"slot"), &sig).unwrap();
        m.close_session(s).unwrap();
    }
}

#[test]
fn generate_then_derive_then_close() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, _) = card(dir.path(), "c");
    let m = Module::new(vec![spec]);
    let s = m
        .open_session(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
        .unwrap();
    let ec = Mechanism::plain(CKM_EC_KEY_PAIR_GEN);
    let public = [
        Attribute::new(CKA_EC_PARAMS, P256_PARAMS),
        Attribute::new(CKA_DERIVE, [CK_TRUE]),
    ];
    // No ID or label: the card's one volatile key slot that may be generated.
    let (public, private) = m.generate_key_pair(s, &ec, &public, &[]).unwrap();
    let Lookup::Value(point) = m.attributes(s, public, &[CKA_EC_POINT]).unwrap().remove(0) else {
        panic!("no point");
    };
    let ephemeral = p256::PublicKey::from_sec1_bytes(&point[2..]).unwrap();
    let peer = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let secret = m.derive(s, &ecdh_with(&peer), private, &[]).unwrap();
    let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), ephemeral.as_affine());
    assert_eq!(
        m.attributes(s, secret, &[CKA_VALUE]).unwrap(),
        vec![Lookup::Value(Zeroizing::new(
            expected.raw_secret_bytes().to_vec()
        ))]
    );
    m.close_session(s).unwrap();
    let s = m.open_session(0, CKF_SERIAL_SESSION).unwrap();
    assert_eq!(
        m.attributes(s, secret, &[CKA_VALUE]).map_err(|e| e.rv()),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
}

#[test]
fn concurrent_generations_leave_the_table_showing_the_key_the_card_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, _) = card(dir.path(), "d");
    let m = std::sync::Arc::new(Module::new(vec![spec]));
    let ec = Mechanism::plain(CKM_EC_KEY_PAIR_GEN);
    let template = [
        Attribute::new(CKA_EC_PARAMS, P256_PARAMS),
        Attribute::new(CKA_DERIVE, [CK_TRUE]),
    ];
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (m, ec, template) = (m.clone(), ec.clone(), template.clone());
            std::thread::spawn(move || {
                let s = m
                    .open_session(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
                    .unwrap();
                let pairs: Vec<_> = (0..5)
                    .map(|_| m.generate_key_pair(s, &ec, &template, &[]).unwrap())
                    .collect();
                (s, pairs)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    // Every generation took the same slot's handles; the table shows one point: the card's.
    let (s, pairs) = &results[0];
    let (public, private) = pairs[0];
    assert!(results
        .iter()
        .all(|(_, p)| p.iter().all(|h| *h == (public, private))));
    let Lookup::Value(point) = m.attributes(*s, public, &[CKA_EC_POINT]).unwrap().remove(0) else {
        panic!("no point");
    };
    let shown = p256::PublicKey::from_sec1_bytes(&point[2..]).unwrap();
    let peer = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let secret = m.derive(*s, &ecdh_with(&peer), private, &[]).unwrap();
    let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), shown.as_affine());
    assert_eq!(
        m.attributes(*s, secret, &[CKA_VALUE]).unwrap(),
        vec![Lookup::Value(Zeroizing::new(
            expected.raw_secret_bytes().to_vec()
        ))],
        "the card's ECDH is the one of the point the table shows"
    );
}
