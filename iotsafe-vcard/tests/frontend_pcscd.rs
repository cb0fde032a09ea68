//! The vpcd client through a REAL pcscd: the test card becomes `Virtual PCD 00 00`, and the test
//! talks to it with PC/SC (`SCardConnect`, `SCardTransmit`) like any host application.
//!
//! Needs pcscd running with the vsmartcard-vpcd driver (`scripts/test.sh` starts it). Without
//! pcscd the tests skip, unless `IOTSAFE_REQUIRE_SERVICES=1`, where they fail.
#![cfg(feature = "pcsc-tests")]

mod frontend_support;

use std::ffi::CString;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use frontend_support::{Event, TestCard, ATR, INS_DISCONNECT};
use iotsafe_vcard::frontend::vpcd::{VpcdClient, VpcdHandle, VpcdOptions, DEFAULT_VPCD_ADDR};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardHandler, CardOptions, TransportMode, VirtualCard};
use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode};

/// pcscd notices a new vpcd card after 0.3–0.45 s; allow for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(10);

/// Only one card can be plugged into one vpcd port at a time.
static VPCD_PORT: Mutex<()> = Mutex::new(());

fn serialize() -> MutexGuard<'static, ()> {
    VPCD_PORT.lock().unwrap_or_else(|p| p.into_inner())
}

/// pcscd's socket, or `None` (skip) when it is absent and services are not required.
fn pcscd_available() -> bool {
    let up = Path::new("/run/pcscd/pcscd.comm").exists();
    if !up {
        let required = std::env::var("IOTSAFE_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "IOTSAFE_REQUIRE_SERVICES=1 but pcscd is not running (/run/pcscd/pcscd.comm missing)"
        );
        eprintln!("skipped: pcscd is not running (set IOTSAFE_REQUIRE_SERVICES=1 to fail instead)");
    }
    up
}

fn vpcd_addr() -> SocketAddr {
    std::env::var("IOTSAFE_TEST_VPCD")
        .unwrap_or_else(|_| DEFAULT_VPCD_ADDR.to_owned())
        .parse()
        .expect("IOTSAFE_TEST_VPCD is HOST:PORT")
}

/// The PC/SC name of the reader behind `addr`: the vpcd driver numbers its slots from port 35963.
fn reader_name(addr: SocketAddr) -> CString {
    if let Ok(name) = std::env::var("IOTSAFE_TEST_READER") {
        return CString::new(name).unwrap();
    }
    let slot = addr
        .port()
        .checked_sub(35963)
        .expect("vpcd ports start at 35963");
    CString::new(format!("Virtual PCD 00 {slot:02}")).unwrap()
}

fn options() -> VpcdOptions {
    VpcdOptions {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        reinsert_after: Duration::from_millis(800),
        ..VpcdOptions::default()
    }
}

fn plug_in() -> (VpcdHandle, Arc<Mutex<TestCard>>) {
    let (shared, card) = TestCard::shared();
    let handle = VpcdClient::new(shared, vpcd_addr(), options())
        .spawn()
        .unwrap();
    (handle, card)
}

/// Connects to the card once pcscd has seen it.
fn connect(ctx: &Context, reader: &CString, seen: &Mutex<TestCard>) -> Card {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match ctx.connect(reader, ShareMode::Shared, Protocols::ANY) {
            Ok(card) => return card,
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "pcscd never showed a card in {reader:?}: {err}; the card saw {:?}",
                    seen.lock().unwrap().events
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Waits until pcscd's own event thread reports the reader with (`true`) or without a card
/// (`iotsafe_core::pcsc::wait_for_reader`, which says why waiting beats retrying a connect).
fn wait_for_reader(reader: &CString, present: bool) {
    let name = reader.to_str().expect("a UTF-8 reader name");
    if let Err(err) = iotsafe_core::pcsc::wait_for_reader(name, present, DEADLINE) {
        panic!("waiting for {name:?}: {err}");
    }
}

fn transmit(card: &Card, apdu: &[u8]) -> Result<Vec<u8>, pcsc::Error> {
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    card.transmit(apdu, &mut buf).map(<[u8]>::to_vec)
}

#[test]
fn pcscd_sees_the_card_and_apdus_round_trip_fast() {
    let _port = serialize();
    if !pcscd_available() {
        return;
    }
    let addr = vpcd_addr();
    let reader = reader_name(addr);
    let ctx = Context::establish(Scope::User).expect("pcscd answers");
    wait_for_reader(&reader, false);
    let (handle, card_state) = plug_in();
    let card = connect(&ctx, &reader, &card_state);

    let status = card.status2_owned().unwrap();
    assert_eq!(status.atr(), ATR, "pcscd got the card's ATR through vpcd");

    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
    ];
    assert_eq!(transmit(&card, &select).unwrap(), [0x90, 0x00]);
    assert_eq!(
        transmit(&card, &[0x81, 0xCB, 0x00, 0x00, 0x02, 0xAB, 0xCD]).unwrap(),
        [0x81, 0xAB, 0xCD, 0x90, 0x00]
    );

    // The latency trap: ~44 ms per APDU without TCP_QUICKACK; ~0.1 ms with it.
    let mut times: Vec<Duration> = (0..50u8)
        .map(|i| {
            let started = Instant::now();
            let answer = transmit(&card, &[0x00, 0xCA, 0x00, 0x00, 0x01, i]).unwrap();
            assert_eq!(answer, [0x00, i, 0x90, 0x00]);
            started.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < Duration::from_millis(15),
        "median round trip through pcscd {median:?}"
    );

    let apdus = card_state.lock().unwrap().apdus();
    assert_eq!(apdus[0], select);
    assert!(card_state.lock().unwrap().events.contains(&Event::PowerOn));
    drop(card);
    handle.stop().unwrap();
    wait_for_reader(&reader, false);
}

#[test]
fn pcscd_sees_removal_and_reinsertion() {
    let _port = serialize();
    if !pcscd_available() {
        return;
    }
    let reader = reader_name(vpcd_addr());
    let ctx = Context::establish(Scope::User).expect("pcscd answers");
    wait_for_reader(&reader, false);
    let (handle, card_state) = plug_in();
    let card = connect(&ctx, &reader, &card_state);
    assert_eq!(
        transmit(&card, &[0x00, 0xCA, 0x00, 0x00, 0x00]).unwrap(),
        [0x00, 0x90, 0x00]
    );

    // The card acts out a removal in the middle of a command: the host gets an error, not a hang.
    let started = Instant::now();
    // Through vpcd that is an error or an empty answer (no status word): never a response APDU.
    let lost = transmit(&card, &[0x00, INS_DISCONNECT, 0x00, 0x00]);
    assert!(
        lost.as_ref().map_or(true, |answer| answer.is_empty()),
        "a pulled card cannot answer: {lost:?}"
    );
    assert!(started.elapsed() < DEADLINE);
    drop(card);

    // pcscd sees the reader empty, then the card re-inserted, and a new connection works.
    wait_for_reader(&reader, false);
    wait_for_reader(&reader, true);
    let card = connect(&ctx, &reader, &card_state);
    assert_eq!(
        transmit(&card, &[0x00, 0xCA, 0x00, 0x00, 0x00]).unwrap(),
        [0x00, 0x90, 0x00]
    );
    let _ = card.disconnect(Disposition::LeaveCard);

    // Stopping the client takes the card out of the reader for good.
    handle.stop().unwrap();
    wait_for_reader(&reader, false);
    assert!(matches!(
        ctx.connect(&reader, ShareMode::Shared, Protocols::ANY),
        Err(pcsc::Error::NoSmartcard)
    ));
}

#[test]
fn the_applet_behind_pcscd_in_both_transport_modes() {
    let _port = serialize();
    if !pcscd_available() {
        return;
    }
    let reader = reader_name(vpcd_addr());
    let ctx = Context::establish(Scope::User).expect("pcscd answers");
    for transport in [TransportMode::T1, TransportMode::T0] {
        wait_for_reader(&reader, false);
        let applet = VirtualCard::with_default_layout(CardOptions {
            transport,
            ..CardOptions::default()
        });
        let atr = applet.atr();
        let shared: SharedCard = Arc::new(Mutex::new(applet));
        let handle = VpcdClient::new(shared, vpcd_addr(), options())
            .spawn()
            .unwrap();
        let seen = Mutex::new(TestCard::default());
        let card = connect(&ctx, &reader, &seen);
        assert_eq!(card.status2_owned().unwrap().atr(), atr, "{transport:?}");
        let select = [
            0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
        ];
        assert_eq!(
            transmit(&card, &select).unwrap(),
            [0x90, 0x00],
            "{transport:?}"
        );
        // GET RANDOM, 16 bytes: case 2 with the right Le, so the data comes in both modes.
        let random = transmit(&card, &[0x80, 0x84, 0x00, 0x00, 0x10]).unwrap();
        assert_eq!(random.len(), 18, "{transport:?}: {random:02X?}");
        assert_eq!(random[16..], [0x90, 0x00]);
        drop(card);
        handle.stop().unwrap();
        wait_for_reader(&reader, false);
    }
}

#[test]
fn the_binary_is_a_pcsc_card_until_sigterm() {
    let _port = serialize();
    if !pcscd_available() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_iotsafe-vcard");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    let provisioned = std::process::Command::new(bin)
        .arg("provision")
        .arg("--state")
        .arg(&state)
        .arg("--pki-out")
        .arg(dir.path().join("pki"))
        .output()
        .unwrap();
    assert!(provisioned.status.success(), "{provisioned:?}");

    let reader = reader_name(vpcd_addr());
    let ctx = Context::establish(Scope::User).expect("pcscd answers");
    wait_for_reader(&reader, false);
    let mut child = std::process::Command::new(bin)
        .arg("serve")
        .arg("--state")
        .arg(&state)
        .arg("--vpcd")
        .arg(vpcd_addr().to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let result = std::panic::catch_unwind(|| {
        let card = connect(&ctx, &reader, &Mutex::new(TestCard::default()));
        let select = [
            0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
        ];
        assert_eq!(transmit(&card, &select).unwrap(), [0x90, 0x00]);
        let random = transmit(&card, &[0x80, 0x84, 0x00, 0x00, 0x08]).unwrap();
        assert_eq!(random.len(), 10, "{random:02X?}");
        let _ = card.disconnect(Disposition::LeaveCard);
    });
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}"
    );
    // SIGTERM took the card out of the reader.
    wait_for_reader(&reader, false);
}
