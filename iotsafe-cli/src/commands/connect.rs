//! `iotsafe connect`: a TLS 1.3 mutual-auth handshake with the card.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::CliError;
use std::path::PathBuf;

/// Arguments of `connect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server address.
    #[arg(value_name = "HOST:PORT")]
    pub address: String,
    /// CA certificate(s) to trust for the server (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// Name to verify in the server certificate (default: HOST).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
}

/// Runs the handshake.
pub fn run(_context: &Context, _args: &Args) -> Result<Output, CliError> {
    Err(CliError::new("connecting", "not implemented yet"))
}
