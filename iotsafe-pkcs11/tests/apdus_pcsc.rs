//! What the card sees of a PKCS#11 signature, through a REAL pcscd: the virtual card plugged into
//! vpcd slot 1, the module loaded with `IOTSAFE_READER`, and the card's own APDU counter read
//! around each `C_Sign`. A signature through the module costs the card exactly the APDUs of
//! `iotsafe sign` (the CLI's signing code on its own PC/SC session), and no more.
//!
//! Needs pcscd with the vpcd driver; skips without it unless `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]
#![allow(unsafe_code)]

mod support;

use cryptoki_sys::*;
use iotsafe_core::{ObjectRef, Operation};
use iotsafe_tests::{pcscd_running, provisioned, service, vpcd, READER_SLOT1};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardOptions, VirtualCard};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use support::raw::Raw;

#[test]
fn apdus_per_signature_equal_those_of_iotsafe_sign() {
    let _slot = iotsafe_tests::vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, vcard) = provisioned(dir.path(), CardOptions::default());
    let shared: Arc<Mutex<VirtualCard>> = Arc::new(Mutex::new(vcard));
    let _plugged = vpcd::plug(shared.clone() as SharedCard);
    let on_card = || shared.lock().unwrap().apdu_count();
    let device = p256::ecdsa::VerifyingKey::from_sec1_bytes(&report.device_public_key).unwrap();
    let message = b"counted on the card";

    // The only test of this binary: nothing else reads the environment meanwhile.
    for var in support::CARD_VARIABLES {
        std::env::remove_var(var);
    }
    std::env::set_var("IOTSAFE_READER", READER_SLOT1);
    let raw = Raw::load();
    assert_eq!(raw.initialize(), CKR_OK);
    let s = raw.session();
    let key = raw.object(s, CKO_PRIVATE_KEY, "device");
    let mut through_module = Vec::new();
    for (mechanism, data) in [
        (CKM_ECDSA_SHA256, message.to_vec()),
        (CKM_ECDSA, Sha256::digest(message).to_vec()),
        (CKM_ECDSA_SHA256, message.to_vec()),
    ] {
        let before = on_card();
        let signature = raw.sign(s, mechanism, key, &data).expect("C_Sign");
        through_module.push(on_card() - before);
        let signature = p256::ecdsa::Signature::from_slice(&signature).unwrap();
        device
            .verify_prehash(&Sha256::digest(message), &signature)
            .expect("the module's signature verifies");
    }
    assert_eq!(raw.finalize(), CKR_OK);

    // `iotsafe sign --key 01`: the CLI's signing code on a session of its own.
    let card = vpcd::open_card();
    let before = on_card();
    let der = iotsafe_cli::keys::sign_message_der(&card, &ObjectRef::id([1]), message)
        .expect("iotsafe sign");
    let by_cli = on_card() - before;
    assert_eq!(card.stats().of(Operation::Sign).apdus, by_cli);
    let der = p256::ecdsa::Signature::from_der(&der).unwrap();
    device
        .verify_prehash(&Sha256::digest(message), &der)
        .unwrap();

    assert!(
        by_cli >= 2,
        "COMPUTE SIGNATURE takes Init and Update: {by_cli}"
    );
    for (i, n) in through_module.iter().enumerate() {
        assert_eq!(
            *n, by_cli,
            "signature {i} through the module took {n} APDUs, iotsafe sign {by_cli}"
        );
    }
}
