//! `iotsafe sign`: DER ECDSA P-256 over SHA-256 of a file, signed on the card.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::keys::{sign_message_der, signing_key_or_default};
use iotsafe_cli::progress::Progress;
use iotsafe_cli::CliError;
use iotsafe_core::hexutil;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Private key ID in hex (e.g. 01) or label (default: the card's signing key).
    #[arg(long, value_name = "ID|LABEL")]
    pub key: Option<String>,
    /// File to sign (`-` for stdin).
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Write the DER signature here (default: print it in hex).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Signs the input.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let message = super::read_input(&args.input)?;
    let card = context.card()?;
    let key = signing_key_or_default(card, args.key.as_deref());
    let der = {
        let _progress = Progress::start("signing on the card…");
        sign_message_der(card, &key, &message)?
    };
    let json =
        json!({ "key": key.to_string(), "signature_der": hexutil::encode(&der), "out": args.out });
    if let Some(out) = &args.out {
        super::write_output(out, &der)?;
        return Ok(Output::new(
            format!(
                "signed {} bytes with {key}: {} bytes of DER written to {}",
                message.len(),
                der.len(),
                out.display()
            ),
            json,
        ));
    }
    Ok(Output::new(hexutil::encode(&der), json))
}
