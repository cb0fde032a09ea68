//! `iotsafe connect`: a TLS 1.3 mutual-auth handshake with the card, like `openssl s_client`:
//! prints what was negotiated and what the card did; exit 0 only when the server accepted us.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::progress::Progress;
use iotsafe_cli::tls::{
    card_client_config, confirm_accepted, handshake, load_roots, server_name_for,
};
use iotsafe_cli::CliError;
use iotsafe_core::ObjectRef;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `connect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server address.
    #[arg(value_name = "HOST:PORT")]
    pub address: String,
    /// CA certificate(s) to trust for the server (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// Name to verify in the server certificate (default: HOST).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Device key ID or label (default 01).
    #[arg(long, value_name = "ID|LABEL")]
    pub key: Option<String>,
    /// The client certificate chain to send (PEM, e.g. one `iotsafe enroll` wrote), checked to
    /// certify the card key before the handshake (default: the certificate on the card).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// How long to wait after the handshake for the server to refuse the certificate (ms).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub wait_ms: u64,
}

/// Runs the handshake.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let roots = load_roots(&args.ca)?;
    let server_name = server_name_for(&args.address, args.server_name.as_deref())?;
    let card = Arc::clone(context.card()?);
    let config = {
        let _progress = Progress::start("reading the certificate from the card…");
        card_client_config(
            Arc::clone(&card),
            args.key.as_deref().map(ObjectRef::parse),
            args.cert.as_deref(),
            roots,
        )?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new("starting the async runtime", e))?;
    let address = args.address.clone();
    let wait = Duration::from_millis(args.wait_ms);
    let report = runtime.block_on(async move {
        let _progress = Progress::start(format!(
            "handshaking with {address} (ECDHE and signature on the card)…"
        ));
        let (mut stream, report) =
            handshake(Arc::new(config), &card, &address, server_name).await?;
        confirm_accepted(&mut stream, &address, wait).await?;
        use tokio::io::AsyncWriteExt;
        let _ = stream.shutdown().await;
        Ok::<_, CliError>(report)
    })?;
    let text = format!("handshake OK\n{}", report.to_text("  "));
    Ok(Output::new(text, report.to_json()))
}
