//! A cellular modem emulation: the card behind `AT+CSIM` and `AT+CCHO`/`AT+CGLA`/`AT+CCHC`.
//!
//! [`AtModem`] speaks AT over any byte stream ([`AtModem::serve`]); [`super::pty`] and
//! [`super::tcp`] give it a device node or a socket. Lines end in `\r`, `\n` or `\r\n`; echo is on
//! until `ATE0`, as on real modems, and repeats the line with the character that ended it (the
//! `\n` of a `\r\n` pair is swallowed, not echoed). Answers use the V.250 verbose format:
//! `\r\n+CSIM: 6,"019000"\r\n\r\nOK\r\n`. Besides the SIM commands the modem knows `AT`,
//! `ATE0`/`ATE1`, `ATZ`/`AT&F`, `ATI`, `AT+CMEE=0|1|2`, `AT+CPIN?` and `AT+CFUN`, so ordinary
//! modem start-up sequences work, plus `AT#CHANNELS?` (answered `#CHANNELS: <n>`, the card's own
//! count of open logical channels besides the basic one) for tests that check nothing leaked.
//!
//! Several [`AtModem`]s can share one modem ([`SharedModem`]): the TCP front end serves every
//! connection at once, each with its own AT parser (echo, `AT+CMEE`, `AT+CCHO` sessions), all in
//! front of the same SIM. A SIM reset from one (`AT+CFUN=1,1`) voids the sessions of all.
//!
//! `AT+CFUN`: `=0` powers the SIM off (card commands and `AT+CPIN?` then answer
//! `+CME ERROR: 13`), `=1` (or `=4`, radio off) powers it on again, `=1,1` (or `=4,1`) resets the
//! modem with the SIM: the card is power-cycled, so its logical channels, sessions and (by default)
//! volatile keys are gone, and every connection's settings (echo, `AT+CMEE`) go back to the
//! modem's start values ([`AtOptions::echo`], [`AtOptions::cmee`]), as a restarted modem's do. The
//! connections stay up; the result `OK` comes once the SIM is back.
//!
//! Error reports: `AT+CMEE` starts at [`AtOptions::cmee`] (1 here; most real modems come up at
//! 0, every failure a plain `ERROR`); [`AtOptions::cmee_settable`] off makes a modem that refuses
//! `AT+CMEE`. [`AtOptions::busy_after_reset`] answers the first AT+CCHO after a SIM reset
//! `+CME ERROR: 14` (SIM busy), as a SIM still starting up.
//!
//! Choices where real modems differ, fixed here so hosts can be tested against them:
//! - A malformed command (bad syntax, odd or non-hex payload, a length that does not equal the
//!   number of hex characters, a line over [`AtOptions::max_line`] bytes, a line not starting
//!   with `AT`) is answered `ERROR`, like a syntax error, not `+CME ERROR`.
//! - An unknown command, or one switched off in [`AtOptions`] (`csim`, `cgla`), is `ERROR`.
//! - Card failures are `+CME ERROR: <n>` (plain `ERROR` after `AT+CMEE=0`), see [`cme`].
//! - When the card acts out [`Reply::Disconnect`](crate::Reply::Disconnect) (the SIM is lost),
//!   the command is answered `+CME ERROR: 13` (SIM failure) at once, so the host fails fast
//!   instead of waiting out its deadline. The modem forgets its logical channels and powers the
//!   card off; the next card command powers it on again (the SIM is detected anew).
//!
//! Serial time: when the card's latency model has a serial link ([`crate::Latency::serial`],
//! read through [`crate::CardHandler::serial_link`] when a connection starts), the modem charges
//! the UART's time of every byte it actually receives (whole command lines, `\r` included, for
//! every command, `ATE0` as much as `AT+CSIM`) and of every byte it writes back (echo, information
//! lines, result codes, URCs, a late answer): it acts on a line only once the line's last byte
//! is in, and writes an answer only when its last byte would be out. The link is full duplex, so
//! the echo goes out while the line comes in. The card's own latency comes on top, inside the card.

mod channel;
mod command;
mod fault;

mod line;
mod modem_apdu;
mod state;
mod uart;

use line::LineBuffer;
use uart::Uart;

pub use channel::{cla_for_channel, Session, Sessions, MAX_CHANNEL};
pub use command::{parse, Command, TestedCommand};
pub use fault::{garbage_line, AtFault, AtInjection, UrcPlan};
pub use state::{DropPlan, DropWhen, SharedModem};

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{exchange, lock, read_wakes_up, Exchange, FrontendHandle, SharedCard};

/// An AT modem (pty or TCP) running on its own thread; `stop()` ends it.
pub type AtHandle = FrontendHandle;

/// `+CME ERROR` codes this modem uses (3GPP TS 27.007 §9.2).
pub mod cme {
    /// The card refused to open a logical channel (`AT+CCHO`), or to close one (`AT+CCHC`).
    pub const OPERATION_NOT_SUPPORTED: u16 = 4;
    /// The SIM was lost (the card acted out a removal).
    pub const SIM_FAILURE: u16 = 13;
    /// The SIM is still starting after a reset ([`super::AtOptions::busy_after_reset`]).
    pub const SIM_BUSY: u16 = 14;
    /// `AT+CGLA`/`AT+CCHC` with a session id that is not open.
    pub const INVALID_INDEX: u16 = 21;
    /// `AT+CCHO`: the card has no application with that AID (SELECT failed).
    pub const NOT_FOUND: u16 = 22;

    /// The verbose text of a code, for `AT+CMEE=2`.
    pub fn text(code: u16) -> &'static str {
        match code {
            0 => "phone failure",
            3 => "operation not allowed",
            OPERATION_NOT_SUPPORTED => "operation not supported",
            10 => "SIM not inserted",
            SIM_FAILURE => "SIM failure",
            SIM_BUSY => "SIM busy",
            20 => "memory full",
            INVALID_INDEX => "invalid index",
            NOT_FOUND => "not found",
            50 => "incorrect parameters",
            _ => "unknown",
        }
    }
}

/// How the emulated modem behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtOptions {
    /// Echo at start and after `ATZ` (real modems: on).
    pub echo: bool,
    /// Whether `AT+CSIM` is supported (switch off to test a host's fallback).
    pub csim: bool,
    /// Whether `AT+CCHO`/`AT+CGLA`/`AT+CCHC` are supported (switch off to test a host's fallback).
    pub cgla: bool,
    /// A fault to inject into card commands.
    pub inject: Option<AtInjection>,
    /// Unsolicited result codes to write before some answers.
    pub urc: Option<UrcPlan>,
    /// The longest command line; a longer one is answered `ERROR`.
    pub max_line: usize,
    /// How often a blocked read wakes up to look at the stop flag.
    pub poll_interval: Duration,
    /// How long an answer waits for a host that does not read; then it is dropped (pty) or the
    /// connection is closed (TCP).
    pub write_timeout: Duration,
    /// The `ATI` answer.
    pub identity: String,
    /// Drop the host's connection every N card commands, keeping the SIM's state ([`DropPlan`]).
    pub drop_every: Option<DropPlan>,
    /// The `AT+CMEE` mode at start, after `ATZ` and after a modem reset (`AT+CFUN=1,1`): 0 plain
    /// `ERROR` (the factory default of most real modems), 1 numeric `+CME ERROR: <n>`, 2 verbose.
    pub cmee: u8,
    /// Whether `AT+CMEE=<n>` is taken; off, it is answered `ERROR` and the mode stays [`Self::cmee`].
    pub cmee_settable: bool,
    /// The first this many `AT+CCHO` after each SIM reset (`AT+CFUN=1,1`, `AT+CFUN=0` then on, a
    /// lost SIM) answer `+CME ERROR: 14` (SIM busy) without reaching the card.
    pub busy_after_reset: u32,
}

impl Default for AtOptions {
    fn default() -> Self {
        Self {
            echo: true,
            csim: true,
            cgla: true,
            inject: None,
            urc: None,
            max_line: 8 * 1024,
            poll_interval: Duration::from_millis(100),
            write_timeout: Duration::from_secs(5),
            identity: "iotsafe-vcard virtual modem".to_owned(),
            drop_every: None,
            cmee: 1,
            cmee_settable: true,
            busy_after_reset: 0,
        }
    }
}

/// The final result code of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    Ok,
    Error,
    Cme(u16),
    /// No answer at all.
    Silence,
}

/// Information lines and the final result code of one command.
#[derive(Debug)]
struct Answer {
    lines: Vec<String>,
    result: Final,
}

impl Answer {
    fn ok() -> Self {
        Self::with(Vec::new(), Final::Ok)
    }
    fn with(lines: Vec<String>, result: Final) -> Self {
        Self { lines, result }
    }
    fn result(result: Final) -> Self {
        Self::with(Vec::new(), result)
    }
}

/// Why a card command stopped early.
enum CardError {
    /// The SIM is gone ([`Exchange::Disconnect`]).
    Lost,
}

/// One emulated modem connection: AT parser, echo, logical-channel sessions, fault plan, in front
/// of a SIM whose power it shares with the other connections of the same [`SharedModem`].
pub struct AtModem {
    card: SharedCard,
    options: AtOptions,
    modem: SharedModem,
    echo: bool,
    /// `AT+CMEE` mode: 0 plain `ERROR`, 1 numeric, 2 verbose.
    cmee: u8,
    sessions: Sessions,
    /// The modem's SIM epoch the sessions belong to; when it moves on, they are void.
    epoch: u64,
    /// The modem restarts seen; when the modem's count moves on, the settings go back to the
    /// start values.
    restarts: u64,
    /// The rendered answer of a command the fault plan made late ([`AtFault::Late`]): written
    /// just before the answer to the host's next line.
    held: Option<Vec<u8>>,
    commands: u64,
    card_commands: u64,
    /// The modem dropped this connection ([`AtOptions::drop_every`]).
    hung_up: bool,
    /// The answer being made is to be held back ([`AtFault::Late`]).
    hold_answer: bool,
    line: LineBuffer,
    /// The serial time of the bytes in and out ([`crate::Latency::serial`]).
    uart: Uart,
}

impl AtModem {
    /// A modem of its own in front of `card`. The card is powered on at the first card command.
    pub fn new(card: SharedCard, options: AtOptions) -> Self {
        Self::attached(card, options, &SharedModem::new())
    }

    /// Another connection of `modem` (same SIM power, `AT+CFUN` level and drop count). It takes over
    /// the `AT+CCHO` sessions of a connection the modem dropped. The serial link of the card's
    /// latency model ([`crate::CardHandler::serial_link`]) is read now and charged on every byte
    /// in and out of this connection.
    pub fn attached(card: SharedCard, options: AtOptions, modem: &SharedModem) -> Self {
        let uart = Uart::new(lock(&card).serial_link());
        let mut sessions = Sessions::default();
        let (epoch, restarts) = {
            let mut state = modem.lock();
            sessions.adopt(std::mem::take(&mut state.orphans));
            (state.epoch, state.restarts)
        };
        Self {
            card,
            echo: options.echo,
            cmee: options.cmee,
            modem: modem.clone(),
            sessions,
            epoch,
            restarts,
            held: None,
            commands: 0,
            card_commands: 0,
            hung_up: false,
            hold_answer: false,
            line: LineBuffer::default(),
            uart,
            options,
        }
    }

    /// The open `AT+CCHO` sessions of this connection.
    pub fn sessions(&self) -> Sessions {
        let mut sessions = self.sessions.clone();
        if self.modem.lock().epoch != self.epoch {
            sessions.take_all();
        }
        sessions
    }

    /// Whether the modem dropped this connection on purpose ([`AtOptions::drop_every`]); the front
    /// end then closes it and serves the next one.
    pub fn hung_up(&self) -> bool {
        self.hung_up
    }

    /// Serves `port` until `stop` is raised, the host closes it (end of file) or the modem drops it
    /// ([`AtModem::hung_up`]). Reads that time out (`WouldBlock`, `TimedOut`) just let the stop flag
    /// be checked; other I/O errors end it.
    pub fn serve<S: Read + Write>(&mut self, port: &mut S, stop: &AtomicBool) -> io::Result<()> {
        let mut buf = [0u8; 1024];
        while !stop.load(Ordering::Relaxed) && !self.hung_up {
            match port.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.feed(buf.get(..n).unwrap_or_default(), port, stop)?,
                Err(err) if read_wakes_up(&err) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Takes bytes from the host and writes the echo and answers to `out`. The echo of a line is
    /// flushed before its command runs, so a slow card shows up as a slow answer, not a slow echo.
    /// Once the modem drops the connection ([`AtModem::hung_up`]) the rest of the input is ignored.
    ///
    /// With a serial link, `input` starts coming in now: each line is acted on once its last
    /// byte is in, and each write waits until its last byte is out (see the module's "Serial
    /// time").
    pub fn feed<W: Write>(
        &mut self,
        input: &[u8],
        out: &mut W,
        stop: &AtomicBool,
    ) -> io::Result<()> {
        let chunk = self.uart.receive(input.len());
        for (taken, &byte) in (1..).zip(input) {
            if self.hung_up {
                break;
            }
            let Some(line) = self.line.push(byte, self.options.max_line) else {
                continue;
            };
            // Nothing happens before the line's last byte is in.
            let arrived = self.uart.arrival(chunk, taken);
            self.uart.wait_for_line(arrived, stop);
            // A late answer comes before anything the modem says about the next line.
            if let Some(held) = self.held.take() {
                self.uart.send(held.len(), stop);
                out.write_all(&held)?;
            }
            self.sync_restart();
            if self.echo {
                let echoed = line.text.len().saturating_add(1);
                self.uart.echo(echoed, arrived, stop);
                out.write_all(&line.text)?;
                out.write_all(&[line.terminator])?;
                out.flush()?;
            }
            if line.text.is_empty() && !line.overflowed {
                continue;
            }
            let answer = if line.overflowed {
                self.commands += 1;
                Answer::result(Final::Error)
            } else {
                self.command(&line.text, stop)
            };
            if self.hung_up && self.dropped_before_answer() {
                break;
            }
            let rendered = self.render(answer);
            if std::mem::take(&mut self.hold_answer) {
                self.held = Some(rendered);
                continue;
            }
            self.uart.send(rendered.len(), stop);
            out.write_all(&rendered)?;
            out.flush()?;
        }
        Ok(())
    }

    fn dropped_before_answer(&self) -> bool {
        matches!(
            self.options.drop_every,
            Some(DropPlan {
                when: DropWhen::BeforeAnswer,
                ..
            })
        )
    }

    /// Closes every open session of this connection on the card (a host went away; its channels
    /// would leak). Sessions voided by a SIM reset are only forgotten.
    pub fn close_all_sessions(&mut self, stop: &AtomicBool) {
        self.sync_epoch();
        for session in self.sessions.take_all() {
            let _ = self.transmit(&modem_apdu::close_channel(session.channel), stop);
        }
    }

    /// What a front end calls when the connection is over: a host that left gets its channels
    /// closed ([`AtModem::close_all_sessions`]); a connection the modem dropped leaves them open for
    /// the next connection to take over.
    pub fn finish(&mut self, stop: &AtomicBool) {
        if self.hung_up {
            self.sync_epoch();
            let sessions = self.sessions.take_all();
            self.modem.lock().orphans.extend(sessions);
        } else {
            self.close_all_sessions(stop);
        }
    }

    /// Back to the start settings when the modem restarted (`AT+CFUN=1,1` on any connection).
    fn sync_restart(&mut self) {
        let restarts = self.modem.lock().restarts;
        if restarts != self.restarts {
            self.restarts = restarts;
            self.echo = self.options.echo;
            self.cmee = self.options.cmee;
        }
    }

    /// Forgets the sessions when the SIM lost its channels since they were opened.
    fn sync_epoch(&mut self) {
        let epoch = self.modem.lock().epoch;
        if epoch != self.epoch {
            self.sessions.take_all();
            self.epoch = epoch;
        }
    }

    /// Runs one command line and returns its answer (URC and faults included).
    fn command(&mut self, line: &[u8], stop: &AtomicBool) -> Answer {
        self.commands += 1;
        self.sync_epoch();
        let command = parse(line);
        let is_card_command = match command {
            Command::Csim(_) => self.options.csim,
            Command::Ccho(_) | Command::Cgla(..) | Command::Cchc(_) => self.options.cgla,
            _ => false,
        };
        let mut answer = if is_card_command {
            self.card_commands += 1;
            let total = {
                let mut state = self.modem.lock();
                state.card_commands += 1;
                state.card_commands
            };
            let answer = self.card_command_with_faults(command, stop);
            if self
                .options
                .drop_every
                .is_some_and(|plan| plan.fires(total))
            {
                tracing::info!(command = total, "modem drops the connection (planned)");
                self.hung_up = true;
            }
            answer
        } else {
            self.modem_command(command)
        };
        let urc = self.options.urc.as_ref();
        if let Some(code) = urc.and_then(|plan| plan.line_for(self.commands)) {
            answer.lines.insert(0, code.to_owned());
        }
        answer
    }

    /// A card command, unless the fault plan answers it instead (or truncates its answer).
    fn card_command_with_faults(&mut self, command: Command, stop: &AtomicBool) -> Answer {
        if self.modem.lock().fun == 0 {
            // The SIM is switched off (`AT+CFUN=0`).
            return Answer::result(Final::Cme(cme::SIM_FAILURE));
        }
        let fault = self
            .options
            .inject
            .as_ref()
            .filter(|plan| plan.fires(self.card_commands))
            .map(|plan| plan.fault.clone());
        let Some(fault) = fault else {
            return self.card_command(command, stop);
        };
        tracing::info!(?fault, command = self.card_commands, "AT fault injected");
        match fault {
            AtFault::Error => Answer::result(Final::Error),
            AtFault::CmeError(code) => Answer::result(Final::Cme(code)),
            AtFault::Garbage => Answer::with(vec![garbage_line(self.card_commands)], Final::Ok),
            AtFault::Silence => Answer::result(Final::Silence),
            AtFault::Late => {
                self.hold_answer = true;
                self.card_command(command, stop)
            }
            AtFault::Truncate(keep) => {
                let mut answer = self.card_command(command, stop);
                for line in &mut answer.lines {
                    *line = fault::truncate_data_line(line, keep);
                }
                answer
            }
        }
    }

    /// Commands the modem answers itself.
    fn modem_command(&mut self, command: Command) -> Answer {
        match command {
            Command::Attention => Answer::ok(),
            Command::Echo(on) => {
                self.echo = on;
                Answer::ok()
            }
            Command::Reset => {
                self.echo = self.options.echo;
                self.cmee = self.options.cmee;
                Answer::ok()
            }
            Command::Identify => Answer::with(vec![self.options.identity.clone()], Final::Ok),
            Command::ReportErrors(mode) if self.options.cmee_settable => {
                self.cmee = mode;
                Answer::ok()
            }
            Command::PinStatus if self.modem.lock().fun == 0 => {
                Answer::result(Final::Cme(cme::SIM_FAILURE))
            }
            Command::PinStatus => Answer::with(vec!["+CPIN: READY".to_owned()], Final::Ok),
            Command::SetFunctionality { fun, reset } => self.set_functionality(fun, reset),
            Command::FunctionalityStatus => Answer::with(
                vec![format!("+CFUN: {}", self.modem.functionality())],
                Final::Ok,
            ),
            Command::ChannelCount => match lock(&self.card).open_channel_count() {
                Some(n) => Answer::with(vec![format!("#CHANNELS: {n}")], Final::Ok),
                None => Answer::result(Final::Error),
            },
            Command::Test(TestedCommand::Csim) if self.options.csim => Answer::ok(),
            Command::Test(TestedCommand::LogicalChannels) if self.options.cgla => Answer::ok(),
            Command::Test(TestedCommand::Functionality) => {
                Answer::with(vec!["+CFUN: (0,1,4),(0,1)".to_owned()], Final::Ok)
            }
            _ => Answer::result(Final::Error),
        }
    }

    /// `AT+CFUN=<fun>[,<rst>]`: powers the SIM off (0), on (1, 4), or power-cycles it (`<rst>`=1).
    fn set_functionality(&mut self, fun: u8, reset: bool) -> Answer {
        let mut state = self.modem.lock();
        let mut card = lock(&self.card);
        if reset || fun == 0 {
            if state.powered || reset {
                card.power_off();
                state.powered = false;
            }
            state.channels_lost();
        }
        if reset {
            state.restarts = state.restarts.wrapping_add(1);
        }
        if fun != 0 && !state.powered {
            card.power_on();
            state.powered = true;
        }
        state.fun = fun;
        drop(card);
        drop(state);
        self.sync_epoch();
        self.sync_restart();
        Answer::ok()
    }

    /// Commands that reach the card.
    fn card_command(&mut self, command: Command, stop: &AtomicBool) -> Answer {
        let result = match command {
            Command::Csim(apdu) => self.csim(&apdu, stop),
            Command::Ccho(_) if self.sim_busy() => {
                tracing::info!("SIM busy after a reset; AT+CCHO refused");
                Ok(Answer::result(Final::Cme(cme::SIM_BUSY)))
            }
            Command::Ccho(aid) => self.ccho(&aid, stop),
            Command::Cgla(id, apdu) => self.cgla(id, apdu, stop),
            Command::Cchc(id) => self.cchc(id, stop),
            _ => Ok(Answer::result(Final::Error)),
        };
        result.unwrap_or_else(|CardError::Lost| {
            tracing::info!("SIM lost (card removed); answering SIM failure");
            self.sessions.take_all();
            {
                let mut state = self.modem.lock();
                state.powered = false;
                state.channels_lost();
                lock(&self.card).power_off();
                self.epoch = state.epoch;
            }
            Answer::result(Final::Cme(cme::SIM_FAILURE))
        })
    }

    /// Whether this AT+CCHO is one of the first [`AtOptions::busy_after_reset`] since the SIM's
    /// last reset (counted over all connections).
    fn sim_busy(&self) -> bool {
        let mut state = self.modem.lock();
        let Some(count) = state.cchos_since_reset.as_mut() else {
            return false;
        };
        *count += 1;
        *count <= u64::from(self.options.busy_after_reset)
    }

    fn csim(&mut self, apdu: &[u8], stop: &AtomicBool) -> Result<Answer, CardError> {
        let response = self.transmit(apdu, stop)?;
        Ok(data_answer("+CSIM", &response))
    }

    fn ccho(&mut self, aid: &[u8], stop: &AtomicBool) -> Result<Answer, CardError> {
        let opened = self.transmit_case2(modem_apdu::OPEN_CHANNEL, stop)?;
        let channel = match opened[..] {
            [ch, 0x90, 0x00] if (1..=MAX_CHANNEL).contains(&ch) => ch,
            _ => {
                tracing::debug!(response = %crate::hex::encode_upper(&opened), "MANAGE CHANNEL open refused");
                return Ok(Answer::result(Final::Cme(cme::OPERATION_NOT_SUPPORTED)));
            }
        };
        let selected = self.transmit(&modem_apdu::select_on_channel(channel, aid), stop)?;
        // 9000, or FCI waiting (61xx), or a warning (62xx/63xx): the application is there.
        if let [.., sw1, _] = selected[..] {
            if selected.ends_with(&[0x90, 0x00]) || matches!(sw1, 0x61..=0x63) {
                let id = self.sessions.add(channel);
                return Ok(Answer::with(vec![format!("+CCHO: {id}")], Final::Ok));
            }
        }
        tracing::debug!(response = %crate::hex::encode_upper(&selected), "SELECT on new channel failed");
        self.transmit(&modem_apdu::close_channel(channel), stop)?;
        Ok(Answer::result(Final::Cme(cme::NOT_FOUND)))
    }

    fn cgla(&mut self, id: u32, mut apdu: Vec<u8>, stop: &AtomicBool) -> Result<Answer, CardError> {
        let Some(channel) = self.sessions.channel(id) else {
            return Ok(Answer::result(Final::Cme(cme::INVALID_INDEX)));
        };
        if let Some(cla) = apdu.first_mut() {
            *cla = cla_for_channel(*cla, channel).unwrap_or(*cla);
        }
        let response = self.transmit(&apdu, stop)?;
        Ok(data_answer("+CGLA", &response))
    }

    fn cchc(&mut self, id: u32, stop: &AtomicBool) -> Result<Answer, CardError> {
        let Some(channel) = self.sessions.remove(id) else {
            return Ok(Answer::result(Final::Cme(cme::INVALID_INDEX)));
        };
        let response = self.transmit(&modem_apdu::close_channel(channel), stop)?;
        Ok(if response.ends_with(&[0x90, 0x00]) {
            Answer::ok()
        } else {
            Answer::result(Final::Cme(cme::OPERATION_NOT_SUPPORTED))
        })
    }

    /// One APDU to the card, powering it on first if the modem has not yet.
    fn transmit(&mut self, apdu: &[u8], stop: &AtomicBool) -> Result<Vec<u8>, CardError> {
        {
            let mut state = self.modem.lock();
            if !state.powered {
                lock(&self.card).power_on();
                state.powered = true;
            }
        }
        match exchange(&self.card, apdu, stop) {
            Exchange::Answer(response) => Ok(response),
            Exchange::Disconnect => Err(CardError::Lost),
        }
    }

    /// A case 2 command the modem sends itself: follows `61xx` with GET RESPONSE and `6Cxx` with
    /// the right Le, as a T=0 card wants.
    fn transmit_case2(&mut self, apdu: [u8; 5], stop: &AtomicBool) -> Result<Vec<u8>, CardError> {
        let [cla, ins, p1, p2, _] = apdu;
        let response = self.transmit(&apdu, stop)?;
        match response[..] {
            [0x61, le] => self.transmit(&modem_apdu::get_response(cla, le), stop),
            [0x6C, le] => self.transmit(&[cla, ins, p1, p2, le], stop),
            _ => Ok(response),
        }
    }

    /// The bytes of an answer: information lines, then the final result code.
    fn render(&self, answer: Answer) -> Vec<u8> {
        let mut out = String::new();
        for line in &answer.lines {
            out.push_str("\r\n");
            out.push_str(line);
            out.push_str("\r\n");
        }
        let result = match answer.result {
            Final::Ok => "OK".to_owned(),
            Final::Error => "ERROR".to_owned(),
            Final::Cme(_) if self.cmee == 0 => "ERROR".to_owned(),
            Final::Cme(code) if self.cmee == 2 => format!("+CME ERROR: {}", cme::text(code)),
            Final::Cme(code) => format!("+CME ERROR: {code}"),
            Final::Silence => String::new(),
        };
        if !result.is_empty() {
            out.push_str("\r\n");
            out.push_str(&result);
            out.push_str("\r\n");
        }
        out.into_bytes()
    }
}

/// `+CSIM: <n>,"<HEX>"` / `+CGLA: …` then OK; `<n>` counts hex characters.
fn data_answer(prefix: &str, response: &[u8]) -> Answer {
    let hex = crate::hex::encode_upper(response);
    Answer::with(
        vec![format!("{prefix}: {},\"{hex}\"", hex.len())],
        Final::Ok,
    )
}

#[cfg(test)]
mod tests;
