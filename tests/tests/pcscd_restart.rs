//! pcscd crashing (SIGKILL) and coming back, under a card-backed TLS client: idle between
//! handshakes, while down, and in the middle of every APDU of a handshake. Each time the failing
//! handshake ends with a typed card error within its deadline (no panic, no hang), and the next
//! handshake after pcscd is back succeeds on the same `Card` session, with no help from the caller.
//!
//! Runs its own pcscd (see `iotsafe_tests::private_pcscd`: a mount namespace over `/run/pcscd`,
//! its own vpcd ports), so killing it disturbs neither the shared pcscd nor other tests. This
//! binary talks only to that pcscd. Needs root (a mount namespace); skips without it unless
//! `IOTSAFE_REQUIRE_SERVICES=1`, or when the test script found namespaces forbidden
//! (`IOTSAFE_PRIVATE_PCSCD=0`).
#![cfg(feature = "pcsc")]
#![forbid(unsafe_code)]

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotsafe_core::pcsc::PcscOptions;
use iotsafe_core::{CardStats, Operation};
use iotsafe_tests::handshake::TlsFixture;
use iotsafe_tests::private_pcscd::PrivatePcscd;
use iotsafe_tests::service;
use iotsafe_tests::vpcd::{self, Plugged, Slot};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardOptions, FaultPlan, VirtualCard};

/// How long the session's reconnect keeps trying while pcscd is away.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(2);
/// Upper bound for a failing handshake to come back: the reconnect deadline plus slack for a
/// loaded machine. Only catches hangs.
const FAIL_DEADLINE: Duration = Duration::from_secs(15);
/// How long the card sits on the APDU during which pcscd is killed: long enough for the kill
/// to land while the APDU is in flight.
const STALL: Duration = Duration::from_millis(700);

/// Dropped in field order: the session, then the card's vpcd connection, then pcscd.
struct Rig {
    fixture: TlsFixture,
    plugged: Plugged,
    vcard: Arc<Mutex<VirtualCard>>,
    slot: Slot,
    pcscd: PrivatePcscd,
}

impl Rig {
    /// Kills pcscd now, without reaping it (the kill may come from another thread).
    fn sigkill(pid: u32) {
        let pid = Pid::from_raw(i32::try_from(pid).expect("a PID"));
        kill(pid, Signal::SIGKILL).unwrap_or_else(|e| panic!("SIGKILL to pcscd {pid}: {e}"));
    }

    /// Starts pcscd again and waits until it sees the card (the vpcd client re-inserts it).
    fn restart(&mut self) {
        self.pcscd.restart();
        vpcd::wait_for_reader_in(&self.slot, true);
    }

    fn handshake(&self) -> Result<CardStats, String> {
        self.fixture.card_handshake()
    }

    /// A handshake that must fail, within the deadline, with the card's error in rustls's.
    fn failing_handshake(&self, when: &str) {
        let before = self.fixture.card.stats();
        let started = Instant::now();
        let err = self
            .handshake()
            .expect_err(&format!("a handshake with pcscd killed {when}"));
        let took = started.elapsed();
        eprintln!("pcscd killed {when}: failed after {took:?}: {err}");
        assert!(took < FAIL_DEADLINE, "{when}: took {took:?}");
        assert!(err.contains("IoT SAFE card"), "{when}: {err}");
        // Typed as the service gone, whether pcscd was away before the call or died during it.
        assert!(
            err.contains("the PC/SC service is not available"),
            "{when}: {err}"
        );
        let used = self.fixture.card.stats().since(&before);
        // An operation failed, or the session close after it (PUT PUBLIC KEY's close cut: the
        // key exchange then reports the lost service, the put itself having succeeded).
        let failures: u64 = used.operations.values().map(|o| o.failures).sum();
        assert!(
            failures + used.close_failures >= 1,
            "{when}: no card operation failed: {used:?}"
        );
    }

    /// The next handshake succeeds with the usual card work, after one reconnect + re-select:
    /// no APDU sent twice, none but the re-selection added.
    fn recovered_handshake(&self, when: &str, per_handshake: u64) {
        let used = self
            .handshake()
            .unwrap_or_else(|e| panic!("the handshake after pcscd came back ({when}): {e}"));
        assert_eq!(ops(&used), (1, 1, 1), "{when}: {used:?}");
        assert_eq!(
            used.apdus,
            per_handshake + used.of(Operation::Select).apdus,
            "{when}: {used:?}"
        );
        assert_eq!(used.reconnects, 1, "{when}: {used:?}");
        assert_eq!(used.count(Operation::Select), 1, "{when}: {used:?}");
        assert_eq!(used.of(Operation::Select).failures, 0, "{when}: {used:?}");
    }
}

/// Successful key generations, DHs and signatures in `used`.
fn ops(used: &CardStats) -> (u64, u64, u64) {
    let ok = |op| used.count(op) - used.of(op).failures;
    (
        ok(Operation::GenerateKeyPair),
        ok(Operation::Dh),
        ok(Operation::Sign),
    )
}

fn rig() -> Option<Rig> {
    let why = PrivatePcscd::unavailable();
    // The test script says whether this machine permits a mount namespace (IOTSAFE_PRIVATE_PCSCD
    // 1 or 0); without the script, the usual rule for a missing service applies.
    let available = match std::env::var("IOTSAFE_PRIVATE_PCSCD").as_deref() {
        Ok("0") => {
            eprintln!("skipped: the test script found no mount namespace permitted here");
            return None;
        }
        Ok("1") => {
            assert!(why.is_none(), "IOTSAFE_PRIVATE_PCSCD=1 but {why:?}");
            true
        }
        _ => why.is_none(),
    };
    if !service(
        available,
        &format!("a private pcscd ({})", why.as_deref().unwrap_or("")),
    ) {
        return None;
    }
    let pcscd = PrivatePcscd::start();
    pcscd.use_in_this_process();
    let slot = pcscd.slot(0);
    let mut plugged = None;
    let mut shared = None;
    // No background pre-generation: every handshake does the same APDUs, in order.
    let fixture = TlsFixture::over(CardOptions::default(), false, |vcard| {
        let vcard = Arc::new(Mutex::new(vcard));
        plugged = Some(vpcd::plug_into(&slot, vcard.clone() as SharedCard));
        shared = Some(vcard);
        let options = PcscOptions {
            reconnect_deadline: RECONNECT_DEADLINE,
            ..PcscOptions::default()
        };
        vpcd::open_card_in(&slot, options)
    });
    Some(Rig {
        pcscd,
        slot,
        vcard: shared.expect("the card"),
        plugged: plugged.expect("plugged"),
        fixture,
    })
}

#[test]
fn pcscd_crashes_and_the_next_handshake_after_it_is_back_succeeds() {
    let Some(mut rig) = rig() else {
        return;
    };
    let first = rig
        .handshake()
        .expect("the first handshake through the private pcscd");
    assert_eq!(ops(&first), (1, 1, 1), "{first:?}");
    let per_handshake = first.apdus;
    eprintln!("a handshake: {per_handshake} APDUs");

    // 1. pcscd crashes and restarts while the session is idle. The session's context and card
    //    handle are dead; it finds out before sending anything, so it reconnects and retries
    //    by itself: the caller sees no error at all.
    let pid = rig.pcscd.pid().expect("pcscd running");
    Rig::sigkill(pid);
    rig.restart();
    rig.recovered_handshake("while idle", per_handshake);

    // 2. pcscd is down when a handshake starts: it fails within the reconnect deadline, and the
    //    first handshake after pcscd is back works.
    Rig::sigkill(rig.pcscd.pid().expect("pcscd running"));
    rig.failing_handshake("before the handshake");
    rig.restart();
    rig.recovered_handshake("before the handshake", per_handshake);

    // 3. pcscd dies while the card works on APDU k of a handshake, for every k.
    for k in 1..=per_handshake {
        let when = format!("during APDU {k} of {per_handshake}");
        let card_base = rig.vcard.lock().unwrap().apdu_count();
        let wire_base = rig.plugged.apdus();
        rig.vcard.lock().unwrap().set_faults(FaultPlan {
            stall_at: Some((card_base + k, STALL)),
            ..FaultPlan::default()
        });
        let pid = rig.pcscd.pid().expect("pcscd running");
        let fired = Arc::new(AtomicBool::new(false));
        let killer = {
            let stats_plugged = rig.plugged.stats();
            let fired = fired.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + FAIL_DEADLINE;
                while stats_plugged.apdus() < wire_base + k {
                    if Instant::now() > deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                // APDU k reached the card, which now sits on it for STALL.
                Rig::sigkill(pid);
                fired.store(true, Ordering::SeqCst);
            })
        };
        // The last APDU is the signature's Update (its session is left open, no close follows):
        // every k is a handshake that cannot finish.
        rig.failing_handshake(&when);
        killer.join().expect("the killer thread");
        assert!(fired.load(Ordering::SeqCst), "{when}: APDU {k} never came");
        rig.vcard.lock().unwrap().set_faults(FaultPlan::default());
        rig.restart();
        rig.recovered_handshake(&when, per_handshake);
    }
    eprintln!(
        "pcscd started {} times; the card was inserted {} times",
        rig.pcscd.starts(),
        rig.plugged.insertions()
    );
    assert_eq!(u64::from(rig.pcscd.starts()), 3 + per_handshake);
}
