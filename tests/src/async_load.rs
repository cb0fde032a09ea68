//! Concurrent async connects on one card, as a device's tokio program makes them, with a 5 ms
//! ticker on the same runtime: for the async connect tests (`tests/async_connect.rs`) and the
//! throughput benchmark (row 4a of `docs/performance.md`).

use iotsafe_rustls::CardConnector;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The ticker's period.
pub const TICK: Duration = Duration::from_millis(5);

/// A TLS server on loopback (its own 2-worker runtime) that requires a client certificate, reads
/// one line per connection and answers `ok <line>`.
pub struct AsyncEchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl AsyncEchoServer {
    /// Serves with `config`.
    pub fn start(config: Arc<rustls::ServerConfig>) -> AsyncEchoServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the server's runtime");
        let addr = runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut tls = BufReader::new(tls);
                        let mut line = String::new();
                        if tls.read_line(&mut line).await.is_ok() {
                            let _ = tls.write_all(format!("ok {line}").as_bytes()).await;
                            let _ = tls.shutdown().await;
                        }
                    });
                }
            });
            addr
        });
        AsyncEchoServer {
            addr,
            _runtime: runtime,
        }
    }
}

/// How a connect is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// `iotsafe_rustls::CardConnector::connect`.
    Connector,
    /// `tokio_rustls::TlsConnector::from(config).connect`: rustls's callbacks on the runtime.
    Plain,
}

/// The runtime the connects run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `new_current_thread`.
    CurrentThread,
    /// `new_multi_thread` with 2 workers.
    TwoWorkers,
}

impl Flavor {
    /// A runtime of this flavor, everything enabled.
    pub fn runtime(self) -> tokio::runtime::Runtime {
        match self {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::TwoWorkers => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
        }
        .enable_all()
        .build()
        .expect("a runtime")
    }
}

/// The name the test server's certificate carries.
pub fn name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a DNS name")
}

/// One connect to `server`, one line each way.
pub async fn one(
    how: How,
    config: Arc<ClientConfig>,
    server: SocketAddr,
    i: usize,
) -> Result<(), String> {
    let tcp = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let line = format!("hello {i}\n");
    let mut answer = String::new();
    match how {
        How::Connector => {
            let tls = CardConnector::from(config).connect(name(), tcp).await;
            let mut tls = BufReader::new(tls.map_err(|e| format!("connect: {e}"))?);
            tls.write_all(line.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            tls.read_line(&mut answer)
                .await
                .map_err(|e| e.to_string())?;
        }
        How::Plain => {
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name(), tcp)
                .await;
            let mut tls = BufReader::new(tls.map_err(|e| format!("connect: {e}"))?);
            tls.write_all(line.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            tls.read_line(&mut answer)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    if answer != format!("ok {line}") {
        return Err(format!("the server answered {answer:?}"));
    }
    Ok(())
}

/// How long the connect tasks go on.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Each task makes this many connects.
    Each(usize),
    /// Each task connects again and again for this long.
    Elapsed(Duration),
}

/// What one run saw.
#[derive(Debug)]
pub struct Run {
    /// Connects that succeeded.
    pub done: usize,
    /// Each failure, named.
    pub failures: Vec<String>,
    /// The ticker's longest stall (beyond its 5 ms).
    pub stall: Duration,
    /// From the first connect to the last one's end.
    pub wall: Duration,
}

/// `tasks` concurrent connect tasks (each as `until` says) on a new runtime of `flavor`, with a
/// 5 ms ticker on the same runtime.
pub fn run(
    config: &Arc<ClientConfig>,
    server: SocketAddr,
    flavor: Flavor,
    how: How,
    tasks: usize,
    until: Until,
) -> Run {
    let config = Arc::clone(config);
    flavor.runtime().block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                let mut longest = Duration::ZERO;
                let mut last = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(TICK).await;
                    let now = Instant::now();
                    longest = longest.max(now.duration_since(last).saturating_sub(TICK));
                    last = now;
                }
                longest
            }
        });
        // Let the ticker start before the connects.
        tokio::time::sleep(TICK * 2).await;
        let started = Instant::now();
        let workers: Vec<_> = (0..tasks)
            .map(|t| {
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    let mut i = 0;
                    loop {
                        let more = match until {
                            Until::Each(n) => i < n,
                            Until::Elapsed(d) => started.elapsed() < d,
                        };
                        if !more {
                            break outcomes;
                        }
                        let outcome = one(how, Arc::clone(&config), server, t * 1000 + i).await;
                        outcomes.push(outcome.map_err(|e| format!("task {t} connect {i}: {e}")));
                        i += 1;
                    }
                })
            })
            .collect();
        let mut done = 0;
        let mut failures = Vec::new();
        for (t, w) in workers.into_iter().enumerate() {
            match w.await {
                Ok(outcomes) => {
                    for o in outcomes {
                        match o {
                            Ok(()) => done += 1,
                            Err(e) => failures.push(e),
                        }
                    }
                }
                Err(e) => failures.push(format!("task {t} panicked: {e}")),
            }
        }
        let wall = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        let stall = ticker.await.unwrap_or_default();
        Run {
            done,
            failures,
            stall,
            wall,
        }
    })
}
