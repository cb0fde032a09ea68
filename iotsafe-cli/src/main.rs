//! `iotsafe`: inspect an IoT SAFE card, sign with it, make CSRs, and run TLS 1.3 handshakes whose
//! CertificateVerify and ECDHE happen on the card.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod context;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors are one message, status 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let context = context::Context::new(cli.card.clone(), cli.trace);
    let result = commands::run(&context, &cli.command);
    context.close();
    match result {
        Ok(out) => {
            out.print(cli.json);
            if out.success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("iotsafe: error: {e}");
            ExitCode::FAILURE
        }
    }
}
