//! One TLS 1.3 connection over the network UART with rustls's unbuffered API: the firmware owns
//! the buffers and moves the bytes; rustls says what it needs next.
//!
//! Records: a TLS 1.3 peer may send records of up to 2^14 bytes of plaintext (16,645 bytes on the
//! wire), and rustls has no max_fragment_length to ask for less, so the receive buffer holds one
//! whole record of the largest size, allocated once per connection on the heap. The send buffer
//! starts at 2 KiB (a ClientHello, the client's certificate flight, a short message) and grows
//! only if rustls asks for more.

use alloc::string::ToString;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use embedded_io::{Read, ReadReady, Write};
use iotsafe_core::Card;
use iotsafe_mcu::clock;
use iotsafe_mcu::uart::CmsdkUart;
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ClientConfig;

/// The largest TLS 1.3 record on the wire: header (5) + 2^14 plaintext + content type and
/// AEAD expansion (at most 256).
pub const RECEIVE_BUFFER: usize = 5 + (1 << 14) + 256;
/// The send buffer's first size.
const SEND_BUFFER: usize = 2048;
/// How long the server may stay silent while the firmware waits for it.
const SILENCE_MS: u64 = 20_000;

/// What the application does over the connection, once it is up.
pub trait Conversation {
    /// Application bytes to send now, if any.
    fn next_message(&mut self) -> Option<Vec<u8>>;
    /// Application bytes the server sent.
    fn received(&mut self, data: &[u8]) -> Result<(), Failure>;
    /// Whether the conversation is over (the connection is then closed).
    fn finished(&self) -> bool;
}

/// Why a connection failed.
#[derive(Debug)]
pub enum Failure {
    /// rustls refused (the handshake, a record, the configuration).
    Tls(rustls::Error),
    /// The network UART lost a byte.
    Uart,
    /// The server sent nothing for [`SILENCE_MS`].
    Silent,
    /// The server closed the connection before the conversation was over.
    ClosedEarly,
    /// The application's protocol went wrong.
    Protocol(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Tls(e) => write!(f, "TLS: {e}"),
            Failure::Uart => write!(f, "the network UART lost a byte"),
            Failure::Silent => write!(f, "the server sent nothing for {SILENCE_MS} ms"),
            Failure::ClosedEarly => write!(f, "the server closed the connection early"),
            Failure::Protocol(why) => write!(f, "application protocol: {why}"),
        }
    }
}

impl From<rustls::Error> for Failure {
    fn from(e: rustls::Error) -> Self {
        Failure::Tls(e)
    }
}

/// What a connection cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    /// APDUs the card took from the ClientHello to the end of the handshake.
    pub handshake_apdus: u64,
    /// Milliseconds from the ClientHello to the end of the handshake.
    pub handshake_ms: u64,
    /// Of those, milliseconds in card operations (key generation, DH, signature).
    pub handshake_card_ms: u64,
    /// Bytes the handshake sent and received on the network UART.
    pub handshake_tx: u32,
    /// Bytes received during the handshake.
    pub handshake_rx: u32,
}

/// What to do after the state rustls reported.
enum Next {
    /// Ask rustls again.
    Process,
    /// Wait for bytes from the server.
    Receive,
    /// The connection is over.
    Done,
}

/// Connects to `server` over `uart`, runs `conversation`, closes the connection.
pub fn run(
    config: Arc<ClientConfig>,
    server: ServerName<'static>,
    uart: &mut CmsdkUart,
    card: &Card,
    conversation: &mut dyn Conversation,
) -> Result<Report, Failure> {
    let (apdus, card_ms) = card_counts(card);
    let (started, bytes) = (clock::now_ms(), iotsafe_mcu::board::NETWORK_TALLY.counts());
    // The key generation happens here, in the first ClientHello.
    let mut conn = UnbufferedClientConnection::new(config, server)?;
    let mut report = None;
    let mut incoming = vec![0u8; RECEIVE_BUFFER];
    let mut used = 0;
    let mut outgoing = vec![0u8; SEND_BUFFER];
    let mut pending = 0;
    loop {
        let UnbufferedStatus { mut discard, state } =
            conn.process_tls_records(&mut incoming[..used]);
        let next = match state? {
            ConnectionState::EncodeTlsData(mut state) => loop {
                match state.encode(&mut outgoing[pending..]) {
                    Ok(n) => {
                        pending += n;
                        break Next::Process;
                    }
                    Err(EncodeError::InsufficientSize(need)) => {
                        outgoing.resize(pending + need.required_size, 0);
                    }
                    Err(e) => return Err(Failure::Tls(rustls::Error::General(e.to_string()))),
                }
            },
            ConnectionState::TransmitTlsData(state) => {
                send(uart, &outgoing[..pending])?;
                pending = 0;
                state.done();
                Next::Process
            }
            ConnectionState::BlockedHandshake => Next::Receive,
            ConnectionState::ReadTraffic(mut records) => {
                while let Some(record) = records.next_record() {
                    let record = record?;
                    discard += record.discard;
                    conversation.received(record.payload)?;
                }
                Next::Process
            }
            ConnectionState::WriteTraffic(mut traffic) => {
                if report.is_none() {
                    let (apdus_now, card_ms_now) = card_counts(card);
                    let now = iotsafe_mcu::board::NETWORK_TALLY.counts();
                    report = Some(Report {
                        handshake_apdus: apdus_now - apdus,
                        handshake_ms: clock::now_ms() - started,
                        handshake_card_ms: card_ms_now - card_ms,
                        handshake_tx: now.tx - bytes.tx,
                        handshake_rx: now.rx - bytes.rx,
                    });
                }
                if let Some(message) = conversation.next_message() {
                    let n = encrypt(&mut outgoing, |out| traffic.encrypt(&message, out))?;
                    send(uart, &outgoing[..n])?;
                    Next::Process
                } else if conversation.finished() {
                    let n = encrypt(&mut outgoing, |out| traffic.queue_close_notify(out))?;
                    send(uart, &outgoing[..n])?;
                    Next::Done
                } else {
                    Next::Receive
                }
            }
            ConnectionState::PeerClosed | ConnectionState::Closed => {
                if !conversation.finished() {
                    return Err(Failure::ClosedEarly);
                }
                Next::Done
            }
            _ => return Err(Failure::Protocol("a state a TLS 1.3 client never sees")),
        };
        if discard != 0 {
            incoming.copy_within(discard..used, 0);
            used -= discard;
        }
        match next {
            Next::Process => {}
            Next::Receive => used += receive(uart, &mut incoming[used..])?,
            Next::Done => return report.ok_or(Failure::ClosedEarly),
        }
    }
}

/// The card's APDU count and milliseconds in operations so far.
fn card_counts(card: &Card) -> (u64, u64) {
    let stats = card.stats();
    (stats.apdus, stats.time_in_card.as_millis() as u64)
}

/// Encrypts with `f` into `outgoing`, growing it once if rustls asks for more room.
fn encrypt(
    outgoing: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<usize, Failure> {
    match f(outgoing) {
        Err(EncryptError::InsufficientSize(need)) => {
            outgoing.resize(need.required_size, 0);
            f(outgoing)
        }
        other => other,
    }
    .map_err(|e| Failure::Tls(rustls::Error::General(e.to_string())))
}

/// Writes all of `bytes` to the network.
fn send(uart: &mut CmsdkUart, bytes: &[u8]) -> Result<(), Failure> {
    uart.write_all(bytes).map_err(|_| Failure::Uart)?;
    uart.flush().map_err(|_| Failure::Uart)
}

/// Waits (at most [`SILENCE_MS`]) for bytes from the network; returns how many it put in `buf`.
fn receive(uart: &mut CmsdkUart, buf: &mut [u8]) -> Result<usize, Failure> {
    if buf.is_empty() {
        // A record larger than the buffer: rustls refuses those before this point.
        return Err(Failure::Protocol(
            "a TLS record larger than the receive buffer",
        ));
    }
    let deadline = clock::now_ms() + SILENCE_MS;
    while !uart.read_ready().map_err(|_| Failure::Uart)? {
        if clock::now_ms() > deadline {
            return Err(Failure::Silent);
        }
        core::hint::spin_loop();
    }
    uart.read(buf).map_err(|_| Failure::Uart)
}
