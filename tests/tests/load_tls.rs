//! TLS load on one card: 32 concurrent TLS 1.3 connections sharing one `Arc<Card>` (and one
//! client configuration) all succeed, with no deadlock: at the first attempt with the default
//! configuration (key exchanges queue for the card's one ephemeral slot,
//! `KxOptions::queue_for_slot`), by connecting again after a clean failure with the queue turned
//! off. And 1,000 sequential handshakes keep the process's memory flat.

mod tls_support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iotsafe_core::Operation;
use iotsafe_rustls::KxOptions;
use iotsafe_vcard::CardOptions;
use tls_support::{connect, setup, setup_with_kx};

const DEADLINE: Duration = Duration::from_secs(90);

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 4096
}

/// Joins every thread, failing (as a deadlock) if they are not all done `DEADLINE` after
/// `started`, and returns their results.
fn join_within<T>(
    threads: Vec<std::thread::JoinHandle<T>>,
    started: Instant,
    what: &str,
) -> Vec<T> {
    threads
        .into_iter()
        .map(|t| {
            while !t.is_finished() {
                assert!(started.elapsed() < DEADLINE, "{what} deadlocked");
                std::thread::sleep(Duration::from_millis(5));
            }
            t.join()
                .unwrap_or_else(|_| panic!("{what}: a connection thread panicked"))
        })
        .collect()
}

#[test]
fn thirty_two_concurrent_tls_connections_without_the_queue_retry_after_clean_failures() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tls = Arc::new(setup_with_kx(
        CardOptions::default(),
        KxOptions::default().unqueued(),
    ));
    let retries = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let tls = Arc::clone(&tls);
            let retries = Arc::clone(&retries);
            std::thread::spawn(move || {
                // One ephemeral slot on the card: a handshake whose key was replaced by another
                // connection's fails cleanly and the device connects again, as it would after any
                // failed handshake.
                for attempt in 1..=200 {
                    match connect(&tls) {
                        Ok(()) => return attempt,
                        Err(e) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            assert!(attempt < 200, "thread {t}: {e}");
                            std::thread::sleep(Duration::from_millis(1 + t % 5));
                        }
                    }
                }
                unreachable!()
            })
        })
        .collect();
    let attempts = join_within(threads, started, "32 TLS connections");
    let stats = tls.card.stats();
    assert!(stats.count(Operation::Sign) >= 32);
    eprintln!(
        "32 connections: {} card signatures, {} DH, {} retries (max attempts {})",
        stats.count(Operation::Sign),
        stats.count(Operation::Dh),
        retries.load(Ordering::Relaxed),
        attempts.iter().max().unwrap()
    );
}

#[test]
fn thirty_two_concurrent_tls_connections_queue_for_the_ephemeral_slot_by_default() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tls = Arc::new(setup(CardOptions::default()));
    let before = tls.card.stats();
    let started = Instant::now();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let tls = Arc::clone(&tls);
            std::thread::spawn(move || {
                connect(&tls).unwrap_or_else(|e| panic!("connection {t} failed: {e}"))
            })
        })
        .collect();
    join_within(threads, started, "32 queued TLS connections");
    // Exactly one key generation, DH and signature per connection: nobody's key was replaced,
    // nobody tried twice.
    let used = tls.card.stats().since(&before);
    assert_eq!(used.count(Operation::GenerateKeyPair), 32, "{used:?}");
    assert_eq!(used.count(Operation::Dh), 32, "{used:?}");
    assert_eq!(used.count(Operation::Sign), 32, "{used:?}");
    let failures: u64 = used.operations.values().map(|o| o.failures).sum();
    assert_eq!(failures, 0, "{used:?}");
    eprintln!("32 queued connections in {:?}", started.elapsed());
}

#[test]
fn a_thousand_sequential_tls_handshakes_with_flat_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tls = setup(CardOptions::default());
    for _ in 0..30 {
        connect(&tls).unwrap();
    }
    let before = rss();
    let stats = tls.card.stats();
    for i in 0..1_000 {
        connect(&tls).unwrap_or_else(|e| panic!("handshake {i}: {e}"));
    }
    let after = rss();
    let used = tls.card.stats().since(&stats);
    assert_eq!(used.count(Operation::Sign), 1_000);
    assert_eq!(used.count(Operation::Dh), 1_000);
    let growth = after.saturating_sub(before);
    assert!(
        growth < 1024 * 1024,
        "RSS grew by {growth} bytes over 1,000 handshakes"
    );
    eprintln!("1,000 handshakes: RSS {before} → {after}");
}
