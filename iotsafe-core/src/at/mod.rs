//! APDUs through a cellular modem's AT command interface (3GPP TS 27.007): AT+CSIM, or
//! AT+CCHO / AT+CGLA / AT+CCHC when the modem manages the logical channel.
//!
//! - [`parser`]: the pure answer parser (bytes in, answer out; no I/O, fuzzable).
//! - [`framing`]: command lines, redaction of APDU payloads in logs, per-command deadlines.
//! - [`quirks`]: what known modems do differently, as data.
//! - [`port`]: the byte streams a modem sits behind (serial port, tty file, TCP).
//! - [`AtTransport`]: the [`Transport`](crate::transport::Transport) over all of it.

pub mod framing;
mod modem;
pub mod parser;
pub mod port;
pub mod quirks;

pub use framing::Deadlines;
pub use modem::{AtMode, AtOptions, AtTransport};
pub use port::{AtPort, TtyFile};
pub use quirks::{ModemQuirks, KNOWN_MODEMS};
