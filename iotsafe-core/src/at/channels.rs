//! The logical channels a modem opened for us with AT+CCHO: the one in use, and the stale ones
//! still to close with AT+CCHC.
//!
//! A SIM has few logical channels, and a modem keeps them open across host programs and across
//! a port that dropped (USB re-enumeration, a TCP bridge that closed: the SIM was not reset). So
//! a channel whose AT+CCHC went unanswered, that belonged to the session before a reconnect, or
//! that an AT+CCHO opened after the transport had given up waiting for it (its `+CCHO: <n>` came
//! late, and the line kept the id), is remembered as stale and closed as soon as the modem
//! answers again, or on drop.

use super::framing::AtCommand;
use super::line::ModemLine;
use super::parser::{self, Answer};
use super::port::AtPort;
use super::refusal::refusal;
use crate::prelude::*;
use crate::transport::TransportError;

/// Most stale channels remembered for closing (a SIM has at most 19 extra logical channels).
const MAX_STALE_CHANNELS: usize = 8;

/// What the modem said to AT+CCHO.
pub(super) enum Ccho {
    /// The channel is open; its session id is [`Channels::session`].
    Opened,
    /// The modem refused: the command and its answer, for the transport to decide what that
    /// means.
    Refused(AtCommand, Answer),
}

/// The channel in use and the stale ones.
#[derive(Debug, Default)]
pub(super) struct Channels {
    /// Session id of the channel opened with AT+CCHO, while it is open.
    open: Option<u32>,
    /// Session ids still to close, oldest first; at most [`MAX_STALE_CHANNELS`].
    stale: Vec<u32>,
}

impl Channels {
    /// The session id of the channel in use.
    pub(super) fn session(&self) -> Option<u32> {
        self.open
    }

    /// AT+CCHO for `aid`. A refusal is no error here: the caller decides what it means.
    pub(super) fn open<P: AtPort>(
        &mut self,
        line: &mut ModemLine<P>,
        aid: &[u8],
        timeout: core::time::Duration,
    ) -> Result<Ccho, TransportError> {
        let command = AtCommand::ccho(aid);
        let parser = line.parser(&["+CCHO:"]).accept_bare_number(true);
        let answer = line.exchange(&command, parser, timeout)?;
        if !answer.result.is_ok() {
            return Ok(Ccho::Refused(command, answer));
        }
        let session = answer
            .info
            .last()
            .and_then(|l| parser::parse_session_id(l))
            .ok_or_else(|| {
                TransportError::Protocol(format!(
                    "{}: no session id in the answer {:?}",
                    command.shown(),
                    answer.summary()
                ))
            })?;
        self.open = Some(session);
        Ok(Ccho::Opened)
    }

    /// AT+CCHC for the channel in use. One left unanswered becomes stale (the card may still
    /// hold it); one the modem refused is forgotten (it answered, so it knows the channel is not
    /// ours to use).
    pub(super) fn close<P: AtPort>(
        &mut self,
        line: &mut ModemLine<P>,
        timeout: core::time::Duration,
    ) -> Result<(), TransportError> {
        let Some(session) = self.open.take() else {
            return Ok(());
        };
        let command = AtCommand::cchc(session);
        let parser = line.parser(&["+CCHC:"]);
        let answer = match line.exchange(&command, parser, timeout) {
            Ok(answer) => answer,
            Err(err) => {
                self.remember_stale(session, line.label());
                return Err(err);
            }
        };
        if answer.result.is_ok() {
            Ok(())
        } else {
            // A lost SIM is `RemovedCard`, so that the session reconnects; any other refusal
            // names the command and the answer.
            Err(refusal(command.shown(), &answer))
        }
    }

    /// The modem no longer knows the channel in use (`+CME ERROR: 21`): nothing to close.
    pub(super) fn forget(&mut self) {
        self.open = None;
    }

    /// Moves the channel in use (if any) to the stale ones, to be closed when the modem answers.
    pub(super) fn retire(&mut self, label: &str) {
        if let Some(session) = self.open.take() {
            self.remember_stale(session, label);
        }
    }

    /// True when a stale channel waits to be closed.
    pub(super) fn has_stale(&self) -> bool {
        !self.stale.is_empty()
    }

    /// Takes the session ids of late AT+CCHO answers the line found, as stale channels.
    pub(super) fn adopt_late<P: AtPort>(&mut self, line: &mut ModemLine<P>) {
        for session in line.take_late_sessions() {
            // A modem that reused the id for the channel now in use: that one is ours.
            if self.open != Some(session) {
                self.remember_stale(session, line.label());
            }
        }
    }

    /// Best effort: AT+CCHC for each stale channel, each within `timeout`, late AT+CCHO answers
    /// included (when one may still come, the line is resynchronised first to let it in). A
    /// channel the modem answered for is forgotten (`OK`, or an error such as `+CME ERROR: 21`
    /// for one it no longer knows); at the first exchange that fails (no answer, port gone) the
    /// rest stay for later.
    pub(super) fn close_stale<P: AtPort>(
        &mut self,
        line: &mut ModemLine<P>,
        timeout: core::time::Duration,
    ) {
        if line.awaits_late_session() && line.resync().is_err() {
            return;
        }
        loop {
            // Each exchange may have resynchronised the line and found a late answer.
            self.adopt_late(line);
            let Some(&session) = self.stale.first() else {
                break;
            };
            let command = AtCommand::cchc(session);
            let parser = line.parser(&["+CCHC:"]);
            match line.exchange(&command, parser, timeout) {
                Ok(answer) => {
                    if answer.result.is_ok() {
                        tracing::debug!(modem = %line.label(), session, "closed a stale channel");
                    } else {
                        tracing::debug!(modem = %line.label(), session, answer = %answer.summary(), "the modem refused to close a stale channel");
                    }
                    self.stale.remove(0);
                }
                Err(err) => {
                    tracing::debug!(modem = %line.label(), session, error = %err, "closing a stale channel failed");
                    break;
                }
            }
        }
    }

    fn remember_stale(&mut self, session: u32, label: &str) {
        if self.stale.contains(&session) {
            return;
        }
        if self.stale.len() >= MAX_STALE_CHANNELS {
            let forgotten = self.stale.remove(0);
            tracing::warn!(modem = %label, session = forgotten, "too many unclosed channels; forgetting the oldest");
        }
        self.stale.push(session);
    }
}

#[cfg(all(test, feature = "at"))]
mod tests {
    use core::time::Duration;

    use super::*;
    use crate::at::fake_port::{line, lines, FakePort, Said};
    use crate::at::options::AtOptions;

    const AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10];
    const TIMEOUT: Duration = Duration::from_millis(50);

    fn modem_line(script: impl FnMut(&str) -> Vec<Said> + Send + 'static) -> ModemLine<FakePort> {
        ModemLine::new(FakePort::new(script), "fake".into(), &AtOptions::default())
    }

    #[test]
    fn a_close_refused_because_the_sim_is_gone_is_a_removed_card() {
        let mut answers =
            vec![vec![line("+CME ERROR: 13")], vec![line("+CME ERROR: 3")]].into_iter();
        let mut modem = modem_line(move |_| answers.next().unwrap_or_default());
        let mut channels = Channels {
            open: Some(4),
            ..Channels::default()
        };
        assert!(matches!(
            channels.close(&mut modem, TIMEOUT),
            Err(TransportError::RemovedCard)
        ));
        channels.open = Some(5);
        match channels.close(&mut modem, TIMEOUT) {
            Err(TransportError::Modem { command, answer }) => {
                assert_eq!(command, "AT+CCHC=5");
                assert_eq!(answer, "+CME ERROR: 3");
            }
            other => panic!("expected a modem error, got {other:?}"),
        }
        assert_eq!(channels.session(), None);
    }

    #[test]
    fn stale_channels_are_bounded_and_unique() {
        let mut channels = Channels::default();
        for session in 1..=10 {
            channels.remember_stale(session, "fake");
            channels.remember_stale(session, "fake");
        }
        // The two oldest were forgotten; none twice.
        assert_eq!(channels.stale, (3..=10).collect::<Vec<_>>());
        channels.open = Some(11);
        channels.retire("fake");
        assert_eq!(channels.session(), None);
        assert_eq!(channels.stale.last(), Some(&11));
        assert_eq!(channels.stale.len(), MAX_STALE_CHANNELS);
    }

    #[test]
    fn open_takes_prefixed_or_bare_session_ids_and_hands_refusals_back() {
        let mut answers = vec![
            vec![line("+CME ERROR: 22")],
            vec![line("5"), line("OK")],
            vec![line("+CCHO: 6"), line("OK")],
            vec![line("+CCHO: x"), line("OK")],
        ]
        .into_iter();
        let mut modem = modem_line(move |_| answers.next().unwrap_or_default());
        let mut channels = Channels::default();
        match channels.open(&mut modem, &AID, TIMEOUT) {
            Ok(Ccho::Refused(command, answer)) => {
                assert_eq!(command.shown(), "AT+CCHO=\"A0000005590010\"");
                assert_eq!(answer.summary(), "+CME ERROR: 22");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        assert_eq!(channels.session(), None);
        assert!(matches!(
            channels.open(&mut modem, &AID, TIMEOUT),
            Ok(Ccho::Opened)
        ));
        assert_eq!(channels.session(), Some(5));
        assert!(matches!(
            channels.open(&mut modem, &AID, TIMEOUT),
            Ok(Ccho::Opened)
        ));
        assert_eq!(channels.session(), Some(6));
        match channels.open(&mut modem, &AID, TIMEOUT) {
            Err(TransportError::Protocol(message)) => {
                assert!(message.contains("no session id"), "{message}");
            }
            other => panic!("expected a protocol error, got {:?}", other.map(|_| ())),
        }
        assert_eq!(
            channels.session(),
            Some(6),
            "a failed open keeps the old id"
        );
    }

    #[test]
    fn an_unanswered_close_leaves_the_channel_stale_and_the_next_close_stale_closes_it() {
        let mut calls = 0;
        let port = FakePort::new(move |l| {
            calls += 1;
            match (l, calls) {
                ("AT+CCHC=4", 1) => vec![], // silence: the close is unanswered
                ("AT", _) => vec![line("OK")],
                ("AT+CCHC=4", _) => vec![line("OK")],
                ("AT+CCHC=9", _) => vec![line("+CME ERROR: 21")],
                _ => vec![line("ERROR")],
            }
        });
        let written = port.written();
        let mut modem = ModemLine::new(port, "fake".into(), &AtOptions::default());
        let mut channels = Channels {
            open: Some(4),
            stale: vec![9],
        };
        assert!(matches!(
            channels.close(&mut modem, TIMEOUT),
            Err(TransportError::Timeout { .. })
        ));
        assert_eq!(channels.session(), None);
        assert_eq!(channels.stale, vec![9, 4]);
        // The line is resynchronised first, then each stale channel closed; a refusal counts as
        // an answer (the modem does not know channel 9 any more).
        channels.close_stale(&mut modem, TIMEOUT);
        assert!(!channels.has_stale());
        assert_eq!(
            lines(&written),
            ["AT+CCHC=4", "AT", "AT+CCHC=9", "AT+CCHC=4"]
        );
    }

    #[test]
    fn close_stale_stops_at_the_first_exchange_that_fails() {
        let mut port = FakePort::new(|_| vec![Said::Eof]);
        port.impatient = true;
        let written = port.written();
        let mut modem = ModemLine::new(port, "fake".into(), &AtOptions::default());
        let mut channels = Channels {
            open: None,
            stale: vec![1, 2],
        };
        channels.close_stale(&mut modem, TIMEOUT);
        assert_eq!(channels.stale, vec![1, 2]);
        assert_eq!(lines(&written), ["AT+CCHC=1"]);
    }
}
