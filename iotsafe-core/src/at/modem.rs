//! [`AtTransport`]: APDUs to the SIM through a cellular modem's AT command interface.
//!
//! This module holds the command-family logic: AT+CSIM or AT+CGLA for each APDU, the error mode
//! (`AT+CMEE=1`), the probes and the fallback from AT+CCHO/AT+CGLA to AT+CSIM, what a refusal
//! means, reconnecting and opening the port again. Bytes go through [`ModemLine`] (the only reader
//! and writer, and the keeper of the resync rule); the AT+CCHO channels are kept by [`Channels`].

use crate::clock::Instant;
use crate::prelude::*;
use core::time::Duration;

use zeroize::Zeroizing;

use super::channels::{Ccho, Channels};
use super::framing::AtCommand;
use super::learned::Learned;
use super::line::{ModemLine, QUIET};
use super::options::{AtMode, AtOptions};
use super::parser::{self, Answer};
use super::port::AtPort;
use super::quirks::ModemQuirks;
use super::refusal::{
    is_plain_error, modem_error, refusal, sim_lost, CmeError, ErrorMode, PlainErrors,
};
use crate::transport::{
    Capabilities, LogicalChannels, Transaction, Transport, TransportChannel, TransportError,
    WireBytes,
};

/// What the probes found out about one command family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    Unknown,
    Yes,
    No,
}

/// Deadline for each AT+CCHC of a stale channel when the transport is dropped.
const DROP_CLOSE_TIMEOUT: Duration = Duration::from_millis(300);

/// Between two AT+CCHO to a SIM that is still starting.
const SIM_STARTING_PAUSE: Duration = Duration::from_millis(100);

/// A transport that sends APDUs as AT+CSIM or AT+CGLA commands over any [`AtPort`].
///
/// One exchange ends as soon as the modem's final result line arrives; nothing waits out an idle
/// timeout. Every exchange has a deadline ([`AtOptions::deadlines`], chosen by the APDU's INS).
/// After a timeout or a garbled answer the next command first resynchronises (drains the line,
/// sends `AT`, waits for `OK`), so one bad exchange never poisons the next.
pub struct AtTransport<P: AtPort> {
    line: ModemLine<P>,
    options: AtOptions,
    quirks: ModemQuirks,
    csim: Support,
    cgla: Support,
    channels: Channels,
    /// An AT+CGLA has succeeded on this modem (so a later refusal is about that APDU, not CGLA).
    cgla_worked: bool,
    /// The AID of the last AT+CCHO that opened a channel: the modem has AT+CCHO, and the applet
    /// is there (so a later refusal is no reason to fall back, and a plain `ERROR` to the same
    /// AID is no missing applet).
    ccho_opened: Option<Vec<u8>>,
    /// Whether the modem took `AT+CMEE=1`.
    errors: ErrorMode,
    /// The budget of recoveries for a plain `ERROR` to AT+CGLA.
    plain_errors: PlainErrors,
    /// Opens the port again (serial device, tty, TCP address) when [`Transport::reconnect`] finds
    /// the old one dead, e.g. a USB modem that re-enumerated.
    reopen: Option<Reopen<P>>,
}

/// How to open a port again.
type Reopen<P> = Box<dyn FnMut() -> Result<P, TransportError> + Send>;

impl<P: AtPort> core::fmt::Debug for AtTransport<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AtTransport")
            .field("label", &self.line.label())
            .field("mode", &self.options.mode)
            .field("quirks", &self.quirks.name)
            .field("channel", &self.channels.session())
            .finish_non_exhaustive()
    }
}

impl<P: AtPort> AtTransport<P> {
    /// Takes over `port`: turns echo off, checks the modem answers `AT`, asks for numeric error
    /// codes (`AT+CMEE=1`; a modem that refuses it is still used), identifies the modem (unless
    /// [`AtOptions::quirks`] is given) and, in [`AtMode::Auto`], probes AT+CCHO.
    pub fn new(
        port: P,
        label: impl Into<String>,
        options: AtOptions,
    ) -> Result<Self, TransportError> {
        let mut transport = AtTransport {
            line: ModemLine::new(port, label.into(), &options),
            options,
            quirks: options.quirks.unwrap_or_default(),
            csim: Support::Unknown,
            cgla: Support::Unknown,
            channels: Channels::default(),
            cgla_worked: false,
            ccho_opened: None,
            errors: ErrorMode::Plain,
            plain_errors: PlainErrors::default(),
            reopen: None,
        };
        transport.initialise()?;
        Ok(transport)
    }

    /// Lets [`Transport::reconnect`] open the port again with `reopen` when the old one is dead.
    /// The `open_*`/`connect_*` constructors set this themselves.
    pub fn with_reopen<E>(
        mut self,
        mut reopen: impl FnMut() -> Result<P, E> + Send + 'static,
    ) -> Self
    where
        TransportError: From<E>,
    {
        self.reopen = Some(Box::new(move || reopen().map_err(TransportError::from)));
        self
    }

    /// The quirks in effect.
    pub fn quirks(&self) -> &ModemQuirks {
        &self.quirks
    }

    /// What this open found out that the next open of the same port may skip asking
    /// ([`AtOptions::learned`]); `None` while a probe has not answered either way.
    pub fn learned(&self) -> Option<Learned> {
        let known = |s: Support| match s {
            Support::Yes => Some(true),
            Support::No => Some(false),
            Support::Unknown => None,
        };
        Some(Learned {
            quirks: self.quirks,
            cgla: known(self.cgla)?,
            csim: known(self.csim)?,
        })
    }

    /// True when APDUs go through AT+CCHO/AT+CGLA (the modem manages the channel).
    pub fn uses_logical_channel_commands(&self) -> bool {
        match self.options.mode {
            AtMode::Csim => false,
            AtMode::Cgla => true,
            // A modem known to refuse SELECT over AT+CSIM gets AT+CCHO even when its probe was silent.
            AtMode::Auto => {
                self.cgla == Support::Yes
                    || (self.cgla == Support::Unknown
                        && self.quirks.prefer_logical_channel_commands)
            }
        }
    }

    /// The session id of the channel opened with AT+CCHO, while it is open.
    pub fn session_id(&self) -> Option<u32> {
        self.channels.session()
    }

    /// Sends a plain AT command (e.g. `AT+CGMM`) and returns the lines of its answer before the
    /// final `OK` (at most 8, echoed commands redacted), or a [`TransportError::Modem`] when the
    /// modem refuses it.
    pub fn command(
        &mut self,
        line: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, TransportError> {
        let command = AtCommand::plain(line);
        let parser = self.line.parser(&[]);
        let mut answer = self.line.exchange(&command, parser, timeout)?;
        if !answer.result.is_ok() {
            return Err(modem_error(command.shown(), &answer));
        }
        Ok(core::mem::take(&mut answer.skipped))
    }

    /// Sends one APDU with an explicit deadline instead of the one chosen by INS.
    pub fn transmit_with_timeout(
        &mut self,
        apdu: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        if apdu.len() < 4 {
            return Err(TransportError::Protocol(format!(
                "a command APDU has at least 4 bytes, got {}",
                apdu.len()
            )));
        }
        if apdu.len() > self.quirks.max_apdu {
            return Err(TransportError::Protocol(format!(
                "{} forwards APDUs of at most {} bytes, this one has {}",
                self.quirks.name,
                self.quirks.max_apdu,
                apdu.len()
            )));
        }
        let (command, prefix) = match self.channels.session() {
            Some(session) => (AtCommand::cgla(session, apdu), "+CGLA:"),
            None => (AtCommand::csim(apdu, self.quirks.width3_length), "+CSIM:"),
        };
        let parser = self.line.parser(&[prefix]);
        let mut answer = self.line.exchange(&command, parser, timeout)?;
        let shown = command.shown();
        if !answer.result.is_ok() {
            return Err(match self.channels.session() {
                Some(_) => self.cgla_refused(shown, &answer),
                None if is_plain_error(&answer.result) => self.plain_csim_refusal(shown, &answer),
                None => refusal(shown, &answer),
            });
        }
        if self.channels.session().is_some() {
            self.cgla_worked = true;
        }
        // The line is the hex of the answer, which may be a secret (a DH output): moved out of
        // the answer into a string wiped when dropped, not copied.
        let lines = answer.info.len();
        let info: Zeroizing<String> = match answer.info.pop() {
            Some(last) => {
                if lines > 1 {
                    tracing::warn!(command = %shown, lines, "several {prefix} lines in one answer; using the last");
                }
                Zeroizing::new(last)
            }
            None if self.quirks.bare_ok_is_9000 => return Ok(vec![0x90, 0x00]),
            None => {
                let grace = self.quirks.late_answer_grace;
                self.line.late_answer_line(shown, prefix, grace)?
            }
        };
        let payload = parser::parse_hex_payload(&info, prefix).map_err(|err| {
            TransportError::Protocol(format!(
                "{shown}: cannot decode {:?}: {err}",
                parser::redact_answer_line(&info)
            ))
        })?;
        if payload.bytes.len() < 2 {
            return Err(TransportError::Protocol(format!(
                "{shown}: the answer {:?} lacks a status word",
                parser::redact_answer_line(&info)
            )));
        }
        // Moved out, not copied: the caller (the session's link) wipes it.
        Ok(payload.bytes)
    }

    /// A refused AT+CGLA. `+CME ERROR: 21` (invalid index): the modem lost the channel, so it is
    /// reported as [`TransportError::ResetCard`] (the session re-opens it and retries once). In
    /// [`AtMode::Auto`], a modem that refuses the very first AT+CGLA lacks it even though it has
    /// AT+CCHO: close the channel, use AT+CSIM from now on, and report `ResetCard` too, so the
    /// session re-selects over AT+CSIM and retries. A plain `ERROR` later on follows
    /// [`AtTransport::plain_cgla_refusal`].
    fn cgla_refused(&mut self, shown: &str, answer: &Answer) -> TransportError {
        match CmeError::of(&answer.result) {
            Some(CmeError::SimLost) => sim_lost(shown, answer),
            Some(CmeError::InvalidIndex) => {
                tracing::warn!(command = %shown, "the modem no longer knows the channel");
                self.channels.forget();
                TransportError::ResetCard
            }
            _ if self.options.mode == AtMode::Auto && !self.cgla_worked => {
                tracing::warn!(
                    command = %shown,
                    answer = %answer.summary(),
                    "the modem refused AT+CGLA; falling back to AT+CSIM for this modem"
                );
                if let Err(close) = self.close_channel() {
                    tracing::debug!(error = %close, "closing the channel failed");
                }
                self.cgla = Support::No;
                TransportError::ResetCard
            }
            _ if is_plain_error(&answer.result) => self.plain_cgla_refusal(shown, answer),
            _ => modem_error(shown, answer),
        }
    }

    /// A plain `ERROR` to AT+CGLA. It has no code, so it may stand for the lost channel or SIM a
    /// numeric code would have named (a modem at `AT+CMEE=0`, or one restarted behind our back,
    /// which forgot `AT+CMEE=1`), or for a command the modem will not take. The first is read as
    /// a reset, once per operation ([`PlainErrors`]): the channel is retired (closed with AT+CCHC
    /// once the modem answers, in case it still has it, so a wrong guess leaks nothing) and the
    /// session reopens one and retries. Refused again in the retry, it is the command's own
    /// refusal: [`TransportError::Modem`].
    fn plain_cgla_refusal(&mut self, shown: &str, answer: &Answer) -> TransportError {
        if !self.plain_errors.take_recovery() {
            return modem_error(shown, answer);
        }
        tracing::warn!(
            command = %shown,
            "a plain ERROR to AT+CGLA: taken for a lost channel; reopening once"
        );
        self.channels.retire(self.line.label());
        TransportError::ResetCard
    }

    /// A plain `ERROR` to AT+CSIM. A SIM that was reset answers `6881` to the session's channel
    /// inside `+CSIM:`, so the only loss a plain `ERROR` stands for is the SIM itself (`10`/`13`);
    /// `AT+CPIN?` says whether it is there. Gone: [`TransportError::RemovedCard`], as the numeric
    /// code. There: the refusal is the command's own, [`TransportError::Modem`] at once; reading
    /// it as a reset would make the session open a new channel and leak the one it has (the
    /// session opened it with MANAGE CHANNEL; the transport cannot close it).
    fn plain_csim_refusal(&mut self, shown: &str, answer: &Answer) -> TransportError {
        let command = AtCommand::plain("AT+CPIN?");
        let parser = self.line.parser(&["+CPIN:"]);
        match self
            .line
            .exchange(&command, parser, self.options.check_timeout())
        {
            Ok(pin) if pin.result.is_ok() => modem_error(shown, answer),
            Ok(_) => sim_lost(shown, answer),
            // No answer either: the modem is in trouble; the session reconnects, resynchronising.
            Err(err) => err,
        }
    }

    /// Whether a refused AT+CCHO for `aid` says the SIM is still starting: `+CME ERROR: 14` (SIM
    /// busy), or a plain `ERROR` to an AT+CCHO that opened a channel before.
    fn sim_starting(&self, aid: &[u8], answer: &Answer) -> bool {
        match CmeError::of(&answer.result) {
            Some(CmeError::Busy) => true,
            None => is_plain_error(&answer.result) && self.ccho_opened.as_deref() == Some(aid),
            Some(_) => false,
        }
    }

    /// A refused AT+CCHO for `aid`: `Ok(None)` when the transport falls back to AT+CSIM, else the
    /// error. Only a refusal that says the modem lacks the command causes the fallback, and never
    /// once an AT+CCHO has worked on this modem; a transient one leaves AT+CCHO in use for the
    /// next open.
    fn ccho_refused(
        &mut self,
        aid: &[u8],
        command: &AtCommand,
        answer: &Answer,
    ) -> Result<Option<TransportChannel>, TransportError> {
        let plain = is_plain_error(&answer.result);
        match CmeError::of(&answer.result) {
            // A lost SIM is no reason to give up on AT+CCHO.
            Some(CmeError::SimLost) => Err(sim_lost(command.shown(), answer)),
            // AT+CCHO works, there is just no applet with this AID (27.007 `+CME ERROR: 22`):
            // no fallback, the session tries its next AID through AT+CCHO.
            Some(CmeError::NotFound) => Err(modem_error(command.shown(), answer)),
            // The SIM is still starting after a reset: reported as the reset it is, so the
            // session runs the operation once more, through AT+CCHO again.
            Some(CmeError::Busy) => {
                tracing::warn!(command = %command.shown(), answer = %answer.summary(), "the SIM is busy; AT+CCHO again at the next open");
                Err(TransportError::ResetCard)
            }
            // The same AT+CCHO opened a channel before: a plain ERROR now is a busy SIM, or a
            // modem restarted behind our back (back at AT+CMEE=0), not a missing command or applet.
            None if plain && self.ccho_opened.as_deref() == Some(aid) => {
                tracing::warn!(command = %command.shown(), "a plain ERROR to an AT+CCHO that worked before; taken for a busy SIM");
                Err(TransportError::ResetCard)
            }
            // Without numeric codes a plain ERROR may be a busy SIM or a missing applet as well
            // as a missing command: no fallback on a guess.
            None if plain && self.errors == ErrorMode::Plain => {
                Err(modem_error(command.shown(), answer))
            }
            _ if self.options.mode == AtMode::Auto && self.ccho_opened.is_none() => {
                tracing::warn!(
                    command = %command.shown(),
                    answer = %answer.summary(),
                    "the modem refused AT+CCHO; falling back to AT+CSIM for this modem"
                );
                self.cgla = Support::No;
                Ok(None)
            }
            _ => Err(modem_error(command.shown(), answer)),
        }
    }
}

impl<P: AtPort> Drop for AtTransport<P> {
    /// Closes the channel still open with AT+CCHO, any stale one left from before a reconnect,
    /// and any a late AT+CCHO answer named (best effort, short deadlines): SIMs have only a few
    /// logical channels, and a modem keeps them open across host programs.
    fn drop(&mut self) {
        self.channels.retire(self.line.label());
        if !self.channels.has_stale() && !self.line.awaits_late_session() {
            return;
        }
        // A late answer may still be coming: let it pass first (a late AT+CCHO answer among it
        // is kept). A port that is gone ends it here.
        if self.line.settle().is_err() {
            return;
        }
        self.channels
            .close_stale(&mut self.line, DROP_CLOSE_TIMEOUT);
    }
}

impl<P: AtPort> Transaction for AtTransport<P> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let timeout = self.options.deadlines.for_apdu(command);
        self.transmit_with_timeout(command, timeout)
    }
    fn wire_bytes(&self) -> Option<WireBytes> {
        Some(self.line.wire_bytes())
    }
}

/// AT+CCHO and AT+CCHC, while the transport uses them ([`AtTransport::uses_logical_channel_commands`]).
impl<P: AtPort> LogicalChannels for AtTransport<P> {
    fn open_channel(&mut self, aid: &[u8]) -> Result<Option<TransportChannel>, TransportError> {
        if !self.uses_logical_channel_commands() {
            return Ok(None);
        }
        // Channels a late AT+CCHO answer opened (an earlier open timed out) go before a new one
        // takes the SIM's last free channel; nothing is sent when there are none.
        self.channels
            .close_stale(&mut self.line, self.options.check_timeout());
        if self.channels.session().is_some() {
            // One modem-managed channel at a time: close the old one rather than leak it.
            if let Err(err) = self.close_channel() {
                tracing::warn!(error = %err, "closing the previous channel failed");
            }
        }
        let asked = Instant::now();
        loop {
            match self
                .channels
                .open(&mut self.line, aid, self.options.command_timeout)?
            {
                // 27.007 leaves the channel number to the modem; the session id is not the
                // channel number.
                Ccho::Opened => {
                    if self.ccho_opened.as_deref() != Some(aid) {
                        self.ccho_opened = Some(aid.to_vec());
                    }
                    return Ok(Some(TransportChannel { number: None }));
                }
                // A SIM still starting after a reset (another program's AT+CFUN, a SIM REFRESH):
                // ask again a moment later, for as long as a command may take, rather than fail
                // the operation that found the reset.
                Ccho::Refused(_, answer)
                    if self.sim_starting(aid, &answer)
                        && asked.elapsed() < self.options.deadlines.normal =>
                {
                    tracing::debug!(answer = %answer.summary(), "the SIM is still starting; AT+CCHO again shortly");
                    self.line.pause(SIM_STARTING_PAUSE)?;
                }
                Ccho::Refused(command, answer) => return self.ccho_refused(aid, &command, &answer),
            }
        }
    }

    fn close_channel(&mut self) -> Result<(), TransportError> {
        self.channels
            .close(&mut self.line, self.options.command_timeout)
    }
}

impl<P: AtPort> Transport for AtTransport<P> {
    fn wire_bytes(&self) -> Option<WireBytes> {
        Some(self.line.wire_bytes())
    }
    fn learned(&self) -> Option<String> {
        AtTransport::learned(self).map(|l| l.to_text())
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            extended_length: false,
            max_command_data: self.quirks.max_command_data(),
        }
    }

    /// With AT+CCHO/AT+CGLA the modem opens the channels; with AT+CSIM the session does.
    fn logical_channels(&mut self) -> Option<&mut dyn LogicalChannels> {
        if self.uses_logical_channel_commands() {
            Some(self)
        } else {
            None
        }
    }

    /// The transport itself, as for any port no other program shares; it also counts the
    /// operation, so that a bare `ERROR` to AT+CGLA is read as a lost channel at most once per
    /// operation (its retry included).
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        self.plain_errors.attempt_begins();
        Ok(Box::new(self))
    }

    /// Resynchronises with the modem, or opens the port again (when it can) if the modem does not
    /// answer. `AT+CMEE=1` is sent again on a new port, and on the old one when the modem took it
    /// before (a modem restarted behind our back forgot it). Either way the channel of the old
    /// session is then closed with AT+CCHC (best effort, bounded), with any a late AT+CCHO answer
    /// opened: the session opens a new one, and a port that dropped did not reset the SIM.
    fn reconnect(&mut self) -> Result<(), TransportError> {
        // The SIM or the modem may have been reset: the session opens a new channel either way.
        self.channels.retire(self.line.label());
        // resync first: it recognises a late answer to a timed-out command, which wait_ready's
        // ATE0 could otherwise take for its own OK.
        match self.line.resync().and_then(|()| self.line.wait_ready()) {
            Ok(()) if self.errors == ErrorMode::Numeric => self.ask_for_numeric_errors()?,
            Ok(()) => {}
            Err(err) => {
                let Some(reopen) = self.reopen.as_mut() else {
                    return Err(err);
                };
                tracing::debug!(modem = %self.line.label(), error = %err, "modem unresponsive; opening the port again");
                self.line.replace_port(reopen()?);
                self.line.drain(QUIET)?;
                self.line.wait_ready()?;
                self.ask_for_numeric_errors()?;
            }
        }
        // A failure here leaves the channel for later, and the line dirty for the next command
        // to resynchronise; the link itself is up again.
        self.channels
            .close_stale(&mut self.line, self.options.check_timeout());
        Ok(())
    }

    fn describe(&self) -> String {
        let commands = if self.uses_logical_channel_commands() {
            "AT+CCHO/AT+CGLA"
        } else {
            "AT+CSIM"
        };
        format!(
            "AT modem {} ({}, {commands})",
            self.line.label(),
            self.quirks.name
        )
    }

    /// The modem's port: its device file (symbolic links resolved, so `/dev/serial/by-id/…` and
    /// `/dev/ttyUSB2` are one route) or its TCP address.
    #[cfg(feature = "std")]
    fn route(&self) -> Option<String> {
        let label = self.line.label();
        let port = match std::fs::canonicalize(label) {
            Ok(path) if label.starts_with('/') => path.display().to_string(),
            _ => label.to_string(),
        };
        Some(format!("at:{port}"))
    }
}

mod init;
#[cfg(all(test, feature = "at"))]
mod tests;
