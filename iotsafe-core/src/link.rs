//! The one place that turns a command into a complete answer: GET RESPONSE loops on `61xx`/`9Fxx`,
//! re-sends on `6Cxx`, `91xx` as success, counters and the redacted APDU trace.

use crate::apdu::{channel_of_class, class_byte, ClassStyle, Command, Le, Response};
use crate::clock::Instant;
use crate::commands;
use crate::config::{GetResponseClass, GetResponseLe};
use crate::error::{CommandKind, Error};
use crate::hexutil;
use crate::prelude::*;
use crate::stats::CardStats;
use crate::sw::{Meaning, StatusWord};
use crate::transport::{Transaction, WireBytes};
use alloc::sync::Arc;
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
    /// On a response: the bytes the exchange took on the transport's own link (a modem's AT
    /// text, both ways), where the transport reports them.
    pub wire: Option<WireBytes>,
}

/// A trace sink (the CLI's `--trace`); events also go to `tracing` at TRACE level.
pub type TraceSink = Arc<dyn Fn(&TraceEvent) + Send + Sync>;

/// A transport borrowed for one operation, with the counters and trace it feeds.
pub(crate) struct Link<'a> {
    pub transport: &'a mut dyn Transaction,
    pub stats: &'a mut CardStats,
    pub trace: Option<&'a TraceSink>,
    pub extended: bool,
    pub get_response_class: GetResponseClass,
    pub get_response_le: GetResponseLe,
    pub max_rounds: usize,
    /// Set once an APDU has been handed to the transport: from then on the card may have acted on
    /// the operation, and the session must not send it again (see `card::session`).
    pub sent: bool,
}

impl Link<'_> {
    fn emit(
        &self,
        direction: Direction,
        command: CommandKind,
        text: String,
        wire: Option<WireBytes>,
    ) {
        tracing::trace!(target: "iotsafe::apdu", ?direction, %command, "{text}");
        if let Some(sink) = self.trace {
            sink(&TraceEvent {
                direction,
                command,
                text,
                wire,
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
            format!(
                "{} <{} bytes redacted>",
                hexutil::encode(&bytes[..5]),
                bytes.len() - 5
            )
        } else {
            hexutil::encode(bytes)
        };
        self.emit(Direction::Command, kind, shown, None);
        let wire_before = self.transport.wire_bytes();
        let started = Instant::now();
        self.sent = true;
        let result = self.transport.transmit(bytes);
        let elapsed = started.elapsed();
        self.stats.apdus += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.stats.time_in_card += elapsed;
        let wire = wire_before
            .zip(self.transport.wire_bytes())
            .map(|(before, after)| after.since(before));
        if let Some(moved) = wire {
            self.stats.wire_bytes_sent += moved.sent;
            self.stats.wire_bytes_received += moved.received;
        }
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
            hexutil::encode(&raw)
        };
        self.emit(Direction::Response, kind, shown, wire);
        Ok(response)
    }

    /// Sends a command and returns its complete answer, procedure bytes resolved.
    ///
    /// A warning (`62xx`/`63xx`) with no data, in answer to a command that carries data and expects
    /// data back, is ISO 7816-3's T=0 case 4 with a warning: the card has processed the command and
    /// holds its answer for a GET RESPONSE with Le=`00`. That GET RESPONSE is sent, and the answer
    /// keeps the warning as its status word (a card that then has no data yields
    /// [`Error::Status`] with the warning: success without the expected data is no success).
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
                    return self.fetch_rest(command.cla, response.data, n, None, kind, secrecy);
                }
                _ if response.sw.is_warning()
                    && response.data.is_empty()
                    && expects_response_data(&command) =>
                {
                    let warning = response.sw;
                    let r = self.fetch_rest(
                        command.cla,
                        response.data,
                        0,
                        Some(warning),
                        kind,
                        secrecy,
                    )?;
                    if r.data.is_empty() {
                        return Err(Error::Status {
                            command: kind,
                            sw: warning,
                        });
                    }
                    return Ok(r);
                }
                _ => return Ok(normalise(response)),
            }
        }
    }

    /// GET RESPONSE until the card says it is done.
    ///
    /// `available` is the count the card announced (`61xx`); `warning` is set when the data is
    /// fetched after a T=0 case-4 warning, whose status word then ends the answer. A `6Cxx` to GET
    /// RESPONSE (a strict T=0 card refusing Le=`00`) is answered by sending it again with Le=`xx`,
    /// and the rest of the exchange then uses the announced counts whatever the configuration.
    fn fetch_rest(
        &mut self,
        command_cla: u8,
        first: Zeroizing<Vec<u8>>,
        mut available: u8,
        warning: Option<StatusWord>,
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
        // After a warning, ISO 7816-3 asks for everything: Le=00.
        let mut announced_only =
            warning.is_none() && self.get_response_le == GetResponseLe::Announced;
        let mut exact: Option<u8> = None;
        for _ in 0..self.max_rounds {
            let le = match exact.take() {
                Some(n) => n,
                None if announced_only => available,
                None => 0,
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
                Meaning::WrongLe(n) => {
                    // GET RESPONSE was not executed: the card wants exactly `n` (00 = 256).
                    exact = Some(n);
                    announced_only = true;
                }
                _ => {
                    let sw = match warning {
                        // The warning is the command's status; GET RESPONSE only carried the data.
                        Some(w) if r.sw.is_success() => w,
                        // The card had nothing to give: report the warning, the caller decides.
                        Some(w) if data.is_empty() && !r.sw.is_warning() => w,
                        _ => r.sw,
                    };
                    return Ok(normalise(Response { data, sw }));
                }
            }
        }
        Err(Error::Runaway {
            command: kind,
            rounds: self.max_rounds,
        })
    }
}

/// Does the command carry data and expect data back (ISO case 4), whether or not Le is written?
/// Hosts send IoT SAFE case-4 commands without Le (the T=0 form), so the instruction decides.
fn expects_response_data(command: &Command) -> bool {
    if command.data.is_empty() {
        // Cases 1 and 2: in T=0 a case-2 answer comes with the status word; a warning is final.
        return false;
    }
    matches!(command.le, Le::Ne(_))
        || match command.ins {
            commands::ins::GENERATE_KEY_PAIR
            | commands::ins::READ_PUBLIC_KEY
            | commands::ins::COMPUTE_DH
            | commands::ins::COMPUTE_PRF
            | commands::ins::COMPUTE_HKDF
            | commands::ins::READ_FILE
            | commands::ins::GET_DATA => true,
            // Only the last Update (P1=80) returns the signature.
            commands::ins::COMPUTE_SIGNATURE_UPDATE => command.p1 == 0x80,
            _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ScriptedTransport, Step};

    const HASH: &str = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";

    fn hex_bytes(s: &str) -> Vec<u8> {
        crate::hexutil::decode(s).expect("test hex")
    }

    /// Runs one exchange of `command` against `steps` with the given GET RESPONSE Le policy;
    /// returns the result and whether the script ran to its end without a mismatch.
    fn run(
        steps: Vec<Step>,
        command: &Command,
        kind: CommandKind,
        le: GetResponseLe,
    ) -> (Result<Response, Error>, Result<(), String>) {
        let (mut transport, log) = ScriptedTransport::new(steps);
        let mut stats = CardStats::default();
        let mut link = Link {
            transport: &mut transport,
            stats: &mut stats,
            trace: None,
            extended: false,
            get_response_class: GetResponseClass::Interindustry,
            get_response_le: le,
            max_rounds: 32,
            sent: false,
        };
        let result = link.exchange(command, kind, Secrecy::Public);
        let done = match (log.mismatch(), log.remaining()) {
            (Some(m), _) => Err(m),
            (None, 0) => Ok(()),
            (None, n) => Err(format!("{n} steps left")),
        };
        (result, done)
    }

    fn sign_update() -> Command {
        commands::sign_update_digest(0x81, 1, &hex_bytes(HASH), Le::Absent).unwrap()
    }

    fn signature_answer() -> String {
        format!("330040{}", "5A".repeat(64))
    }

    #[test]
    fn strict_t0_card_gets_the_length_it_asks_for_after_le_00() {
        // GET RESPONSE with Le=00 (NTT's host, GetResponseLe::Zero); a strict T=0 card answers
        // 6Cxx: the same GET RESPONSE goes again with Le=xx, and the rest of the exchange uses
        // the counts the card announces.
        let update = format!("81 2B 80 01 22 9E 20 {HASH}");
        let answer = signature_answer();
        let (head, tail) = answer.split_at(0x40 * 2);
        let steps = vec![
            Step::apdu(&update, "6143"),
            Step::apdu("01 C0 00 00 00", "6C43"),
            Step::apdu("01 C0 00 00 43", &format!("{head} 6103")),
            Step::apdu("01 C0 00 00 03", &format!("{tail} 9000")),
        ];
        let (result, done) = run(
            steps,
            &sign_update(),
            CommandKind::ComputeSignature,
            GetResponseLe::Zero,
        );
        assert_eq!(done, Ok(()));
        let r = result.unwrap();
        assert_eq!(
            (r.data.as_slice(), r.sw),
            (&hex_bytes(&answer)[..], StatusWord::SUCCESS)
        );
    }

    #[test]
    fn endless_6cxx_to_get_response_is_bounded() {
        let mut steps = vec![Step::apdu("81 84 00 00 08", "6108")];
        for _ in 0..40 {
            steps.push(Step::apdu("01 C0 00 00 08", "6C08"));
        }
        let random = commands::get_random(0x81, 8).unwrap();
        let (result, _) = run(
            steps,
            &random,
            CommandKind::GetRandom,
            GetResponseLe::Announced,
        );
        assert!(matches!(result, Err(Error::Runaway { .. })), "{result:?}");
    }

    #[test]
    fn t0_warning_to_a_case_4_command_fetches_the_data() {
        // ISO 7816-3, case 4 with a warning: 63CF (IoT SAFE: done, remote administration
        // completed) without data; GET RESPONSE with Le=00, 6Cxx, again with Le=xx. The answer
        // carries the data and keeps 63CF.
        let update = format!("81 2B 80 01 22 9E 20 {HASH}");
        let answer = signature_answer();
        for le in [GetResponseLe::Announced, GetResponseLe::Zero] {
            let steps = vec![
                Step::apdu(&update, "63CF"),
                Step::apdu("01 C0 00 00 00", "6C43"),
                Step::apdu("01 C0 00 00 43", &format!("{answer} 9000")),
            ];
            let (result, done) = run(steps, &sign_update(), CommandKind::ComputeSignature, le);
            assert_eq!(done, Ok(()), "{le:?}");
            let r = result.unwrap();
            assert_eq!(r.data.as_slice(), &hex_bytes(&answer)[..]);
            assert_eq!(r.sw, StatusWord(0x63CF));
            assert!(r.sw.is_success());
        }
    }

    #[test]
    fn t0_warning_with_a_counter_is_no_success() {
        // 63C2 after the data: fetched the same way, but the status stays a warning, which
        // `success` turns into a typed refusal.
        let dh = commands::compute_dh(
            0x81,
            &crate::ObjectRef::id([4]),
            &crate::ObjectRef::id([5]),
            Le::Absent,
        )
        .unwrap();
        let steps = vec![
            Step::apdu("81 46 00 00 06 84 01 04 85 01 05", "63C2"),
            Step::apdu("01 C0 00 00 00", &format!("{} 9000", "11".repeat(32))),
        ];
        let (result, done) = run(steps, &dh, CommandKind::ComputeDh, GetResponseLe::Announced);
        assert_eq!(done, Ok(()));
        let r = result.unwrap();
        assert_eq!((r.data.len(), r.sw), (32, StatusWord(0x63C2)));
        let err = success(r, CommandKind::ComputeDh).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Status {
                    sw: StatusWord(0x63C2),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn t0_warning_without_data_behind_it_is_a_refusal() {
        // The card has nothing for GET RESPONSE: the command expected data, so 63CF alone is not
        // taken as success with an empty answer.
        let update = format!("81 2B 80 01 22 9E 20 {HASH}");
        let steps = vec![
            Step::apdu(&update, "63CF"),
            Step::apdu("01 C0 00 00 00", "6985"),
        ];
        let (result, done) = run(
            steps,
            &sign_update(),
            CommandKind::ComputeSignature,
            GetResponseLe::Announced,
        );
        assert_eq!(done, Ok(()));
        assert!(
            matches!(
                result,
                Err(Error::Status {
                    sw: StatusWord(0x63CF),
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn warning_to_a_command_without_response_data_is_final() {
        // COMPUTE SIGNATURE Init returns no data: 63CF is its whole answer, no GET RESPONSE.
        let init = commands::sign_init(
            0x81,
            1,
            &crate::ObjectRef::id([1]),
            commands::SignMode::Digest,
            commands::HashAlgorithm::Sha256,
            commands::SignatureAlgorithm::Ecdsa,
        )
        .unwrap();
        let steps = vec![Step::apdu(
            "81 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
            "63CF",
        )];
        let (result, done) = run(
            steps,
            &init,
            CommandKind::ComputeSignature,
            GetResponseLe::Announced,
        );
        assert_eq!(done, Ok(()));
        let r = result.unwrap();
        assert!(r.data.is_empty() && r.sw == StatusWord(0x63CF) && r.sw.is_success());
        // Nor for a case-2 command: its data would have come with the status word.
        let steps = vec![Step::apdu("81 84 00 00 08", "6283")];
        let random = commands::get_random(0x81, 8).unwrap();
        let (result, done) = run(
            steps,
            &random,
            CommandKind::GetRandom,
            GetResponseLe::Announced,
        );
        assert_eq!(done, Ok(()));
        assert_eq!(result.unwrap().sw, StatusWord(0x6283));
    }
}
