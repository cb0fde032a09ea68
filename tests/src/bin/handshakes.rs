//! A program that makes TLS handshakes with the card's key and ECDHE, as a device's TLS daemon
//! does, for tests that run several programs on one card: `--threads` threads, each making
//! `--each` handshakes to `--server` (one line each way), with the configuration a user gets
//! from `IotSafeTls::builder(card).build()`. Prints `handshakes: <ok> ok, <failed> failed` and each
//! failure; exits 0 only if every handshake succeeded.
//!
//! ```text
//! handshakes (--modem tcp://HOST:PORT | --reader NAME) --server HOST:PORT --ca CA.pem
//!            [--threads N] [--each N] [--pregenerate] [--pause-ms MS]
//! ```
#![forbid(unsafe_code)]

use iotsafe_core::{Card, CardConfig};
use iotsafe_rustls::{IotSafeTls, KxOptions};
use iotsafe_tests::echo_server;
use std::sync::Arc;
use std::time::Duration;

struct Args {
    modem: Option<String>,
    reader: Option<String>,
    server: String,
    ca: String,
    threads: usize,
    each: usize,
    pregenerate: bool,
    pause: Duration,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        modem: None,
        reader: None,
        server: String::new(),
        ca: String::new(),
        threads: 1,
        each: 1,
        pregenerate: false,
        pause: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--modem" => a.modem = Some(value()?),
            "--reader" => a.reader = Some(value()?),
            "--server" => a.server = value()?,
            "--ca" => a.ca = value()?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("{e}"))?,
            "--each" => a.each = value()?.parse().map_err(|e| format!("{e}"))?,
            "--pause-ms" => {
                a.pause = Duration::from_millis(value()?.parse().map_err(|e| format!("{e}"))?)
            }
            "--pregenerate" => a.pregenerate = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn open(a: &Args) -> Result<Card, String> {
    if let Some(modem) = &a.modem {
        let addr = modem
            .strip_prefix("tcp://")
            .ok_or("--modem tcp://HOST:PORT")?;
        let t = iotsafe_core::at::AtTransport::connect_tcp(addr).map_err(|e| e.to_string())?;
        return Card::open(t, CardConfig::default()).map_err(|e| e.to_string());
    }
    #[cfg(feature = "pcsc")]
    if let Some(reader) = &a.reader {
        let choice = iotsafe_core::pcsc::ReaderChoice::Exact(reader.clone());
        let t = iotsafe_core::pcsc::PcscTransport::connect(&choice, Default::default())
            .map_err(|e| e.to_string())?;
        return Card::open(t, CardConfig::default()).map_err(|e| e.to_string());
    }
    Err(format!(
        "no card: --modem or --reader (reader {:?} needs feature pcsc)",
        a.reader
    ))
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("handshakes: {e}");
            std::process::exit(2);
        }
    };
    let run = || -> Result<Vec<String>, String> {
        let card = Arc::new(open(&a)?);
        let roots = echo_server::roots(a.ca.as_ref())?;
        let tls = IotSafeTls::builder(card)
            .kx_options(KxOptions::pregenerating(a.pregenerate))
            .build()
            .map_err(|e| e.to_string())?;
        let config = Arc::new(tls.client_config(roots).map_err(|e| e.to_string())?);
        let pid = std::process::id();
        let threads: Vec<_> = (0..a.threads)
            .map(|t| {
                let (config, server, each, pause) =
                    (Arc::clone(&config), a.server.clone(), a.each, a.pause);
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    for i in 0..each {
                        let line = format!("process {pid} thread {t} handshake {i}");
                        if let Err(e) = echo_server::talk(&config, &server, &line) {
                            failures.push(format!("{line}: {e}"));
                        }
                        std::thread::sleep(pause);
                    }
                    failures
                })
            })
            .collect();
        let mut failures = Vec::new();
        for t in threads {
            failures.extend(t.join().map_err(|_| "a thread panicked")?);
        }
        Ok(failures)
    };
    match run() {
        Ok(failures) => {
            let total = a.threads * a.each;
            println!(
                "handshakes: {} ok, {} failed",
                total - failures.len(),
                failures.len()
            );
            for f in &failures {
                println!("failed: {f}");
            }
            std::process::exit(i32::from(!failures.is_empty()));
        }
        Err(e) => {
            println!("handshakes: setup failed: {e}");
            std::process::exit(1);
        }
    }
}
