//! How the `iotsafe` tool and the MQTT demo start and end: the command line parsed the way clap
//! means it, and one exit status convention.
//!
//! - `0`: the run did what was asked (or help / version was printed);
//! - `1`: it ran but the answer is "no" (a signature that does not match, a demo whose messages
//!   did not come back), or it failed with an error, printed on one line as `<program>: error: …`;
//! - `2`: the command line was wrong (clap's usage message on stderr).

use crate::CliError;
use std::process::ExitCode;

/// Parses the command line into `P`. When it cannot, the message is printed here (help and
/// version on stdout with status 0, usage errors on stderr with status 2) and the status to exit
/// with is returned.
pub fn parse_args<P: clap::Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// The exit status of a run that said whether it succeeded (`Ok(true)`), ran into a "no"
/// (`Ok(false)`) or failed; a failure is printed on stderr as `<program>: error: <error>`.
pub fn exit_status(program: &str, result: Result<bool, CliError>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{program}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
