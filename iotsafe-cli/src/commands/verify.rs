//! `iotsafe verify`: checks a DER ECDSA P-256/SHA-256 signature with a card public key, on the host
//! (default) or on the card (`--on-card`).

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::keys::{public_key, signing_key_or_default};
use iotsafe_cli::progress::Progress;
use iotsafe_cli::CliError;
use iotsafe_core::commands::P256_FIELD_LEN;
use iotsafe_core::hexutil;
use iotsafe_core::signature::der_to_rs;
use iotsafe_core::HashAlgorithm;
use p256::ecdsa::signature::Verifier;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key ID in hex (e.g. 01) or label whose public key checks the signature (default: the
    /// card's signing key).
    #[arg(long, value_name = "ID|LABEL")]
    pub key: Option<String>,
    /// The signed file (`-` for stdin).
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// The signature: DER (binary) or its hex.
    #[arg(long, value_name = "FILE")]
    pub sig: PathBuf,
    /// Let the card verify (VERIFY SIGNATURE) instead of the host.
    #[arg(long)]
    pub on_card: bool,
}

/// Parses a signature file: binary DER, hex of DER, or raw 64-byte `r‖s`.
fn parse_signature(bytes: &[u8]) -> Option<p256::ecdsa::Signature> {
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    let decoded = text.and_then(hexutil::decode);
    let raw = decoded.as_deref().unwrap_or(bytes);
    let rs = der_to_rs(raw, P256_FIELD_LEN).unwrap_or_else(|_| raw.to_vec());
    p256::ecdsa::Signature::from_slice(&rs).ok()
}

/// Verifies; exit status 1 when the signature does not match.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let message = super::read_input(&args.input)?;
    let sig_bytes = super::read_input(&args.sig)?;
    let signature = parse_signature(&sig_bytes).ok_or_else(|| {
        CliError::new(
            format!("reading the signature {}", args.sig.display()),
            "not a DER ECDSA signature (nor its hex, nor raw r‖s)",
        )
        .hint("use the output of `iotsafe sign --out FILE`")
    })?;
    let card = context.card()?;
    let key = signing_key_or_default(card, args.key.as_deref());
    let valid = if args.on_card {
        let digest = Sha256::digest(&message);
        let _progress = Progress::start("verifying on the card…");
        card.verify_digest(&key, HashAlgorithm::Sha256, &digest, &signature.to_bytes())
            .map_err(|e| CliError::card(format!("verifying with {key} on the card"), &e))?
    } else {
        let point = public_key(card, &key)?;
        let verifying_key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point.as_bytes()).map_err(|_| {
                CliError::new(
                    format!("reading the public key {key}"),
                    "the card returned a point that is not on P-256",
                )
            })?;
        verifying_key.verify(&message, &signature).is_ok()
    };
    let text = if valid {
        format!("signature OK ({key})")
    } else {
        format!("signature does NOT match ({key})")
    };
    let mut out = Output::new(
        text,
        json!({ "key": key.to_string(), "valid": valid, "on_card": args.on_card }),
    );
    out.success = valid;
    Ok(out)
}
