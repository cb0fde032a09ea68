//! `iotsafe enroll`: an operational certificate for a card key from an EST server (RFC 7030),
//! the CSR and the TLS handshakes signed on the card, the chain written next to the card; with
//! `--renew-before`, only when the stored certificate is about to expire (for a daily timer).

use crate::commands::csr::parse_subject;
use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::progress::Progress;
use iotsafe_cli::CliError;
use iotsafe_core::ObjectRef;
use iotsafe_est::{BasicAuth, EstUrl, Operation, Renewal, Trust};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable a password may come from.
const PASSWORD_VARIABLE: &str = "IOTSAFE_EST_PASSWORD";

/// Arguments of `enroll`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The EST server, `https://HOST[:PORT][/.well-known/est[/LABEL]]`.
    #[arg(long, value_name = "URL")]
    pub est: String,
    /// Where to write the enrolled chain (PEM: the certificate, then the EST CA).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The trust anchor(s) for the EST server's TLS certificate (PEM).
    #[arg(long, value_name = "FILE", required_unless_present = "ca_fingerprint")]
    pub ca: Option<PathBuf>,
    /// No trust anchor yet: take the EST CA from /cacerts only if its SHA-256 fingerprint is this
    /// (hex; colons allowed), given out of band by the operator.
    #[arg(long, value_name = "HEX", conflicts_with = "ca")]
    pub ca_fingerprint: Option<String>,
    /// HTTP basic user; the password comes from --password-file or IOTSAFE_EST_PASSWORD.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// A file whose first line is the HTTP basic password.
    #[arg(long, value_name = "FILE", requires = "user")]
    pub password_file: Option<PathBuf>,
    /// The card key the certificate is for (default 01).
    #[arg(long, value_name = "ID|LABEL")]
    pub key: Option<String>,
    /// The certificate to authenticate with and take the subject from (PEM chain; default: the
    /// one on the card, i.e. the factory bootstrap certificate).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The subject, e.g. "CN=device-0001,O=Acme" (default: the current certificate's).
    #[arg(long, value_name = "DN")]
    pub subject: Option<String>,
    /// Renew (/simplereenroll, authenticated by the stored certificate) only when the
    /// certificate in --out expires within DAYS; do nothing before. Enrols when --out is missing.
    #[arg(long, value_name = "DAYS")]
    pub renew_before: Option<u64>,
    /// Use /simplereenroll (renewal) even without --renew-before.
    #[arg(long)]
    pub reenroll: bool,
    /// With --user, also send the current certificate when the server asks for one (without
    /// --user, with --cert, and when renewing, it is always sent).
    #[arg(long)]
    pub client_cert: bool,
    /// Offer TLS 1.2 too (many EST servers speak only TLS 1.2).
    #[arg(long)]
    pub tls12: bool,
    /// Ask /csrattrs first, and stop before signing if the server wants what the card cannot do.
    #[arg(long)]
    pub csrattrs: bool,
    /// The certificate is for this key slot instead of --key (which still authenticates TLS).
    #[arg(long, value_name = "ID|LABEL")]
    pub new_key: Option<String>,
    /// Make a fresh key pair in --new-key first (GENERATE KEY PAIR; never in the --key slot).
    #[arg(long, requires = "new_key")]
    pub generate: bool,
    /// When the server answers 202 (manual approval), wait and ask again for at most SECONDS.
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,
}

/// Enrols, renews, or says why not.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let url = EstUrl::parse(&args.est).map_err(|e| CliError::new("reading --est", e))?;
    let mut current = match &args.cert {
        Some(path) => Some(read_chain(path)?),
        None => None,
    };
    let mut operation = if args.reenroll {
        Operation::Reenroll
    } else {
        Operation::Enroll
    };
    if let Some(days) = args.renew_before {
        if args.out.exists() {
            let stored = read_chain(&args.out)?;
            let window = Duration::from_secs(days * 86_400);
            match iotsafe_est::renewal(&stored.1[0], window)
                .map_err(|e| CliError::new(format!("reading {}", args.out.display()), e))?
            {
                Renewal::NotDue { expires_in } => {
                    let days_left = expires_in.as_secs() / 86_400;
                    return Ok(Output::new(
                        format!(
                            "{} expires in {days_left} days, outside the {days}-day window: not renewed",
                            args.out.display()
                        ),
                        json!({"renewed": false, "expires_in_days": days_left, "out": args.out}),
                    ));
                }
                Renewal::Due { .. } => {
                    operation = Operation::Reenroll;
                    current = current.or(Some(stored));
                }
            }
        }
    }
    let trust = match (&args.ca, &args.ca_fingerprint) {
        (Some(path), _) => Trust::Anchors(read_chain(path)?.1),
        (None, Some(fingerprint)) => Trust::Fingerprint(fingerprint.clone()),
        (None, None) => unreachable!("clap requires --ca or --ca-fingerprint"),
    };
    let basic = match &args.user {
        Some(user) => Some(BasicAuth::new(
            user,
            password(args.password_file.as_deref())?,
        )),
        None => None,
    };
    let subject = args
        .subject
        .as_deref()
        .map(parse_subject)
        .transpose()
        .map_err(|why| CliError::new("reading --subject", why))?;
    let enrollment = iotsafe_est::Enrollment {
        url,
        trust,
        // Renewal is authenticated by the certificate being renewed.
        client_certificate: basic.is_none()
            || current.is_some()
            || args.client_cert
            || operation == Operation::Reenroll,
        basic,
        key: ObjectRef::parse(args.key.as_deref().unwrap_or("01")),
        current,
        subject,
        tls12: args.tls12,
        csr_attrs: args.csrattrs,
        new_key: args
            .new_key
            .as_deref()
            .map(|slot| (ObjectRef::parse(slot), args.generate)),
        operation,
        wait: args.wait.map(Duration::from_secs),
    };
    let card = context.card()?;
    let enrolled = {
        let _progress = Progress::start(format!(
            "enrolling with {} (CSR and handshakes signed on the card)…",
            enrollment.url
        ));
        iotsafe_est::enroll(card, &enrollment).map_err(|e| CliError::new("enrolling", e))?
    };
    iotsafe_est::write_chain(&args.out, &enrolled.chain)
        .map_err(|e| CliError::new("storing the certificate", e))?;
    let verb = match operation {
        Operation::Enroll => "enrolled",
        Operation::Reenroll => "renewed",
    };
    Ok(Output::new(
        format!(
            "{verb}: {} certificate(s) written to {} ({} card APDUs, {} approval wait(s))",
            enrolled.chain.len(),
            args.out.display(),
            enrolled.apdus,
            enrolled.retries
        ),
        json!({
            "renewed": operation == Operation::Reenroll,
            "out": args.out,
            "apdus": enrolled.apdus,
            "retries": enrolled.retries,
            "fingerprint": iotsafe_est::fingerprint(&enrolled.chain[0]),
        }),
    ))
}

/// A PEM chain from `path`, named by it.
fn read_chain(
    path: &Path,
) -> Result<(String, Vec<rustls::pki_types::CertificateDer<'static>>), CliError> {
    let chain = iotsafe_rustls::read_pem_chain(path)
        .map_err(|e| CliError::new(format!("reading {}", path.display()), e))?;
    Ok((path.display().to_string(), chain))
}

/// The password: the first line of `file`, else the environment; never the command line.
fn password(file: Option<&Path>) -> Result<String, CliError> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::new(format!("reading {}", file.display()), e))?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    std::env::var(PASSWORD_VARIABLE).map_err(|_| {
        CliError::new(
            "--user without a password",
            "no --password-file and no IOTSAFE_EST_PASSWORD",
        )
        .hint("put the password in a file readable only by this user and pass --password-file")
    })
}
