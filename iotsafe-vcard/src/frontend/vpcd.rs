//! A vpcd client: the virtual card plugged into pcscd's vpcd driver, so it is a real PC/SC reader.
//!
//! The vpcd driver inside pcscd is a TCP **server** (`127.0.0.1:35963` for reader
//! `Virtual PCD 00 00`); the card is the client. Both directions carry frames of a 2-byte
//! big-endian length and a payload. From vpcd, a 1-byte payload is a control code (0 power off,
//! 1 power on, 2 reset: no reply; 4 get ATR: reply with the ATR) and a longer one is a command
//! APDU, answered with the response APDU.
//!
//! Connecting is a card insertion, closing the socket a card removal. The client retries
//! connecting until pcscd is up, reconnects when pcscd restarts, and acts out
//! [`Reply::Disconnect`](crate::Reply::Disconnect) by closing the socket and staying away for a
//! while before it "re-inserts" the card.
//!
//! No serial time: a PC/SC reader has no modem UART, so the serial link of the card's latency
//! model ([`crate::Latency::serial`]) is not charged here; the card's own latency still is.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::{
    exchange, lock, read_wakes_up, sleep_unless_stopped, Exchange, FrontendHandle, SharedCard,
};

/// The address of the vpcd driver's first slot (`Virtual PCD 00 00`) on Debian.
pub const DEFAULT_VPCD_ADDR: &str = "127.0.0.1:35963";

/// vpcd control code: power the card off (no reply).
pub const CTRL_OFF: u8 = 0;
/// vpcd control code: power the card on (no reply).
pub const CTRL_ON: u8 = 1;
/// vpcd control code: warm reset (no reply).
pub const CTRL_RESET: u8 = 2;
/// vpcd control code: send the ATR.
pub const CTRL_ATR: u8 = 4;

/// How the vpcd client connects, waits and reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcdOptions {
    /// First pause after a failed connect; it doubles after each failure.
    pub backoff_initial: Duration,
    /// The longest pause between connect attempts (the back-off is bounded by this).
    pub backoff_max: Duration,
    /// Give up (return an error) when no connect has succeeded for this long; `None` retries until
    /// stopped. The clock restarts after every successful connection.
    pub give_up_after: Option<Duration>,
    /// How long the card stays "removed" after it acted out [`Reply::Disconnect`](crate::Reply)
    /// before reconnecting, so a host can see the removal and then the re-insertion.
    ///
    /// Keep it well above pcscd's reader poll (about 400 ms): a card that leaves and comes back
    /// between two polls looks to pcscd like a card that never left, and pcscd 1.9.9 then keeps a
    /// stale state for it ("Card Not Inserted" on every connect) until the next real removal.
    pub reinsert_after: Duration,
    /// Pause before reconnecting after pcscd closed the connection (pcscd restarting).
    pub reconnect_after: Duration,
    /// How often a blocked receive wakes up to look at the stop flag.
    pub poll_interval: Duration,
    /// Deadline for writing one answer; a pcscd that does not read is dropped.
    pub write_timeout: Duration,
}

impl Default for VpcdOptions {
    fn default() -> Self {
        Self {
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            give_up_after: None,
            reinsert_after: Duration::from_millis(500),
            reconnect_after: Duration::from_millis(50),
            poll_interval: Duration::from_millis(100),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters a test or a status line can read while the client runs.
#[derive(Debug, Default)]
pub struct VpcdStats {
    connections: AtomicU64,
    apdus: AtomicU64,
    connected: AtomicBool,
}

impl VpcdStats {
    /// How many times a connection to vpcd was established.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    /// How many command APDUs were answered (or dropped by an injected disconnect).
    pub fn apdus(&self) -> u64 {
        self.apdus.load(Ordering::Relaxed)
    }
    /// Whether the client is connected right now (the card is "in the reader").
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// A card plugged into pcscd's vpcd driver.
pub struct VpcdClient {
    card: SharedCard,
    addr: SocketAddr,
    options: VpcdOptions,
    stats: Arc<VpcdStats>,
}

/// A vpcd client running on its own thread; `stop()` takes the card out of the reader.
pub type VpcdHandle = FrontendHandle;

/// How one connection ended.
enum SessionEnd {
    /// The card acted out a removal: stay away for a while.
    CardRemoved,
    /// vpcd closed the connection or it failed: reconnect soon.
    PeerGone,
    /// The stop flag was raised.
    Stopped,
}

impl VpcdClient {
    /// A client that will plug `card` into the vpcd driver at `addr`.
    pub fn new(card: SharedCard, addr: SocketAddr, options: VpcdOptions) -> Self {
        Self {
            card,
            addr,
            options,
            stats: Arc::new(VpcdStats::default()),
        }
    }

    /// The client's counters (shared: they keep counting after [`VpcdClient::spawn`]).
    pub fn stats(&self) -> Arc<VpcdStats> {
        Arc::clone(&self.stats)
    }

    /// Runs the client on this thread until `stop` is raised (then `Ok`), or until connecting
    /// failed for longer than [`VpcdOptions::give_up_after`] (then the last connect error).
    pub fn run(&self, stop: &AtomicBool) -> io::Result<()> {
        let mut backoff = self.options.backoff_initial;
        let mut failing_since: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let stream = match self.connect() {
                Ok(stream) => stream,
                Err(err) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if let Some(limit) = self.options.give_up_after {
                        if since.elapsed() >= limit {
                            return Err(err);
                        }
                    }
                    tracing::debug!(addr = %self.addr, %err, ?backoff, "vpcd not reachable yet");
                    sleep_unless_stopped(backoff, stop);
                    backoff = (backoff * 2).min(self.options.backoff_max);
                    continue;
                }
            };
            failing_since = None;
            backoff = self.options.backoff_initial;
            self.stats.connections.fetch_add(1, Ordering::Relaxed);
            self.stats.connected.store(true, Ordering::Relaxed);
            tracing::info!(addr = %self.addr, "card inserted into vpcd reader");
            let end = self.session(stream, stop);
            self.stats.connected.store(false, Ordering::Relaxed);
            // A card out of its reader has no power.
            lock(&self.card).power_off();
            match end {
                SessionEnd::Stopped => break,
                SessionEnd::CardRemoved => {
                    tracing::info!("card removed (injected); re-inserting later");
                    sleep_unless_stopped(self.options.reinsert_after, stop);
                }
                SessionEnd::PeerGone => {
                    tracing::info!("vpcd closed the connection; reconnecting");
                    sleep_unless_stopped(self.options.reconnect_after, stop);
                }
            }
        }
        Ok(())
    }

    /// Runs the client on a background thread.
    pub fn spawn(self) -> io::Result<VpcdHandle> {
        FrontendHandle::spawn("iotsafe-vpcd", move |stop| self.run(&stop))
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let timeout = self.options.backoff_max.max(Duration::from_millis(200));
        let stream = TcpStream::connect_timeout(&self.addr, timeout)?;
        // Each APDU is one small request and one small answer: never hold a segment back.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.options.poll_interval))?;
        stream.set_write_timeout(Some(self.options.write_timeout))?;
        Ok(stream)
    }

    /// Serves one connection: frames in, answers out, until it ends.
    fn session(&self, mut stream: TcpStream, stop: &AtomicBool) -> SessionEnd {
        let mut frames = FrameReader::default();
        loop {
            let frame = match frames.next(&mut stream, stop) {
                Ok(Some(frame)) => frame,
                Ok(None) => return SessionEnd::Stopped,
                Err(err) => {
                    tracing::debug!(%err, "vpcd receive ended");
                    return SessionEnd::PeerGone;
                }
            };
            let answer = match frame.as_slice() {
                [] => continue,
                [CTRL_OFF] => {
                    lock(&self.card).power_off();
                    continue;
                }
                [CTRL_ON] => {
                    lock(&self.card).power_on();
                    continue;
                }
                [CTRL_RESET] => {
                    lock(&self.card).reset();
                    continue;
                }
                [CTRL_ATR] => lock(&self.card).atr(),
                [code] => {
                    tracing::warn!(code, "unknown vpcd control code ignored");
                    continue;
                }
                apdu => {
                    self.stats.apdus.fetch_add(1, Ordering::Relaxed);
                    match exchange(&self.card, apdu, stop) {
                        Exchange::Answer(response) => response,
                        Exchange::Disconnect => return SessionEnd::CardRemoved,
                    }
                }
            };
            if let Err(err) = write_frame(&mut stream, &answer) {
                tracing::debug!(%err, "vpcd send failed");
                return SessionEnd::PeerGone;
            }
        }
    }
}

/// Plugs `card` into the vpcd driver at `addr` and serves it on this thread until `stop` is
/// raised (see [`VpcdClient::run`]).
pub fn serve_vpcd(
    card: SharedCard,
    addr: SocketAddr,
    options: VpcdOptions,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    VpcdClient::new(card, addr, options).run(&stop)
}

/// Plugs `card` into the vpcd driver at `addr` on a background thread.
pub fn spawn_vpcd(
    card: SharedCard,
    addr: SocketAddr,
    options: VpcdOptions,
) -> io::Result<VpcdHandle> {
    VpcdClient::new(card, addr, options).spawn()
}

/// Writes one frame: 2-byte big-endian length, then the payload, in a single write so the frame
/// leaves in one segment.
pub fn write_frame<W: Write>(out: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} bytes do not fit a vpcd frame", payload.len()),
        )
    })?;
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    out.write_all(&frame)?;
    out.flush()
}

/// Reassembles frames from a stream whose reads time out (so the stop flag is seen), keeping
/// partial frames across timeouts.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next complete frame; `Ok(None)` when `stop` was raised; an error when the peer closed.
    fn next(&mut self, stream: &mut TcpStream, stop: &AtomicBool) -> io::Result<Option<Vec<u8>>> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(frame) = self.take_frame() {
                return Ok(Some(frame));
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            // Debian's vpcd writes the length and the APDU in two segments. Without quick ACK the
            // kernel delays the ACK of the first segment (up to 40 ms) while vpcd's Nagle holds the
            // second one back until that ACK arrives: about 44 ms per APDU instead of ~100 µs.
            // Linux clears TCP_QUICKACK again on its own, so it is set before every receive.
            let _ = SockRef::from(&*stream).set_quickack(true);
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "vpcd closed the connection",
                    ))
                }
                Ok(n) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(err) if read_wakes_up(&err) => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let [hi, lo, ..] = self.buf[..] else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let frame = self.buf.get(2..2 + len)?.to_vec();
        self.buf.drain(..2 + len);
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_length_prefixed_big_endian() {
        let mut out = Vec::new();
        write_frame(&mut out, &[0x90, 0x00]).unwrap();
        assert_eq!(out, [0x00, 0x02, 0x90, 0x00]);
        out.clear();
        write_frame(&mut out, &[]).unwrap();
        assert_eq!(out, [0x00, 0x00]);
        assert!(write_frame(&mut out, &vec![0; 70_000]).is_err());
    }

    #[test]
    fn the_socket_has_no_nagle_and_timeouts() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let card = crate::frontend::share(NoCard);
        let options = VpcdOptions::default();
        let client = VpcdClient::new(card, listener.local_addr().unwrap(), options.clone());
        let stream = client.connect().unwrap();
        assert!(stream.nodelay().unwrap(), "TCP_NODELAY");
        assert_eq!(stream.read_timeout().unwrap(), Some(options.poll_interval));
        assert_eq!(stream.write_timeout().unwrap(), Some(options.write_timeout));
    }

    proptest::proptest! {
        #[test]
        fn frames_survive_any_segmentation(
            payloads in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), 0..8),
            piece in 1usize..50,
        ) {
            let mut wire = Vec::new();
            for payload in &payloads {
                write_frame(&mut wire, payload).unwrap();
            }
            let mut reader = FrameReader::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(piece) {
                reader.buf.extend_from_slice(chunk);
                while let Some(frame) = reader.take_frame() {
                    got.push(frame);
                }
            }
            proptest::prop_assert_eq!(got, payloads);
            proptest::prop_assert!(reader.buf.is_empty());
        }
    }

    struct NoCard;
    impl crate::CardHandler for NoCard {
        fn atr(&self) -> Vec<u8> {
            Vec::new()
        }
        fn power_on(&mut self) {}
        fn power_off(&mut self) {}
        fn reset(&mut self) {}
        fn process(&mut self, _: &[u8]) -> Vec<u8> {
            vec![0x6D, 0x00]
        }
    }

    #[test]
    fn frame_reader_keeps_partial_frames() {
        let mut reader = FrameReader::default();
        reader.buf.extend_from_slice(&[0x00, 0x05, 0x00, 0xA4]);
        assert_eq!(reader.take_frame(), None);
        reader
            .buf
            .extend_from_slice(&[0x04, 0x00, 0x00, 0x00, 0x01, CTRL_ATR]);
        assert_eq!(
            reader.take_frame(),
            Some(vec![0x00, 0xA4, 0x04, 0x00, 0x00])
        );
        assert_eq!(reader.take_frame(), Some(vec![CTRL_ATR]));
        assert_eq!(reader.take_frame(), None);
        reader.buf.push(0x00);
        assert_eq!(reader.take_frame(), None);
    }
}
