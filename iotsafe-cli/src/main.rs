//! `iotsafe`: inspect an IoT SAFE card, sign with it, make CSRs, and run TLS 1.3 handshakes whose
//! CertificateVerify and ECDHE happen on the card.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod context;
mod output;

use iotsafe_cli::exit::{exit_status, parse_args};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: cli::Cli = match parse_args() {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    let context = context::Context::new(cli.card.clone(), cli.trace);
    let result = commands::run(&context, &cli.command);
    context.close();
    let result = result.map(|out| {
        out.print(cli.json);
        out.success
    });
    exit_status("iotsafe", result)
}
