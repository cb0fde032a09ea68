//! How an [`AtTransport`](super::AtTransport) behaves: which commands carry the APDUs, deadlines,
//! bounds, quirks.

use core::time::Duration;

use super::framing::Deadlines;
use super::parser;
use super::quirks::ModemQuirks;

/// Which AT commands carry the APDUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtMode {
    /// Probe at open (`AT+CCHO=?`): use AT+CCHO/AT+CGLA/AT+CCHC when the modem has them, and fall
    /// back to AT+CSIM for good when it refuses them (a `+CME ERROR` to `AT+CCHO` itself, or an
    /// `ERROR` while the modem reports numeric codes), as long as no AT+CCHO has opened a channel
    /// on this modem. These refusals do not cause the fallback: `+CME ERROR: 22` (no applet
    /// with that AID: a [`TransportError::Modem`] error, so the session tries its next AID
    /// through AT+CCHO), a lost SIM (`+CME ERROR: 10`/`13`, reported as
    /// [`TransportError::RemovedCard`]), a busy SIM (`+CME ERROR: 14`: asked again every 100 ms
    /// for up to [`Deadlines::normal`](super::Deadlines), then reported as
    /// [`TransportError::ResetCard`]), and a bare `ERROR`
    /// from a modem that reports no numeric codes (a busy SIM and a missing applet look the same;
    /// to an AT+CCHO that opened a channel before it is taken for a busy SIM).
    ///
    /// [`TransportError::Modem`]: crate::TransportError::Modem
    /// [`TransportError::RemovedCard`]: crate::TransportError::RemovedCard
    /// [`TransportError::ResetCard`]: crate::TransportError::ResetCard
    #[default]
    Auto,
    /// Only AT+CSIM; the session manages channels with MANAGE CHANNEL and SELECT itself.
    Csim,
    /// AT+CCHO/AT+CGLA/AT+CCHC: the modem opens the channel and selects the applet.
    Cgla,
}

/// How an [`AtTransport`](super::AtTransport) behaves.
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
    /// What an earlier open of this port found out ([`AtTransport::learned`](super::AtTransport::learned)):
    /// with it the open skips `AT+CGMM` (unless [`AtOptions::quirks`] is given), `AT+CCHO=?` and
    /// `AT+CSIM=?`, and drains what the modem had buffered until 5 ms of silence instead of 30
    /// (a modem that may just have booted). `None` (the default): asked.
    pub learned: Option<super::Learned>,
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
            learned: None,
        }
    }
}

impl AtOptions {
    /// Deadline for the commands that only check or tidy something (identification, probes, a
    /// resync's `AT`, closing stale channels): [`AtOptions::command_timeout`], at most 2 s.
    pub(super) fn check_timeout(&self) -> Duration {
        self.command_timeout.min(Duration::from_secs(2))
    }
}
