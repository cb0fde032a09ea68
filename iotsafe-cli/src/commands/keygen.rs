//! `iotsafe keygen`: a new key pair in a card slot (the old private key is gone for good).

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::format::pem;
use iotsafe_cli::progress::Progress;
use iotsafe_cli::CliError;
use iotsafe_core::hexutil;
use iotsafe_core::ObjectRef;
use serde_json::json;

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Private key ID in hex (e.g. 01) or label of the slot to (re)generate.
    #[arg(long, value_name = "ID|LABEL")]
    pub key: String,
}

/// Generates the key pair.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let card = context.card()?;
    let key = ObjectRef::parse(&args.key);
    let pair = {
        let _progress = Progress::start("generating a key pair on the card…");
        card.generate_key_pair(&key)
            .map_err(|e| CliError::card(format!("generating a key pair in {key}"), &e))?
    };
    let _ = card.refresh();
    let spki = pair.point.to_p256_spki();
    let pem_text = pem("PUBLIC KEY", &spki);
    let volatile = card
        .find(iotsafe_core::ObjectKind::PrivateKey, &key)
        .is_ok_and(|o| o.key_type == Some(iotsafe_core::objects::key_type::P256_VOLATILE));
    let note = if volatile {
        String::new()
    } else {
        format!(
            "note: a certificate issued for the previous key no longer matches; make a new one with `iotsafe csr --key {}`\n",
            args.key
        )
    };
    let text = format!(
        "new key pair: private {}, public {}\npoint: {}\n{pem_text}{note}",
        pair.private,
        pair.public,
        hexutil::encode(pair.point.as_bytes()),
    );
    Ok(Output::new(
        text,
        json!({
            "private": pair.private.to_string(),
            "public": pair.public.to_string(),
            "point": hexutil::encode(pair.point.as_bytes()),
            "pem": pem_text,
        }),
    ))
}
