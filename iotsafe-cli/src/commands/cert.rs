//! `iotsafe cert`: a certificate file on the card: subject, issuer, validity, whether it matches
//! the card key; or the certificate itself (`--pem`, `--out`).

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::format::pem;
use iotsafe_cli::keys::{certificate_file_or_default, signing_key_or_default};
use iotsafe_cli::CliError;
use iotsafe_core::hexutil;
use serde_json::json;
use std::path::PathBuf;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Arguments of `cert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// File ID in hex (default: the file labelled `device-cert`, else the first certificate file).
    #[arg(long, value_name = "ID", conflicts_with = "label")]
    pub file: Option<String>,
    /// File label.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Print the certificate as PEM instead of its summary.
    #[arg(long)]
    pub pem: bool,
    /// Write the certificate to this file (PEM with `--pem`, else DER).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Key to compare the certificate's public key with (default: the card's signing key).
    #[arg(long, value_name = "ID|LABEL")]
    pub key: Option<String>,
}

/// Summary of a parsed certificate.
pub struct CertificateSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number in hex.
    pub serial: String,
    /// notBefore (RFC 2822-ish text from x509-parser).
    pub not_before: String,
    /// notAfter.
    pub not_after: String,
    /// Valid now.
    pub valid_now: bool,
    /// The subject public key (for EC: the point).
    pub public_key: Vec<u8>,
}

/// Parses a DER certificate.
pub fn summarize(der: &[u8]) -> Result<CertificateSummary, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not a DER X.509 certificate: {e}"))?;
    Ok(CertificateSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_before: cert.validity().not_before.to_string(),
        not_after: cert.validity().not_after.to_string(),
        valid_now: cert.validity().is_valid(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// Shows or exports the certificate.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let card = context.card()?;
    let file = certificate_file_or_default(card, args.file.as_deref(), args.label.as_deref());
    let der = card
        .read_file(&file)
        .map_err(|e| CliError::card(format!("reading the certificate file {file}"), &e))?;
    if der.is_empty() {
        return Err(CliError::new(
            format!("reading the certificate file {file}"),
            "the file is empty",
        )
        .hint("provision a certificate first, or pick another file with --file ID"));
    }
    let summary = summarize(&der)
        .map_err(|why| CliError::new(format!("parsing the certificate in file {file}"), why))?;
    let pem_text = pem("CERTIFICATE", &der);
    if let Some(out) = &args.out {
        let bytes = if args.pem {
            pem_text.as_bytes()
        } else {
            &der[..]
        };
        super::write_output(out, bytes)?;
    }
    let key = signing_key_or_default(card, args.key.as_deref());
    let key_point = card.read_public_key(&key).ok();
    let key_match = key_point
        .as_ref()
        .map(|p| p.as_bytes()[..] == summary.public_key[..]);
    let json = json!({
        "file": file.to_string(),
        "subject": summary.subject,
        "issuer": summary.issuer,
        "serial": summary.serial,
        "not_before": summary.not_before,
        "not_after": summary.not_after,
        "valid_now": summary.valid_now,
        "public_key": hexutil::encode(&summary.public_key),
        "key": key.to_string(),
        "key_match": key_match,
        "der_len": der.len(),
        "pem": pem_text,
    });
    if args.pem {
        return Ok(Output::new(pem_text, json));
    }
    let match_text = match key_match {
        Some(true) => format!("yes ({key})"),
        Some(false) => format!("NO: the certificate's key is not {key}"),
        None => format!("unknown ({key} has no readable public key)"),
    };
    let text = format!(
        "file:        {file} ({} bytes)\nsubject:     {}\nissuer:      {}\nserial:      {}\nnot before:  {}\nnot after:   {}\nvalid now:   {}\nkey match:   {match_text}\n",
        der.len(),
        summary.subject,
        summary.issuer,
        summary.serial,
        summary.not_before,
        summary.not_after,
        if summary.valid_now { "yes" } else { "no" },
    );
    Ok(Output::new(text, json))
}
