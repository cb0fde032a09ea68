//! The modem line: the only place bytes are written to and read from the modem.
//!
//! [`ModemLine`] owns the port. It writes a command and reads its answer up to the final result
//! line, checks the modem is ready, resynchronises, drains, and waits a grace period for an
//! information line that comes after `OK`. Every read goes through one bounded loop
//! ([`ModemLine::read_loop`]): a deadline, at most [`MAX_READS_PER_EXCHANGE`] reads, and a read
//! buffer wiped after each read (what the modem sends may be a secret's hex). Without a clock
//! (no `std`, before `clock::set`) there is no deadline, so nothing is read or written: every
//! call fails with [`TransportError::NoClock`].
//!
//! # In sync or dirty
//!
//! The line is *in sync* when nothing of an earlier command can still arrive, *dirty* when
//! something may. It becomes dirty when
//! - an exchange does not end in a complete answer (the write or a read failed, the answer was
//!   garbled, or its deadline passed): the rest of that answer may still come;
//! - a late-answer read ran: whatever trails the late line (often a second `OK`) must not end
//!   the next answer.
//!
//! It is in sync again only after
//! - a resync got the `OK` to its `AT`, after discarding any late answer;
//! - a readiness check (`ATE0`, `AT`) got its `OK`;
//! - a new port replaced the old one (nothing was sent on it yet);
//! - [`ModemLine::settle`], the destructor's bounded stand-in for a resync, drained it quiet.
//!
//! [`ModemLine::exchange`] resynchronises first when the line is dirty, so one bad exchange never
//! poisons the next; the transport above never looks at the state.
//!
//! # Late AT+CCHO answers
//!
//! An AT+CCHO that ends without its answer may still open a channel. Until the line is in sync
//! again, what the line discards (the part read before the deadline, drains, a resync's late
//! answers) is searched for its session id ([`late`]); the transport takes the ids with
//! [`ModemLine::take_late_sessions`] and closes those channels.

use crate::clock::Deadline;
use crate::prelude::*;
use core::ops::ControlFlow;
use core::time::Duration;

use zeroize::Zeroizing;

use super::framing::AtCommand;
use super::options::AtOptions;
use super::parser::{Answer, AnswerParser, Progress};
use super::port::AtPort;
use super::refusal::modem_error;
use crate::transport::{TransportError, WireBytes};
use late::LateSessions;

mod late;

/// Longest a resync waits for the line to go quiet before it sends `AT`.
const RESYNC_DRAIN_LIMIT: Duration = Duration::from_secs(1);
/// Silence that counts as "the modem has finished talking" while draining.
pub(super) const QUIET: Duration = Duration::from_millis(30);
/// Upper bound on reads per exchange, on top of the deadline (defence against a stream that
/// reports a timeout at once, forever).
const MAX_READS_PER_EXCHANGE: usize = 100_000;
/// Bytes read at once.
const READ_CHUNK: usize = 512;
/// Late answers a resync discards before its own `OK` (a modem has at most this many commands
/// in flight that we gave up on).
const MAX_LATE_ANSWERS: usize = 4;
/// Information lines that mark an answer to a card command: during a resync, an answer that has
/// one is the late answer of a command that timed out, not the answer to our `AT`.
const CARD_COMMAND_LINES: [&str; 3] = ["+CSIM:", "+CGLA:", "+CCHO:"];
/// Attempts at `ATE0`/`AT` in a readiness check (each at most a second).
const READY_ATTEMPTS: usize = 10;

/// Whether an answer to an earlier command may still arrive (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    InSync,
    Dirty,
}

/// How a bounded read loop ended.
enum ReadEnd<T> {
    /// The consumer got what it wanted.
    Done(T),
    /// A read brought nothing within the quiet interval (only when one was given).
    Quiet,
    /// The deadline passed, or the read bound was reached.
    Deadline,
}

/// The port to a modem, and what is known about what is still in flight on it.
pub(super) struct ModemLine<P: AtPort> {
    port: P,
    label: String,
    max_line: usize,
    max_lines: usize,
    ready_timeout: Duration,
    resync_timeout: Duration,
    state: LineState,
    /// Session ids of AT+CCHO answers that came after their deadline.
    late: LateSessions,
    /// Bytes written to and read from the port so far (what the UART carried).
    wire: WireBytes,
}

impl<P: AtPort> ModemLine<P> {
    /// A line over `port`, named `label` in logs, with the bounds and deadlines of `options`.
    /// Nothing is written or read yet.
    pub(super) fn new(port: P, label: String, options: &AtOptions) -> Self {
        ModemLine {
            port,
            label,
            max_line: options.max_line,
            max_lines: options.max_lines,
            ready_timeout: options.ready_timeout,
            resync_timeout: options.check_timeout(),
            state: LineState::InSync,
            late: LateSessions::new(options.max_line, options.max_lines),
            wire: WireBytes::default(),
        }
    }

    /// Bytes written to and read from the port since the line was made.
    pub(super) fn wire_bytes(&self) -> WireBytes {
        self.wire
    }

    /// The name of the port in logs and descriptions.
    pub(super) fn label(&self) -> &str {
        &self.label
    }

    /// True when an answer to an earlier command may still arrive.
    pub(super) fn is_dirty(&self) -> bool {
        self.state == LineState::Dirty
    }

    /// True while an AT+CCHO that got no answer in time may still open a channel.
    pub(super) fn awaits_late_session(&self) -> bool {
        self.late.awaited()
    }

    /// The session ids of AT+CCHO answers that came after their deadline (channels the modem
    /// opened for nobody), oldest first; the line forgets them.
    pub(super) fn take_late_sessions(&mut self) -> Vec<u32> {
        self.late.take()
    }

    /// A parser for one answer, keeping the information lines that start with `prefixes`, with
    /// this line's bounds.
    pub(super) fn parser(&self, prefixes: &[&str]) -> AnswerParser {
        AnswerParser::new(prefixes).with_limits(self.max_line, self.max_lines)
    }

    /// Takes a newly opened port instead of the old one. Nothing was sent on it, so nothing can
    /// be in flight: the line is in sync.
    pub(super) fn replace_port(&mut self, port: P) {
        self.port = port;
        self.in_sync();
    }

    /// Sends `command` and reads its answer until the final result line or `timeout`;
    /// resynchronises first when the line is dirty. Bytes after the final line are dropped: they
    /// came before any answer to the next command.
    pub(super) fn exchange(
        &mut self,
        command: &AtCommand,
        parser: AnswerParser,
        timeout: Duration,
    ) -> Result<Answer, TransportError> {
        if self.is_dirty() {
            self.resync()?;
        }
        self.transact(command, parser, timeout)
    }

    /// Drains whatever is still coming (a late answer, URCs), sends `AT` and waits for its `OK`,
    /// discarding on the way late answers to card commands. In sync when it succeeds, dirty when
    /// it fails.
    pub(super) fn resync(&mut self) -> Result<(), TransportError> {
        let result = self.try_resync();
        match result {
            Ok(()) => self.in_sync(),
            Err(_) => self.state = LineState::Dirty,
        }
        result
    }

    /// Sends `ATE0` until the modem answers `OK` (echo lines before it takes effect are
    /// skipped), then checks `AT` → `OK`, all within [`AtOptions::ready_timeout`]. Modems without
    /// `ATE` get the plain `AT` check. In sync when it succeeds.
    pub(super) fn wait_ready(&mut self) -> Result<(), TransportError> {
        self.try_wait_ready()?;
        self.in_sync();
        Ok(())
    }

    /// For a destructor, which cannot afford a resync: when the line is dirty, lets a late
    /// answer pass (drains until [`QUIET`]) and then counts the line as in sync. Fails when the
    /// port is gone.
    pub(super) fn settle(&mut self) -> Result<(), TransportError> {
        if self.is_dirty() {
            self.drain(QUIET)?;
            self.in_sync();
        }
        Ok(())
    }

    /// Nothing of an earlier command can arrive any more.
    fn in_sync(&mut self) {
        self.state = LineState::InSync;
        self.late.settled();
    }

    /// After a bare `OK` to `shown`: some modems (u-blox on Arduino MKR) send the `prefix`
    /// information line after the final result. Waits up to `grace` for it. The line is dirty
    /// afterwards either way: what trails a late line must not end the next answer.
    pub(super) fn late_answer_line(
        &mut self,
        shown: &str,
        prefix: &str,
        grace: Duration,
    ) -> Result<Zeroizing<String>, TransportError> {
        self.state = LineState::Dirty;
        let mut parser = self.parser(&[prefix]);
        let end = self.read_loop(grace, None, |bytes| match parser.feed(bytes) {
            // The late line and a final line in one read: the line is in the answer.
            Ok(Progress::Done(mut answer)) => match answer.info.pop() {
                Some(line) => ControlFlow::Break(Ok(Zeroizing::new(line))),
                None => ControlFlow::Continue(()),
            },
            Ok(Progress::NeedMore) => match parser.info_lines().last() {
                Some(line) => ControlFlow::Break(Ok(Zeroizing::new(line.clone()))),
                None => ControlFlow::Continue(()),
            },
            Err(err) => ControlFlow::Break(Err(err)),
        })?;
        match end {
            ReadEnd::Done(Ok(line)) => {
                tracing::warn!(command = %shown, "the modem sent its {prefix} line after OK");
                Ok(line)
            }
            ReadEnd::Done(Err(err)) => Err(TransportError::Protocol(format!("{shown}: {err}"))),
            ReadEnd::Quiet | ReadEnd::Deadline => Err(TransportError::Modem {
                command: shown.to_string(),
                answer: format!("OK without a {prefix} line"),
            }),
        }
    }

    /// Reads and discards until the line is quiet for [`QUIET`] or `limit` has passed; the
    /// session id of a late AT+CCHO answer among the discarded bytes is kept.
    pub(super) fn drain(&mut self, limit: Duration) -> Result<(), TransportError> {
        self.drain_until_quiet(limit, QUIET)
    }

    /// [`ModemLine::drain`] until the line has been silent for `quiet`.
    pub(super) fn drain_until_quiet(
        &mut self,
        limit: Duration,
        quiet: Duration,
    ) -> Result<(), TransportError> {
        let mut discarded = 0usize;
        // Out of `self` while the read loop borrows it; put back whatever the loop ends with.
        let mut late = core::mem::take(&mut self.late);
        let result = self.read_loop(limit, Some(quiet), |bytes| {
            discarded += bytes.len();
            late.discarded(bytes);
            ControlFlow::<()>::Continue(())
        });
        self.late = late;
        result?;
        if discarded > 0 {
            tracing::debug!(modem = %self.label, bytes = discarded, "discarded stale modem output");
        }
        Ok(())
    }

    /// Waits `pause`, keeping what the modem says meanwhile as [`Line::drain`] does (a SIM that
    /// is starting may announce itself; a late answer may still name a channel).
    pub(super) fn pause(&mut self, pause: Duration) -> Result<(), TransportError> {
        let mut late = core::mem::take(&mut self.late);
        let result = self.read_loop(pause, None, |bytes| {
            late.discarded(bytes);
            ControlFlow::<()>::Continue(())
        });
        self.late = late;
        result.map(drop)
    }

    /// Writes `command` and reads its answer, whatever the state; an exchange that does not end
    /// in a complete answer leaves the line dirty.
    fn transact(
        &mut self,
        command: &AtCommand,
        parser: AnswerParser,
        timeout: Duration,
    ) -> Result<Answer, TransportError> {
        // Nothing goes out whose answer could not be waited for within a deadline.
        Deadline::after(timeout)?;
        let mut parser = parser;
        let result = self
            .write(command)
            .and_then(|()| self.read_answer(command.shown(), &mut parser, &[], timeout))
            .map(|(answer, _)| answer);
        if result.is_err() {
            self.state = LineState::Dirty;
            if command.opens_channel() {
                self.late.ccho_unanswered(parser.info_lines());
            }
        }
        result
    }

    fn try_resync(&mut self) -> Result<(), TransportError> {
        self.drain(RESYNC_DRAIN_LIMIT)?;
        let timeout = self.resync_timeout;
        let deadline = Deadline::after(timeout)?;
        let at = AtCommand::plain("AT").shown_as("AT (resync)");
        self.write(&at)?;
        // A modem still busy with the command that timed out answers it first: an answer that
        // carries a card-command line (a bare number too, while an AT+CCHO is unanswered) is that
        // late answer, not the one to our `AT`.
        let late_parser = |line: &Self| {
            line.parser(&CARD_COMMAND_LINES)
                .accept_bare_number(line.late.awaited())
        };
        let (mut answer, mut rest) =
            self.read_answer(at.shown(), &mut late_parser(self), &[], timeout)?;
        for _ in 0..MAX_LATE_ANSWERS {
            if answer.info.is_empty() {
                break;
            }
            tracing::debug!(modem = %self.label, late = %answer.summary(), "discarded a late answer");
            self.late.late_answer(&answer.info);
            let remaining = deadline.remaining();
            // The OK to our AT may have come in the same read as the late answer.
            (answer, rest) =
                self.read_answer(at.shown(), &mut late_parser(self), &rest, remaining)?;
        }
        if !answer.result.is_ok() || !answer.info.is_empty() {
            return Err(modem_error(at.shown(), &answer));
        }
        // A stray final line could still trail the OK.
        self.drain(Duration::from_millis(50))
    }

    fn try_wait_ready(&mut self) -> Result<(), TransportError> {
        let deadline = Deadline::after(self.ready_timeout)?;
        let mut echo_command_refused = false;
        let mut last_error = TransportError::Timeout {
            waited: self.ready_timeout,
            command: "ATE0/AT (modem readiness)".into(),
        };
        for _ in 0..READY_ATTEMPTS {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                break;
            }
            // A modem still booting may ignore the first lines: retry in slices of a second.
            let slice = remaining.min(Duration::from_secs(1));
            // Some emulators lack ATE; then a plain AT is the readiness check.
            let command = AtCommand::plain(if echo_command_refused { "AT" } else { "ATE0" });
            match self.transact(&command, self.parser(&[]), slice) {
                Ok(answer) if answer.result.is_ok() => {
                    if echo_command_refused {
                        return Ok(());
                    }
                    let remaining = deadline.remaining().max(Duration::from_millis(200));
                    let at = AtCommand::plain("AT");
                    let answer = self.transact(&at, self.parser(&[]), remaining)?;
                    if !answer.result.is_ok() {
                        return Err(modem_error(at.shown(), &answer));
                    }
                    return Ok(());
                }
                Ok(answer) => {
                    last_error = modem_error(command.shown(), &answer);
                    if echo_command_refused {
                        return Err(last_error);
                    }
                    echo_command_refused = true;
                }
                Err(TransportError::Timeout { .. }) => self.drain(QUIET)?,
                Err(err) => return Err(err),
            }
        }
        Err(last_error)
    }

    /// Writes the command's line and the line terminator.
    fn write(&mut self, command: &AtCommand) -> Result<(), TransportError> {
        tracing::debug!(modem = %self.label, ">> {}", command.shown());
        let line = command.line();
        // The line may carry a secret's hex: one block of its final size, wiped when dropped.
        let mut bytes = Zeroizing::new(Vec::with_capacity(line.len() + 2));
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.port.write_all_out(&bytes)?;
        self.wire.sent += bytes.len() as u64;
        Ok(())
    }

    /// Feeds `already_read`, then reads until `parser` has a complete answer or `timeout` passes
    /// (nothing is written). Returns the answer and the bytes that followed its final line.
    fn read_answer(
        &mut self,
        shown: &str,
        parser: &mut AnswerParser,
        already_read: &[u8],
        timeout: Duration,
    ) -> Result<(Answer, Zeroizing<Vec<u8>>), TransportError> {
        let end = match parser.feed(already_read) {
            Ok(Progress::Done(answer)) => ReadEnd::Done(Ok(answer)),
            // A parse error in `already_read` comes back at the next feed.
            _ => self.read_loop(timeout, None, |bytes| match parser.feed(bytes) {
                Ok(Progress::NeedMore) => ControlFlow::Continue(()),
                Ok(Progress::Done(answer)) => ControlFlow::Break(Ok(answer)),
                Err(err) => ControlFlow::Break(Err(err)),
            })?,
        };
        match end {
            ReadEnd::Done(Ok(answer)) => {
                tracing::debug!(modem = %self.label, "<< {}", answer.summary());
                if answer.skipped_count > 0 {
                    tracing::trace!(skipped = ?answer.skipped, "skipped echo/URC lines");
                }
                Ok((answer, Zeroizing::new(parser.leftover().to_vec())))
            }
            ReadEnd::Done(Err(err)) => Err(TransportError::Protocol(format!("{shown}: {err}"))),
            ReadEnd::Quiet | ReadEnd::Deadline => {
                tracing::warn!(
                    modem = %self.label,
                    command = %shown,
                    partial = %parser.partial_summary(),
                    "no final result code within {timeout:?}"
                );
                Err(TransportError::Timeout {
                    waited: timeout,
                    command: shown.to_string(),
                })
            }
        }
    }

    /// The one read loop: hands each chunk read to `consume` until it breaks, until `timeout`
    /// has passed or [`MAX_READS_PER_EXCHANGE`] reads were made, or, with `quiet`, until a read
    /// brings nothing within `quiet`. Each chunk is read into a buffer wiped after the round.
    /// Without a clock it reads nothing and fails with [`TransportError::NoClock`].
    fn read_loop<T>(
        &mut self,
        timeout: Duration,
        quiet: Option<Duration>,
        mut consume: impl FnMut(&[u8]) -> ControlFlow<T>,
    ) -> Result<ReadEnd<T>, TransportError> {
        let deadline = Deadline::after(timeout)?;
        for _ in 0..MAX_READS_PER_EXCHANGE {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                break;
            }
            let wait = quiet.map_or(remaining, |quiet| remaining.min(quiet));
            let mut buf = Zeroizing::new([0u8; READ_CHUNK]);
            let n = self.read_some(&mut buf[..], wait)?;
            if n == 0 {
                if quiet.is_some() {
                    return Ok(ReadEnd::Quiet);
                }
                continue;
            }
            if let ControlFlow::Break(value) = consume(&buf[..n]) {
                return Ok(ReadEnd::Done(value));
            }
        }
        Ok(ReadEnd::Deadline)
    }

    /// One read bounded by `timeout`: `Ok(0)` when nothing came in time, an error when the
    /// stream is closed or broken.
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, TransportError> {
        let n = self.port.read_within(buf, timeout)?;
        // `min`: a port that claims more than the buffer holds must not make us panic.
        let n = n.min(buf.len());
        self.wire.received += n as u64;
        Ok(n)
    }
}

#[cfg(all(test, feature = "at"))]
mod tests;
