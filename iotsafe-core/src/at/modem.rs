//! [`AtTransport`]: APDUs to the SIM through a cellular modem's AT command interface.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::framing::{self, Deadlines};
use super::parser::{self, Answer, AnswerParser, FinalResult, Progress};
use super::port::{AtPort, TtyFile};
use super::quirks::ModemQuirks;
use crate::transport::{Capabilities, Transport, TransportChannel, TransportError};

/// Which AT commands carry the APDUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtMode {
    /// Probe at open (`AT+CCHO=?`): use AT+CCHO/AT+CGLA/AT+CCHC when the modem has them, and fall
    /// back to AT+CSIM for good when it refuses them (including an `ERROR` or `+CME ERROR` to
    /// `AT+CCHO` itself). Two refusals do not cause the fallback: `+CME ERROR: 22` (no applet
    /// with that AID: a [`TransportError::Modem`] error, so the session tries its next AID through
    /// AT+CCHO) and a lost SIM (`+CME ERROR: 10`/`13`, reported as
    /// [`TransportError::RemovedCard`]).
    #[default]
    Auto,
    /// Only AT+CSIM; the session manages channels with MANAGE CHANNEL and SELECT itself.
    Csim,
    /// AT+CCHO/AT+CGLA/AT+CCHC: the modem opens the channel and selects the applet.
    Cgla,
}

/// How an [`AtTransport`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtOptions {
    /// Command family to use.
    pub mode: AtMode,
    /// Per-APDU deadlines (ordinary / slow instructions).
    pub deadlines: Deadlines,
    /// Total time the modem gets to answer `ATE0` and `AT` at open.
    pub ready_timeout: Duration,
    /// Deadline for plain AT commands (probes, `AT+CCHO`, `AT+CCHC`, resync).
    pub command_timeout: Duration,
    /// Modem quirks; `None` asks the modem (`AT+CGMM`) and looks the answer up in
    /// [`super::quirks::KNOWN_MODEMS`].
    pub quirks: Option<ModemQuirks>,
    /// Longest line accepted from the modem, in bytes.
    pub max_line: usize,
    /// Most lines accepted in one answer.
    pub max_lines: usize,
}

impl Default for AtOptions {
    fn default() -> Self {
        AtOptions {
            mode: AtMode::Auto,
            deadlines: Deadlines::default(),
            ready_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            quirks: None,
            max_line: parser::DEFAULT_MAX_LINE,
            max_lines: parser::DEFAULT_MAX_LINES,
        }
    }
}

/// What the probes found out about one command family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    Unknown,
    Yes,
    No,
}

/// Longest a resync waits for the line to go quiet before it sends `AT`.
const RESYNC_DRAIN_LIMIT: Duration = Duration::from_secs(1);
/// Silence that counts as "the modem has finished talking" while draining.
const QUIET: Duration = Duration::from_millis(30);
/// Upper bound on reads per exchange, on top of the deadline (defence against a stream that
/// returns empty reads forever).
const MAX_READS_PER_EXCHANGE: usize = 100_000;
/// Bytes read at once.
const READ_CHUNK: usize = 512;
/// Most stale channels remembered for closing (a SIM has at most 19 extra logical channels).
const MAX_STALE_CHANNELS: usize = 8;
/// Deadline for each AT+CCHC of a stale channel when the transport is dropped.
const DROP_CLOSE_TIMEOUT: Duration = Duration::from_millis(300);

/// A transport that sends APDUs as AT+CSIM or AT+CGLA commands over any [`AtPort`].
///
/// One exchange ends as soon as the modem's final result line arrives; nothing waits out an idle
/// timeout. Every exchange has a deadline ([`AtOptions::deadlines`], chosen by the APDU's INS).
/// After a timeout or a garbled answer the next command first resynchronises (drains the line,
/// sends `AT`, waits for `OK`), so one bad exchange never poisons the next.
pub struct AtTransport<P: AtPort> {
    port: P,
    label: String,
    options: AtOptions,
    quirks: ModemQuirks,
    csim: Support,
    cgla: Support,
    /// Session id of the channel opened with AT+CCHO, while it is open.
    channel: Option<u32>,
    /// Session ids of channels left over from before a [`Transport::reconnect`] (or a failed
    /// AT+CCHC) that are not closed yet: a modem whose port dropped (USB re-enumeration, a TCP
    /// bridge that closed) has not reset the SIM, which still holds them open. Closed as soon as
    /// the modem answers again, or on drop; at most [`MAX_STALE_CHANNELS`].
    stale_channels: Vec<u32>,
    needs_resync: bool,
    /// An AT+CGLA has succeeded on this modem (so a later refusal is about that APDU, not CGLA).
    cgla_worked: bool,
    /// Opens the port again (serial device, tty, TCP address) when [`Transport::reconnect`] finds
    /// the old one dead, e.g. a USB modem that re-enumerated.
    reopen: Option<Reopen<P>>,
}

/// How to open a port again.
type Reopen<P> = Box<dyn FnMut() -> io::Result<P> + Send>;

impl<P: AtPort> std::fmt::Debug for AtTransport<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtTransport")
            .field("label", &self.label)
            .field("mode", &self.options.mode)
            .field("quirks", &self.quirks.name)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl AtTransport<Box<dyn serialport::SerialPort>> {
    /// Opens a serial port (8N1, no flow control) with default options. A pty path works too.
    pub fn open_serial(path: &str, baud: u32) -> Result<Self, TransportError> {
        Self::open_serial_with(path, baud, AtOptions::default())
    }

    /// Opens a serial port with `options`.
    pub fn open_serial_with(
        path: &str,
        baud: u32,
        options: AtOptions,
    ) -> Result<Self, TransportError> {
        let timeout = options.command_timeout;
        let open = {
            let path = path.to_string();
            move || {
                serialport::new(&path, baud)
                    .timeout(timeout)
                    .open()
                    .map_err(io::Error::from)
            }
        };
        let port = open()?;
        Ok(AtTransport::new(port, path, options)?.with_reopen(open))
    }
}

impl AtTransport<TtyFile> {
    /// Opens a terminal device file directly (raw mode, `poll` deadlines), e.g. a pty slave.
    pub fn open_tty(path: impl AsRef<Path>, options: AtOptions) -> Result<Self, TransportError> {
        let path = path.as_ref().to_path_buf();
        let label = path.display().to_string();
        let port = TtyFile::open(&path)?;
        Ok(AtTransport::new(port, label, options)?.with_reopen(move || TtyFile::open(&path)))
    }
}

impl AtTransport<TcpStream> {
    /// Connects to a modem (or an emulator) that speaks AT over TCP, with default options.
    pub fn connect_tcp(addr: impl ToSocketAddrs) -> Result<Self, TransportError> {
        Self::connect_tcp_with(addr, AtOptions::default())
    }

    /// Connects over TCP with `options`.
    pub fn connect_tcp_with(
        addr: impl ToSocketAddrs,
        options: AtOptions,
    ) -> Result<Self, TransportError> {
        let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
        let open = move || {
            let stream = TcpStream::connect(&addrs[..])?;
            // One AT line per write: without this, Nagle delays each small command.
            stream.set_nodelay(true)?;
            // A peer that stops reading must not block a write forever.
            stream.set_write_timeout(Some(Duration::from_secs(5)))?;
            Ok(stream)
        };
        let stream = open()?;
        let label = stream
            .peer_addr()
            .map(|a| format!("tcp://{a}"))
            .unwrap_or_else(|_| String::from("tcp"));
        Ok(AtTransport::new(stream, label, options)?.with_reopen(open))
    }
}

impl<P: AtPort> AtTransport<P> {
    /// Takes over `port`: turns echo off, checks the modem answers `AT`, identifies the modem
    /// (unless [`AtOptions::quirks`] is given) and, in [`AtMode::Auto`], probes AT+CCHO.
    pub fn new(
        port: P,
        label: impl Into<String>,
        options: AtOptions,
    ) -> Result<Self, TransportError> {
        let mut transport = AtTransport {
            port,
            label: label.into(),
            options,
            quirks: options.quirks.unwrap_or_default(),
            csim: Support::Unknown,
            cgla: Support::Unknown,
            channel: None,
            stale_channels: Vec::new(),
            needs_resync: false,
            cgla_worked: false,
            reopen: None,
        };
        transport.initialise()?;
        Ok(transport)
    }

    /// Lets [`Transport::reconnect`] open the port again with `reopen` when the old one is dead.
    /// The `open_*`/`connect_*` constructors set this themselves.
    pub fn with_reopen(mut self, reopen: impl FnMut() -> io::Result<P> + Send + 'static) -> Self {
        self.reopen = Some(Box::new(reopen));
        self
    }

    /// The quirks in effect.
    pub fn quirks(&self) -> &ModemQuirks {
        &self.quirks
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
        self.channel
    }

    /// Sends a plain AT command (e.g. `AT+CGMM`) and returns the lines of its answer before the
    /// final `OK` (at most 8, echoed commands redacted), or a [`TransportError::Modem`] when the
    /// modem refuses it.
    pub fn command(
        &mut self,
        line: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, TransportError> {
        self.resync_if_needed()?;
        let mut answer = self.exchange(line, line, self.parser(&[]), timeout)?;
        if !answer.result.is_ok() {
            return Err(modem_error(line, &answer));
        }
        Ok(std::mem::take(&mut answer.skipped))
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
        self.resync_if_needed()?;
        let (line, shown, prefix) = match self.channel {
            Some(session) => (
                framing::cgla_command(session, apdu),
                framing::cgla_display(session, apdu),
                "+CGLA:",
            ),
            None => (
                framing::csim_command(apdu, self.quirks.width3_length),
                framing::csim_display(apdu, self.quirks.width3_length),
                "+CSIM:",
            ),
        };
        let answer = self.exchange(&line, &shown, self.parser(&[prefix]), timeout)?;
        if !answer.result.is_ok() {
            if self.channel.is_some() {
                return Err(self.cgla_refused(&shown, &answer));
            }
            return Err(refusal(&shown, &answer));
        }
        if self.channel.is_some() {
            self.cgla_worked = true;
        }
        // The line is the hex of the answer, which may be a secret (a DH output): a wiped copy.
        let info: Zeroizing<String> = match answer.info.last() {
            Some(info) => {
                if answer.info.len() > 1 {
                    tracing::warn!(
                        command = %shown,
                        lines = answer.info.len(),
                        "several {prefix} lines in one answer; using the last"
                    );
                }
                Zeroizing::new(info.clone())
            }
            None if self.quirks.bare_ok_is_9000 => return Ok(vec![0x90, 0x00]),
            None => self.late_answer_line(&shown, prefix)?,
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
    /// session re-selects over AT+CSIM and retries.
    fn cgla_refused(&mut self, shown: &str, answer: &Answer) -> TransportError {
        let err = refusal(shown, answer);
        if !matches!(err, TransportError::Modem { .. }) {
            return err; // a lost SIM
        }
        if is_invalid_index(&answer.result) {
            tracing::warn!(command = %shown, "the modem no longer knows the channel");
            self.channel = None;
            return TransportError::ResetCard;
        }
        if self.options.mode == AtMode::Auto && !self.cgla_worked {
            tracing::warn!(
                command = %shown,
                answer = %answer.summary(),
                "the modem refused AT+CGLA; falling back to AT+CSIM for this modem"
            );
            if let Err(close) = self.close_channel() {
                tracing::debug!(error = %close, "closing the channel failed");
            }
            self.channel = None;
            self.cgla = Support::No;
            return TransportError::ResetCard;
        }
        err
    }

    fn parser(&self, prefixes: &[&str]) -> AnswerParser {
        AnswerParser::new(prefixes).with_limits(self.options.max_line, self.options.max_lines)
    }

    /// `ATE0`, `AT`, identification and probes.
    fn initialise(&mut self) -> Result<(), TransportError> {
        self.drain(Duration::from_millis(200))?;
        self.wait_ready()?;
        if self.options.quirks.is_none() {
            self.quirks = *self.identify();
        }
        if self.options.mode == AtMode::Auto {
            self.cgla = self.probe("AT+CCHO=?");
            self.csim = self.probe("AT+CSIM=?");
            if self.cgla == Support::No && self.csim == Support::No {
                tracing::warn!(modem = %self.label, "the modem refused both AT+CCHO=? and AT+CSIM=?; trying AT+CSIM anyway");
            }
        }
        tracing::debug!(
            modem = %self.label,
            quirks = self.quirks.name,
            logical_channel_commands = self.uses_logical_channel_commands(),
            "AT transport ready"
        );
        Ok(())
    }

    /// Sends `ATE0` until the modem answers `OK` (echo lines before it takes effect are skipped),
    /// then checks `AT` → `OK`, all within [`AtOptions::ready_timeout`].
    fn wait_ready(&mut self) -> Result<(), TransportError> {
        let deadline = Instant::now() + self.options.ready_timeout;
        let mut echo_command_refused = false;
        let mut last_error = TransportError::Timeout {
            waited: self.options.ready_timeout,
            command: "ATE0/AT (modem readiness)".into(),
        };
        for _ in 0..10 {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            // A modem still booting may ignore the first lines: retry in slices of a second.
            let slice = remaining.min(Duration::from_secs(1));
            // Some emulators lack ATE; then a plain AT is the readiness check.
            let line = if echo_command_refused { "AT" } else { "ATE0" };
            match self.exchange(line, line, self.parser(&[]), slice) {
                Ok(answer) if answer.result.is_ok() => {
                    if line == "AT" {
                        self.needs_resync = false;
                        return Ok(());
                    }
                    let remaining = deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(200));
                    let answer = self.exchange("AT", "AT", self.parser(&[]), remaining)?;
                    if !answer.result.is_ok() {
                        return Err(modem_error("AT", &answer));
                    }
                    self.needs_resync = false;
                    return Ok(());
                }
                Ok(answer) => {
                    last_error = modem_error(line, &answer);
                    if echo_command_refused {
                        return Err(last_error);
                    }
                    echo_command_refused = true;
                }
                Err(TransportError::Timeout { .. }) => {
                    self.drain(QUIET)?;
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error)
    }

    /// Asks `AT+CGMM` for the model; unknown or silent modems get the generic quirks.
    fn identify(&mut self) -> &'static ModemQuirks {
        let timeout = self.options.command_timeout.min(Duration::from_secs(2));
        match self.exchange("AT+CGMM", "AT+CGMM", self.parser(&["+CGMM:"]), timeout) {
            Ok(answer) if answer.result.is_ok() => {
                let model = answer
                    .info
                    .iter()
                    .chain(answer.skipped.iter())
                    .map(|l| {
                        parser::strip_prefix_ignore_case(l, "+CGMM:")
                            .unwrap_or(l)
                            .trim()
                    })
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_string();
                let quirks = ModemQuirks::for_model(&model);
                tracing::debug!(model = %model, quirks = quirks.name, "modem identified");
                quirks
            }
            _ => &ModemQuirks::GENERIC,
        }
    }

    /// `OK` to a `=?` test command means the modem has the command.
    fn probe(&mut self, line: &str) -> Support {
        if self.resync_if_needed().is_err() {
            return Support::Unknown;
        }
        let timeout = self.options.command_timeout.min(Duration::from_secs(2));
        match self.exchange(line, line, self.parser(&[]), timeout) {
            Ok(answer) if answer.result.is_ok() => Support::Yes,
            Ok(_) => Support::No,
            Err(err) => {
                tracing::debug!(command = line, error = %err, "probe failed");
                Support::Unknown
            }
        }
    }

    /// After a bare `OK`: some modems (u-blox on Arduino MKR) deliver the information line late.
    fn late_answer_line(
        &mut self,
        shown: &str,
        prefix: &str,
    ) -> Result<Zeroizing<String>, TransportError> {
        let grace = self.quirks.late_answer_grace;
        let mut parser = self.parser(&[prefix]);
        let deadline = Instant::now() + grace;
        // Whatever trails the late line (often a second OK) must not end the next answer.
        self.needs_resync = true;
        for _ in 0..MAX_READS_PER_EXCHANGE {
            if let Some(line) = parser.info_lines().last() {
                tracing::warn!(command = %shown, "the modem sent its {prefix} line after OK");
                return Ok(Zeroizing::new(line.clone()));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            // What the modem sent may be a secret's hex: wiped at the end of each round.
            let mut buf = Zeroizing::new([0u8; READ_CHUNK]);
            match self.read_some(&mut buf[..], remaining)? {
                0 => continue,
                n => {
                    if let Err(err) = parser.feed(&buf[..n]) {
                        return Err(TransportError::Protocol(format!("{shown}: {err}")));
                    }
                }
            }
        }
        Err(TransportError::Modem {
            command: shown.to_string(),
            answer: format!("OK without a {prefix} line"),
        })
    }

    /// Moves the open channel (if any) to the stale list, to be closed when the modem answers.
    fn retire_channel(&mut self) {
        if let Some(session) = self.channel.take() {
            self.remember_stale(session);
        }
    }

    fn remember_stale(&mut self, session: u32) {
        if self.stale_channels.contains(&session) {
            return;
        }
        if self.stale_channels.len() >= MAX_STALE_CHANNELS {
            let forgotten = self.stale_channels.remove(0);
            tracing::warn!(modem = %self.label, session = forgotten, "too many unclosed channels; forgetting the oldest");
        }
        self.stale_channels.push(session);
    }

    /// Best effort: AT+CCHC for each stale channel, each within `timeout`. A channel the modem
    /// answered for is forgotten (`OK`, or an error such as `+CME ERROR: 21` for one it no longer
    /// knows); at the first exchange that fails (no answer, port gone) the rest stay for later.
    fn close_stale_channels(&mut self, timeout: Duration) {
        while let Some(&session) = self.stale_channels.first() {
            let line = framing::cchc_command(session);
            match self.exchange(&line, &line, self.parser(&["+CCHC:"]), timeout) {
                Ok(answer) => {
                    if answer.result.is_ok() {
                        tracing::debug!(modem = %self.label, session, "closed a stale channel");
                    } else {
                        tracing::debug!(modem = %self.label, session, answer = %answer.summary(), "the modem refused to close a stale channel");
                    }
                    self.stale_channels.remove(0);
                }
                Err(err) => {
                    tracing::debug!(modem = %self.label, session, error = %err, "closing a stale channel failed");
                    break;
                }
            }
        }
    }

    fn resync_if_needed(&mut self) -> Result<(), TransportError> {
        if self.needs_resync {
            self.resync()?;
        }
        Ok(())
    }

    /// Drains whatever is still coming (a late answer, URCs), then checks `AT` → `OK`.
    fn resync(&mut self) -> Result<(), TransportError> {
        self.drain(RESYNC_DRAIN_LIMIT)?;
        let timeout = self.options.command_timeout.min(Duration::from_secs(2));
        let deadline = Instant::now() + timeout;
        // A modem still busy with the command that timed out answers it first: an answer that
        // carries a card-command line is that late answer, not the one to our `AT`.
        let card_lines = ["+CSIM:", "+CGLA:", "+CCHO:"];
        self.write_line("AT", "AT (resync)")?;
        let (mut answer, mut rest) =
            self.read_answer("AT (resync)", self.parser(&card_lines), &[], timeout)?;
        for _ in 0..4 {
            if answer.info.is_empty() {
                break;
            }
            tracing::debug!(modem = %self.label, late = %answer.summary(), "discarded a late answer");
            let remaining = deadline.saturating_duration_since(Instant::now());
            // The OK to our AT may have come in the same read as the late answer.
            (answer, rest) =
                self.read_answer("AT (resync)", self.parser(&card_lines), &rest, remaining)?;
        }
        if !answer.result.is_ok() || !answer.info.is_empty() {
            self.needs_resync = true;
            return Err(modem_error("AT (resync)", &answer));
        }
        // A stray final line could still trail the OK.
        self.drain(Duration::from_millis(50))?;
        self.needs_resync = false;
        Ok(())
    }

    /// Reads and discards until the line is quiet for [`QUIET`] or `limit` has passed.
    fn drain(&mut self, limit: Duration) -> Result<(), TransportError> {
        let deadline = Instant::now() + limit;
        let mut discarded = 0usize;
        for _ in 0..MAX_READS_PER_EXCHANGE {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            // What the modem sent may be a secret's hex: wiped at the end of each round.
            let mut buf = Zeroizing::new([0u8; READ_CHUNK]);
            match self.read_some(&mut buf[..], remaining.min(QUIET))? {
                0 => break,
                n => discarded += n,
            }
        }
        if discarded > 0 {
            tracing::debug!(modem = %self.label, bytes = discarded, "discarded stale modem output");
        }
        Ok(())
    }

    /// One read bounded by `timeout`: `Ok(0)` when nothing came in time, an error when the
    /// stream is closed or broken.
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, TransportError> {
        self.port
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.port.read(buf) {
            Ok(0) => Err(TransportError::Disconnected),
            // `min`: a port that claims more than the buffer holds must not make us panic.
            Ok(n) => Ok(n.min(buf.len())),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            // A pty whose other side is gone reads EIO; a closed socket resets.
            Err(err) if err.raw_os_error() == Some(nix::libc::EIO) => {
                Err(TransportError::Disconnected)
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Err(TransportError::Disconnected)
            }
            Err(err) => Err(TransportError::Io(err)),
        }
    }

    /// Writes `line` and collects the answer until its final result line or `timeout`.
    fn exchange(
        &mut self,
        line: &str,
        shown: &str,
        parser: AnswerParser,
        timeout: Duration,
    ) -> Result<Answer, TransportError> {
        self.write_line(line, shown)?;
        // Bytes after the final line are dropped: they came before any answer to the next command.
        self.read_answer(shown, parser, &[], timeout)
            .map(|(answer, _)| answer)
    }

    /// Writes `line` and the line terminator.
    fn write_line(&mut self, line: &str, shown: &str) -> Result<(), TransportError> {
        tracing::debug!(modem = %self.label, ">> {shown}");
        // The line may carry a secret's hex: one block of its final size, wiped when dropped.
        let mut bytes = Zeroizing::new(Vec::with_capacity(line.len() + 2));
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        if let Err(err) = self.port.write_all(&bytes).and_then(|_| self.port.flush()) {
            self.needs_resync = true;
            return Err(match err.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                    TransportError::Disconnected
                }
                _ if err.raw_os_error() == Some(nix::libc::EIO) => TransportError::Disconnected,
                _ => TransportError::Io(err),
            });
        }
        Ok(())
    }

    /// Feeds `already_read`, then reads until `parser` has a complete answer or `timeout` passes
    /// (nothing is written). Returns the answer and the bytes that followed its final line.
    fn read_answer(
        &mut self,
        shown: &str,
        mut parser: AnswerParser,
        already_read: &[u8],
        timeout: Duration,
    ) -> Result<(Answer, Zeroizing<Vec<u8>>), TransportError> {
        if let Ok(Progress::Done(answer)) = parser.feed(already_read) {
            return Ok((answer, Zeroizing::new(parser.leftover().to_vec())));
        }
        let deadline = Instant::now() + timeout;
        for _ in 0..MAX_READS_PER_EXCHANGE {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            // What the modem sent may be a secret's hex: wiped at the end of each round.
            let mut buf = Zeroizing::new([0u8; READ_CHUNK]);
            let n = match self.read_some(&mut buf[..], remaining) {
                Ok(n) => n,
                Err(err) => {
                    self.needs_resync = true;
                    return Err(err);
                }
            };
            if n == 0 {
                continue;
            }
            match parser.feed(&buf[..n]) {
                Ok(Progress::Done(answer)) => {
                    tracing::debug!(modem = %self.label, "<< {}", answer.summary());
                    if answer.skipped_count > 0 {
                        tracing::trace!(skipped = ?answer.skipped, "skipped echo/URC lines");
                    }
                    return Ok((answer, Zeroizing::new(parser.leftover().to_vec())));
                }
                Ok(Progress::NeedMore) => {}
                Err(err) => {
                    self.needs_resync = true;
                    return Err(TransportError::Protocol(format!("{shown}: {err}")));
                }
            }
        }
        self.needs_resync = true;
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

/// `+CME ERROR: 21` (27.007 "invalid index"), numeric or verbose: no channel with that session id.
fn is_invalid_index(result: &FinalResult) -> bool {
    matches!(result, FinalResult::CmeError(code)
        if code.trim() == "21" || code.trim().eq_ignore_ascii_case("invalid index"))
}

/// `+CME ERROR: 22` (27.007 "not found"), numeric or verbose: AT+CCHO found no applet with the AID.
fn is_not_found(result: &FinalResult) -> bool {
    matches!(result, FinalResult::CmeError(code)
        if code.trim() == "22" || code.trim().eq_ignore_ascii_case("not found"))
}

/// The error for a refused card command: a lost SIM (`+CME ERROR: 10` SIM not inserted, `13` SIM
/// failure, numeric or verbose) is [`TransportError::RemovedCard`], so that the session reconnects;
/// anything else is [`TransportError::Modem`] naming the command.
fn refusal(command: &str, answer: &Answer) -> TransportError {
    if let FinalResult::CmeError(code) = &answer.result {
        let code = code.trim().to_ascii_lowercase();
        if matches!(
            code.as_str(),
            "10" | "13" | "sim not inserted" | "sim failure"
        ) {
            tracing::warn!(command, answer = %answer.summary(), "the modem lost the SIM");
            return TransportError::RemovedCard;
        }
    }
    modem_error(command, answer)
}

fn modem_error(command: &str, answer: &Answer) -> TransportError {
    TransportError::Modem {
        command: command.to_string(),
        answer: answer.summary(),
    }
}

impl<P: AtPort> Drop for AtTransport<P> {
    /// Closes the channel still open with AT+CCHO and any stale one left from before a reconnect
    /// (best effort, short deadlines): SIMs have only a few logical channels, and a modem keeps
    /// them open across host programs.
    fn drop(&mut self) {
        self.retire_channel();
        if self.stale_channels.is_empty() {
            return;
        }
        if self.needs_resync {
            // A late answer may still be coming: let it pass first (a full resync takes too long
            // for a destructor). A port that is gone ends it here.
            if self.drain(QUIET).is_err() {
                return;
            }
            self.needs_resync = false;
        }
        self.close_stale_channels(DROP_CLOSE_TIMEOUT);
    }
}

impl<P: AtPort> Transport for AtTransport<P> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let timeout = self.options.deadlines.for_apdu(command);
        self.transmit_with_timeout(command, timeout)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            extended_length: false,
            max_command_data: self.quirks.max_command_data(),
            manages_channels: self.uses_logical_channel_commands(),
        }
    }

    fn open_channel(&mut self, aid: &[u8]) -> Result<Option<TransportChannel>, TransportError> {
        if !self.uses_logical_channel_commands() {
            return Ok(None);
        }
        if self.channel.is_some() {
            // One modem-managed channel at a time: close the old one rather than leak it.
            if let Err(err) = self.close_channel() {
                tracing::warn!(error = %err, "closing the previous channel failed");
            }
        }
        self.resync_if_needed()?;
        let line = framing::ccho_command(aid);
        let parser = self.parser(&["+CCHO:"]).accept_bare_number(true);
        let timeout = self.options.command_timeout;
        let answer = self.exchange(&line, &line, parser, timeout)?;
        if !answer.result.is_ok() {
            if let err @ TransportError::RemovedCard = refusal(&line, &answer) {
                return Err(err); // a lost SIM is no reason to give up on AT+CCHO
            }
            if is_not_found(&answer.result) {
                // AT+CCHO works, there is just no applet with this AID (27.007 `+CME ERROR: 22`):
                // no fallback, the session tries its next AID through AT+CCHO.
                return Err(modem_error(&line, &answer));
            }
            if self.options.mode == AtMode::Auto {
                tracing::warn!(
                    command = %line,
                    answer = %answer.summary(),
                    "the modem refused AT+CCHO; falling back to AT+CSIM for this modem"
                );
                self.cgla = Support::No;
                return Ok(None);
            }
            return Err(modem_error(&line, &answer));
        }
        let session = answer
            .info
            .last()
            .and_then(|l| parser::parse_session_id(l))
            .ok_or_else(|| {
                TransportError::Protocol(format!(
                    "{line}: no session id in the answer {:?}",
                    answer.summary()
                ))
            })?;
        self.channel = Some(session);
        // 27.007 leaves the channel number to the modem; the session id is not the channel number.
        Ok(Some(TransportChannel { number: None }))
    }

    fn close_channel(&mut self) -> Result<(), TransportError> {
        let Some(session) = self.channel.take() else {
            return Ok(());
        };
        let line = framing::cchc_command(session);
        let timeout = self.options.command_timeout;
        let answer = match self
            .resync_if_needed()
            .and_then(|()| self.exchange(&line, &line, self.parser(&["+CCHC:"]), timeout))
        {
            Ok(answer) => answer,
            Err(err) => {
                // Unanswered: the card may still hold it; the next reconnect or the drop retries.
                self.remember_stale(session);
                return Err(err);
            }
        };
        if answer.result.is_ok() {
            Ok(())
        } else {
            Err(modem_error(&line, &answer))
        }
    }

    /// Resynchronises with the modem, or opens the port again (when it can) if the modem does not
    /// answer. Either way the channel of the old session is then closed with AT+CCHC (best effort,
    /// bounded): the session opens a new one, and a port that dropped did not reset the SIM.
    fn reconnect(&mut self) -> Result<(), TransportError> {
        // The SIM or the modem may have been reset: the session opens a new channel either way.
        self.retire_channel();
        self.needs_resync = false;
        // resync first: it recognises a late answer to a timed-out command, which wait_ready's
        // ATE0 could otherwise take for its own OK.
        if let Err(err) = self.resync().and_then(|()| self.wait_ready()) {
            let Some(reopen) = self.reopen.as_mut() else {
                return Err(err);
            };
            tracing::debug!(modem = %self.label, error = %err, "modem unresponsive; opening the port again");
            self.port = reopen()?;
            self.needs_resync = false;
            self.drain(QUIET)?;
            self.wait_ready()?;
        }
        // A failure here leaves the channel for later and needs_resync set for the next command;
        // the link itself is up again.
        self.close_stale_channels(self.options.command_timeout.min(Duration::from_secs(2)));
        Ok(())
    }

    fn describe(&self) -> String {
        let commands = if self.uses_logical_channel_commands() {
            "AT+CCHO/AT+CGLA"
        } else {
            "AT+CSIM"
        };
        format!("AT modem {} ({}, {commands})", self.label, self.quirks.name)
    }
}
