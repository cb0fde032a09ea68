//! Load on one card session: 1,000 sequential operations with flat memory, and 32 threads sharing
//! one `Arc<Card>`, all succeeding, with no deadlock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iotsafe_core::{
    Card, CardConfig, CardSignature, EcPoint, Error, HashAlgorithm, ObjectRef, Operation,
};
use iotsafe_vcard::{CardOptions, InProcessTransport, TransportMode, VirtualCard};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// Upper bound on a whole load run: only a deadlock gets near it.
const DEADLINE: Duration = Duration::from_secs(60);

/// The tests run one at a time: the other's threads would blur the memory figures.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Resident set size of this process, in bytes (`/proc/self/statm`, second field, in pages).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn open(transport: TransportMode) -> Arc<Card> {
    let vcard = VirtualCard::with_default_layout(CardOptions {
        transport,
        ..CardOptions::default()
    });
    Arc::new(Card::open(InProcessTransport::new(vcard), CardConfig::default()).unwrap())
}

fn raw(sig: CardSignature) -> Vec<u8> {
    match sig {
        CardSignature::RawRs(raw) => raw,
        CardSignature::Der(der) => Signature::from_der(&der).unwrap().to_bytes().to_vec(),
    }
}

/// One "handshake's worth" of card work: an ECDHE (keygen, put peer key, DH) and a signature.
/// Returns whether the shared secret agrees with software; `StaleEphemeral` when another thread
/// regenerated the single ephemeral slot in between (the caller starts over).
fn handshake(card: &Card, vk: &VerifyingKey, i: u64, check: bool) -> Result<(), Error> {
    let eph = card.generate_ephemeral(&ObjectRef::id([4]))?;
    let peer = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
    let peer_point =
        EcPoint::from_slice(p256::EncodedPoint::from(peer.public_key()).as_bytes()).unwrap();
    let z = card.ephemeral_agreement(&eph, &ObjectRef::id([5]), &peer_point)?;
    assert_eq!(z.len(), 32);
    let digest = Sha256::digest(i.to_be_bytes());
    let sig = raw(card.sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &digest)?);
    if check {
        let card_pub = p256::PublicKey::from_sec1_bytes(eph.key_pair.point.as_bytes()).unwrap();
        assert_eq!(
            z.as_slice(),
            &peer.diffie_hellman(&card_pub).raw_secret_bytes()[..]
        );
        vk.verify_prehash(&digest, &Signature::from_slice(&sig).unwrap())
            .expect("the card's signature verifies");
    }
    Ok(())
}

fn verifying_key(card: &Card) -> VerifyingKey {
    let point = card.read_public_key(&ObjectRef::id([1])).unwrap();
    VerifyingKey::from_sec1_bytes(point.as_bytes()).unwrap()
}

#[test]
fn a_thousand_sequential_handshakes_with_flat_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for transport in [TransportMode::T1, TransportMode::T0] {
        let card = open(transport);
        let vk = verifying_key(&card);
        // Warm up: caches, allocator pools, lazily initialised statics.
        for i in 0..50 {
            handshake(&card, &vk, i, true).unwrap();
        }
        let before = rss();
        let stats_before = card.stats();
        let started = Instant::now();
        for i in 0..1_000u64 {
            handshake(&card, &vk, i, i % 50 == 0).unwrap();
            assert!(started.elapsed() < DEADLINE, "{transport:?}: stuck at {i}");
        }
        let after = rss();
        let used = card.stats().since(&stats_before);
        assert_eq!(used.count(Operation::Sign), 1_000);
        assert_eq!(used.count(Operation::Dh), 1_000);
        assert_eq!(used.reconnects, 0);
        // Measured growth is 0 here; a leak of 512 bytes per handshake (a few response buffers, a key
        // pair's worth) would not fit.
        let growth = after.saturating_sub(before);
        assert!(
            growth < 512 * 1024,
            "{transport:?}: RSS grew by {growth} bytes over 1,000 handshakes ({before} → {after})"
        );
        eprintln!("{transport:?}: RSS {before} → {after} bytes over 1,000 handshakes");
    }
}

#[test]
fn thirty_two_threads_share_one_card() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let card = open(TransportMode::T1);
    let vk = verifying_key(&card);
    let stale = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..32u64)
        .map(|t| {
            let card = Arc::clone(&card);
            let stale = Arc::clone(&stale);
            std::thread::spawn(move || {
                for i in 0..4u64 {
                    // Signatures: always succeed.
                    let digest = Sha256::digest((t * 1000 + i).to_be_bytes());
                    let sig = card
                        .sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &digest)
                        .unwrap();
                    vk.verify_prehash(&digest, &Signature::from_slice(&raw(sig)).unwrap())
                        .unwrap();
                    // ECDHE on the single ephemeral slot: another thread may regenerate it between
                    // keygen and agreement; that is a clean `SlotTakenOver` (or `StaleEphemeral`)
                    // and a restart, never a
                    // wrong secret.
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        match handshake(&card, &vk, t * 1000 + i, true) {
                            Ok(()) => break,
                            Err(Error::StaleEphemeral { .. } | Error::SlotTakenOver { .. })
                                if tries < 1_000 =>
                            {
                                stale.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_micros(100 * (t % 7 + 1)));
                            }
                            Err(e) => panic!("thread {t} op {i} after {tries} tries: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        while !t.is_finished() {
            assert!(started.elapsed() < DEADLINE, "32 threads deadlocked");
            std::thread::sleep(Duration::from_millis(5));
        }
        t.join().expect("a thread panicked");
    }
    let stats = card.stats();
    assert!(stats.count(Operation::Sign) >= 32 * 4 * 2);
    assert!(stats.count(Operation::Dh) >= 32 * 4);
    eprintln!(
        "32 threads: {} signatures, {} DH, {} stale ephemeral restarts",
        stats.count(Operation::Sign),
        stats.count(Operation::Dh),
        stale.load(Ordering::Relaxed)
    );
}
