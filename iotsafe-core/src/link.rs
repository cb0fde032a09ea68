//! The one place that turns a command into a complete answer: GET RESPONSE loops on `61xx`/`9Fxx`,
//! re-sends on `6Cxx`, `91xx` as success, counters and the redacted APDU trace.

use crate::apdu::{channel_of_class, class_byte, ClassStyle, Command, Le, Response};
use crate::commands;
use crate::config::{GetResponseClass, GetResponseLe};
use crate::error::{hex, CommandKind, Error};
use crate::stats::CardStats;
use crate::sw::{Meaning, StatusWord};
use crate::transport::Transport;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

/// Which parts of an exchange carry secrets and must not appear in traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Secrecy {
    /// Nothing secret.
    #[default]
    Public,
    /// The command data is secret (HKDF IKM, PRF secret).
    Command,
    /// The response data is secret (DH output, random bytes).
    Response,
    /// Both.
    Both,
}

impl Secrecy {
    fn command(self) -> bool {
        matches!(self, Secrecy::Command | Secrecy::Both)
    }
    fn response(self) -> bool {
        matches!(self, Secrecy::Response | Secrecy::Both)
    }
}

/// Direction of a traced APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host to card.
    Command,
    /// Card to host.
    Response,
}

/// One traced APDU, secret-bearing fields already redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Direction.
    pub direction: Direction,
    /// The command it belongs to.
    pub command: CommandKind,
    /// Hex of the APDU, with `<n bytes redacted>` in place of secrets.
    pub text: String,
}

/// A trace sink (the CLI's `--trace`); events also go to `tracing` at TRACE level.
pub type TraceSink = Arc<dyn Fn(&TraceEvent) + Send + Sync>;

/// A transport borrowed for one operation, with the counters and trace it feeds.
pub(crate) struct Link<'a> {
    pub transport: &'a mut dyn Transport,
    pub stats: &'a mut CardStats,
    pub trace: Option<&'a TraceSink>,
    pub extended: bool,
    pub get_response_class: GetResponseClass,
    pub get_response_le: GetResponseLe,
    pub max_rounds: usize,
}

impl Link<'_> {
    fn emit(&self, direction: Direction, command: CommandKind, text: String) {
        tracing::trace!(target: "iotsafe::apdu", ?direction, %command, "{text}");
        if let Some(sink) = self.trace {
            sink(&TraceEvent {
                direction,
                command,
                text,
            });
        }
    }

    /// Sends raw bytes once: counts, times and traces them.
    fn transmit_once(
        &mut self,
        bytes: &[u8],
        kind: CommandKind,
        secrecy: Secrecy,
    ) -> Result<Response, Error> {
        let shown = if secrecy.command() && bytes.len() > 5 {
            format!("{} <{} bytes redacted>", hex(&bytes[..5]), bytes.len() - 5)
        } else {
            hex(bytes)
        };
        self.emit(Direction::Command, kind, shown);
        let started = Instant::now();
        let result = self.transport.transmit(bytes);
        let elapsed = started.elapsed();
        self.stats.apdus += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.stats.time_in_card += elapsed;
        let raw = Zeroizing::new(result.map_err(|source| Error::Transport {
            command: kind,
            source,
        })?);
        self.stats.bytes_received += raw.len() as u64;
        let response = Response::parse(&raw, kind)?;
        let shown = if secrecy.response() && !response.data.is_empty() {
            format!(
                "<{} bytes redacted> {:04X}",
                response.data.len(),
                response.sw.0
            )
        } else {
            hex(&raw)
        };
        self.emit(Direction::Response, kind, shown);
        Ok(response)
    }

    /// Sends a command and returns its complete answer, procedure bytes resolved.
    pub fn exchange(
        &mut self,
        command: &Command,
        kind: CommandKind,
        secrecy: Secrecy,
    ) -> Result<Response, Error> {
        let mut command = command.clone();
        let mut rounds = 0usize;
        loop {
            let encoded = command.encode(self.extended, kind)?;
            let response = self.transmit_once(&encoded, kind, secrecy)?;
            match response.sw.meaning() {
                Meaning::WrongLe(n) => {
                    rounds += 1;
                    if rounds > self.max_rounds.min(2) {
                        return Err(Error::Runaway {
                            command: kind,
                            rounds,
                        });
                    }
                    command.le = Le::Ne(if n == 0 { 256 } else { u32::from(n) });
                }
                Meaning::ResponseAvailable(n) | Meaning::ResponseAvailableSim(n) => {
                    return self.fetch_rest(command.cla, response.data, n, kind, secrecy);
                }
                _ => return Ok(normalise(response)),
            }
        }
    }

    /// GET RESPONSE until the card says it is done.
    fn fetch_rest(
        &mut self,
        command_cla: u8,
        first: Zeroizing<Vec<u8>>,
        mut available: u8,
        kind: CommandKind,
        secrecy: Secrecy,
    ) -> Result<Response, Error> {
        let cla = match self.get_response_class {
            GetResponseClass::SameAsCommand => command_cla,
            GetResponseClass::Interindustry => channel_of_class(command_cla)
                .and_then(|ch| class_byte(ch, ClassStyle::Interindustry).ok())
                .unwrap_or(command_cla & 0x7F),
        };
        let mut data = first;
        for _ in 0..self.max_rounds {
            let le = match self.get_response_le {
                GetResponseLe::Announced => available,
                GetResponseLe::Zero => 0,
            };
            let request = commands::get_response(cla, le);
            let encoded = request.encode(false, CommandKind::GetResponse)?;
            let r = self.transmit_once(&encoded, kind, secrecy)?;
            append_wiping(&mut data, &r.data);
            if data.len() > 1 << 20 {
                return Err(Error::Runaway {
                    command: kind,
                    rounds: self.max_rounds,
                });
            }
            match r.sw.meaning() {
                Meaning::ResponseAvailable(n) | Meaning::ResponseAvailableSim(n) => available = n,
                Meaning::WrongLe(n) => available = n,
                _ => {
                    return Ok(normalise(Response { data, sw: r.sw }));
                }
            }
        }
        Err(Error::Runaway {
            command: kind,
            rounds: self.max_rounds,
        })
    }
}

/// Appends to a buffer that may hold secrets without leaving a copy behind: `extend` on a full
/// `Vec` moves it to a larger block and frees the old one unwiped, so the contents are moved by hand
/// into a new `Zeroizing` buffer and the old one is wiped on drop.
fn append_wiping(buf: &mut Zeroizing<Vec<u8>>, more: &[u8]) {
    if buf.capacity() - buf.len() < more.len() {
        let wanted = (buf.len() + more.len()).max(buf.capacity() * 2);
        let mut grown = Zeroizing::new(Vec::with_capacity(wanted));
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(more);
}

/// `91xx` (proactive command pending) is success for an IoT SAFE host.
fn normalise(mut r: Response) -> Response {
    if r.sw.meaning() == Meaning::SuccessProactivePending {
        r.sw = StatusWord::SUCCESS;
    }
    r
}

/// The response data of a successful answer, or the typed refusal.
pub(crate) fn success(r: Response, kind: CommandKind) -> Result<Zeroizing<Vec<u8>>, Error> {
    if r.sw.is_success() {
        Ok(r.data)
    } else {
        Err(Error::Status {
            command: kind,
            sw: r.sw,
        })
    }
}
