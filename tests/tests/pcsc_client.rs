//! The core client through a REAL pcscd: a provisioned virtual card plugged into vpcd slot 1
//! (`Virtual PCD 00 01`), the session on `PcscTransport`, the whole workout in the T=1 and the
//! T=0 profile, and the card vanishing (injected disconnect, reader emptied) with recovery.
//!
//! Needs pcscd with the vpcd driver; skips without it unless `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotsafe_core::pcsc::{PcscOptions, PcscTransport, ReaderChoice};
use iotsafe_core::{Card, CardConfig, Error, ObjectRef, Operation, TransportError};
use iotsafe_tests::workout::{full_workout, sign_and_check, DEVICE_CERT};
use iotsafe_tests::{pcscd_running, provisioned, service, vpcd, vpcd_slot_lock, READER_SLOT1};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardOptions, FaultPlan, TransportMode, VirtualCard};

/// How long the session's reconnect may try (pcscd polls its readers every ~400 ms).
const RECONNECT_DEADLINE: Duration = Duration::from_secs(3);
/// Upper bound for a failing operation to come back: the reconnect deadline plus slack for a
/// loaded machine. Only catches hangs.
const FAIL_DEADLINE: Duration = Duration::from_secs(15);

fn open_card() -> Card {
    let options = PcscOptions {
        reconnect_deadline: RECONNECT_DEADLINE,
        ..PcscOptions::default()
    };
    let transport = PcscTransport::connect(&ReaderChoice::Exact(READER_SLOT1.into()), options)
        .expect("connect to the card in Virtual PCD 00 01");
    Card::open(transport, CardConfig::default()).expect("select the applet through pcscd")
}

/// The ATR the session's transport saw, read through a second PC/SC connection.
fn atr() -> Vec<u8> {
    PcscTransport::connect(
        &ReaderChoice::Exact(READER_SLOT1.into()),
        PcscOptions::default(),
    )
    .expect("second connection")
    .atr()
    .expect("an ATR")
}

fn workout_in(transport: TransportMode) -> (iotsafe_core::CardStats, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let options = CardOptions {
        transport,
        ..CardOptions::default()
    };
    let (report, vcard) = provisioned(dir.path(), options);
    let shared: Arc<Mutex<VirtualCard>> = Arc::new(Mutex::new(vcard));
    let plugged = vpcd::plug(shared.clone() as SharedCard);
    let atr = atr();
    let card = open_card();
    let opened = card.stats();
    assert_eq!(opened.count(Operation::Select), 1, "{opened:?}");
    assert_eq!(opened.of(Operation::Select).failures, 0, "{opened:?}");
    let used = full_workout(&card, &report);
    let total = card.stats();
    // Every APDU the session counted went through pcscd + vpcd to the card.
    assert_eq!(
        plugged.apdus(),
        total.apdus,
        "vpcd saw {} APDUs, the session sent {}: {total:?}",
        plugged.apdus(),
        total.apdus
    );
    assert_eq!(
        shared.lock().unwrap().apdu_count(),
        total.apdus,
        "the card's own count"
    );
    assert_eq!(plugged.insertions(), 1);
    card.close().unwrap();
    (used, atr)
}

#[test]
fn full_client_through_pcscd_in_t1_and_t0() {
    let _slot = vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") {
        return;
    }
    let (t1, t1_atr) = workout_in(TransportMode::T1);
    let (t0, t0_atr) = workout_in(TransportMode::T0);
    eprintln!("T=1: {t1:?}\nT=0: {t0:?}");
    // The two profiles really were different cards: their ATRs say T=1 and T=0 ...
    // (the T=1 ATR ends with its check byte TCK after the historical bytes)
    assert!(
        t1_atr[..t1_atr.len() - 1].ends_with(b"IoTSAFE1"),
        "{t1_atr:02X?}"
    );
    assert!(t0_atr.ends_with(b"IoTSAFE0"), "{t0_atr:02X?}");
    // ... and through T=0 every data-bearing answer came with 61xx + GET RESPONSE.
    assert!(
        t0.apdus >= t1.apdus + 6,
        "T=0 used {} APDUs, T=1 {}",
        t0.apdus,
        t1.apdus
    );
    for op in [
        Operation::ReadFile,
        Operation::Sign,
        Operation::GenerateKeyPair,
        Operation::Dh,
    ] {
        assert!(
            t0.of(op).apdus > t1.of(op).apdus,
            "{op:?}: T=0 {:?} vs T=1 {:?}",
            t0.of(op),
            t1.of(op)
        );
    }
}

fn is_card_gone(err: &Error) -> bool {
    matches!(
        err,
        Error::Transport {
            source: TransportError::RemovedCard | TransportError::NotTransacted,
            ..
        }
    )
}

/// The card leaves in the middle of a multi-APDU operation. vpcd then answers `SCardTransmit`
/// with success and 0 bytes; `PcscTransport` types that as `NotTransacted`, so the operation
/// fails as "card gone" and the next one reconnects, re-selects and works.
#[test]
fn card_disconnects_mid_operation_then_comes_back() {
    let _slot = vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, vcard) = provisioned(dir.path(), CardOptions::default());
    let shared: Arc<Mutex<VirtualCard>> = Arc::new(Mutex::new(vcard));
    let plugged = vpcd::plug(shared.clone() as SharedCard);
    let card = open_card();
    sign_and_check(&card, &report.device_public_key, b"before");
    // A certificate read takes several APDUs: let the first through, cut the second.
    let cert = card.read_file(&ObjectRef::id(DEVICE_CERT)).unwrap();
    assert_eq!(cert, report.device_cert_der);
    let read_apdus = card.stats().of(Operation::ReadFile).apdus;
    assert!(read_apdus >= 2, "READ FILE took {read_apdus} APDU(s)");
    let before = card.stats();
    {
        let mut vc = shared.lock().unwrap();
        let now = vc.apdu_count();
        vc.set_faults(FaultPlan {
            disconnect_after: Some(now + 1),
            ..FaultPlan::default()
        });
    }
    let started = Instant::now();
    let err = card
        .read_file(&ObjectRef::id(DEVICE_CERT))
        .expect_err("the card vanished in the middle of READ FILE");
    let took = started.elapsed();
    // The card is out; clear the plan so the re-inserted card behaves (vpcd re-inserts after
    // 0.8 s).
    shared.lock().unwrap().set_faults(FaultPlan::default());
    eprintln!("mid-operation disconnect: {err:?} after {took:?}");
    assert!(is_card_gone(&err), "{err:?}");
    assert!(took < FAIL_DEADLINE, "{took:?}");
    let failed = card.stats().since(&before);
    assert_eq!(failed.of(Operation::ReadFile).failures, 1, "{failed:?}");
    assert_eq!(
        failed.of(Operation::ReadFile).apdus,
        2,
        "one APDU answered, the second cut: {failed:?}"
    );

    // The next operation reconnects, re-selects and works, on the re-inserted card.
    let started = Instant::now();
    let cert = card
        .read_file(&ObjectRef::id(DEVICE_CERT))
        .expect("after the card came back");
    eprintln!("recovered in {:?}", started.elapsed());
    assert_eq!(cert, report.device_cert_der);
    sign_and_check(&card, &report.device_public_key, b"after");
    let after = card.stats().since(&before);
    assert_eq!(after.reconnects, 1, "{after:?}");
    assert_eq!(after.count(Operation::Select), 1, "{after:?}");
    assert_eq!(after.of(Operation::Select).failures, 0, "{after:?}");
    assert_eq!(
        plugged.insertions(),
        2,
        "the card was re-inserted exactly once"
    );
}

#[test]
fn reader_emptied_fails_typed_and_replugging_recovers() {
    let _slot = vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, vcard) = provisioned(dir.path(), CardOptions::default());
    let shared: SharedCard = Arc::new(Mutex::new(vcard));
    let mut plugged = vpcd::plug(shared.clone());
    let card = open_card();
    sign_and_check(&card, &report.device_public_key, b"plugged");
    let before = card.stats();

    // Pull the card; pcscd sees the reader empty.
    plugged.unplug();
    let started = Instant::now();
    let err = card
        .read_file(&ObjectRef::id(DEVICE_CERT))
        .expect_err("no card in the reader");
    let took = started.elapsed();
    eprintln!("card pulled: {err:?} after {took:?}");
    assert!(took < FAIL_DEADLINE, "{took:?}");
    assert!(
        matches!(&err, Error::Transport { source, .. } if source.needs_reconnect()),
        "{err:?}"
    );
    // The next operation tries to reconnect and gives up within the reconnect deadline.
    let started = Instant::now();
    let err = card
        .read_file(&ObjectRef::id(DEVICE_CERT))
        .expect_err("still no card in the reader");
    let took = started.elapsed();
    eprintln!("reconnect without a card: {err:?} after {took:?}");
    assert!(took < RECONNECT_DEADLINE + FAIL_DEADLINE, "{took:?}");
    assert!(
        matches!(
            &err,
            Error::Transport {
                source: TransportError::NoCard(_)
                    | TransportError::RemovedCard
                    | TransportError::NotTransacted
                    | TransportError::Disconnected,
                ..
            }
        ),
        "{err:?}"
    );

    // Plug it back: the same session reconnects, re-selects and works.
    let plugged = vpcd::plug(shared);
    let cert = card
        .read_file(&ObjectRef::id(DEVICE_CERT))
        .expect("after re-plugging");
    assert_eq!(cert, report.device_cert_der);
    sign_and_check(&card, &report.device_public_key, b"re-plugged");
    let used = card.stats().since(&before);
    // The first read found the card gone before its first APDU (the transaction could not
    // begin), so the session reconnected at once to retry it: that reconnect gave up (no card),
    // as did the second read's. The third reconnect, after re-plugging, worked.
    assert_eq!(used.reconnects, 3, "{used:?}");
    assert_eq!(used.count(Operation::Select), 1, "{used:?}");
    // Only the first read got as far as the card's transaction; the others stopped at their
    // reconnect.
    assert_eq!(used.of(Operation::ReadFile).failures, 1, "{used:?}");
    assert_eq!(used.of(Operation::Sign).failures, 0, "{used:?}");
    assert!(plugged.apdus() >= 2, "the re-plugged card was used");
}
