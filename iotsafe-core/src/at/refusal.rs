//! What a refused AT command means: the `+CME ERROR` codes the transport acts on, classified in
//! one place, and the errors a refusal becomes.
//!
//! 3GPP TS 27.007 §9.2 gives each equipment error a number (`AT+CMEE=1`) and a text
//! (`AT+CMEE=2`); modems use either. The transport decides on four of them:
//!
//! | code | text | meaning here |
//! |---|---|---|
//! | 10 | SIM not inserted | the SIM is gone: [`TransportError::RemovedCard`] |
//! | 13 | SIM failure | the SIM is gone: [`TransportError::RemovedCard`] |
//! | 21 | invalid index | AT+CGLA/AT+CCHC: the modem knows no channel with that session id |
//! | 22 | not found | AT+CCHO: no applet with that AID (AT+CCHO itself works) |

use super::parser::{Answer, FinalResult};
use crate::prelude::*;
use crate::transport::TransportError;

/// A `+CME ERROR` the transport decides on, or [`CmeError::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmeError {
    /// `10` SIM not inserted, `13` SIM failure.
    SimLost,
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
            Some(21) => CmeError::InvalidIndex,
            Some(22) => CmeError::NotFound,
            Some(_) => CmeError::Other,
            None if text("SIM not inserted") || text("SIM failure") => CmeError::SimLost,
            None if text("invalid index") => CmeError::InvalidIndex,
            None if text("not found") => CmeError::NotFound,
            None => CmeError::Other,
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
            ("SIM busy", CmeError::Other),
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
