//! One module per subcommand.

pub mod bench;
pub mod cert;
pub mod connect;
pub mod csr;
pub mod enroll;
pub mod info;
pub mod keygen;
pub mod objects;
pub mod pubkey;
pub mod random;
pub mod readers;
pub mod sign;
pub mod verify;

use crate::cli::Command;
use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::CliError;
use std::path::Path;

/// Runs one subcommand.
pub fn run(context: &Context, command: &Command) -> Result<Output, CliError> {
    match command {
        Command::Readers => readers::run(context),
        Command::Info => info::run(context),
        Command::Objects => objects::run(context),
        Command::Cert(args) => cert::run(context, args),
        Command::Pubkey(args) => pubkey::run(context, args),
        Command::Sign(args) => sign::run(context, args),
        Command::Verify(args) => verify::run(context, args),
        Command::Random(args) => random::run(context, args),
        Command::Keygen(args) => keygen::run(context, args),
        Command::Csr(args) => csr::run(context, args),
        Command::Connect(args) => connect::run(context, args),
        Command::Enroll(args) => enroll::run(context, args),
        Command::Bench(args) => bench::run(context, args),
    }
}

/// Reads a whole input file (`-` is stdin).
pub fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| CliError::new("reading stdin", e))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| CliError::file("reading the input", path, &e))
}

/// Writes an output file.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| CliError::file("writing the output", path, &e))
}
