//! What a refused AT command means: the `+CME ERROR` codes the transport acts on, classified in
//! one place, and the errors a refusal becomes.
//!
//! 3GPP TS 27.007 §9.2 gives each equipment error a number (`AT+CMEE=1`) and a text
//! (`AT+CMEE=2`); modems use either. The transport decides on five of them:
//!
//! | code | text | meaning here |
//! |---|---|---|
//! | 10 | SIM not inserted | the SIM is gone: [`TransportError::RemovedCard`] |
//! | 13 | SIM failure | the SIM is gone: [`TransportError::RemovedCard`] |
//! | 14 | SIM busy | AT+CCHO: the SIM is still starting (after a reset); try again, no fallback |
//! | 21 | invalid index | AT+CGLA/AT+CCHC: the modem knows no channel with that session id |
//! | 22 | not found | AT+CCHO: no applet with that AID (AT+CCHO itself works) |
//!
//! Modems come up reporting a plain `ERROR` for all of them (`AT+CMEE=0`, the factory default);
//! the transport asks for numbers at open ([`ErrorMode`]). A plain `ERROR` may still come (a modem
//! that refuses `AT+CMEE`, or one restarted behind the transport's back): to AT+CGLA it is read as
//! the lost channel it may stand for, at most once per operation ([`PlainErrors`]); to AT+CSIM,
//! `AT+CPIN?` says whether the SIM is gone (the transport decides, in `modem.rs`).

use super::parser::{Answer, FinalResult};
use crate::prelude::*;
use crate::transport::TransportError;

/// A `+CME ERROR` the transport decides on, or [`CmeError::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmeError {
    /// `10` SIM not inserted, `13` SIM failure.
    SimLost,
    /// `14` SIM busy.
    Busy,
    /// `21` invalid index.
    InvalidIndex,
    /// `22` not found.
    NotFound,
    /// Any other code; the answer's summary still names it in the error.
    Other,
}

impl CmeError {
    /// The class of `result` when it is a `+CME ERROR`; `None` for `OK`, `ERROR`, `+CMS ERROR`.
    pub(crate) fn of(result: &FinalResult) -> Option<CmeError> {
        match result {
            FinalResult::CmeError(code) => Some(CmeError::classify(code)),
            _ => None,
        }
    }

    /// Classifies the `<err>` of `+CME ERROR: <err>`, numeric (leading zeros allowed) or verbose
    /// (any ASCII case).
    pub(crate) fn classify(code: &str) -> CmeError {
        let code = code.trim();
        // Digits only: `str::parse` would also take a sign.
        let numeric = !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit());
        let number = if numeric {
            code.parse::<u32>().ok()
        } else {
            None
        };
        let text = |wanted: &str| code.eq_ignore_ascii_case(wanted);
        match number {
            Some(10 | 13) => CmeError::SimLost,
            Some(14) => CmeError::Busy,
            Some(21) => CmeError::InvalidIndex,
            Some(22) => CmeError::NotFound,
            Some(_) => CmeError::Other,
            None if text("SIM not inserted") || text("SIM failure") => CmeError::SimLost,
            None if text("SIM busy") => CmeError::Busy,
            None if text("invalid index") => CmeError::InvalidIndex,
            None if text("not found") => CmeError::NotFound,
            None => CmeError::Other,
        }
    }
}

/// True for a bare `ERROR`: no code, so any failure (a syntax error as well as a lost SIM).
pub(crate) fn is_plain_error(result: &FinalResult) -> bool {
    *result == FinalResult::Error
}

/// How the modem reports equipment errors, as far as the transport knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorMode {
    /// It took `AT+CMEE=1`: failures come as `+CME ERROR: <n>`, and a plain `ERROR` is a syntax
    /// error (the modem does not know the command), or a modem that lost the setting because it
    /// restarted.
    Numeric,
    /// It refused `AT+CMEE=1` or did not answer: a plain `ERROR` may stand for any code.
    Plain,
}

/// The rule for a plain `ERROR` to AT+CGLA: it is read as the lost channel or SIM a numeric code
/// would have named, once per operation. The operation's retry (after the session
/// reconnected and reopened its channel) refused with a plain `ERROR` again means the command
/// itself is refused (a line the modem will not take): that is the typed error, not a second
/// recovery. So a malformed command costs one recovery per operation, never a loop.
///
/// Operations are counted by [`Transport::transaction`](crate::Transport::transaction), which the
/// session calls once per attempt; the retry is the attempt right after the one that recovered.
#[derive(Debug, Default)]
pub(crate) struct PlainErrors {
    /// Attempts begun so far.
    attempt: u64,
    /// The attempt in which a plain `ERROR` was last read as a lost session.
    recovered_in: Option<u64>,
}

impl PlainErrors {
    /// An operation (or its retry) begins.
    pub(crate) fn attempt_begins(&mut self) {
        self.attempt = self.attempt.wrapping_add(1);
    }

    /// For a plain `ERROR`: true when it is to be read as a lost session (the recovery of this
    /// operation is taken), false when this operation, or the one it retries, already recovered
    /// from one (the next plain `ERROR` gets its recovery again).
    pub(crate) fn take_recovery(&mut self) -> bool {
        match self.recovered_in {
            Some(attempt) if self.attempt.wrapping_sub(attempt) <= 1 => {
                self.recovered_in = None;
                false
            }
            _ => {
                self.recovered_in = Some(self.attempt);
                true
            }
        }
    }
}

/// [`TransportError::Modem`]: `command` (as shown, payload redacted) and the modem's answer
/// (response data redacted).
pub(crate) fn modem_error(command: &str, answer: &Answer) -> TransportError {
    TransportError::Modem {
        command: command.to_string(),
        answer: answer.summary(),
    }
}

/// [`TransportError::RemovedCard`] for a command the modem refused because the SIM is gone, so
/// that the session reconnects.
pub(crate) fn sim_lost(command: &str, answer: &Answer) -> TransportError {
    tracing::warn!(command, answer = %answer.summary(), "the modem lost the SIM");
    TransportError::RemovedCard
}

/// The error for a refused command that has no decision of its own to make: a lost SIM is
/// [`TransportError::RemovedCard`], anything else [`TransportError::Modem`].
pub(crate) fn refusal(command: &str, answer: &Answer) -> TransportError {
    match CmeError::of(&answer.result) {
        Some(CmeError::SimLost) => sim_lost(command, answer),
        _ => modem_error(command, answer),
    }
}

/// For tests: the command and answer of a [`TransportError::Modem`], or a panic naming what came
/// instead.
#[cfg(test)]
pub(crate) fn expect_modem_error<T: core::fmt::Debug>(
    result: Result<T, TransportError>,
) -> (String, String) {
    match result {
        Err(TransportError::Modem { command, answer }) => (command, answer),
        other => panic!("expected a Modem error, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_verbose_forms_classify_alike() {
        let table = [
            ("10", CmeError::SimLost),
            ("13", CmeError::SimLost),
            ("010", CmeError::SimLost),
            ("SIM not inserted", CmeError::SimLost),
            ("sim FAILURE", CmeError::SimLost),
            ("21", CmeError::InvalidIndex),
            (" invalid index ", CmeError::InvalidIndex),
            ("22", CmeError::NotFound),
            ("Not Found", CmeError::NotFound),
            ("0", CmeError::Other),
            ("4", CmeError::Other),
            ("100", CmeError::Other),
            ("1013", CmeError::Other),
            ("", CmeError::Other),
            ("-10", CmeError::Other),
            ("+10", CmeError::Other),
            ("14", CmeError::Busy),
            ("SIM busy", CmeError::Busy),
            ("15", CmeError::Other),
            ("operation not allowed", CmeError::Other),
            ("99999999999999999999999", CmeError::Other),
        ];
        for (code, class) in table {
            assert_eq!(CmeError::classify(code), class, "{code:?}");
        }
    }

    #[test]
    fn only_cme_errors_have_a_class() {
        let cme = FinalResult::from_line("+CME ERROR: 13").unwrap();
        assert_eq!(CmeError::of(&cme), Some(CmeError::SimLost));
        for line in ["OK", "ERROR", "+CMS ERROR: 10", "+CMS ERROR: SIM failure"] {
            let result = FinalResult::from_line(line).unwrap();
            assert_eq!(CmeError::of(&result), None, "{line}");
        }
    }

    #[test]
    fn a_plain_error_recovers_once_per_operation_and_its_retry() {
        let mut rule = PlainErrors::default();
        rule.attempt_begins();
        assert!(rule.take_recovery(), "the first plain ERROR recovers");
        assert!(
            !rule.take_recovery(),
            "again in the same attempt: the command's own"
        );
        assert!(
            rule.take_recovery(),
            "the budget comes back after the typed error"
        );
        rule.attempt_begins();
        assert!(!rule.take_recovery(), "the retry right after a recovery");
        rule.attempt_begins();
        assert!(rule.take_recovery(), "a new operation recovers");
        rule.attempt_begins();
        rule.attempt_begins();
        assert!(rule.take_recovery(), "two attempts later: a new operation");
        assert!(is_plain_error(&FinalResult::Error));
        assert!(!is_plain_error(&FinalResult::CmeError("21".into())));
    }

    fn answer(result: &str) -> Answer {
        Answer {
            info: Vec::new(),
            result: FinalResult::from_line(result).unwrap(),
            skipped: Vec::new(),
            skipped_count: 0,
        }
    }

    #[test]
    fn a_lost_sim_is_removed_card_and_the_rest_names_command_and_answer() {
        assert!(matches!(
            refusal("AT+CSIM=10,\"00C0000000\"", &answer("+CME ERROR: 10")),
            TransportError::RemovedCard
        ));
        match refusal("AT+CCHO=\"A0\"", &answer("+CME ERROR: 22")) {
            TransportError::Modem { command, answer } => {
                assert_eq!(command, "AT+CCHO=\"A0\"");
                assert_eq!(answer, "+CME ERROR: 22");
            }
            other => panic!("expected a Modem error, got {other:?}"),
        }
        assert!(matches!(
            refusal("AT", &answer("ERROR")),
            TransportError::Modem { .. }
        ));
    }
}
