//! Raw AT commands over any `embedded-io` byte port, with a deadline on each: just enough to
//! carry APDUs in `AT+CSIM` to the SIM. A stand-in until iotsafe-core's no_std AT client takes
//! its place (the port and clock it needs are the same).
//!
//! Every byte from the modem is untrusted: lines are bounded, answers are checked against the
//! shape 3GPP TS 27.007 gives them (`+CSIM: <length>,"<hex>"`), and nothing here panics on what
//! the modem sends.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use embedded_io::{Read, ReadReady, Write, WriteReady};

/// The longest line accepted from the modem: a full `+CSIM` answer (256 data bytes and the
/// status word as hex) fits with room to spare.
const MAX_LINE: usize = 1024;
/// The most information lines one command may produce before its final result.
const MAX_LINES: usize = 8;

/// Why a command failed.
#[derive(Debug)]
pub enum AtError<E> {
    /// The UART reported an error.
    Port(E),
    /// No final result code (`OK`, `ERROR`, `+CME ERROR`) within the deadline.
    Timeout {
        /// The command that was waiting.
        command: String,
        /// How long it waited, in milliseconds.
        waited_ms: u64,
    },
    /// The modem answered `ERROR` or `+CME ERROR: …`.
    Refused {
        /// The command it refused.
        command: String,
        /// Its final result line.
        result: String,
    },
    /// The modem sent something this layer does not accept.
    BadAnswer {
        /// What was expected.
        expected: &'static str,
        /// What came (possibly cut short).
        got: String,
    },
}

impl<E: fmt::Debug> fmt::Display for AtError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AtError::Port(e) => write!(f, "UART error: {e:?}"),
            AtError::Timeout { command, waited_ms } => {
                write!(f, "no final result for {command:?} after {waited_ms} ms")
            }
            AtError::Refused { command, result } => write!(f, "{command:?} refused: {result}"),
            AtError::BadAnswer { expected, got } => write!(f, "expected {expected}, got {got:?}"),
        }
    }
}

/// A card's answer to one APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The data before the status word.
    pub data: Vec<u8>,
    /// The status word (`0x9000` for success).
    pub sw: u16,
}

/// What the AT layer needs of a byte port: blocking reads and writes, and whether each would
/// block, so that every wait can be cut off by a deadline. Any `embedded-io` UART qualifies.
pub trait Port: Read + Write + ReadReady + WriteReady {}

impl<T: Read + Write + ReadReady + WriteReady> Port for T {}

/// A modem on a byte port, with a clock for deadlines.
pub struct Modem<P> {
    port: P,
    now_ms: fn() -> u64,
    deadline_ms: u64,
}

impl<P: Port> Modem<P> {
    /// A modem on `port`; each command must complete within `deadline_ms` by `now_ms`.
    pub fn new(port: P, now_ms: fn() -> u64, deadline_ms: u64) -> Self {
        Modem {
            port,
            now_ms,
            deadline_ms,
        }
    }

    /// The port back, e.g. to read its byte counts.
    pub fn port(&self) -> &P {
        &self.port
    }

    /// Sends `command` (without its `\r`) and returns the information lines of its answer once
    /// `OK` came. Echo of the command (on until `ATE0` takes effect) is skipped.
    pub fn command(&mut self, command: &str) -> Result<Vec<String>, AtError<P::Error>> {
        let start = (self.now_ms)();
        let expired = |now: u64| now.saturating_sub(start) > self.deadline_ms;
        let timeout = |now: u64| AtError::Timeout {
            command: String::from(command),
            waited_ms: now.saturating_sub(start),
        };
        let mut out = command.as_bytes().iter().chain(b"\r");
        let mut next = out.next();
        while let Some(&byte) = next {
            if self.port.write_ready().map_err(AtError::Port)? {
                self.port.write_all(&[byte]).map_err(AtError::Port)?;
                next = out.next();
            } else if expired((self.now_ms)()) {
                return Err(timeout((self.now_ms)()));
            }
        }
        self.port.flush().map_err(AtError::Port)?;

        let mut lines = Vec::new();
        let mut line = Vec::new();
        loop {
            // Checked on every byte, so a modem that never stops talking cannot hold us either.
            let now = (self.now_ms)();
            if expired(now) {
                return Err(timeout(now));
            }
            if !self.port.read_ready().map_err(AtError::Port)? {
                continue;
            }
            let mut byte = [0u8; 1];
            if self.port.read(&mut byte).map_err(AtError::Port)? == 0 {
                continue;
            }
            if byte[0] != b'\r' && byte[0] != b'\n' {
                if line.len() == MAX_LINE {
                    return Err(bad("a line of at most 1024 bytes", &line));
                }
                line.push(byte[0]);
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            match text.as_str() {
                echo if echo == command => {}
                "OK" => return Ok(lines),
                "ERROR" => return Err(refused(command, text)),
                cme if cme.starts_with("+CME ERROR") => return Err(refused(command, text)),
                _ if lines.len() == MAX_LINES => {
                    return Err(bad(
                        "at most 8 lines before the final result",
                        text.as_bytes(),
                    ))
                }
                _ => lines.push(text),
            }
        }
    }

    /// Sends `apdu` to the SIM in `AT+CSIM` and returns the card's answer.
    pub fn csim(&mut self, apdu: &[u8]) -> Result<Response, AtError<P::Error>> {
        let hex = to_hex(apdu);
        let lines = self.command(&format!("AT+CSIM={},\"{}\"", hex.len(), hex))?;
        let [line] = lines.as_slice() else {
            return Err(bad("one +CSIM line", lines.join("|").as_bytes()));
        };
        parse_csim(line)
            .ok_or_else(|| bad("+CSIM: <n>,\"<hex>\" with a status word", line.as_bytes()))
    }
}

fn refused<E>(command: &str, result: String) -> AtError<E> {
    AtError::Refused {
        command: String::from(command),
        result,
    }
}

/// A [`AtError::BadAnswer`] quoting at most 64 bytes of what came.
fn bad<E>(expected: &'static str, got: &[u8]) -> AtError<E> {
    let got = String::from_utf8_lossy(&got[..got.len().min(64)]).into_owned();
    AtError::BadAnswer { expected, got }
}

/// Parses `+CSIM: <n>,"<hex>"` where `<n>` counts the hex characters and the payload ends in a
/// status word; `None` for anything else.
fn parse_csim(line: &str) -> Option<Response> {
    let rest = line.strip_prefix("+CSIM:")?.trim_start();
    let (length, quoted) = rest.split_once(',')?;
    let hex = quoted.trim().strip_prefix('"')?.strip_suffix('"')?;
    if length.trim().parse::<usize>().ok()? != hex.len() {
        return None;
    }
    let mut bytes = from_hex(hex)?;
    if bytes.len() < 2 {
        return None;
    }
    let sw2 = bytes.pop()?;
    let sw1 = bytes.pop()?;
    Some(Response {
        data: bytes,
        sw: u16::from_be_bytes([sw1, sw2]),
    })
}

/// Upper-case hex, as `AT+CSIM` carries it.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{b:02X}");
    }
    hex
}

/// Hex (either case) to bytes; `None` for an odd length or a non-hex character.
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            // from_str_radix alone would take a sign ("+F").
            if !pair.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            u8::from_str_radix(core::str::from_utf8(pair).ok()?, 16).ok()
        })
        .collect()
}
