//! Fault injection during TLS 1.3 handshakes whose key exchange and CertificateVerify run on the
//! (virtual) card: a fault at each card APDU of a handshake makes that handshake fail cleanly (or,
//! for a reported reset, succeed after the session's own retry, and for a refused session close,
//! succeed with the result kept) within a deadline, without a panic; the next handshake after the
//! fault clears succeeds.

mod tls_support;

use std::sync::mpsc;
use std::time::Duration;

use iotsafe_vcard::{CardOptions, FaultPlan, TransportMode};
use tls_support::{connect, setup, Tls};

const DEADLINE: Duration = Duration::from_secs(20);

/// A handshake on another thread, bounded by [`DEADLINE`].
fn bounded_connect(tls: &std::sync::Arc<Tls>) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let t = std::sync::Arc::clone(tls);
    let handle = std::thread::spawn(move || {
        let _ = tx.send(connect(&t));
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => {
            handle.join().unwrap();
            out
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("a handshake hung past {DEADLINE:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let _ = handle.join();
            panic!("a handshake panicked")
        }
    }
}

fn count(tls: &Tls) -> u64 {
    tls.vcard.lock().unwrap().apdu_count()
}

fn faults_at_every_handshake_apdu(transport: TransportMode) {
    let tls = std::sync::Arc::new(setup(CardOptions {
        transport,
        ..CardOptions::default()
    }));
    bounded_connect(&tls).expect("a handshake without faults");
    let before = count(&tls);
    bounded_connect(&tls).expect("a handshake without faults");
    let n = count(&tls) - before;
    assert!(n >= 6, "{transport:?}: {n} card APDUs per handshake");
    let mut failures = 0;
    for k in 1..=n {
        let plans = [
            (
                "disconnect",
                FaultPlan {
                    disconnect_after: Some(count(&tls) + k - 1),
                    ..FaultPlan::default()
                },
            ),
            (
                "status 6F00",
                FaultPlan {
                    status_word_at: Some((count(&tls) + k, 0x6F00)),
                    ..FaultPlan::default()
                },
            ),
            (
                "status 6985",
                FaultPlan {
                    status_word_at: Some((count(&tls) + k, 0x6985)),
                    ..FaultPlan::default()
                },
            ),
            (
                "corrupted answer",
                FaultPlan {
                    corrupt_at: Some(count(&tls) + k),
                    ..FaultPlan::default()
                },
            ),
        ];
        for (what, plan) in plans {
            // Re-base: the APDU count moved with the previous case.
            let base = count(&tls);
            let plan = FaultPlan {
                disconnect_after: plan.disconnect_after.map(|_| base + k - 1),
                status_word_at: plan.status_word_at.map(|(_, sw)| (base + k, sw)),
                corrupt_at: plan.corrupt_at.map(|_| base + k),
                stall_at: None,
            };
            tls.vcard.lock().unwrap().set_faults(plan);
            let closes_failed = tls.card.stats().close_failures;
            let refusals = tls.card.stats().reopen_refusals;
            match bounded_connect(&tls) {
                Err(e) => {
                    failures += 1;
                    assert!(!e.is_empty());
                }
                // A corrupted byte the client tolerates (an object ID tag it does not need) may
                // leave a correct handshake: TLS itself proves the result (a wrong DH output or
                // signature fails at Finished or CertificateVerify). A lost link or a refused
                // command never does.
                Ok(()) if what == "corrupted answer" => {}
                // A refused session close (put key or signature) comes after the result: kept.
                Ok(()) if tls.card.stats().close_failures == closes_failed + 1 => {}
                // A refused Init while the last handshake's sessions were left open: they were
                // closed and the Init sent again (the card's sessions are closed from then on).
                Ok(()) if tls.card.stats().reopen_refusals == refusals + 1 => {}
                Ok(()) => {
                    panic!("{transport:?}: {what} at card APDU {k}/{n}: the handshake succeeded")
                }
            }
            tls.vcard.lock().unwrap().set_faults(FaultPlan::default());
            bounded_connect(&tls).unwrap_or_else(|e| {
                panic!("{transport:?}: the handshake after {what} at APDU {k}/{n}: {e}")
            });
        }
    }
    assert!(failures >= 3 * n, "{failures} failures for {n} APDUs");
}

#[test]
fn every_fault_at_every_card_apdu_of_a_handshake_t1() {
    faults_at_every_handshake_apdu(TransportMode::T1);
}

#[test]
fn every_fault_at_every_card_apdu_of_a_handshake_t0() {
    faults_at_every_handshake_apdu(TransportMode::T0);
}

#[test]
fn a_card_reset_between_handshakes_is_invisible() {
    let tls = std::sync::Arc::new(setup(CardOptions::default()));
    bounded_connect(&tls).unwrap();
    for _ in 0..3 {
        // A silent reset: the next handshake re-selects by itself.
        iotsafe_vcard::CardHandler::reset(&mut *tls.vcard.lock().unwrap());
        bounded_connect(&tls).unwrap();
    }
}
