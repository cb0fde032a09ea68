//! The vpcd client against a fake vpcd driver: a TCP listener in the test that speaks vpcd's wire
//! format the way Debian's vpcd does (length and payload written separately, Nagle on).

mod frontend_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frontend_support::{Event, TestCard, ATR, INS_DISCONNECT, INS_STALL, STALL};
use iotsafe_vcard::frontend::vpcd::{VpcdClient, VpcdHandle, VpcdOptions, VpcdStats};

const DEADLINE: Duration = Duration::from_secs(5);

/// The driver side of one card connection.
struct FakeVpcd {
    stream: TcpStream,
}

impl FakeVpcd {
    fn accept(listener: &TcpListener) -> FakeVpcd {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(DEADLINE)).unwrap();
                    return FakeVpcd { stream };
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the card never connected");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// Sends one frame as vpcd does: the 2-byte length, then the payload, in two writes.
    fn send(&mut self, payload: &[u8]) {
        let len = u16::try_from(payload.len()).unwrap().to_be_bytes();
        self.stream.write_all(&len).unwrap();
        self.stream.write_all(payload).unwrap();
    }

    fn receive(&mut self) -> Vec<u8> {
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len).unwrap();
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream.read_exact(&mut payload).unwrap();
        payload
    }

    fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.send(apdu);
        self.receive()
    }

    /// Whether the card closed the connection (read returns end of file).
    fn closed_within(&mut self, within: Duration) -> bool {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }
}

fn options() -> VpcdOptions {
    VpcdOptions {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        reinsert_after: Duration::from_millis(300),
        reconnect_after: Duration::from_millis(10),
        poll_interval: Duration::from_millis(20),
        ..VpcdOptions::default()
    }
}

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn start(
    addr: SocketAddr,
    opts: VpcdOptions,
) -> (VpcdHandle, Arc<VpcdStats>, Arc<Mutex<TestCard>>) {
    let (shared, card) = TestCard::shared();
    let client = VpcdClient::new(shared, addr, opts);
    let stats = client.stats();
    (client.spawn().unwrap(), stats, card)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn power_atr_and_apdus() {
    let (listener, addr) = listener();
    let (handle, stats, card) = start(addr, options());
    let mut vpcd = FakeVpcd::accept(&listener);
    // Control codes 0, 1, 2 get no reply: the first frame back is the ATR.
    vpcd.send(&[0]);
    vpcd.send(&[1]);
    vpcd.send(&[2]);
    vpcd.send(&[4]);
    assert_eq!(vpcd.receive(), ATR);
    assert_eq!(
        vpcd.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10]),
        [0x90, 0x00]
    );
    assert_eq!(
        vpcd.transmit(&[0x81, 0xCB, 0x00, 0x00, 0x02, 0xAB, 0xCD]),
        [0x81, 0xAB, 0xCD, 0x90, 0x00]
    );
    // An unknown control code is ignored, not answered.
    vpcd.send(&[3]);
    vpcd.send(&[4]);
    assert_eq!(vpcd.receive(), ATR);
    assert_eq!(stats.apdus(), 2);
    assert!(stats.is_connected());
    handle.stop().unwrap();
    let events = card.lock().unwrap().events.clone();
    assert_eq!(events[..3], [Event::PowerOff, Event::PowerOn, Event::Reset]);
    assert_eq!(
        events.last(),
        Some(&Event::PowerOff),
        "a card out of its reader has no power"
    );
}

#[test]
fn round_trip_is_fast_despite_split_segments() {
    // Debian's vpcd writes length and APDU in two segments with Nagle on. Without TCP_NODELAY on the
    // card's answers and TCP_QUICKACK before each receive, every round trip costs ~40 ms of delayed
    // ACK; with them it is well under a millisecond on loopback.
    let (listener, addr) = listener();
    let (handle, _, _) = start(addr, options());
    let mut vpcd = FakeVpcd::accept(&listener);
    vpcd.send(&[1]);
    let mut times = Vec::new();
    for i in 0..40u8 {
        let started = Instant::now();
        let answer = vpcd.transmit(&[0x00, 0xCA, 0x00, 0x00, 0x01, i]);
        times.push(started.elapsed());
        assert_eq!(answer, [0x00, i, 0x90, 0x00]);
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < Duration::from_millis(15),
        "median round trip {median:?}"
    );
    handle.stop().unwrap();
}

#[test]
fn card_connects_once_vpcd_comes_up_and_reconnects_after_restart() {
    // Nothing listens yet: the client keeps retrying.
    let (listener, addr) = listener();
    drop(listener);
    let (handle, stats, _) = start(addr, options());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(stats.connections(), 0);

    let listener = TcpListener::bind(addr).unwrap();
    let mut vpcd = FakeVpcd::accept(&listener);
    vpcd.send(&[4]);
    assert_eq!(vpcd.receive(), ATR);
    assert_eq!(stats.connections(), 1);

    // pcscd restarts: connection and listener go away, then come back on the same port.
    drop(vpcd);
    drop(listener);
    wait_for("the client to notice", || !stats.is_connected());
    std::thread::sleep(Duration::from_millis(100));
    let listener = TcpListener::bind(addr).unwrap();
    let mut vpcd = FakeVpcd::accept(&listener);
    vpcd.send(&[1]);
    assert_eq!(
        vpcd.transmit(&[0x00, 0xCA, 0x00, 0x00, 0x01, 0x42]),
        [0x00, 0x42, 0x90, 0x00]
    );
    assert_eq!(stats.connections(), 2);
    handle.stop().unwrap();
}

#[test]
fn injected_disconnect_removes_then_reinserts_the_card() {
    let (listener, addr) = listener();
    let (handle, stats, card) = start(addr, options());
    let mut vpcd = FakeVpcd::accept(&listener);
    vpcd.send(&[1]);
    vpcd.send(&[0x00, INS_DISCONNECT, 0x00, 0x00]);
    let removed = Instant::now();
    assert!(
        vpcd.closed_within(DEADLINE),
        "the card closed without answering"
    );

    // It stays out of the reader for `reinsert_after`, then comes back.
    let mut vpcd = FakeVpcd::accept(&listener);
    let away = removed.elapsed();
    assert!(
        away >= Duration::from_millis(250),
        "re-inserted after only {away:?}"
    );
    vpcd.send(&[1]);
    vpcd.send(&[4]);
    assert_eq!(vpcd.receive(), ATR);
    assert_eq!(stats.connections(), 2);
    let events = card.lock().unwrap().events.clone();
    assert_eq!(
        events,
        [
            Event::PowerOn,
            Event::Apdu(vec![0x00, INS_DISCONNECT, 0x00, 0x00]),
            Event::PowerOff,
            Event::PowerOn
        ]
    );
    handle.stop().unwrap();
}

#[test]
fn stall_answers_late() {
    let (listener, addr) = listener();
    let (handle, _, _) = start(addr, options());
    let mut vpcd = FakeVpcd::accept(&listener);
    let started = Instant::now();
    assert_eq!(vpcd.transmit(&[0x00, INS_STALL, 0x00, 0x00]), [0x90, 0x00]);
    assert!(started.elapsed() >= STALL);
    handle.stop().unwrap();
}

#[test]
fn hostile_frames_do_not_kill_the_client() {
    let (listener, addr) = listener();
    let (handle, stats, _) = start(addr, options());
    // A frame that announces 65535 bytes and then the driver vanishes.
    let mut vpcd = FakeVpcd::accept(&listener);
    vpcd.stream.write_all(&[0xFF, 0xFF, 0x00, 0xA4]).unwrap();
    drop(vpcd);
    // An empty frame, then a 2-byte "APDU", one byte at a time.
    let mut vpcd = FakeVpcd::accept(&listener);
    vpcd.stream.set_nodelay(true).unwrap();
    for byte in [0x00, 0x00, 0x00, 0x02, 0x00, 0xB0] {
        vpcd.stream.write_all(&[byte]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(vpcd.receive(), [0x00, 0x90, 0x00]);
    assert_eq!(stats.connections(), 2);
    assert!(!handle.is_finished());
    handle.stop().unwrap();
}

#[test]
fn stop_is_prompt_while_idle_or_waiting() {
    let (listener, addr) = listener();
    let (handle, _, _) = start(addr, options());
    let _vpcd = FakeVpcd::accept(&listener);
    let started = Instant::now();
    handle.stop().unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));

    // Also while it is retrying a connect to a dead port with a long back-off.
    drop(listener);
    let (handle, _, _) = start(
        addr,
        VpcdOptions {
            backoff_initial: Duration::from_secs(10),
            ..options()
        },
    );
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    handle.stop().unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[test]
fn gives_up_when_told_to() {
    let (listener, addr) = listener();
    drop(listener);
    let (shared, _) = TestCard::shared();
    let client = VpcdClient::new(
        shared,
        addr,
        VpcdOptions {
            give_up_after: Some(Duration::from_millis(150)),
            ..options()
        },
    );
    let started = Instant::now();
    let result = client.run(&std::sync::atomic::AtomicBool::new(false));
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}
