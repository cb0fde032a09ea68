//! PcscTransport against the real pcscd, with a tiny card behind the vpcd driver.
//!
//! The card is a TCP client of vpcd (2-byte big-endian length, then payload; one-byte payloads are
//! control codes: 0 off, 1 on, 2 reset, 4 ATR). It uses slot 1 (`Virtual PCD 00 01`, port 35964) so
//! it does not collide with the virtual-card front end's tests on slot 0. Tests that need pcscd skip
//! when it is not running, unless `IOTSAFE_REQUIRE_SERVICES` is set (CI), where they fail.
#![cfg(feature = "pcsc")]
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iotsafe_core::pcsc::{PcscOptions, PcscTransport, ReaderChoice};
use iotsafe_core::{Transport, TransportError};

/// One vpcd slot: tests that plug a card in run one at a time.
static SLOT: Mutex<()> = Mutex::new(());

const SLOT_ADDR: &str = "127.0.0.1:35964";
const SLOT_READER: &str = "Virtual PCD 00 01";
/// TS=3B, T0=80, TD1=80, TD2=01 (T=1), TCK=01.
const ATR: [u8; 5] = [0x3B, 0x80, 0x80, 0x01, 0x01];

fn services_required() -> bool {
    std::env::var_os("IOTSAFE_REQUIRE_SERVICES").is_some()
        || std::env::var_os("IOTSAFE_TEST_PCSCD").is_some()
}

/// The readers, or `None` (test skipped) when pcscd is not running and not required.
fn pcscd_readers() -> Option<Vec<String>> {
    match PcscTransport::list_readers() {
        Ok(readers) => Some(readers),
        Err(TransportError::NoService) if !services_required() => {
            eprintln!("pcscd is not running: skipped");
            None
        }
        Err(err) => panic!("pcscd required but unusable: {err}"),
    }
}

/// A card plugged into the vpcd slot: answers GET RANDOM with 8 bytes, SELECT with 9000.
struct VpcdCard {
    stream: TcpStream,
    apdus: Arc<AtomicUsize>,
    /// Power off / on / reset requests seen (a reset of the card shows here).
    controls: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl VpcdCard {
    fn plug_in() -> VpcdCard {
        let started = Instant::now();
        let stream = loop {
            match TcpStream::connect(SLOT_ADDR) {
                Ok(s) => break s,
                Err(err) if started.elapsed() < Duration::from_secs(5) => {
                    eprintln!("vpcd not reachable yet: {err}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => panic!("vpcd slot {SLOT_ADDR} not reachable: {err}"),
            }
        };
        stream.set_nodelay(true).unwrap();
        let apdus = Arc::new(AtomicUsize::new(0));
        let controls = Arc::new(AtomicUsize::new(0));
        let (mut reader, counter, power) =
            (stream.try_clone().unwrap(), apdus.clone(), controls.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: ends when the socket closes, at the latest after a minute.
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                let mut len = [0u8; 2];
                if reader.read_exact(&mut len).is_err() {
                    return;
                }
                let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if reader.read_exact(&mut payload).is_err() {
                    return;
                }
                let reply: Option<Vec<u8>> = match payload.as_slice() {
                    [0] | [1] | [2] => {
                        power.fetch_add(1, Ordering::SeqCst);
                        None
                    }
                    [4] => Some(ATR.to_vec()),
                    apdu => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        Some(match apdu {
                            [_, 0x84, _, _, 0x08] => {
                                let mut r = vec![0x11; 8];
                                r.extend([0x90, 0x00]);
                                r
                            }
                            [_, 0xA4, ..] => vec![0x90, 0x00],
                            _ => vec![0x6D, 0x00],
                        })
                    }
                };
                if let Some(reply) = reply {
                    let mut frame = (reply.len() as u16).to_be_bytes().to_vec();
                    frame.extend(reply);
                    if reader.write_all(&frame).is_err() {
                        return;
                    }
                }
            }
        });
        VpcdCard {
            stream,
            apdus,
            controls,
            thread: Some(thread),
        }
    }

    fn apdus(&self) -> usize {
        self.apdus.load(Ordering::SeqCst)
    }

    fn controls(&self) -> usize {
        self.controls.load(Ordering::SeqCst)
    }

    /// Pulls the card: the socket closes, vpcd reports the card gone.
    fn pull_out(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for VpcdCard {
    fn drop(&mut self) {
        self.close();
    }
}

/// Connects to the slot, waiting for pcscd to notice the card (it polls every ~400 ms).
fn connect_when_present() -> PcscTransport {
    let started = Instant::now();
    loop {
        let options = PcscOptions {
            reconnect_deadline: RECONNECT_DEADLINE,
            ..PcscOptions::default()
        };
        match PcscTransport::connect(&ReaderChoice::Exact(SLOT_READER.into()), options) {
            Ok(t) => return t,
            Err(TransportError::NoCard(_)) | Err(TransportError::RemovedCard)
                if started.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(err) => panic!("cannot connect to {SLOT_READER}: {err}"),
        }
    }
}

const RECONNECT_DEADLINE: Duration = Duration::from_secs(2);
const GET_RANDOM: [u8; 5] = [0x00, 0x84, 0x00, 0x00, 0x08];

#[test]
fn list_readers_without_pcscd_is_no_service_and_with_it_lists_vpcd() {
    match PcscTransport::list_readers() {
        Err(TransportError::NoService) => {
            assert!(
                !services_required(),
                "pcscd should be running (IOTSAFE_TEST_PCSCD is set)"
            );
        }
        Ok(readers) => {
            assert!(
                readers.iter().any(|r| r == "Virtual PCD 00 00"),
                "{readers:?}"
            );
            match PcscTransport::connect(
                &ReaderChoice::Contains("no-such-reader".into()),
                PcscOptions::default(),
            ) {
                Err(TransportError::NoReader { wanted, available }) => {
                    assert!(wanted.contains("no-such-reader"));
                    assert!(available.iter().any(|r| r == "Virtual PCD 00 00"));
                    let message = TransportError::NoReader { wanted, available }.to_string();
                    assert!(message.contains("Virtual PCD 00 00"), "{message}");
                }
                other => panic!("expected NoReader, got {other:?}"),
            }
        }
        Err(err) => panic!("unexpected error: {err}"),
    }
}

#[test]
fn empty_slot_is_no_card() {
    let _slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
    let Some(readers) = pcscd_readers() else {
        return;
    };
    assert!(readers.iter().any(|r| r == SLOT_READER), "{readers:?}");
    // A card pulled by an earlier test takes pcscd up to ~0.4 s to notice: retry a little.
    let started = Instant::now();
    loop {
        match PcscTransport::connect(
            &ReaderChoice::Exact(SLOT_READER.into()),
            PcscOptions::default(),
        ) {
            Err(TransportError::NoCard(reader)) => {
                assert_eq!(reader, SLOT_READER);
                return;
            }
            other if started.elapsed() < Duration::from_secs(3) => {
                drop(other);
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("expected NoCard, got {other:?}"),
        }
    }
}

#[test]
fn transmit_transaction_removal_and_reconnect() {
    let _slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
    if pcscd_readers().is_none() {
        return;
    }
    let card = VpcdCard::plug_in();
    let mut transport = connect_when_present();
    assert!(transport.describe().contains(SLOT_READER));
    assert_eq!(transport.atr(), Some(ATR.to_vec()));

    // One connection, many APDUs.
    let answer = transmit(&mut transport, &GET_RANDOM).unwrap();
    assert_eq!(answer.len(), 10);
    assert_eq!(&answer[8..], &[0x90, 0x00]);
    assert_eq!(
        transmit(&mut transport, &[0x00, 0xCA, 0x00, 0x00, 0x00]).unwrap(),
        vec![0x6D, 0x00]
    );

    // transaction() keeps its APDUs inside a PC/SC transaction, ended when it is dropped.
    let mut inside = Vec::new();
    {
        let mut transaction = transport.transaction().unwrap();
        for _ in 0..3 {
            inside.push(transaction.transmit(&GET_RANDOM).unwrap());
        }
    }
    assert_eq!(inside.len(), 3);
    assert!(card.apdus() >= 5);

    // Exclusive use elsewhere is a clear error, not a hang.
    {
        let exclusive = PcscOptions {
            share: iotsafe_core::pcsc::PcscShare::Exclusive,
            ..PcscOptions::default()
        };
        drop(transport);
        let mut holder =
            PcscTransport::connect(&ReaderChoice::Exact(SLOT_READER.into()), exclusive).unwrap();
        transmit(&mut holder, &GET_RANDOM).unwrap();
        match PcscTransport::connect(
            &ReaderChoice::Exact(SLOT_READER.into()),
            PcscOptions::default(),
        ) {
            Err(TransportError::Protocol(message)) => {
                assert!(message.contains("exclusive use"), "{message}")
            }
            other => panic!("expected a sharing error, got {other:?}"),
        }
    }
    let mut transport = connect_when_present();

    // The session calls reconnect() before its first operation: on a healthy connection it
    // must not reset the card.
    let controls = card.controls();
    transport.reconnect().unwrap();
    assert_eq!(
        card.controls(),
        controls,
        "a healthy reconnect reset the card"
    );
    transmit(&mut transport, &GET_RANDOM).unwrap();

    // Pull the card: typed errors, no hang.
    card.pull_out();
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        match transmit(&mut transport, &GET_RANDOM) {
            Err(err) => {
                assert!(err.needs_reconnect(), "{err:?}");
                let removed = matches!(err, TransportError::RemovedCard);
                seen.push(format!("{err:?}"));
                if removed {
                    break;
                }
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.iter()
            .any(|e| e == "RemovedCard" || e == "NotTransacted"),
        "{seen:?}"
    );

    // Reconnect with no card comes back within its deadline, with an error.
    let started = Instant::now();
    let err = transport.reconnect().unwrap_err();
    let took = started.elapsed();
    assert!(
        took < RECONNECT_DEADLINE + Duration::from_secs(1),
        "{took:?}"
    );
    assert!(err.needs_reconnect(), "{err:?}");
    eprintln!("after removal: {seen:?}; reconnect without a card: {err:?} in {took:?}");

    // A new card: reconnect works and so does the next APDU.
    let card = VpcdCard::plug_in();
    let started = Instant::now();
    let mut reconnected = transport.reconnect();
    while reconnected.is_err() && started.elapsed() < Duration::from_secs(10) {
        reconnected = transport.reconnect();
    }
    reconnected.unwrap();
    let answer = transmit(&mut transport, &GET_RANDOM).unwrap();
    assert_eq!(&answer[8..], &[0x90, 0x00]);
    assert!(card.apdus() >= 1);
    drop(transport);
    drop(card);
}

#[test]
fn wait_for_reader_sees_the_card_come_and_go_and_says_what_it_waited_for() {
    use iotsafe_core::pcsc::wait_for_reader;
    let _slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
    if pcscd_readers().is_none() {
        return;
    }
    let long = Duration::from_secs(15);
    wait_for_reader(SLOT_READER, false, long).expect("the slot empty");
    // No card comes: a typed timeout that names the reader and the state it waited for.
    let started = Instant::now();
    match wait_for_reader(SLOT_READER, true, Duration::from_millis(300)) {
        Err(TransportError::Timeout { waited, command }) => {
            assert_eq!(waited, Duration::from_millis(300));
            assert!(command.contains(SLOT_READER), "{command}");
            assert!(command.contains("with a card"), "{command}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < long, "{:?}", started.elapsed());
    match wait_for_reader("no-such-reader", true, long) {
        Err(TransportError::NoReader { wanted, available }) => {
            assert_eq!(wanted, "no-such-reader");
            assert!(available.iter().any(|r| r == SLOT_READER), "{available:?}");
        }
        other => panic!("expected NoReader, got {other:?}"),
    }
    let card = VpcdCard::plug_in();
    wait_for_reader(SLOT_READER, true, long).expect("pcscd saw the card");
    drop(card);
    wait_for_reader(SLOT_READER, false, long).expect("pcscd saw it go");
}

/// One APDU in a transaction of its own, as the session sends every operation.
fn transmit(transport: &mut PcscTransport, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
    transport.transaction()?.transmit(apdu)
}
