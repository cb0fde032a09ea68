//! `iotsafe bench`: card operations per second and latency per operation, then full TLS 1.3
//! handshakes per second (against `--server`, or an in-process rustls server that requires client
//! certificates when the virtual card's test PKI is there). `--timeline FILE.svg` draws the first
//! handshake.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::format::{millis, operation_name};
use iotsafe_cli::keys::signing_key_or_default;
use iotsafe_cli::progress::Progress;
use iotsafe_cli::selection::TestPki;
use iotsafe_cli::timeline::{Timeline, TimelineFlags};
use iotsafe_cli::tls::{
    card_client_config, handshake, handshake_recorded, load_roots, server_name_for,
};
use iotsafe_cli::CliError;
use iotsafe_core::{Card, HashAlgorithm, ObjectRef, Operation};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Iterations of each card operation.
    #[arg(long, default_value_t = 20)]
    pub iterations: u32,
    /// Full handshakes to run (0 to skip).
    #[arg(long, default_value_t = 10)]
    pub handshakes: u32,
    /// Benchmark handshakes against this server instead of an in-process one.
    #[arg(long, value_name = "HOST:PORT", requires = "ca")]
    pub server: Option<String>,
    /// CA certificate of `--server` (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// `--timeline FILE.svg` (of the first handshake), `--baud N`.
    #[command(flatten)]
    pub timeline: TimelineFlags,
}

struct Measured {
    name: String,
    count: u32,
    total: Duration,
    apdus: u64,
    in_card: Duration,
}

impl Measured {
    fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.total / self.count
        }
    }
    fn per_second(&self) -> f64 {
        if self.total.is_zero() {
            0.0
        } else {
            f64::from(self.count) / self.total.as_secs_f64()
        }
    }
    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "count": self.count,
            "mean_ms": self.mean().as_secs_f64() * 1000.0,
            "per_second": self.per_second(),
            "apdus_per_op": self.apdus as f64 / f64::from(self.count.max(1)),
            "time_in_card_ms": self.in_card.as_secs_f64() * 1000.0,
        })
    }
}

fn measure(
    card: &Card,
    name: &str,
    n: u32,
    mut op: impl FnMut() -> Result<(), CliError>,
) -> Result<Measured, CliError> {
    let before = card.stats();
    let started = Instant::now();
    for _ in 0..n {
        op()?;
    }
    let total = started.elapsed();
    let delta = card.stats().since(&before);
    Ok(Measured {
        name: name.to_string(),
        count: n,
        total,
        apdus: delta.apdus,
        in_card: delta.time_in_card,
    })
}

/// Runs the benchmark.
pub fn run(context: &Context, args: &Args) -> Result<Output, CliError> {
    let timeline = args.timeline.recorder();
    if let Some(t) = &timeline {
        // Recording starts again at the first handshake; the card operations before are not drawn.
        context.record_timeline(t);
    }
    let opened = context.opened()?;
    let card = Arc::clone(&opened.card);
    let n = args.iterations.max(1);
    let key = signing_key_or_default(&card, None);
    let ephemeral = ObjectRef::id([0x04]);
    let peer = ObjectRef::id([0x05]);
    let card_err = |what: &'static str| move |e: iotsafe_core::Error| CliError::card(what, &e);
    let mut results = Vec::new();
    {
        let _progress = Progress::start("benchmarking card operations…");
        let digest = [0x5Au8; 32];
        results.push(measure(&card, "sign (ECDSA P-256)", n, || {
            card.sign_digest(&key, HashAlgorithm::Sha256, &digest)
                .map(drop)
                .map_err(card_err("signing"))
        })?);
        results.push(measure(&card, "keygen (ephemeral)", n, || {
            card.generate_ephemeral(&ephemeral)
                .map(drop)
                .map_err(card_err("generating an ephemeral key"))
        })?);
        // A valid peer point: the device public key.
        let peer_point = card
            .read_public_key(&key)
            .map_err(|e| CliError::card("reading the device public key", &e))?;
        results.push(measure(&card, "keygen + put peer key + ecdh", n, || {
            let eph = card
                .generate_ephemeral(&ephemeral)
                .map_err(card_err("generating an ephemeral key"))?;
            card.ephemeral_agreement(&eph, &peer, &peer_point)
                .map(drop)
                .map_err(card_err("computing ECDH"))
        })?);
        results.push(measure(&card, "random (32 bytes)", n, || {
            card.get_random(32)
                .map(drop)
                .map_err(card_err("reading random bytes"))
        })?);
    }
    // Without --server, handshakes need the virtual card's test PKI for the in-process server.
    let have_server = args.server.is_some() || opened.pki.is_some();
    let handshakes = if args.handshakes > 0 && have_server {
        Some(bench_handshakes(
            &card,
            args,
            opened.pki.as_ref(),
            timeline.as_ref(),
        )?)
    } else {
        None
    };

    let mut text = format!(
        "card: {}\n\ncard operations ({n} each)\n",
        opened.description
    );
    text.push_str(&format!(
        "  {:<28} {:>10} {:>9} {:>9}\n",
        "operation", "mean", "ops/s", "APDUs/op"
    ));
    for m in &results {
        text.push_str(&format!(
            "  {:<28} {:>10} {:>9.1} {:>9.1}\n",
            m.name,
            millis(m.mean()),
            m.per_second(),
            m.apdus as f64 / f64::from(m.count.max(1))
        ));
    }
    let mut json = json!({
        "card": opened.description,
        "operations": results.iter().map(Measured::json).collect::<Vec<_>>(),
    });
    if let Some((hs, per_op, server)) = &handshakes {
        text.push_str(&format!(
            "\nTLS 1.3 handshakes with client authentication against {server} ({} handshakes)\n  mean {} per handshake, {:.1} handshakes/s, {:.1} APDUs and {} in the card per handshake\n  per handshake in the card:\n",
            hs.count,
            millis(hs.mean()),
            hs.per_second(),
            hs.apdus as f64 / f64::from(hs.count.max(1)),
            millis(hs.in_card / hs.count.max(1)),
        ));
        for (op, count, time) in per_op {
            text.push_str(&format!(
                "    {:<16} {:.1}× {:>10}\n",
                op,
                *count as f64 / f64::from(hs.count.max(1)),
                millis(*time / hs.count.max(1))
            ));
        }
        json["handshakes"] = hs.json();
        json["handshake_server"] = json!(server);
        if let (Some(t), Some(path)) = (&timeline, &args.timeline.timeline) {
            let title = format!("iotsafe bench: first handshake with {server}");
            t.finish(path, &title)?;
            text.push_str(&format!("timeline: {}\n", path.display()));
            json["timeline"] = json!(path.display().to_string());
        }
    } else if args.handshakes > 0 {
        text.push_str(
            "\nhandshakes: skipped (pass --server HOST:PORT --ca FILE to benchmark handshakes with this card)\n",
        );
    }
    if handshakes.is_none() && args.timeline.timeline.is_some() {
        text.push_str("timeline: not drawn (no handshake ran)\n");
    }
    Ok(Output::new(text, json))
}

type PerOperation = Vec<(&'static str, u64, Duration)>;

fn bench_handshakes(
    card: &Arc<Card>,
    args: &Args,
    pki: Option<&TestPki>,
    timeline: Option<&Arc<Timeline>>,
) -> Result<(Measured, PerOperation, String), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new("starting the async runtime", e))?;
    let (address, ca) = match (&args.server, &args.ca, pki) {
        (Some(server), Some(ca), _) => (server.clone(), ca.clone()),
        (None, _, Some(pki)) => {
            let address = runtime.block_on(in_process_server::start(pki))?;
            (address, pki.ca_cert.clone())
        }
        _ => {
            return Err(
                CliError::new("benchmarking handshakes", "no server to handshake with")
                    .hint("--server HOST:PORT --ca FILE, or --handshakes 0"),
            )
        }
    };
    let roots = load_roots(&ca)?;
    let config = Arc::new(card_client_config(Arc::clone(card), None, None, roots)?);
    let server_name = server_name_for(&address, None)?;
    let before = card.stats();
    let started = Instant::now();
    runtime.block_on(async {
        let _progress = Progress::start(format!("benchmarking handshakes with {address}…"));
        use tokio::io::AsyncWriteExt;
        for i in 0..args.handshakes {
            let config = Arc::clone(&config);
            let name = server_name.clone();
            match timeline.filter(|_| i == 0) {
                Some(t) => {
                    t.restart();
                    let recorded = handshake_recorded(config, card, &address, name, t).await;
                    // Only the handshake: not its close, nor the handshakes after it.
                    t.stop();
                    let _ = recorded?.0.shutdown().await;
                }
                None => {
                    let (mut stream, _) = handshake(config, card, &address, name).await?;
                    let _ = stream.shutdown().await;
                }
            }
        }
        Ok::<_, CliError>(())
    })?;
    let total = started.elapsed();
    let delta = card.stats().since(&before);
    let per_op = [
        Operation::GenerateKeyPair,
        Operation::PutPublicKey,
        Operation::Dh,
        Operation::Sign,
    ]
    .iter()
    .map(|op| {
        let s = delta.of(*op);
        (operation_name(*op), s.count, s.time)
    })
    .collect();
    Ok((
        Measured {
            name: "handshake".into(),
            count: args.handshakes,
            total,
            apdus: delta.apdus,
            in_card: delta.time_in_card,
        },
        per_op,
        address,
    ))
}

/// A rustls server on loopback that requires a client certificate from the test CA.
mod in_process_server {
    use iotsafe_cli::selection::TestPki;
    use iotsafe_cli::CliError;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    pub async fn start(pki: &TestPki) -> Result<String, CliError> {
        let what = "starting the in-process TLS server";
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = iotsafe_cli::tls::load_roots(&pki.ca_cert)?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| CliError::new(what, e))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
            .map_err(|e| CliError::new(what, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| CliError::new(what, e))?;
        let key =
            PrivateKeyDer::from_pem_file(&pki.server_key).map_err(|e| CliError::new(what, e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| CliError::new(what, e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| CliError::new(what, e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| CliError::new(what, e))?;
        let address = listener.local_addr().map_err(|e| CliError::new(what, e))?;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 256];
                        while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                    }
                });
            }
        });
        Ok(address.to_string())
    }
}
