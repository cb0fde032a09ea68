//! Library half of the `iotsafe` tool: card selection, error messages, progress and formatting
//! shared by the CLI's subcommands and by the MQTT demo in `iotsafe-examples`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod exit;
pub mod format;
pub mod keys;
pub mod progress;
pub mod selection;
pub mod tls;

pub use error::CliError;
pub use selection::{CardSelection, OpenedCard};
