//! One-line errors for people: what failed, why, and what to try.

use iotsafe_core::{Error as CardError, Meaning, TransportError};
use std::fmt;

/// An error the tool reports on one line and turns into a non-zero exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// What the tool was doing ("signing with key ID 01").
    pub what: String,
    /// Why it failed.
    pub why: String,
    /// What the user could try, when there is a useful suggestion.
    pub hint: Option<String>,
}

impl CliError {
    /// An error with no suggestion.
    pub fn new(what: impl Into<String>, why: impl fmt::Display) -> CliError {
        CliError {
            what: what.into(),
            why: why.to_string(),
            hint: None,
        }
    }

    /// Adds a suggestion.
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// An error from the card session, with a suggestion derived from what the card said.
    pub fn card(what: impl Into<String>, error: &CardError) -> CliError {
        let hint = card_hint(error);
        CliError {
            what: what.into(),
            why: error.to_string(),
            hint,
        }
    }

    /// An error from a transport before any card session exists (opening a reader or a modem).
    pub fn transport(what: impl Into<String>, error: TransportError) -> CliError {
        let why = error.to_string();
        let hint = card_hint(&CardError::Transport {
            command: iotsafe_core::CommandKind::Select,
            source: error,
        });
        CliError {
            what: what.into(),
            why,
            hint,
        }
    }

    /// An I/O error on a named file.
    pub fn file(
        what: impl Into<String>,
        path: &std::path::Path,
        error: &std::io::Error,
    ) -> CliError {
        CliError::new(what, format!("{}: {error}", path.display()))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)?;
        if let Some(hint) = &self.hint {
            write!(f, " (try: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

fn card_hint(error: &CardError) -> Option<String> {
    let hint = match error {
        CardError::AppletNotFound { .. } => {
            "check the card holds an IoT SAFE applet, or pass its AID with --aid HEX"
        }
        CardError::UnknownObject(_) => "`iotsafe objects` lists what the card holds",
        CardError::StaleEphemeral { .. } => "retry; another handshake used the card at the same time",
        CardError::Transport { source, .. } => match source {
            TransportError::NoService => "start pcscd (`pcscd --foreground &`)",
            TransportError::NoReader { .. } => "`iotsafe readers` lists the readers present",
            TransportError::NoCard(_) => "insert the card or start the virtual card",
            TransportError::Timeout { .. } => "check the modem or reader is powered and not busy",
            _ => "check the connection to the card and retry",
        },
        CardError::Status { sw, .. } => match sw.meaning() {
            Meaning::NotFound => "`iotsafe objects` lists what the card holds",
            Meaning::ConditionsNotSatisfied | Meaning::ReferencedDataInvalidated => {
                "the object's state, access conditions or functions do not allow this; see `iotsafe objects`"
            }
            _ => return None,
        },
        _ => return None,
    };
    Some(hint.to_string())
}
