//! A cellular modem emulation: the card behind `AT+CSIM` and `AT+CCHO`/`AT+CGLA`/`AT+CCHC`.
//!
//! [`AtModem`] speaks AT over any byte stream ([`AtModem::serve`]); [`super::pty`] and
//! [`super::tcp`] give it a device node or a socket. Lines end in `\r`, `\n` or `\r\n`; echo is on
//! until `ATE0`, as on real modems, and repeats the line with the character that ended it (the
//! `\n` of a `\r\n` pair is swallowed, not echoed). Answers use the V.250 verbose format:
//! `\r\n+CSIM: 6,"019000"\r\n\r\nOK\r\n`. Besides the SIM commands the modem knows `AT`,
//! `ATE0`/`ATE1`, `ATZ`/`AT&F`, `ATI`, `AT+CMEE=0|1|2` and `AT+CPIN?`, so ordinary modem start-up
//! sequences work.
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

mod channel;
mod command;
mod fault;

pub use channel::{cla_for_channel, Session, Sessions, MAX_CHANNEL};
pub use command::{decode_hex, encode_hex, parse, Command, TestedCommand};
pub use fault::{garbage_line, AtFault, AtInjection, UrcPlan};

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{exchange, lock, Exchange, FrontendHandle, SharedCard};

/// An AT modem (pty or TCP) running on its own thread; `stop()` ends it.
pub type AtHandle = FrontendHandle;

/// `+CME ERROR` codes this modem uses (3GPP TS 27.007 §9.2).
pub mod cme {
    /// The card refused to open a logical channel (`AT+CCHO`), or to close one (`AT+CCHC`).
    pub const OPERATION_NOT_SUPPORTED: u16 = 4;
    /// The SIM was lost (the card acted out a removal).
    pub const SIM_FAILURE: u16 = 13;
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
            14 => "SIM busy",
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

/// One emulated modem: AT parser, echo, logical-channel sessions, fault plan.
pub struct AtModem {
    card: SharedCard,
    options: AtOptions,
    echo: bool,
    /// `AT+CMEE` mode: 0 plain `ERROR`, 1 numeric, 2 verbose.
    cmee: u8,
    sessions: Sessions,
    /// Whether the modem has powered the SIM on.
    powered: bool,
    commands: u64,
    card_commands: u64,
    line: LineBuffer,
}

impl AtModem {
    /// A modem in front of `card`. The card is powered on at the first card command.
    pub fn new(card: SharedCard, options: AtOptions) -> Self {
        Self {
            card,
            echo: options.echo,
            cmee: 1,
            sessions: Sessions::default(),
            powered: false,
            commands: 0,
            card_commands: 0,
            line: LineBuffer::default(),
            options,
        }
    }

    /// The open `AT+CCHO` sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Serves `port` until `stop` is raised or the host closes it (end of file). Reads that time
    /// out (`WouldBlock`, `TimedOut`) just let the stop flag be checked; other I/O errors end it.
    pub fn serve<S: Read + Write>(&mut self, port: &mut S, stop: &AtomicBool) -> io::Result<()> {
        let mut buf = [0u8; 1024];
        while !stop.load(Ordering::Relaxed) {
            match port.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.feed(buf.get(..n).unwrap_or_default(), port, stop)?,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Takes bytes from the host and writes the echo and answers to `out`. The echo of a line is
    /// flushed before its command runs, so a slow card shows up as a slow answer, not a slow echo.
    pub fn feed<W: Write>(
        &mut self,
        input: &[u8],
        out: &mut W,
        stop: &AtomicBool,
    ) -> io::Result<()> {
        for &byte in input {
            let Some(line) = self.line.push(byte, self.options.max_line) else {
                continue;
            };
            if self.echo {
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
            out.write_all(&self.render(answer))?;
            out.flush()?;
        }
        Ok(())
    }

    /// Closes every open session on the card (a host went away; its channels would leak).
    pub fn close_all_sessions(&mut self, stop: &AtomicBool) {
        for session in self.sessions.take_all() {
            let _ = self.transmit(&[0x00, 0x70, 0x80, session.channel], stop);
        }
    }

    /// Runs one command line and returns its answer (URC and faults included).
    fn command(&mut self, line: &[u8], stop: &AtomicBool) -> Answer {
        self.commands += 1;
        let command = parse(line);
        let is_card_command = match command {
            Command::Csim(_) => self.options.csim,
            Command::Ccho(_) | Command::Cgla(..) | Command::Cchc(_) => self.options.cgla,
            _ => false,
        };
        let mut answer = if is_card_command {
            self.card_commands += 1;
            match self.injected_fault() {
                Some(answer) => answer,
                None => self.card_command(command, stop),
            }
        } else {
            self.modem_command(command)
        };
        let urc = self.options.urc.as_ref();
        if let Some(code) = urc.and_then(|plan| plan.line_for(self.commands)) {
            answer.lines.insert(0, code.to_owned());
        }
        answer
    }

    fn injected_fault(&self) -> Option<Answer> {
        let plan = self.options.inject.as_ref()?;
        if !plan.fires(self.card_commands) {
            return None;
        }
        tracing::info!(fault = ?plan.fault, command = self.card_commands, "AT fault injected");
        Some(match plan.fault {
            AtFault::Error => Answer::result(Final::Error),
            AtFault::CmeError(code) => Answer::result(Final::Cme(code)),
            AtFault::Garbage => Answer::with(vec![garbage_line(self.card_commands)], Final::Ok),
            AtFault::Silence => Answer::result(Final::Silence),
        })
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
                self.cmee = 1;
                Answer::ok()
            }
            Command::Identify => Answer::with(vec![self.options.identity.clone()], Final::Ok),
            Command::ReportErrors(mode) => {
                self.cmee = mode;
                Answer::ok()
            }
            Command::PinStatus => Answer::with(vec!["+CPIN: READY".to_owned()], Final::Ok),
            Command::Test(TestedCommand::Csim) if self.options.csim => Answer::ok(),
            Command::Test(TestedCommand::LogicalChannels) if self.options.cgla => Answer::ok(),
            _ => Answer::result(Final::Error),
        }
    }

    /// Commands that reach the card.
    fn card_command(&mut self, command: Command, stop: &AtomicBool) -> Answer {
        let result = match command {
            Command::Csim(apdu) => self.csim(&apdu, stop),
            Command::Ccho(aid) => self.ccho(&aid, stop),
            Command::Cgla(id, apdu) => self.cgla(id, apdu, stop),
            Command::Cchc(id) => self.cchc(id, stop),
            _ => Ok(Answer::result(Final::Error)),
        };
        result.unwrap_or_else(|CardError::Lost| {
            tracing::info!("SIM lost (card removed); answering SIM failure");
            self.sessions.take_all();
            self.powered = false;
            lock(&self.card).power_off();
            Answer::result(Final::Cme(cme::SIM_FAILURE))
        })
    }

    fn csim(&mut self, apdu: &[u8], stop: &AtomicBool) -> Result<Answer, CardError> {
        let response = self.transmit(apdu, stop)?;
        Ok(data_answer("+CSIM", &response))
    }

    fn ccho(&mut self, aid: &[u8], stop: &AtomicBool) -> Result<Answer, CardError> {
        let opened = self.transmit_case2([0x00, 0x70, 0x00, 0x00, 0x01], stop)?;
        let channel = match opened[..] {
            [ch, 0x90, 0x00] if (1..=MAX_CHANNEL).contains(&ch) => ch,
            _ => {
                tracing::debug!(response = %encode_hex(&opened), "MANAGE CHANNEL open refused");
                return Ok(Answer::result(Final::Cme(cme::OPERATION_NOT_SUPPORTED)));
            }
        };
        let cla = cla_for_channel(0x00, channel).unwrap_or(channel);
        let mut select = vec![cla, 0xA4, 0x04, 0x00, aid.len() as u8];
        select.extend_from_slice(aid);
        let selected = self.transmit(&select, stop)?;
        // 9000, or FCI waiting (61xx), or a warning (62xx/63xx): the application is there.
        if let [.., sw1, _] = selected[..] {
            if selected.ends_with(&[0x90, 0x00]) || matches!(sw1, 0x61..=0x63) {
                let id = self.sessions.add(channel);
                return Ok(Answer::with(vec![format!("+CCHO: {id}")], Final::Ok));
            }
        }
        tracing::debug!(response = %encode_hex(&selected), "SELECT on new channel failed");
        self.transmit(&[0x00, 0x70, 0x80, channel], stop)?;
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
        let response = self.transmit(&[0x00, 0x70, 0x80, channel], stop)?;
        Ok(if response.ends_with(&[0x90, 0x00]) {
            Answer::ok()
        } else {
            Answer::result(Final::Cme(cme::OPERATION_NOT_SUPPORTED))
        })
    }

    /// One APDU to the card, powering it on first if the modem has not yet.
    fn transmit(&mut self, apdu: &[u8], stop: &AtomicBool) -> Result<Vec<u8>, CardError> {
        if !self.powered {
            lock(&self.card).power_on();
            self.powered = true;
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
            [0x61, le] => self.transmit(&[cla & 0x03, 0xC0, 0x00, 0x00, le], stop),
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
    let hex = encode_hex(response);
    Answer::with(
        vec![format!("{prefix}: {},\"{hex}\"", hex.len())],
        Final::Ok,
    )
}

/// One line taken from the host.
struct Line {
    text: Vec<u8>,
    /// The byte that ended it (echoed back).
    terminator: u8,
    /// The line was longer than allowed; `text` holds its start only.
    overflowed: bool,
}

/// Collects bytes into lines ending in `\r`, `\n` or `\r\n` (the `\n` of a `\r\n` pair is
/// swallowed, not taken for an empty line), with a bound on the line length.
#[derive(Default)]
struct LineBuffer {
    text: Vec<u8>,
    overflowed: bool,
    after_cr: bool,
}

impl LineBuffer {
    fn push(&mut self, byte: u8, max_line: usize) -> Option<Line> {
        let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => Some(Line {
                text: std::mem::take(&mut self.text),
                terminator: byte,
                overflowed: std::mem::take(&mut self.overflowed),
            }),
            _ if self.text.len() >= max_line => {
                self.overflowed = true;
                None
            }
            _ => {
                self.text.push(byte);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CardHandler, Reply};
    use std::sync::{Arc, Mutex};

    /// Records APDUs; answers MANAGE CHANNEL like a card with channels, everything else `9000`
    /// preceded by the APDU's CLA (so tests see the class byte the card got).
    #[derive(Default)]
    struct Recorder {
        seen: Vec<Vec<u8>>,
        powered_on: u32,
        drop_next: bool,
    }

    impl CardHandler for Recorder {
        fn atr(&self) -> Vec<u8> {
            vec![0x3B, 0x00]
        }
        fn power_on(&mut self) {
            self.powered_on += 1;
        }
        fn power_off(&mut self) {}
        fn reset(&mut self) {}
        fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
            self.seen.push(apdu.to_vec());
            match apdu {
                [_, 0x70, 0x00, 0x00, ..] => vec![0x02, 0x90, 0x00],
                [_, 0xA4, 0x04, 0x00, _, 0xEE, ..] => vec![0x6A, 0x82],
                [cla, ..] => vec![*cla, 0x90, 0x00],
                [] => vec![0x67, 0x00],
            }
        }
        fn handle(&mut self, apdu: &[u8]) -> Reply {
            if std::mem::take(&mut self.drop_next) {
                return Reply::Disconnect;
            }
            Reply::Answer(self.process(apdu))
        }
    }

    fn modem(options: AtOptions) -> (AtModem, Arc<Mutex<Recorder>>) {
        let card = Arc::new(Mutex::new(Recorder::default()));
        let shared: SharedCard = card.clone();
        (AtModem::new(shared, options), card)
    }

    fn talk(modem: &mut AtModem, input: &str) -> String {
        let mut out = Vec::new();
        modem
            .feed(input.as_bytes(), &mut out, &AtomicBool::new(false))
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn echo_then_answer_and_echo_off() {
        let (mut m, _) = modem(AtOptions::default());
        assert_eq!(talk(&mut m, "AT\r\n"), "AT\r\r\nOK\r\n");
        assert_eq!(talk(&mut m, "ATE0\r"), "ATE0\r\r\nOK\r\n");
        assert_eq!(talk(&mut m, "AT\r"), "\r\nOK\r\n");
        assert_eq!(talk(&mut m, "\r\n\r"), "");
        assert_eq!(talk(&mut m, "ATE1\n"), "\r\nOK\r\n");
        assert_eq!(talk(&mut m, "AT\n"), "AT\n\r\nOK\r\n");
    }

    #[test]
    fn split_reads_make_one_line() {
        let (mut m, _) = modem(AtOptions {
            echo: false,
            ..AtOptions::default()
        });
        assert_eq!(talk(&mut m, "AT+CSIM=10,\"00700"), "");
        assert_eq!(
            talk(&mut m, "00001\"\r"),
            "\r\n+CSIM: 6,\"029000\"\r\n\r\nOK\r\n"
        );
        assert_eq!(talk(&mut m, "\nAT\r"), "\r\nOK\r\n");
    }

    #[test]
    fn overlong_line_is_error_and_bounded() {
        let (mut m, _) = modem(AtOptions {
            echo: false,
            max_line: 16,
            ..AtOptions::default()
        });
        let long = format!("AT{}\r", "0".repeat(10_000));
        assert_eq!(talk(&mut m, &long), "\r\nERROR\r\n");
        assert!(m.line.text.len() <= 16);
        assert_eq!(talk(&mut m, "AT\r"), "\r\nOK\r\n");
    }

    #[test]
    fn logical_channels_patch_the_class_byte() {
        let (mut m, card) = modem(AtOptions {
            echo: false,
            ..AtOptions::default()
        });
        assert_eq!(
            talk(&mut m, "AT+CCHO=\"A0000005590010\"\r"),
            "\r\n+CCHO: 1\r\n\r\nOK\r\n"
        );
        assert_eq!(
            talk(&mut m, "AT+CGLA=1,10,\"80CB000000\"\r"),
            "\r\n+CGLA: 6,\"829000\"\r\n\r\nOK\r\n"
        );
        assert_eq!(
            talk(&mut m, "AT+CGLA=7,4,\"00B0\"\r"),
            "\r\n+CME ERROR: 21\r\n"
        );
        assert_eq!(talk(&mut m, "AT+CCHC=1\r"), "\r\nOK\r\n");
        assert_eq!(talk(&mut m, "AT+CCHC=1\r"), "\r\n+CME ERROR: 21\r\n");
        let seen = card.lock().unwrap().seen.clone();
        assert_eq!(
            seen,
            vec![
                vec![0x00, 0x70, 0x00, 0x00, 0x01],
                vec![0x02, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10],
                vec![0x82, 0xCB, 0x00, 0x00, 0x00],
                vec![0x00, 0x70, 0x80, 0x02],
            ]
        );
        assert_eq!(card.lock().unwrap().powered_on, 1);
    }

    #[test]
    fn ccho_of_a_missing_application_closes_the_channel() {
        let (mut m, card) = modem(AtOptions {
            echo: false,
            ..AtOptions::default()
        });
        assert_eq!(talk(&mut m, "AT+CCHO=\"EE01\"\r"), "\r\n+CME ERROR: 22\r\n");
        assert_eq!(
            card.lock().unwrap().seen.last().unwrap(),
            &vec![0x00, 0x70, 0x80, 0x02]
        );
        assert!(m.sessions().is_empty());
        assert_eq!(talk(&mut m, "AT+CMEE=2\r"), "\r\nOK\r\n");
        assert_eq!(
            talk(&mut m, "AT+CCHO=\"EE01\"\r"),
            "\r\n+CME ERROR: not found\r\n"
        );
        assert_eq!(talk(&mut m, "AT+CMEE=0\r"), "\r\nOK\r\n");
        assert_eq!(talk(&mut m, "AT+CCHO=\"EE01\"\r"), "\r\nERROR\r\n");
    }

    #[test]
    fn lost_sim_is_sim_failure_then_recovers() {
        let (mut m, card) = modem(AtOptions {
            echo: false,
            ..AtOptions::default()
        });
        assert_eq!(
            talk(&mut m, "AT+CCHO=\"A0000005590010\"\r"),
            "\r\n+CCHO: 1\r\n\r\nOK\r\n"
        );
        card.lock().unwrap().drop_next = true;
        assert_eq!(
            talk(&mut m, "AT+CSIM=8,\"00B00000\"\r"),
            "\r\n+CME ERROR: 13\r\n"
        );
        assert!(m.sessions().is_empty());
        assert_eq!(
            talk(&mut m, "AT+CSIM=8,\"00B00000\"\r"),
            "\r\n+CSIM: 6,\"009000\"\r\n\r\nOK\r\n"
        );
        assert_eq!(card.lock().unwrap().powered_on, 2);
    }

    #[test]
    fn switched_off_commands_are_errors() {
        let (mut m, card) = modem(AtOptions {
            echo: false,
            csim: false,
            cgla: false,
            ..AtOptions::default()
        });
        for line in [
            "AT+CSIM=4,\"0000\"\r",
            "AT+CCHO=\"A000\"\r",
            "AT+CSIM=?\r",
            "AT+CCHC=?\r",
        ] {
            assert_eq!(talk(&mut m, line), "\r\nERROR\r\n", "{line}");
        }
        assert!(card.lock().unwrap().seen.is_empty());
    }

    #[test]
    fn urc_comes_before_the_answer() {
        let (mut m, _) = modem(AtOptions {
            echo: false,
            urc: Some(UrcPlan {
                every: 2,
                lines: vec!["RING".to_owned()],
            }),
            ..AtOptions::default()
        });
        assert_eq!(talk(&mut m, "AT\r"), "\r\nOK\r\n");
        assert_eq!(
            talk(&mut m, "AT+CSIM=4,\"0000\"\r"),
            "\r\nRING\r\n\r\n+CSIM: 6,\"009000\"\r\n\r\nOK\r\n"
        );
    }

    /// Every line a modem with echo off may write.
    fn is_known_line(line: &str) -> bool {
        let quoted = |rest: &str| {
            let Some((n, hex)) = rest.split_once(',') else {
                return false;
            };
            let hex = hex.trim_matches('"');
            n.parse() == Ok(hex.len()) && decode_hex(hex).is_some()
        };
        matches!(
            line,
            "OK" | "ERROR" | "+CPIN: READY" | "iotsafe-vcard virtual modem"
        ) || line
            .strip_prefix("+CME ERROR: ")
            .is_some_and(|n| n.parse::<u16>().is_ok())
            || line
                .strip_prefix("+CCHO: ")
                .is_some_and(|n| n.parse::<u32>().is_ok())
            || line.strip_prefix("+CSIM: ").is_some_and(quoted)
            || line.strip_prefix("+CGLA: ").is_some_and(quoted)
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_in_any_pieces_get_only_well_formed_answers(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            piece in 1usize..64,
        ) {
            let (mut m, _) = modem(AtOptions {
                echo: false,
                max_line: 128,
                ..AtOptions::default()
            });
            let mut out = Vec::new();
            let stop = AtomicBool::new(false);
            for chunk in input.chunks(piece) {
                m.feed(chunk, &mut out, &stop).unwrap();
            }
            let text = String::from_utf8(out).unwrap();
            for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                proptest::prop_assert!(is_known_line(line), "{line:?}");
            }
            proptest::prop_assert!(m.line.text.len() <= 128);
        }

        #[test]
        fn any_apdu_round_trips_through_csim(
            apdu in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
            spaces in 0usize..3,
            lower in proptest::prelude::any::<bool>(),
        ) {
            let (mut m, card) = modem(AtOptions {
                echo: false,
                ..AtOptions::default()
            });
            let mut hex = encode_hex(&apdu);
            if lower {
                hex = hex.to_ascii_lowercase();
            }
            let pad = " ".repeat(spaces);
            let line = format!("AT+CSIM={pad}{},{pad}\"{hex}\"\r", hex.len());
            let answer = talk(&mut m, &line);
            let expected = card.lock().unwrap().seen.last().cloned();
            proptest::prop_assert_eq!(expected.as_deref(), Some(&apdu[..]));
            let response = encode_hex(&[apdu[0], 0x90, 0x00]);
            let want = match apdu[..] {
                [_, 0x70, 0x00, 0x00, ..] => "\r\n+CSIM: 6,\"029000\"\r\n\r\nOK\r\n".to_owned(),
                [_, 0xA4, 0x04, 0x00, _, 0xEE, ..] => "\r\n+CSIM: 4,\"6A82\"\r\n\r\nOK\r\n".to_owned(),
                _ => format!("\r\n+CSIM: 6,\"{response}\"\r\n\r\nOK\r\n"),
            };
            proptest::prop_assert_eq!(answer, want);
        }
    }

    #[test]
    fn t0_channel_open_follows_61xx() {
        struct T0;
        impl CardHandler for T0 {
            fn atr(&self) -> Vec<u8> {
                Vec::new()
            }
            fn power_on(&mut self) {}
            fn power_off(&mut self) {}
            fn reset(&mut self) {}
            fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
                match apdu {
                    [0x00, 0x70, 0x00, 0x00, 0x01] => vec![0x61, 0x01],
                    [0x00, 0xC0, 0x00, 0x00, 0x01] => vec![0x05, 0x90, 0x00],
                    [0x41, 0xA4, ..] => vec![0x61, 0x10],
                    _ => vec![0x6E, 0x00],
                }
            }
        }
        let mut m = AtModem::new(
            super::super::share(T0),
            AtOptions {
                echo: false,
                ..AtOptions::default()
            },
        );
        assert_eq!(
            talk(&mut m, "AT+CCHO=\"A0000005590010\"\r"),
            "\r\n+CCHO: 1\r\n\r\nOK\r\n"
        );
        assert_eq!(m.sessions().channel(1), Some(5));
    }
}
