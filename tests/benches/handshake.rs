//! Issue #7: what a TLS 1.3 mutual-auth handshake costs with the card, in-memory (rustls client ⇄
//! rustls server, no sockets), against the in-process virtual card.
//!
//! * `host_overhead/*`: the card client at zero card latency vs. a software P-256 client key
//!   (ring), same server, same secp256r1 ECDHE.
//! * `critical_path/*`: the card client under the typical-SIM latency model, without
//!   pre-generation, with the group's background pre-generation, and with the next key generated
//!   by the caller after the handshake (idle time between handshakes, not timed); and
//!   `critical_path/modem_t1_*`, `modem_t0_*`: the same without pre-generation under the `modem`
//!   preset, the typical SIM behind a 115,200-baud UART (the in-process card charges the
//!   `AT+CSIM` lines of each APDU, 10 bits a byte), over T=1 and T=0 (each GET RESPONSE an
//!   `AT+CSIM` of its own).
//! * `anchor/*`: wolfSSL's IoT-SAFE card calls for the same handshake, replayed on the same card
//!   model.
//! * `signature_check/*`: the host-side verification of the card's signature against the key's
//!   public point (`Card::sign_digest_checked`), once per handshake.
//!
//! `cargo bench -p iotsafe-tests --bench handshake` also prints a report (medians of its own
//! runs, APDUs, bytes, card-busy time, the floor, throughput of N = 1, 4, 8, 32 threads on one
//! card with the default configuration and the longest wait for the card's slot, async connects
//! on one runtime with the async connector and with plain tokio-rustls and the runtime's longest
//! stall); set
//! `IOTSAFE_PERF_REPORT=0` to skip it. Under `cargo test --benches` only the zero-latency
//! benches run, once each.
#![forbid(unsafe_code)]

use criterion::Criterion;
use iotsafe_core::{Card, CardConfig, CardStats};
use iotsafe_rustls::{IotSafeTls, KxOptions};
use iotsafe_tests::async_load::{self, AsyncEchoServer, Flavor, How, Until};
use iotsafe_tests::handshake::{
    critical_path_floor, handshake_over, modelled_busy, replay_wolfssl_handshake, TlsFixture,
};
use iotsafe_vcard::{CardOptions, InProcessTransport, Latency, TransportMode, VirtualCard};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `cargo bench` passes `--bench`; `cargo test --benches` does not (criterion's quick test mode).
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn fixture(latency: Latency, pregenerate: bool) -> TlsFixture {
    fixture_with_slots(latency, pregenerate, 1)
}

/// A fixture whose card has `slots` ephemeral key pairs (`04`, then `06`, `07`, …).
fn fixture_with_slots(latency: Latency, pregenerate: bool, slots: usize) -> TlsFixture {
    let options = CardOptions {
        latency,
        ..CardOptions::default()
    };
    fixture_over(options, pregenerate, slots)
}

/// A fixture whose card speaks `transport` (T=0: data answers come as `61xx` + GET RESPONSE).
fn fixture_on(latency: Latency, transport: TransportMode) -> TlsFixture {
    let options = CardOptions {
        latency,
        transport,
        ..CardOptions::default()
    };
    fixture_over(options, false, 1)
}

fn fixture_over(options: CardOptions, pregenerate: bool, slots: usize) -> TlsFixture {
    TlsFixture::over(options, pregenerate, |mut vcard| {
        vcard
            .store_mut()
            .add_ephemeral_slots(slots - 1)
            .expect("extra ephemeral slots");
        Arc::new(
            Card::open(InProcessTransport::new(vcard), CardConfig::default())
                .expect("open the card session"),
        )
    })
}

/// How the next ephemeral key is made.
#[derive(Clone, Copy, Debug)]
enum Keygen {
    /// Inside `ClientConnection::new` (no pre-generation).
    InHandshake,
    /// `KxOptions::pregenerate`: a background thread, started when the key exchange ends.
    Background,
    /// By the caller, after the handshake completed (`CardKxGroup::pregenerate_now`).
    AfterHandshake,
}

impl Keygen {
    fn name(self) -> &'static str {
        match self {
            Keygen::InHandshake => "no_pregeneration",
            Keygen::Background => "background_pregeneration",
            Keygen::AfterHandshake => "pregenerated_after_handshake",
        }
    }
}

/// One timed handshake; the idle work before it (waiting for the background generation, or
/// generating the next key) is not timed.
fn timed_card_handshake(fx: &TlsFixture, keygen: Keygen) -> (Duration, CardStats) {
    match keygen {
        Keygen::InHandshake => {}
        Keygen::Background => fx.wait_for_background(),
        Keygen::AfterHandshake => fx.pregenerate_now(),
    }
    let started = Instant::now();
    let used = fx.card_handshake().expect("card handshake");
    (started.elapsed(), used)
}

fn host_overhead(c: &mut Criterion) {
    let fx = fixture(Latency::none(), false);
    let mut group = c.benchmark_group("host_overhead");
    group.bench_function("card_vcard_zero_latency", |b| {
        b.iter(|| fx.card_handshake().expect("card handshake"))
    });
    group.bench_function("software_p256", |b| {
        b.iter(|| fx.software_handshake().expect("software handshake"))
    });
    group.finish();
}

fn critical_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("critical_path");
    group.sample_size(10);
    for keygen in [
        Keygen::InHandshake,
        Keygen::Background,
        Keygen::AfterHandshake,
    ] {
        let fx = fixture(Latency::typical_sim(), matches!(keygen, Keygen::Background));
        group.bench_function(keygen.name(), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| timed_card_handshake(&fx, keygen).0)
                    .sum()
            })
        });
    }
    // The same card behind a modem's 115,200-baud UART: every APDU also crosses it as AT+CSIM
    // text.
    for transport in [TransportMode::T1, TransportMode::T0] {
        let fx = fixture_on(Latency::modem(), transport);
        let keygen = Keygen::InHandshake;
        group.bench_function(modem_name(transport, keygen), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| timed_card_handshake(&fx, keygen).0)
                    .sum()
            })
        });
    }
    group.finish();
}

/// `modem_t1_no_pregeneration`, …: a `critical_path` bench under the `modem` preset.
fn modem_name(transport: TransportMode, keygen: Keygen) -> String {
    let t = match transport {
        TransportMode::T0 => "t0",
        TransportMode::T1 => "t1",
    };
    format!("modem_{t}_{}", keygen.name())
}

fn wolfssl_card(latency: Latency) -> Card {
    let options = CardOptions {
        latency,
        ..CardOptions::default()
    };
    let vcard = VirtualCard::with_default_layout(options);
    Card::open(
        InProcessTransport::new(vcard),
        CardConfig::wolfssl_compatible(),
    )
    .expect("open the card as wolfSSL does")
}

fn anchor(c: &mut Criterion) {
    let card = wolfssl_card(Latency::typical_sim());
    let mut group = c.benchmark_group("anchor");
    group.sample_size(10);
    group.bench_function("wolfssl_replay_3_verifies", |b| {
        b.iter(|| replay_wolfssl_handshake(&card, 3))
    });
    // The same card calls behind the modem UART (the `modem` preset's AT+CSIM lines, T=1), to
    // set beside `critical_path/modem_t1_no_pregeneration`.
    let modem = wolfssl_card(Latency::modem());
    group.bench_function("wolfssl_replay_3_verifies_modem", |b| {
        b.iter(|| replay_wolfssl_handshake(&modem, 3))
    });
    group.finish();
}

/// What checking one card signature on the host costs: one P-256 ECDSA verification (with the
/// public key parsed), the extra work per handshake of `Card::sign_digest_checked`.
fn signature_check(c: &mut Criterion) {
    use iotsafe_core::verifies_p256;
    use iotsafe_core::{CardSignature, EcPoint};
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};
    let key = SigningKey::from_slice(&[0x42; 32]).expect("test key");
    let point = key.verifying_key().to_encoded_point(false);
    let public = EcPoint::from_slice(point.as_bytes()).expect("P-256 point");
    let digest = [0x5A; 32];
    let signature: Signature = key.sign_prehash(&digest).expect("signature");
    let raw = CardSignature::RawRs(signature.to_bytes().to_vec());
    let mut group = c.benchmark_group("signature_check");
    group.bench_function("p256_verify_per_handshake", |b| {
        b.iter(|| assert!(verifies_p256(&raw, &public, &digest)))
    });
    group.finish();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// What `threads` threads sharing one card achieved in one throughput run.
struct Throughput {
    rate: f64,
    done: u64,
    failed: u64,
    /// The longest a handshake waited for its turn on the card's ephemeral slot.
    max_wait: Duration,
}

/// Handshakes per second of `threads` threads sharing one card for `run`, with `client`, each
/// flight taking `one_way` to reach the other side.
fn throughput(
    fx: &TlsFixture,
    client: &Arc<rustls::ClientConfig>,
    threads: usize,
    run: Duration,
    one_way: Duration,
) -> Throughput {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (client, server) = (client.clone(), fx.server.clone());
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match handshake_over(&client, &server, one_way) {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    // Handshakes in flight at the stop finish: count them over the whole elapsed time.
    let elapsed = started.elapsed();
    let n = done.load(Ordering::Relaxed);
    Throughput {
        rate: n as f64 / elapsed.as_secs_f64(),
        done: n,
        failed: failed.load(Ordering::Relaxed),
        max_wait: fx.queue_stats().max_wait,
    }
}

/// Our own medians and the counts behind them, printed as markdown rows for
/// `docs/performance.md`.
fn report() {
    let sim = Latency::typical_sim();
    println!("\n## iotsafe-rs performance report (median of own runs)\n");

    // 1. Host overhead.
    let fx = fixture(Latency::none(), false);
    let (mut card, mut soft, mut host_only) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        fx.card_handshake().expect("warm-up");
        fx.software_handshake().expect("warm-up");
    }
    for _ in 0..60 {
        let t = Instant::now();
        let used = fx.card_handshake().expect("card handshake");
        let wall = t.elapsed();
        card.push(wall);
        // Without the emulated card's own work (its software P-256 and APDU handling).
        host_only.push(wall.saturating_sub(used.time_in_card));
        let t = Instant::now();
        fx.software_handshake().expect("software handshake");
        soft.push(t.elapsed());
    }
    let (card, soft, host_only) = (median(card), median(soft), median(host_only));
    println!(
        "host overhead: card (vcard, zero latency) {} | software P-256 {} | ratio {:.2} | card handshake minus time in card {} (ratio {:.2})",
        ms(card),
        ms(soft),
        card.as_secs_f64() / soft.as_secs_f64(),
        ms(host_only),
        host_only.as_secs_f64() / soft.as_secs_f64()
    );

    // 2. Critical path.
    let mut ours = None;
    for keygen in [
        Keygen::InHandshake,
        Keygen::Background,
        Keygen::AfterHandshake,
    ] {
        let fx = fixture(sim, matches!(keygen, Keygen::Background));
        timed_card_handshake(&fx, keygen);
        let runs: Vec<(Duration, CardStats)> =
            (0..9).map(|_| timed_card_handshake(&fx, keygen)).collect();
        let wall = median(runs.iter().map(|r| r.0).collect());
        let busy = median(runs.iter().map(|r| r.1.time_in_card).collect());
        let last = &runs.last().expect("runs").1;
        // A GENERATE KEY PAIR inside the timed window: made by the handshake itself, or (with
        // background pre-generation) the next key's generation competing with the signature.
        let with_keygen = runs
            .iter()
            .filter(|r| r.1.count(iotsafe_core::Operation::GenerateKeyPair) > 0)
            .count();
        let (min, max) = (
            runs.iter().map(|r| r.0).min().unwrap_or_default(),
            runs.iter().map(|r| r.0).max().unwrap_or_default(),
        );
        // The handshake's own APDUs, as counted: 6 with the key generated in it; with a key made
        // ahead, 5 and the READ PUBLIC KEY that confirms the card still holds it.
        let own_apdus = last.apdus;
        let floor = critical_path_floor(&sim, own_apdus, matches!(keygen, Keygen::InHandshake));
        println!(
            "critical path {:<30} wall median {} (min {}, max {}) | card busy {} | APDUs {} | bytes {}/{} | runs with a keygen inside {}/{} | floor {} | wall/floor {:.3}",
            keygen.name(),
            ms(wall),
            ms(min),
            ms(max),
            ms(busy),
            last.apdus,
            last.bytes_sent,
            last.bytes_received,
            with_keygen,
            runs.len(),
            ms(floor),
            wall.as_secs_f64() / floor.as_secs_f64()
        );
        if let Keygen::InHandshake = keygen {
            ours = Some((wall, busy, last.clone()));
        }
    }

    // 2m. The same handshake behind a modem's 115,200-baud UART (the `modem` preset), over T=1
    // and T=0, against the typical SIM alone on the same transport: the difference is the serial
    // time of the AT+CSIM lines.
    for transport in [TransportMode::T1, TransportMode::T0] {
        let run = |latency: Latency| {
            let fx = fixture_on(latency, transport);
            timed_card_handshake(&fx, Keygen::InHandshake);
            let runs: Vec<(Duration, CardStats)> = (0..9)
                .map(|_| timed_card_handshake(&fx, Keygen::InHandshake))
                .collect();
            let last = runs.last().expect("runs").1.clone();
            (median(runs.into_iter().map(|r| r.0).collect()), last)
        };
        let (sim_wall, _) = run(sim);
        let (modem_wall, used) = run(Latency::modem());
        let serial = modem_wall.saturating_sub(sim_wall);
        println!(
            "critical path {:<30} wall median {} | typical SIM alone {} | serial {} ({:.0}%) | APDUs {} | bytes {}/{}",
            modem_name(transport, Keygen::InHandshake),
            ms(modem_wall),
            ms(sim_wall),
            ms(serial),
            100.0 * serial.as_secs_f64() / modem_wall.as_secs_f64(),
            used.apdus,
            used.bytes_sent,
            used.bytes_received
        );
    }

    // 3. The anchor's card work, replayed.
    let card = wolfssl_card(sim);
    for verifies in [3, 2] {
        replay_wolfssl_handshake(&card, verifies);
        let runs: Vec<(Duration, CardStats)> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let used = replay_wolfssl_handshake(&card, verifies);
                (t.elapsed(), used)
            })
            .collect();
        let wall = median(runs.iter().map(|r| r.0).collect());
        let busy = median(runs.iter().map(|r| r.1.time_in_card).collect());
        let last = &runs.last().expect("runs").1;
        println!(
            "anchor replay ({verifies} verifies): wall {} | card busy {} (model {}) | APDUs {} | bytes {}/{}",
            ms(wall),
            ms(busy),
            ms(modelled_busy(&sim, last)),
            last.apdus,
            last.bytes_sent,
            last.bytes_received
        );
        if let (3, Some((our_wall, our_busy, our))) = (verifies, &ours) {
            println!(
                "anchor vs ours: APDUs {:.1}x | bytes sent {:.1}x | card busy {:.2}x | wall {:.2}x",
                last.apdus as f64 / our.apdus as f64,
                last.bytes_sent as f64 / our.bytes_sent as f64,
                busy.as_secs_f64() / our_busy.as_secs_f64(),
                wall.as_secs_f64() / our_wall.as_secs_f64()
            );
        }
    }

    // 4. Throughput of N threads on one card, with the default configuration (key exchanges
    // queued for the one ephemeral slot); 4′ the same with the queue turned off.
    let fx = fixture(sim, false);
    let per = fx.card_handshake().expect("handshake");
    let busy = per.time_in_card;
    println!(
        "throughput bound 1/card-busy: {:.2} handshakes/s (card busy {} per handshake)",
        1.0 / busy.as_secs_f64(),
        ms(busy)
    );
    for (threads, queued) in [(1, true), (4, true), (8, true), (32, true), (4, false)] {
        // A fresh card per run, so that the longest wait is this run's.
        let fx = fixture(sim, false);
        let kx = if queued {
            KxOptions::default()
        } else {
            KxOptions::default().unqueued()
        };
        let tls = IotSafeTls::builder(fx.card.clone())
            .kx_options(kx)
            .resumption(false)
            .build()
            .expect("IotSafeTls");
        let client = Arc::new(tls.client_config(fx.roots.clone()).expect("client config"));
        let t = throughput(
            &fx,
            &client,
            threads,
            Duration::from_secs(6),
            Duration::ZERO,
        );
        println!(
            "throughput N={threads} {}: {:.2} handshakes/s ({} done, {} failed) = {:.0}% of the bound | max wait for the slot {}",
            if queued { "(default configuration)" } else { "(queue off: KxOptions::unqueued)" },
            t.rate,
            t.done,
            t.failed,
            100.0 * t.rate * busy.as_secs_f64(),
            ms(t.max_wait)
        );
    }

    // 4a. Async connects on one card: N tasks on one runtime, with the async connector and with
    // plain tokio-rustls, and the longest stall of a 5 ms ticker on the same runtime.
    for flavor in [Flavor::CurrentThread, Flavor::TwoWorkers] {
        for how in [How::Connector, How::Plain] {
            for tasks in [1, 4, 16] {
                let fx = fixture(sim, false);
                let server = AsyncEchoServer::start(Arc::clone(&fx.server));
                let tls = IotSafeTls::builder(fx.card.clone())
                    .build()
                    .expect("IotSafeTls");
                let group = tls.kx_group().expect("card ECDHE");
                let client = Arc::new(tls.client_config(fx.roots.clone()).expect("client config"));
                let run = Duration::from_secs(5);
                let r = async_load::run(
                    &client,
                    server.addr,
                    flavor,
                    how,
                    tasks,
                    Until::Elapsed(run),
                );
                let rate = r.done as f64 / r.wall.as_secs_f64();
                println!(
                    "async {how:?} on {flavor:?}, N={tasks}: {rate:.2} handshakes/s ({} done, {} failed) = {:.0}% of the bound | longest ticker stall {} | ECDHE on the host {}",
                    r.done,
                    r.failures.len(),
                    100.0 * rate * busy.as_secs_f64(),
                    ms(r.stall),
                    group.queue_stats().host_ecdhe
                );
            }
        }
    }

    // 4s. What several ephemeral slots buy: the same, over a cellular round trip.
    let one_way = Duration::from_millis(150);
    for (threads, slots) in [(4, 1), (4, 2), (8, 1), (8, 2)] {
        let fx = fixture_with_slots(sim, false, slots);
        let tls = IotSafeTls::builder(fx.card.clone())
            .resumption(false)
            .build()
            .expect("IotSafeTls");
        let client = Arc::new(tls.client_config(fx.roots.clone()).expect("client config"));
        let t = throughput(&fx, &client, threads, Duration::from_secs(8), one_way);
        println!(
            "throughput N={threads}, round trip {}, {slots} ephemeral slot(s) (default configuration): {:.2} handshakes/s ({} done, {} failed) = {:.0}% of the bound | max wait for a slot {}",
            ms(one_way * 2),
            t.rate,
            t.done,
            t.failed,
            100.0 * t.rate * busy.as_secs_f64(),
            ms(t.max_wait)
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    host_overhead(&mut c);
    signature_check(&mut c);
    if bench_mode() {
        critical_path(&mut c);
        anchor(&mut c);
    }
    c.final_summary();
    if bench_mode() && std::env::var("IOTSAFE_PERF_REPORT").map_or(true, |v| v != "0") {
        report();
    }
}
