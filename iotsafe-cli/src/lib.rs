//! Library half of the `iotsafe` tool: the card selection flags (mapped onto `iotsafe-select`),
//! error messages, progress, formatting and the handshake timeline (`--timeline`) shared by the
//! CLI's subcommands and by the MQTT demo in `iotsafe-examples`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod exit;
pub mod format;
pub mod keys;
pub mod progress;
pub mod selection;
pub mod timeline;
pub mod tls;

pub use error::CliError;
pub use selection::{CardFlags, CardSelection, OpenedCard};
