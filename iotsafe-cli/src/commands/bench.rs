//! `iotsafe bench`: card operations and handshakes per second.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::CliError;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Iterations of each operation.
    #[arg(long, default_value_t = 20)]
    pub iterations: u32,
}

/// Runs the benchmark.
pub fn run(_context: &Context, _args: &Args) -> Result<Output, CliError> {
    Err(CliError::new("benchmarking", "not implemented yet"))
}
