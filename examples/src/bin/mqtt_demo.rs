//! `mqtt-demo`: mutual-TLS MQTT with the private key on an IoT SAFE card.
//!
//! With no arguments it provisions (or reuses) a virtual card under the target directory, starts an
//! embedded broker that requires client certificates from the test CA, connects with rumqttc over
//! TLS 1.3 with the signature and the ECDHE on the card, subscribes, publishes, receives its own
//! messages, disconnects, and prints a report. Exit status 0 only if all of that happened.
#![forbid(unsafe_code)]

use clap::Parser;
use iotsafe_cli::exit::{exit_status, parse_args};
use iotsafe_cli::{CardFlags, CliError};
use iotsafe_examples::{run_mqtt_client, Backoff, BrokerTarget, ClientOptions, EmbeddedBroker};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Mutual-TLS MQTT with the device key on an IoT SAFE card (signature and ECDHE on the card).
#[derive(Debug, Parser)]
#[command(name = "mqtt-demo", version)]
struct Args {
    /// Card selection (default: a virtual card in `<target>/iotsafe-demo/card.json`).
    #[command(flatten)]
    card: CardFlags,
    /// A real broker, mqtts://HOST:PORT (default: an embedded broker on loopback).
    #[arg(long, value_name = "URL", requires = "ca")]
    broker: Option<String>,
    /// CA certificate(s) the broker's certificate chains to (PEM); with --broker.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// TLS server name to verify (default: the broker host).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// The client certificate chain to send (PEM, e.g. one `iotsafe enroll` wrote), its key on
    /// the card (default: the certificate on the card).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// MQTT client identifier.
    #[arg(long, default_value = "device-0001")]
    client_id: String,
    /// Topic (default: `iotsafe/demo/<client-id>`).
    #[arg(long)]
    topic: Option<String>,
    /// Messages to publish and receive back.
    #[arg(long, default_value_t = 3)]
    count: u32,
    /// Reconnect attempts before giving up (back-off 0.5 s doubling to 30 s).
    #[arg(long, default_value_t = 5)]
    max_retries: u32,
    /// Print every APDU on stderr (secrets redacted).
    #[arg(long)]
    trace: bool,
    /// The report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// `<target>/iotsafe-demo/card.json`, where `<target>` is the directory holding this binary's
/// profile directory (`target/release/mqtt-demo` → `target`), else `./target`.
fn default_state() -> PathBuf {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|p| p.to_path_buf()))
        .filter(|t| t.join("CACHEDIR.TAG").exists() || t.file_name().is_some_and(|n| n == "target"))
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("iotsafe-demo").join("card.json")
}

fn main() -> ExitCode {
    let args: Args = match parse_args() {
        Ok(args) => args,
        Err(status) => return status,
    };
    exit_status("mqtt-demo", run(args))
}

fn run(args: Args) -> Result<bool, CliError> {
    // Ctrl-C is caught from the start: whenever it comes, the client stops at its next step and
    // disconnects cleanly.
    // A current_thread runtime, the usual choice on a small device: the card's work runs in the
    // blocking pool (iotsafe_rustls::CardConnector), never on this thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new("starting the async runtime", e))?;
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    runtime.block_on(install_interrupt_handler(cancel_tx))?;
    let mut selection = args.card.clone();
    let demo_owns_state =
        selection.reader.is_none() && selection.modem.is_none() && selection.vcard.is_none();
    if demo_owns_state {
        selection.vcard = Some(default_state());
    }
    let opened = match selection.open() {
        Ok(opened) if opened.pki.is_some() || !demo_owns_state => opened,
        // The demo's own card state is unreadable or lost its PKI (an older format, a deleted
        // folder): start over with a fresh card rather than fail the first command of the README.
        result if demo_owns_state => {
            let state = default_state();
            let why = match &result {
                Ok(_) => "its test PKI is missing".to_string(),
                Err(e) => e.to_string(),
            };
            drop(result);
            eprintln!(
                "mqtt-demo: re-provisioning the demo card in {} ({why})",
                state.display()
            );
            let _ = std::fs::remove_file(&state);
            let _ = std::fs::remove_dir_all(iotsafe_cli::selection::pki_dir_of(&state));
            selection.open()?
        }
        result => result?,
    };
    if args.trace {
        opened
            .card
            .set_trace(Some(Arc::new(|e: &iotsafe_core::TraceEvent| {
                let arrow = match e.direction {
                    iotsafe_core::Direction::Command => "→",
                    iotsafe_core::Direction::Response => "←",
                };
                eprintln!("{arrow} {:<20} {}", e.command.to_string(), e.text);
            })));
    }
    let mut broker = match (&args.broker, &args.ca) {
        (Some(url), Some(ca)) => BrokerTarget::parse(url, ca.clone())?,
        (Some(_), None) => {
            return Err(CliError::new(
                "reading the arguments",
                "--broker needs --ca FILE",
            ))
        }
        (None, _) => {
            let pki = opened.pki.clone().ok_or_else(|| {
                CliError::new(
                    "starting the embedded broker",
                    format!("{} has no test PKI to give the broker", opened.description),
                )
                .hint("with a real card, pass --broker mqtts://HOST:PORT --ca FILE")
            })?;
            let embedded = EmbeddedBroker::start(&pki.ca_cert, &pki.server_cert, &pki.server_key)
                .map_err(|why| CliError::new("starting the embedded broker", why))?;
            BrokerTarget {
                host: embedded.address.ip().to_string(),
                port: embedded.address.port(),
                ca: pki.ca_cert.clone(),
                server_name: None,
                description: "embedded rumqttd, client certificates from the test CA required"
                    .into(),
            }
        }
    };
    broker.server_name = args.server_name.clone().or(broker.server_name);
    if args.broker.is_some() {
        broker.description = "client certificate on the card".into();
    }
    let opts = ClientOptions {
        topic: args
            .topic
            .clone()
            .unwrap_or_else(|| format!("iotsafe/demo/{}", args.client_id)),
        client_id: args.client_id.clone(),
        certificate: args.cert.clone(),
        count: args.count,
        backoff: Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(30),
            args.max_retries,
        ),
        cancel: Some(cancel_rx),
        ..ClientOptions::default()
    };
    let card = Arc::clone(&opened.card);
    let report = runtime.block_on(run_mqtt_client(card, broker, opts));
    let _ = opened.card.close();
    let report = report?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        let mut text = report.to_text();
        text = text.replacen("card\n", &format!("card\n  {}\n", opened.description), 1);
        print!("{text}");
    }
    Ok(report.success())
}

/// Sets `cancel` on Ctrl-C. The handler is installed before this returns (on Unix), so an early
/// Ctrl-C is not lost to the default action.
async fn install_interrupt_handler(
    cancel: tokio::sync::watch::Sender<bool>,
) -> Result<(), CliError> {
    #[cfg(unix)]
    let interrupted = {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())
            .map_err(|e| CliError::new("installing the Ctrl-C handler", e))?;
        async move { interrupt.recv().await.is_some() }
    };
    #[cfg(not(unix))]
    let interrupted = async { tokio::signal::ctrl_c().await.is_ok() };
    tokio::spawn(async move {
        if interrupted.await {
            eprintln!("mqtt-demo: interrupted, disconnecting…");
            let _ = cancel.send(true);
        }
    });
    Ok(())
}
