//! `iotsafe pubkey`: the public key of a card key pair, as a point and as PEM.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::format::pem;
use iotsafe_cli::keys::{public_key, signing_key_or_default};
use iotsafe_cli::CliError;
use iotsafe_core::hexutil;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `pubkey`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key ID in hex (e.g. 01) or label (default: the card's signing key).
    #[arg(long, value_name = "ID|LABEL")]
    pub key: Option<String>,
    /// Print only the SubjectPublicKeyInfo PEM.
    #[arg(long)]
    pub pem: bool,
    /// Write the PEM to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Prints the public key.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let card = context.card()?;
    let key = signing_key_or_default(card, args.key.as_deref());
    let point = public_key(card, &key)?;
    let spki = point.to_p256_spki();
    let pem_text = pem("PUBLIC KEY", &spki);
    if let Some(out) = &args.out {
        super::write_output(out, pem_text.as_bytes())?;
    }
    let text = if args.pem {
        pem_text.clone()
    } else {
        format!(
            "key:    {key}\npoint:  {}\n{pem_text}",
            hexutil::encode(point.as_bytes())
        )
    };
    let json = json!({
        "key": key.to_string(),
        "point": hexutil::encode(point.as_bytes()),
        "spki_der": hexutil::encode(&spki),
        "pem": pem_text,
    });
    Ok(Output::new(text, json))
}
