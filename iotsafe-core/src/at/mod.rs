//! APDUs through a cellular modem's AT command interface (3GPP TS 27.007): AT+CSIM, or
//! AT+CCHO / AT+CGLA / AT+CCHC when the modem manages the logical channel.
//!
//! One job per module:
//! - [`parser`]: the pure answer parser (bytes in, answer out; no I/O, fuzzable), with the
//!   decoding of `+CSIM:`/`+CGLA:` data and session ids, and what of an answer may be logged.
//! - [`framing`]: command lines, their redacted forms for logs and errors, per-command deadlines.
//! - [`quirks`]: what known modems do differently, as data.
//! - [`port`]: what the client needs of the byte stream a modem sits behind ([`AtPort`]), and
//!   any `embedded_io` UART as one (`EmbeddedPort`, feature `embedded-io`); `os_port`: the
//!   operating system's streams (serial port, tty file, TCP; feature `at`), opened by `open`.
//! - `line` (private): the only reader and writer of the port. Writes a command and reads its
//!   answer (one bounded read loop for every read), drains, resynchronises, checks readiness,
//!   and keeps the one rule for when the line must be resynchronised; finds the session ids of
//!   AT+CCHO answers that came after their deadline.
//! - `refusal` (private): the `+CME ERROR` codes the transport acts on, classified once; the
//!   modem's error mode, and the once-per-operation rule for a bare `ERROR`.
//! - `channels` (private): the AT+CCHO channel in use and the stale ones still to close.
//! - [`AtTransport`]: the [`Transport`](crate::transport::Transport): AT+CSIM or AT+CGLA per
//!   APDU, probes and fallback, what each refusal means, reconnecting; options in [`AtOptions`].
//!
//! How the transport opens: `ATE0`, `AT`, `AT+CMEE=1` (numeric error codes; modems come up at
//! `AT+CMEE=0`, where every failure is a bare `ERROR`; a modem that refuses it is still used),
//! then identification and, in [`AtMode::Auto`], the probes.
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
//! - A bare `ERROR` to AT+CGLA is read as a lost channel once per operation
//!   ([`TransportError::ResetCard`](crate::TransportError::ResetCard): the session reopens its
//!   channel and retries), then as the command's own refusal. To AT+CSIM it is a lost SIM when
//!   `AT+CPIN?` fails too, else the command's own refusal.
//! - [`AtMode::Auto`] uses AT+CCHO/AT+CGLA when `AT+CCHO=?` says OK and falls back to AT+CSIM
//!   when the modem refuses AT+CCHO as a command it lacks (before any AT+CCHO worked) or its
//!   first AT+CGLA; a busy SIM (`+CME ERROR: 14`) is no reason to.
//! - The channel a late `+CCHO: <n>` names (an AT+CCHO answered after its deadline) is closed.

mod channels;
#[cfg(all(test, feature = "at"))]
mod fake_port;
pub mod framing;
mod learned;
mod line;
mod modem;
#[cfg(feature = "at")]
mod open;
mod options;
#[cfg(feature = "at")]
pub mod os_port;
pub mod parser;
pub mod port;
pub mod quirks;
mod refusal;

pub use framing::Deadlines;
pub use learned::Learned;
pub use modem::AtTransport;
pub use options::{AtMode, AtOptions};
#[cfg(feature = "at")]
pub use os_port::{TimedStream, TtyFile};
pub use port::AtPort;
#[cfg(feature = "embedded-io")]
pub use port::EmbeddedPort;
pub use quirks::{ModemQuirks, KNOWN_MODEMS};
