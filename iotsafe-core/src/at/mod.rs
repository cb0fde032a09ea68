//! APDUs through a cellular modem's AT command interface (3GPP TS 27.007): AT+CSIM, or
//! AT+CCHO / AT+CGLA / AT+CCHC when the modem manages the logical channel.
//!
//! - [`parser`]: the pure answer parser (bytes in, answer out; no I/O, fuzzable).
//! - [`framing`]: command lines, redaction of APDU payloads in logs, per-command deadlines.
//! - [`quirks`]: what known modems do differently, as data.
//! - [`port`]: the byte streams a modem sits behind (serial port, tty file, TCP).
//! - [`AtTransport`]: the [`Transport`](crate::transport::Transport) over all of it.
//!
//! How an exchange behaves:
//! - It ends as soon as the final result line (`OK`, `ERROR`, `+CME ERROR`, `+CMS ERROR`) is in;
//!   nothing waits out an idle timeout. Each has a deadline: [`Deadlines`] picks 5 s, or 30 s for
//!   GENERATE KEY PAIR, COMPUTE SIGNATURE / VERIFY SIGNATURE Update and COMPUTE DH (INS `B9`,
//!   `2B`, `2D`, `46`); [`AtTransport::transmit_with_timeout`] takes an explicit one.
//! - Echo, blank lines and unsolicited result codes are skipped; lines and line counts are bounded.
//! - After a timeout or a garbled answer, the next command first resynchronises: it drains the
//!   line, sends `AT` and waits for its `OK`, recognising and discarding a late answer to the
//!   command that timed out.
//! - Errors name the command with the APDU payload redacted (`AT+CSIM=78,"002B800122…"`) and the
//!   modem's answer with response data redacted (`+CSIM: 136,"…9000"`). A lost SIM
//!   (`+CME ERROR: 10`/`13`) is [`TransportError::RemovedCard`](crate::TransportError::RemovedCard).
//! - [`AtMode::Auto`] uses AT+CCHO/AT+CGLA when `AT+CCHO=?` says OK and falls back to AT+CSIM
//!   when the modem refuses AT+CCHO or its first AT+CGLA.

pub mod framing;
mod modem;
pub mod parser;
pub mod port;
pub mod quirks;

pub use framing::Deadlines;
pub use modem::{AtMode, AtOptions, AtTransport};
pub use port::{AtPort, TtyFile};
pub use quirks::{ModemQuirks, KNOWN_MODEMS};
