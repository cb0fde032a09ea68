//! `iotsafe csr`: a PKCS#10 request for a card key, signed on the card (proof of possession).

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::keys::{public_key, sign_message_der};
use iotsafe_cli::progress::Progress;
use iotsafe_cli::CliError;
use iotsafe_core::hexutil;
use iotsafe_core::{Card, ObjectRef};
use rcgen::{CertificateParams, DistinguishedName, DnType};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Mutex;

/// Arguments of `csr`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Private key ID in hex (e.g. 01) or label.
    #[arg(long, value_name = "ID|LABEL")]
    pub key: String,
    /// Subject, e.g. "CN=device-0001,O=Acme,C=FR" (CN, O, OU, C, ST, L).
    #[arg(long, value_name = "DN")]
    pub subject: String,
    /// DNS names to put in a subjectAltName extension (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    pub subject_alt_names: Vec<String>,
    /// Write the PEM request here (default: print it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Parses "CN=x,O=y" into a distinguished name.
pub fn parse_subject(text: &str) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    let text = text.trim().trim_start_matches('/');
    for part in text
        .split([',', '/'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (attr, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not ATTRIBUTE=VALUE"))?;
        let kind = match attr.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            other => {
                return Err(format!(
                    "unknown attribute {other:?} (use CN, O, OU, C, ST, L)"
                ))
            }
        };
        dn.push(kind, value.trim());
    }
    if dn.iter().next().is_none() {
        return Err("the subject is empty".into());
    }
    Ok(dn)
}

/// An rcgen signing key whose private half is on the card.
struct CardSigningKey<'a> {
    card: &'a Card,
    key: ObjectRef,
    point: [u8; 65],
    failure: Mutex<Option<CliError>>,
}

impl rcgen::PublicKeyData for CardSigningKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for CardSigningKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        sign_message_der(self.card, &self.key, msg).map_err(|e| {
            if let Ok(mut slot) = self.failure.lock() {
                *slot = Some(e);
            }
            rcgen::Error::RemoteKeyError
        })
    }
}

/// Makes the request.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let subject = parse_subject(&args.subject).map_err(|why| {
        CliError::new("reading --subject", why).hint("--subject \"CN=device-0001\"")
    })?;
    let card = context.card()?;
    let key = ObjectRef::parse(&args.key);
    let point = public_key(card, &key)?;
    let mut params = CertificateParams::new(args.subject_alt_names.clone())
        .map_err(|e| CliError::new("reading --san", e))?;
    params.distinguished_name = subject;
    let signer = CardSigningKey {
        card,
        key: key.clone(),
        point: point.0,
        failure: Mutex::new(None),
    };
    let csr = {
        let _progress = Progress::start("signing the request on the card…");
        params.serialize_request(&signer)
    };
    let csr = match csr {
        Ok(csr) => csr,
        Err(e) => {
            let card_failure = signer.failure.lock().ok().and_then(|mut f| f.take());
            return Err(card_failure.unwrap_or_else(|| CliError::new("building the request", e)));
        }
    };
    let pem_text = csr
        .pem()
        .map_err(|e| CliError::new("encoding the request as PEM", e))?;
    let json = json!({
        "key": key.to_string(),
        "subject": args.subject,
        "public_key": hexutil::encode(point.as_bytes()),
        "pem": pem_text,
        "out": args.out,
    });
    if let Some(out) = &args.out {
        super::write_output(out, pem_text.as_bytes())?;
        return Ok(Output::new(
            format!("certificate request for {key} written to {}", out.display()),
            json,
        ));
    }
    Ok(Output::new(pem_text, json))
}
