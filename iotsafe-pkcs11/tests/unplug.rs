//! The card leaves in the middle of `C_Sign`: the call fails with `CKR_DEVICE_REMOVED` or
//! `CKR_DEVICE_ERROR` within a bounded time (no hang, no crash), a call while the reader is empty
//! fails the same way, and once the card is back the next `C_Sign` on the same session and key
//! handle works (the signature verifies against the device key).
//!
//! The module is loaded as a C program loads it and runs in this process; the card is the
//! virtual card behind the REAL pcscd + vpcd (slot 1), two ways gone:
//! - pulled: its COMPUTE SIGNATURE Init is held on the card (the vcard's stall fault) while the
//!   test stops the card's vpcd front end, so the Update that follows never reaches it; the
//!   test plugs it back;
//! - lost: the card drops its vpcd connection when the Update arrives (the vcard's disconnect
//!   fault), and comes back by itself, as a SIM that browned out.
//!
//! Needs pcscd with the vpcd driver; skips without it unless `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]

mod support;
mod vpcd_card;

use cryptoki_sys::*;
use iotsafe_tests::{pcscd_running, service, vpcd, vpcd_slot_lock, READER_SLOT1};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::FaultPlan;
use p256::ecdsa::signature::Verifier;
use std::time::{Duration, Instant};
use support::raw::Raw;
use vpcd_card::{lock, Card, DEADLINE, INS_SELECT, INS_SIGN_INIT, INS_SIGN_UPDATE};

/// What a `C_Sign` may answer when the card went away under it.
const CARD_GONE: [CK_RV; 2] = [CKR_DEVICE_REMOVED, CKR_DEVICE_ERROR];

/// The module, initialized for the card in `Virtual PCD 00 01`; finalized when dropped, so a
/// failed test leaves the next one a module to initialize.
struct Module {
    raw: Raw,
    session: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
}

impl Module {
    fn open() -> Module {
        static ENV: std::sync::Once = std::sync::Once::new();
        // Set once, before the module first reads it, while the vpcd slot lock keeps the other
        // test of this binary waiting.
        ENV.call_once(|| {
            for var in support::CARD_VARIABLES {
                std::env::remove_var(var);
            }
            std::env::set_var("IOTSAFE_READER", READER_SLOT1);
            std::env::set_var("IOTSAFE_PKCS11_DEBUG", "1");
        });
        let raw = Raw::load();
        assert_eq!(raw.initialize(), CKR_OK, "C_Initialize");
        let session = raw.session();
        let key = raw.object(session, CKO_PRIVATE_KEY, "device");
        Module { raw, session, key }
    }

    /// `C_SignInit` + `C_Sign` (`CKM_ECDSA_SHA256`) over `message`, and how long it took.
    fn sign(&self, message: &[u8]) -> (Result<Vec<u8>, CK_RV>, Duration) {
        let started = Instant::now();
        let signed = self
            .raw
            .sign(self.session, CKM_ECDSA_SHA256, self.key, message);
        (signed, started.elapsed())
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        let rv = self.raw.finalize();
        if !std::thread::panicking() {
            assert_eq!(rv, CKR_OK, "C_Finalize");
        }
    }
}

/// Signs `message` and checks the signature against the device's public key.
fn signs(module: &Module, public_key: &[u8], message: &[u8]) {
    let (signed, _) = module.sign(message);
    let rs = signed.unwrap_or_else(|rv| panic!("C_Sign answered {rv:#x}"));
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&rs).expect("r‖s, 64 bytes");
    key.verify(message, &signature)
        .expect("the signature verifies against the device key");
}

/// Asserts a `C_Sign` failed because the card went away, and did so without hanging.
fn card_gone(what: &str, (signed, took): (Result<Vec<u8>, CK_RV>, Duration)) {
    eprintln!("{what}: {signed:x?} after {took:?}");
    match signed {
        Ok(_) => panic!("{what}: C_Sign succeeded without a card"),
        Err(rv) => assert!(CARD_GONE.contains(&rv), "{what}: C_Sign answered {rv:#x}"),
    }
    assert!(took < DEADLINE, "{what}: {took:?}");
}

/// Waits until the card received APDU number `n`.
fn wait_for_apdu(card: &Card, n: u64) {
    let end = Instant::now() + DEADLINE;
    while lock(card).card.apdu_count() < n {
        assert!(Instant::now() < end, "APDU {n} never reached the card");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The instruction bytes (INS, P1) of the APDUs the card got after the first `from`.
fn instructions(card: &Card, from: usize) -> Vec<(u8, u8)> {
    lock(card).headers()[from..]
        .iter()
        .map(|h| (h[1], h[2]))
        .collect()
}

#[test]
fn card_pulled_in_the_middle_of_c_sign_then_plugged_back() {
    let _slot = vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, card, mut plugged) = vpcd_card::plugged(dir.path());
    let module = Module::open();
    signs(&module, &report.device_public_key, b"before");

    // Hold the next APDU, COMPUTE SIGNATURE Init, on the card for longer than any deadline here:
    // only pulling the card ends the wait (a vpcd front end that stops answers what it holds,
    // then closes its connection without reading another APDU).
    let (stalled, seen) = {
        let mut c = lock(&card);
        let n = c.card.apdu_count() + 1;
        c.card.set_faults(FaultPlan {
            stall_at: Some((n, 2 * DEADLINE)),
            ..FaultPlan::default()
        });
        (n, c.headers().len())
    };
    std::thread::scope(|s| {
        let signing = s.spawn(|| module.sign(b"during"));
        wait_for_apdu(&card, stalled);
        assert_eq!(
            instructions(&card, seen),
            [(INS_SIGN_INIT, 0x00)],
            "the card holds C_Sign's COMPUTE SIGNATURE Init"
        );
        plugged.unplug();
        card_gone("pulled during C_Sign", signing.join().unwrap());
    });
    lock(&card).card.set_faults(FaultPlan::default());
    let updates = instructions(&card, seen)
        .iter()
        .filter(|(ins, _)| *ins == INS_SIGN_UPDATE)
        .count();
    assert_eq!(updates, 0, "the Update never reached the pulled card");

    // The reader is empty now: signing fails the same way, in bounded time.
    card_gone("no card in the reader", module.sign(b"while out"));

    // Plugged back: the same session and key handle sign again; the module re-selected the
    // applet on the card that came back.
    let seen = lock(&card).headers().len();
    let _plugged = vpcd::plug(card.clone() as SharedCard);
    signs(&module, &report.device_public_key, b"after");
    let after = instructions(&card, seen);
    assert!(after.contains(&(INS_SELECT, 0x04)), "{after:x?}");
    assert_eq!(lock(&card).signatures(), 2, "before and after");
}

#[test]
fn card_lost_at_the_signature_update_comes_back_by_itself() {
    let _slot = vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, card, plugged) = vpcd_card::plugged(dir.path());
    let module = Module::open();
    signs(&module, &report.device_public_key, b"before");

    // Answer the next APDU (COMPUTE SIGNATURE Init), then drop the connection on the one after
    // (the Update): the vpcd front end closes its socket and re-inserts the card 0.8 s later.
    let seen = {
        let mut c = lock(&card);
        let n = c.card.apdu_count() + 1;
        c.card.set_faults(FaultPlan {
            disconnect_after: Some(n),
            ..FaultPlan::default()
        });
        c.headers().len()
    };
    let failed = module.sign(b"during");
    // Cleared before the card comes back: the re-inserted card must answer again.
    lock(&card).card.set_faults(FaultPlan::default());
    card_gone("lost at the Update", failed);
    assert_eq!(
        instructions(&card, seen),
        [(INS_SIGN_INIT, 0x00), (INS_SIGN_UPDATE, 0x80)],
        "Init answered, the Update cut"
    );

    let end = Instant::now() + DEADLINE;
    while plugged.insertions() < 2 {
        assert!(Instant::now() < end, "the card was never re-inserted");
        std::thread::sleep(Duration::from_millis(20));
    }
    vpcd::wait_for_reader(true);
    let seen = lock(&card).headers().len();
    signs(&module, &report.device_public_key, b"after");
    assert_eq!(plugged.insertions(), 2, "re-inserted once");
    let after = instructions(&card, seen);
    assert!(after.contains(&(INS_SELECT, 0x04)), "{after:x?}");
    let signatures = after
        .iter()
        .filter(|i| **i == (INS_SIGN_UPDATE, 0x80))
        .count();
    assert_eq!(signatures, 1, "{after:x?}");
}
