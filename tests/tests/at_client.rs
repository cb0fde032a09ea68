//! The core client through the virtual card's AT modem emulation on a REAL pseudo-terminal:
//! `AtTransport::open_tty` on `/dev/pts/N`, the modem (`PtyModem`) in front of a provisioned card,
//! AT+CSIM and AT+CCHO/AT+CGLA, T=0 and T=1; then modem faults (`ERROR`, `+CME ERROR`, garbage,
//! silence) with short deadlines, each a typed error in time (or, a bare `ERROR` to AT+CGLA, a lost
//! channel recovered once), each followed by a working operation.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotsafe_core::at::{AtMode, AtOptions, AtTransport, Deadlines};
use iotsafe_core::{Card, CardConfig, CardStats, Error, Operation, TransportError};
use iotsafe_tests::provisioned;
use iotsafe_tests::workout::{full_workout, sign_and_check};
use iotsafe_vcard::frontend::at::{AtFault, AtHandle, AtInjection, AtOptions as ModemOptions};
use iotsafe_vcard::frontend::pty::PtyModem;
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardOptions, ProvisionReport, TransportMode, VirtualCard};

/// Generous deadlines for the happy path (a loaded CI machine).
fn relaxed(mode: AtMode) -> AtOptions {
    AtOptions {
        mode,
        deadlines: Deadlines {
            normal: Duration::from_secs(5),
            slow: Duration::from_secs(10),
        },
        ready_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        ..AtOptions::default()
    }
}

/// Short deadlines for the fault tests.
const NORMAL: Duration = Duration::from_millis(700);
const SLOW: Duration = Duration::from_millis(1500);

fn short(mode: AtMode) -> AtOptions {
    AtOptions {
        mode,
        deadlines: Deadlines {
            normal: NORMAL,
            slow: SLOW,
        },
        ready_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(2),
        ..AtOptions::default()
    }
}

/// A modem on a fresh pty in front of `card`.
struct Modem {
    handle: Option<AtHandle>,
    path: std::path::PathBuf,
}

impl Modem {
    fn spawn(card: SharedCard, options: ModemOptions) -> Modem {
        let pty = PtyModem::open().expect("open a pty");
        let path = pty.path().to_path_buf();
        let handle = pty.spawn(card, options).expect("start the modem");
        Modem {
            handle: Some(handle),
            path,
        }
    }
}

impl Drop for Modem {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.stop();
        }
    }
}

fn open(modem: &Modem, options: AtOptions) -> Card {
    let transport = AtTransport::open_tty(&modem.path, options).expect("open the modem's tty");
    let expect_cgla = options.mode == AtMode::Cgla;
    assert_eq!(
        transport.uses_logical_channel_commands(),
        expect_cgla,
        "{transport:?}"
    );
    Card::open(transport, CardConfig::default()).expect("select the applet through the modem")
}

fn card_options(transport: TransportMode) -> CardOptions {
    CardOptions {
        transport,
        ..CardOptions::default()
    }
}

/// AT commands reaching the card (AT+CSIM, AT+CCHO, AT+CGLA, AT+CCHC) while a session opens.
fn commands_to_open(mode: AtMode, transport: TransportMode) -> u64 {
    let vcard = VirtualCard::with_default_layout(card_options(transport));
    let modem = Modem::spawn(Arc::new(Mutex::new(vcard)), ModemOptions::default());
    let card = open(&modem, relaxed(mode));
    let stats = card.stats();
    // AT+CCHO opens the channel and selects in one command the session does not count as an
    // APDU; over AT+CSIM every APDU is one command.
    match mode {
        AtMode::Cgla => {
            assert_eq!(stats.apdus, 0, "{stats:?}");
            1
        }
        _ => stats.apdus,
    }
}

fn workout(mode: AtMode, transport: TransportMode) -> CardStats {
    let dir = tempfile::tempdir().unwrap();
    let (report, vcard) = provisioned(dir.path(), card_options(transport));
    let shared = Arc::new(Mutex::new(vcard));
    let modem = Modem::spawn(shared.clone(), ModemOptions::default());
    let card = open(&modem, relaxed(mode));
    let used = full_workout(&card, &report);
    let total = card.stats();
    let on_card = shared.lock().unwrap().apdu_count();
    match mode {
        // Every APDU went through AT+CSIM, one by one, to the card.
        AtMode::Csim => assert_eq!(on_card, total.apdus, "{total:?}"),
        // The modem's AT+CCHO adds MANAGE CHANNEL and SELECT (T=0: and a GET RESPONSE).
        _ => assert!(
            on_card >= total.apdus + 2 && on_card <= total.apdus + 3,
            "card {on_card}, session {total:?}"
        ),
    }
    card.close().unwrap();
    used
}

#[test]
fn full_client_over_csim_and_cgla_in_t1_and_t0() {
    let started = Instant::now();
    for mode in [AtMode::Csim, AtMode::Cgla] {
        let t1 = workout(mode, TransportMode::T1);
        let t0 = workout(mode, TransportMode::T0);
        eprintln!("{mode:?} T=1: {t1:?}\n{mode:?} T=0: {t0:?}");
        // T=0: the data-bearing answers came as 61xx and were fetched with GET RESPONSE.
        for op in [
            Operation::ReadFile,
            Operation::Sign,
            Operation::GenerateKeyPair,
            Operation::Dh,
        ] {
            assert!(
                t0.of(op).apdus > t1.of(op).apdus,
                "{mode:?} {op:?}: T=0 {:?} vs T=1 {:?}",
                t0.of(op),
                t1.of(op)
            );
        }
    }
    eprintln!("4 workouts in {:?}", started.elapsed());
}

/// One fault case: the first operation after opening hits `fault`.
struct FaultRun {
    report: ProvisionReport,
    card: Card,
    _modem: Modem,
    _dir: tempfile::TempDir,
}

fn with_fault(mode: AtMode, transport: TransportMode, fault: AtFault) -> FaultRun {
    let at = commands_to_open(mode, transport) + 1;
    let dir = tempfile::tempdir().unwrap();
    let (report, vcard) = provisioned(dir.path(), card_options(transport));
    let modem = Modem::spawn(
        Arc::new(Mutex::new(vcard)),
        ModemOptions {
            inject: Some(AtInjection::once(fault, at)),
            ..ModemOptions::default()
        },
    );
    let card = open(&modem, short(mode));
    FaultRun {
        report,
        card,
        _modem: modem,
        _dir: dir,
    }
}

/// The AT command family the session uses in `mode`.
fn at_command(mode: AtMode) -> &'static str {
    match mode {
        AtMode::Cgla => "AT+CGLA",
        _ => "AT+CSIM",
    }
}

/// Runs the faulty operation (a signature), checks the error with `check` and the time it took
/// against `limit`, then checks that the next two operations work.
fn fault_case(
    mode: AtMode,
    transport: TransportMode,
    fault: AtFault,
    limit: Duration,
    reconnects: u64,
    check: impl Fn(&TransportError) -> bool,
) {
    let run = with_fault(mode, transport, fault.clone());
    let before = run.card.stats();
    let started = Instant::now();
    let digest = [0x5Au8; 32];
    let err = run
        .card
        .sign_digest(
            &iotsafe_core::ObjectRef::id([1]),
            iotsafe_core::HashAlgorithm::Sha256,
            &digest,
        )
        .expect_err("the modem's fault reaches the caller");
    let took = started.elapsed();
    eprintln!("{mode:?} {transport:?} {fault:?}: {err} ({err:?}) after {took:?}");
    assert!(took < limit, "{fault:?} took {took:?}, limit {limit:?}");
    match &err {
        Error::Transport { source, .. } => assert!(check(source), "{fault:?}: {source:?}"),
        other => panic!("{fault:?}: expected a transport error, got {other:?}"),
    }
    let failed = run.card.stats().since(&before);
    assert_eq!(failed.of(Operation::Sign).failures, 1, "{failed:?}");
    // The next operations work (after a resync / reconnect where the fault called for one).
    sign_and_check(&run.card, &run.report.device_public_key, b"after the fault");
    let cert = run
        .card
        .read_file(&iotsafe_core::ObjectRef::id([2]))
        .expect("read after the fault");
    assert_eq!(cert, run.report.device_cert_der);
    let after = run.card.stats().since(&before);
    assert_eq!(after.of(Operation::Sign).count, 2, "{after:?}");
    assert_eq!(after.of(Operation::Sign).failures, 1, "{after:?}");
    assert_eq!(after.of(Operation::ReadFile).failures, 0, "{after:?}");
    // A refusal leaves the channel alone; a lost SIM or a silent modem costs a reconnect and a
    // fresh SELECT (or AT+CCHO).
    assert_eq!(after.reconnects, reconnects, "{fault:?}: {after:?}");
    assert_eq!(
        after.count(Operation::Select),
        reconnects,
        "{fault:?}: {after:?}"
    );
}

/// The modem's refusal, naming the AT command it refused.
fn modem_refused(mode: AtMode, answer: &'static str) -> impl Fn(&TransportError) -> bool {
    move |e| match e {
        TransportError::Modem {
            command,
            answer: got,
        } => command.starts_with(at_command(mode)) && got.contains(answer),
        _ => false,
    }
}

const MODES: [(AtMode, TransportMode); 4] = [
    (AtMode::Csim, TransportMode::T1),
    (AtMode::Csim, TransportMode::T0),
    (AtMode::Cgla, TransportMode::T1),
    (AtMode::Cgla, TransportMode::T0),
];

/// Slack on top of a deadline: only catches hangs.
const SLACK: Duration = Duration::from_secs(5);

#[test]
fn modem_answers_error() {
    for (mode, transport) in MODES {
        if mode == AtMode::Cgla {
            // To AT+CGLA a bare ERROR may be the lost channel `+CME ERROR: 21` names: read as
            // one, once; the session reopens its channel and the signature goes through.
            let run = with_fault(mode, transport, AtFault::Error);
            let before = run.card.stats();
            sign_and_check(&run.card, &run.report.device_public_key, b"a bare ERROR");
            let after = run.card.stats().since(&before);
            // Counted per attempt: the one the ERROR ended, and its retry.
            let sign = after.of(Operation::Sign);
            assert_eq!((sign.count, sign.failures), (2, 1), "{after:?}");
            assert_eq!((after.reconnects, after.card_resets), (1, 1), "{after:?}");
        } else {
            // To AT+CSIM with the SIM there (`AT+CPIN?` says READY) it is the command's own.
            fault_case(
                mode,
                transport,
                AtFault::Error,
                SLACK,
                0,
                modem_refused(mode, "ERROR"),
            );
        }
    }
}

#[test]
fn modem_answers_cme_error() {
    for (mode, transport) in MODES {
        fault_case(
            mode,
            transport,
            AtFault::CmeError(100),
            SLACK,
            0,
            modem_refused(mode, "+CME ERROR: 100"),
        );
    }
}

#[test]
fn modem_loses_the_sim_then_it_is_back() {
    // `+CME ERROR: 13` (SIM failure): the card is gone for the session, which reconnects.
    for (mode, transport) in MODES {
        fault_case(mode, transport, AtFault::CmeError(13), SLACK, 1, |e| {
            matches!(e, TransportError::RemovedCard)
        });
    }
}

#[test]
fn modem_answers_garbage() {
    for (mode, transport) in MODES {
        fault_case(
            mode,
            transport,
            AtFault::Garbage,
            SLOW + SLACK,
            0,
            move |e| match e {
                TransportError::Modem { command, answer } => {
                    command.starts_with(at_command(mode)) && answer.contains("without a")
                }
                TransportError::Protocol(message) => message.contains(at_command(mode)),
                _ => false,
            },
        );
    }
}

#[test]
fn modem_says_nothing() {
    for (mode, transport) in MODES {
        // The silenced command is the signature's first APDU (the session init, an ordinary
        // instruction): the normal deadline fires.
        fault_case(
            mode,
            transport,
            AtFault::Silence,
            NORMAL + SLACK,
            1,
            |e| matches!(e, TransportError::Timeout { waited, .. } if *waited == NORMAL),
        );
    }
}

#[test]
fn sim_pulled_mid_operation_then_back() {
    // The card (not the modem) goes away in the middle of a multi-APDU READ FILE: the modem
    // answers `+CME ERROR: 13`, the session reports the removal, and after the card is back the
    // next operation reconnects and works.
    for (mode, transport) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let (report, vcard) = provisioned(dir.path(), card_options(transport));
        let shared = Arc::new(Mutex::new(vcard));
        let modem = Modem::spawn(shared.clone(), ModemOptions::default());
        let card = open(&modem, short(mode));
        let cert = card
            .read_file(&iotsafe_core::ObjectRef::id([2]))
            .expect("read before the fault");
        assert_eq!(cert, report.device_cert_der);
        assert!(card.stats().of(Operation::ReadFile).apdus >= 2);
        let before = card.stats();
        {
            let mut vc = shared.lock().unwrap();
            let now = vc.apdu_count();
            vc.set_faults(iotsafe_vcard::FaultPlan {
                disconnect_after: Some(now + 1),
                ..Default::default()
            });
        }
        let started = Instant::now();
        let err = card
            .read_file(&iotsafe_core::ObjectRef::id([2]))
            .expect_err("the SIM went away mid-operation");
        let took = started.elapsed();
        shared
            .lock()
            .unwrap()
            .set_faults(iotsafe_vcard::FaultPlan::default());
        eprintln!("{mode:?} {transport:?} SIM pulled: {err} after {took:?}");
        assert!(took < SLOW + SLACK, "{took:?}");
        assert!(
            matches!(
                err,
                Error::Transport {
                    source: TransportError::RemovedCard,
                    ..
                }
            ),
            "{err:?}"
        );
        let failed = card.stats().since(&before);
        assert_eq!(failed.of(Operation::ReadFile).apdus, 2, "{failed:?}");
        let cert = card
            .read_file(&iotsafe_core::ObjectRef::id([2]))
            .expect("read after the SIM is back");
        assert_eq!(cert, report.device_cert_der);
        sign_and_check(&card, &report.device_public_key, b"SIM back");
        let after = card.stats().since(&before);
        assert_eq!(after.reconnects, 1, "{after:?}");
        assert_eq!(after.count(Operation::Select), 1, "{after:?}");
        assert_eq!(after.of(Operation::Select).failures, 0, "{after:?}");
    }
}
