//! `iotsafe connect`: a TLS 1.3 mutual-auth handshake with the card, like `openssl s_client`:
//! prints what was negotiated and what the card did; exit 0 only when the server accepted us.
//! With `--timeline FILE.svg`, also draws where the time went, from the card's opening on.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::progress::Progress;
use iotsafe_cli::timeline::{NetKind, Timeline, TimelineFlags, BUILD_CONFIG, CONFIRM};
use iotsafe_cli::tls::{
    card_client_config, confirm_accepted, handshake, handshake_recorded, load_roots,
    server_name_for,
};
use iotsafe_cli::CliError;
use iotsafe_core::ObjectRef;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

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
    /// `--timeline FILE.svg`, `--baud N`.
    #[command(flatten)]
    pub timeline: TimelineFlags,
}

/// Runs the handshake.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let timeline = args.timeline.recorder();
    if let Some(t) = &timeline {
        context.record_timeline(t);
    }
    let result = connect(context, args, timeline.as_ref());
    let (Some(t), Some(path)) = (&timeline, &args.timeline.timeline) else {
        return result;
    };
    let title = format!("iotsafe connect {}", args.address);
    match result {
        Ok(mut out) => {
            t.finish(path, &title)?;
            out.text
                .push_str(&format!("timeline: {}\n", path.display()));
            out.json["timeline"] = path.display().to_string().into();
            Ok(out)
        }
        // A failed handshake's picture shows how far it got; the failure is what to report.
        Err(e) => {
            if t.finish(path, &format!("{title} (failed)")).is_ok() {
                eprintln!("timeline of the failed attempt: {}", path.display());
            }
            Err(e)
        }
    }
}

fn connect(
    context: &Context,
    args: &Args,
    timeline: Option<&Arc<Timeline>>,
) -> Result<Output, CliError> {
    let roots = load_roots(&args.ca)?;
    let server_name = server_name_for(&args.address, args.server_name.as_deref())?;
    let card = Arc::clone(context.card()?);
    let config = {
        let _progress = Progress::start("reading the certificate from the card…");
        let _phase = timeline.map(|t| t.phase(BUILD_CONFIG));
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
    let timeline = timeline.cloned();
    let report = runtime.block_on(async move {
        let _progress = Progress::start(format!(
            "handshaking with {address} (ECDHE and signature on the card)…"
        ));
        let config = Arc::new(config);
        let report = match &timeline {
            None => {
                let (mut stream, report) = handshake(config, &card, &address, server_name).await?;
                confirm(&mut stream, &address, wait, None).await?;
                report
            }
            Some(t) => {
                let (mut stream, report) =
                    handshake_recorded(config, &card, &address, server_name, t).await?;
                confirm(&mut stream, &address, wait, Some(t)).await?;
                report
            }
        };
        Ok::<_, CliError>(report)
    })?;
    let text = format!("handshake OK\n{}", report.to_text("  "));
    Ok(Output::new(text, report.to_json()))
}

/// Waits for the server's verdict (recorded as a network wait), then closes the connection.
async fn confirm<IO>(
    stream: &mut TlsStream<IO>,
    address: &str,
    wait: Duration,
    timeline: Option<&Arc<Timeline>>,
) -> Result<(), CliError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let phase = timeline.map(|t| t.phase(CONFIRM));
    let waiting = Instant::now();
    let verdict = confirm_accepted(stream, address, wait).await;
    if let Some(t) = timeline {
        t.network(NetKind::Verdict, waiting, Instant::now(), 0);
    }
    drop(phase);
    if let Some(t) = timeline {
        // The close_notify below is not part of the handshake's picture.
        t.stop();
    }
    verdict?;
    let _ = stream.shutdown().await;
    Ok(())
}
