//! `iotsafe random N`: bytes from the card's random generator.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::CliError;
use iotsafe_core::hexutil;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `random`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many bytes (1..=65536).
    #[arg(value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub count: u32,
    /// Write the raw bytes to this file instead of printing hex.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Reads random bytes.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let card = context.card()?;
    let bytes = card
        .get_random(args.count as usize)
        .map_err(|e| CliError::card(format!("reading {} random bytes", args.count), &e))?;
    if let Some(out) = &args.out {
        super::write_output(out, &bytes)?;
        return Ok(Output::new(
            format!("{} random bytes written to {}", bytes.len(), out.display()),
            json!({ "count": bytes.len(), "out": out }),
        ));
    }
    Ok(Output::new(
        hexutil::encode(&bytes),
        json!({ "count": bytes.len(), "hex": hexutil::encode(&bytes) }),
    ))
}
