//! Fault injection: every core `Card` operation against the in-process virtual card, with a fault at
//! every APDU position of the operation — the connection dropped, a card reset (reported by the
//! transport, or silent), an unexpected status word, a corrupted or truncated answer, a stall.
//!
//! Each faulty operation must end, within a generous deadline, in `Ok` with a correct result or in
//! a typed error (never a panic or a hang), and the next operation after the fault clears must
//! succeed with a correct result. The in-process transport has no deadline, so a stall only delays
//! the answer; deadline tests belong to the AT and PC/SC transports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use iotsafe_core::config::ChannelStrategy;
use iotsafe_core::Transaction;
use iotsafe_core::{
    Card, CardConfig, CardSignature, EcPoint, Error, HashAlgorithm, ObjectRef, Transport,
    TransportError,
};
use iotsafe_vcard::store::ObjectRef as StoreRef;
use iotsafe_vcard::{
    CardHandler, CardOptions, CardProfile, FaultPlan, InProcessTransport, TransportMode,
    VirtualCard,
};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// Upper bound on any one operation, faulty or not: only a hang gets near it.
const DEADLINE: Duration = Duration::from_secs(20);

/// A fault the wrapper transport acts out by itself (beyond the vcard's [`FaultPlan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WrapperFault {
    None,
    /// The card resets just before this APDU and the transport reports it (PC/SC `ResetCard`).
    ReportedReset(u64),
    /// The card resets just before this APDU and nobody says so (a modem re-initialised the SIM).
    SilentReset(u64),
    /// The answer to this APDU is cut to its first half (at least one byte is lost).
    Truncate(u64),
}

/// The in-process transport, with APDUs numbered from the wrapper's creation and a fault of its own.
#[derive(Clone)]
struct Faulty {
    inner: InProcessTransport,
    state: Arc<Mutex<(u64, WrapperFault)>>,
}

impl Faulty {
    fn arm(&self, fault: WrapperFault) {
        let mut s = self.state.lock().unwrap();
        s.1 = fault;
    }
    fn count(&self) -> u64 {
        self.state.lock().unwrap().0
    }
}

impl Transaction for Faulty {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let (n, fault) = {
            let mut s = self.state.lock().unwrap();
            s.0 += 1;
            (s.0, s.1)
        };
        match fault {
            WrapperFault::ReportedReset(at) if at == n => {
                self.inner.card().lock().unwrap().reset();
                return Err(TransportError::ResetCard);
            }
            WrapperFault::SilentReset(at) if at == n => {
                self.inner.card().lock().unwrap().reset();
            }
            _ => {}
        }
        let mut answer = self.inner.transmit(command)?;
        if fault == WrapperFault::Truncate(n) {
            let keep = answer.len() / 2;
            answer.truncate(keep.min(answer.len().saturating_sub(1)));
        }
        Ok(answer)
    }
}

impl Transport for Faulty {
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        Ok(Box::new(self))
    }
    fn reconnect(&mut self) -> Result<(), TransportError> {
        self.inner.reconnect()
    }
}

/// One card session, the virtual card behind it, and the device key's public half.
struct Rig {
    card: Arc<Card>,
    vcard: Arc<Mutex<VirtualCard>>,
    wrapper: Faulty,
    device_point: EcPoint,
    file: Vec<u8>,
}

fn rig(options: CardOptions, config: CardConfig) -> Rig {
    let mut vcard = VirtualCard::with_default_layout(options);
    // A certificate-sized file, read in several chunks.
    let file: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
    assert!(vcard.store_mut().write_file(StoreRef::Id(&[2]), &file));
    let inner = InProcessTransport::new(vcard);
    let vcard = inner.card();
    let wrapper = Faulty {
        inner,
        state: Arc::new(Mutex::new((0, WrapperFault::None))),
    };
    let card = Arc::new(Card::open(wrapper.clone(), config).expect("open"));
    let device_point = card.read_public_key(&ObjectRef::id([1])).unwrap();
    Rig {
        card,
        vcard,
        wrapper,
        device_point,
        file,
    }
}

/// The operations under test. Each returns `Ok(())` only when its result is correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Objects,
    AppletInfo,
    ReadFile,
    Random,
    ReadPublicKey,
    GenerateKeyPair,
    PutPublicKey,
    SignDigest,
    SignMessage,
    Verify,
    ComputeDh,
    Ecdhe,
    Raw,
    Close,
}

const OPS: [Op; 14] = [
    Op::Objects,
    Op::AppletInfo,
    Op::ReadFile,
    Op::Random,
    Op::ReadPublicKey,
    Op::GenerateKeyPair,
    Op::PutPublicKey,
    Op::SignDigest,
    Op::SignMessage,
    Op::Verify,
    Op::ComputeDh,
    Op::Ecdhe,
    Op::Raw,
    Op::Close,
];

/// What an operation produced: `Ok(true)` correct, `Ok(false)` wrong but not an error.
type Outcome = Result<bool, Error>;

fn to_raw(sig: CardSignature) -> Vec<u8> {
    match sig {
        CardSignature::RawRs(raw) => raw,
        CardSignature::Der(der) => Signature::from_der(&der)
            .map(|s| s.to_bytes().to_vec())
            .unwrap_or_default(),
    }
}

fn verifies(point: &EcPoint, digest: &[u8], raw: &[u8]) -> bool {
    let Ok(vk) = VerifyingKey::from_sec1_bytes(point.as_bytes()) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(raw) else {
        return false;
    };
    vk.verify_prehash(digest, &sig).is_ok()
}

fn run_op(op: Op, card: &Card, device: &EcPoint, file: &[u8]) -> Outcome {
    let key = ObjectRef::id([1]);
    let digest = Sha256::digest(b"fault injection");
    Ok(match op {
        Op::Objects => {
            card.refresh()?;
            card.objects()?.len() == 7
        }
        Op::AppletInfo => {
            card.refresh()?;
            card.applet_info()?.max_sessions.unwrap_or(0) >= 1
        }
        Op::ReadFile => card.read_file(&ObjectRef::id([2]))? == file,
        Op::Random => card.get_random(300)?.len() == 300,
        Op::ReadPublicKey => card.read_public_key(&key)? == *device,
        Op::GenerateKeyPair => {
            let pair = card.generate_key_pair(&ObjectRef::id([4]))?;
            card.read_public_key(&ObjectRef::id([4]))? == pair.point
        }
        Op::PutPublicKey => {
            card.put_public_key(&ObjectRef::id([5]), device)?;
            card.read_public_key(&ObjectRef::id([5]))? == *device
        }
        Op::SignDigest => {
            let sig = card.sign_digest(&key, HashAlgorithm::Sha256, &digest)?;
            verifies(device, &digest, &to_raw(sig))
        }
        Op::SignMessage => {
            let message = vec![0x5Au8; 600];
            let sig = card.sign_message(&key, HashAlgorithm::Sha256, &message)?;
            verifies(device, &Sha256::digest(&message), &to_raw(sig))
        }
        Op::Verify => {
            // Set up outside the fault's reach is impossible (one card); a failure to set up is
            // an error like any other.
            let sig = to_raw(card.sign_digest(&key, HashAlgorithm::Sha256, &digest)?);
            card.put_public_key(&ObjectRef::id([5]), device)?;
            let good =
                card.verify_digest(&ObjectRef::id([5]), HashAlgorithm::Sha256, &digest, &sig)?;
            let mut bad = sig.clone();
            bad[20] ^= 0x40;
            let wrong =
                card.verify_digest(&ObjectRef::id([5]), HashAlgorithm::Sha256, &digest, &bad)?;
            good && !wrong
        }
        Op::ComputeDh => {
            let pair = card.generate_key_pair(&ObjectRef::id([4]))?;
            let peer = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
            let peer_point =
                EcPoint::from_slice(p256::EncodedPoint::from(peer.public_key()).as_bytes())
                    .unwrap();
            card.put_public_key(&ObjectRef::id([5]), &peer_point)?;
            let z = card.compute_dh(&ObjectRef::id([4]), &ObjectRef::id([5]))?;
            let card_pub = p256::PublicKey::from_sec1_bytes(pair.point.as_bytes()).unwrap();
            z.as_slice() == &peer.diffie_hellman(&card_pub).raw_secret_bytes()[..]
        }
        Op::Ecdhe => {
            let eph = card.generate_ephemeral(&ObjectRef::id([4]))?;
            let peer = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
            let peer_point =
                EcPoint::from_slice(p256::EncodedPoint::from(peer.public_key()).as_bytes())
                    .unwrap();
            let z = card.ephemeral_agreement(&eph, &ObjectRef::id([5]), &peer_point)?;
            let card_pub = p256::PublicKey::from_sec1_bytes(eph.key_pair.point.as_bytes()).unwrap();
            z.as_slice() == &peer.diffie_hellman(&card_pub).raw_secret_bytes()[..]
        }
        Op::Raw => {
            // GET DATA applet information on the session's channel, through the raw path.
            // (After a lost link, another operation re-selects first: the raw path sends the class
            // byte as given.)
            if card.selection().is_none() {
                card.read_public_key(&key)?;
            }
            let (_, channel) = card.selection().unwrap_or_default();
            let answer = card.transmit_raw(&[0x80 | channel, 0xCB, 0x00, 0x00, 0x00])?;
            answer.ends_with(&[0x90, 0x00])
        }
        Op::Close => {
            card.close()?;
            card.read_public_key(&key)? == *device
        }
    })
}

/// Runs `op` on another thread and waits at most [`DEADLINE`]: a hang fails the test, and so
/// does a panic.
fn bounded(op: Op, r: &Rig) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let card = Arc::clone(&r.card);
    let device = r.device_point;
    let file = r.file.clone();
    let handle = std::thread::spawn(move || {
        let out = run_op(op, &card, &device, &file);
        let _ = tx.send(out);
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => {
            handle.join().unwrap();
            out
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{op:?} hung past {DEADLINE:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let _ = handle.join();
            panic!("{op:?} panicked")
        }
    }
}

fn vcard_count(r: &Rig) -> u64 {
    r.vcard.lock().unwrap().apdu_count()
}

fn set_plan(r: &Rig, plan: FaultPlan) {
    r.vcard.lock().unwrap().set_faults(plan);
}

/// How many APDUs `op` takes when nothing goes wrong (and that it is correct then).
fn apdus_of(op: Op, r: &Rig) -> u64 {
    // Once to settle caches and state, once to count.
    assert!(bounded(op, r).unwrap(), "{op:?} is correct without faults");
    let before = vcard_count(r);
    assert!(bounded(op, r).unwrap(), "{op:?} is correct without faults");
    vcard_count(r) - before
}

/// After a fault: clear it, and the same operation (and a signature) must succeed and be correct.
fn recovers(op: Op, r: &Rig, what: &str) {
    set_plan(r, FaultPlan::default());
    r.wrapper.arm(WrapperFault::None);
    match bounded(op, r) {
        Ok(true) => {}
        other => panic!("{op:?} after {what}: {other:?}"),
    }
    assert!(
        bounded(Op::SignDigest, r).unwrap(),
        "a signature after {what} in {op:?}"
    );
}

/// Counts how each fault ended, to prove that the faults did bite.
#[derive(Debug, Default)]
struct Tally {
    runs: u32,
    errors: u32,
    ok: u32,
}

fn record(t: &mut Tally, op: Op, what: &str, out: &Outcome) {
    t.runs += 1;
    match out {
        Ok(true) => t.ok += 1,
        // A wrong result without an error is only acceptable where the corrupted byte is payload the
        // APDU layer cannot check (file content, random bytes); the caller decides.
        Ok(false) => {}
        Err(e) => {
            t.errors += 1;
            // Typed and printable (a poisoned session is no error: `Card` takes its lock over).
            assert!(!e.to_string().is_empty(), "{op:?} {what}: {e:?}");
        }
    }
}

fn exercise(options: CardOptions, config: CardConfig, label: &str) -> Tally {
    let r = rig(options, config);
    let mut tally = Tally::default();
    let status_words: [u16; 9] = [
        0x6F00, 0x6A82, 0x6985, 0x6581, 0x6700, 0x6D00, 0x6E00, 0x6982, 0x6A80,
    ];
    for op in OPS {
        let n = apdus_of(op, &r);
        assert!(n >= 1, "{label} {op:?} sends APDUs");
        for k in 1..=n {
            // The connection drops before APDU k reaches the card.
            let base = vcard_count(&r);
            set_plan(
                &r,
                FaultPlan {
                    disconnect_after: Some(base + k - 1),
                    ..FaultPlan::default()
                },
            );
            let what = format!("{label}: disconnect at APDU {k}/{n}");
            let closes_failed = r.card.stats().close_failures;
            let out = bounded(op, &r);
            record(&mut tally, op, &what, &out);
            match &out {
                Err(Error::Transport {
                    source: TransportError::Disconnected,
                    ..
                }) => {}
                // The drop hit the session close: the result had arrived and is kept.
                Ok(true) if r.card.stats().close_failures == closes_failed + 1 => {}
                // With an implicit channel, close sends nothing: the re-select after it reconnects
                // (which is what clears the fault) and succeeds.
                Ok(true) if op == Op::Close => {}
                other => panic!("{op:?} {what}: {other:?}"),
            }
            recovers(op, &r, &what);

            // Unexpected status words, without executing the command.
            for sw in status_words {
                let base = vcard_count(&r);
                set_plan(
                    &r,
                    FaultPlan {
                        status_word_at: Some((base + k, sw)),
                        ..FaultPlan::default()
                    },
                );
                let what = format!("{label}: status {sw:04X} at APDU {k}/{n}");
                let out = bounded(op, &r);
                record(&mut tally, op, &what, &out);
                match &out {
                    // Tolerated refusals (a GET DATA refused before reading a file) still give
                    // the right answer.
                    Ok(true) => {}
                    // The raw path hands the status word back as data, by design.
                    Ok(false) if op == Op::Raw => {}
                    Err(Error::Status { sw: got, .. }) if got.0 == sw => {}
                    // 6700/6985 to a step that then makes the next one fail differently.
                    Err(Error::Status { .. }) | Err(Error::Malformed { .. }) => {}
                    // The refused command was the SELECT of a re-connection ...
                    Err(Error::AppletNotFound { tried })
                        if tried.contains(&format!("{sw:04X}")) => {}
                    // ... or its MANAGE CHANNEL (no silent fall-back to the basic channel).
                    Err(Error::NoLogicalChannel { sw: got }) if got.0 == sw => {}
                    other => panic!("{op:?} {what}: {other:?}"),
                }
                recovers(op, &r, &what);
            }

            // The answer corrupted (first data byte inverted, or a bare status word cut to SW1).
            let base = vcard_count(&r);
            set_plan(
                &r,
                FaultPlan {
                    corrupt_at: Some(base + k),
                    ..FaultPlan::default()
                },
            );
            let what = format!("{label}: corrupted answer at APDU {k}/{n}");
            let out = bounded(op, &r);
            record(&mut tally, op, &what, &out);
            if let Ok(false) = out {
                // One flipped payload byte cannot be detected at the APDU layer (T=1 blocks carry an
                // EDC on a real link): file content, random bytes, a raw answer, and an object list
                // whose first structure became an unknown tag (skipped, for newer applets' sake), a
                // raw DH output (TLS notices at Finished).
                assert!(
                    matches!(
                        op,
                        Op::ReadFile
                            | Op::Raw
                            | Op::Random
                            | Op::Objects
                            | Op::ComputeDh
                            | Op::Ecdhe
                    ),
                    "{op:?} {what}: a wrong result without an error"
                );
            }
            recovers(op, &r, &what);

            // The answer truncated to half its length.
            r.wrapper.arm(WrapperFault::Truncate(r.wrapper.count() + k));
            let what = format!("{label}: truncated answer at APDU {k}/{n}");
            let out = bounded(op, &r);
            record(&mut tally, op, &what, &out);
            // (The raw path hands back whatever status word it got, by design.)
            if let (Ok(false), false) = (&out, op == Op::Raw) {
                panic!("{op:?} {what}: a wrong result without an error");
            }
            recovers(op, &r, &what);

            // A reset the transport reports: the session re-selects and retries by itself.
            r.wrapper
                .arm(WrapperFault::ReportedReset(r.wrapper.count() + k));
            let what = format!("{label}: reported reset at APDU {k}/{n}");
            let out = bounded(op, &r);
            record(&mut tally, op, &what, &out);
            match &out {
                Ok(true) => {}
                // Closing is not retried (the channel it would close is gone anyway).
                Err(Error::Transport {
                    source: TransportError::ResetCard,
                    ..
                }) if op == Op::Close => {}
                // A reset after the ephemeral key was made took the key with it (a SIM keeps it
                // in transient memory): that key exchange cannot complete, and says why (the
                // reset itself when it cut the put's session close).
                Err(Error::StaleEphemeral { .. }) if op == Op::Ecdhe && k > 1 => {}
                Err(Error::Transport {
                    source: TransportError::ResetCard,
                    ..
                }) if op == Op::Ecdhe && k > 1 => {}
                other => panic!("{op:?} {what}: {other:?}"),
            }
            recovers(op, &r, &what);

            // A reset nobody reports: the next commands find the channel gone.
            r.wrapper
                .arm(WrapperFault::SilentReset(r.wrapper.count() + k));
            let what = format!("{label}: silent reset at APDU {k}/{n}");
            let out = bounded(op, &r);
            record(&mut tally, op, &what, &out);
            // The raw path passes the card's `6881` through as an answer: it sends the class byte
            // as given, so it cannot tell a lost channel from a refusal. The next typed operation
            // notices and selects again.
            if op == Op::Raw {
                assert!(matches!(out, Ok(false)), "{op:?} {what}: {out:?}");
                assert!(bounded(Op::ReadPublicKey, &r).unwrap(), "{what}");
            } else if let Ok(false) = out {
                panic!("{op:?} {what}: a wrong result without an error");
            }
            recovers(op, &r, &what);
        }
    }
    tally
}

#[test]
fn every_fault_at_every_apdu_t1_manage_channel() {
    let t = exercise(CardOptions::default(), CardConfig::default(), "T=1");
    assert!(t.errors > t.runs / 2, "{t:?}");
    assert!(t.ok > 0, "{t:?}");
}

#[test]
fn every_fault_at_every_apdu_t0_implicit_channel() {
    let options = CardOptions {
        transport: TransportMode::T0,
        ..CardProfile::Zariot.options()
    };
    let t = exercise(options, CardConfig::wolfssl_compatible(), "T=0");
    assert!(t.errors > t.runs / 2, "{t:?}");
}

#[test]
fn opening_a_session_survives_faults_at_every_apdu() {
    for (profile, config) in [
        (CardProfile::Standard, CardConfig::default()),
        (CardProfile::Zariot, CardConfig::wolfssl_compatible()),
    ] {
        let inner = InProcessTransport::new(VirtualCard::with_default_layout(profile.options()));
        let vcard = inner.card();
        // MANAGE CHANNEL + SELECT, or SELECT alone.
        let steps = match config.channel {
            ChannelStrategy::ManageChannel => 2,
            _ => 1,
        };
        for k in 1..=steps {
            let base = vcard.lock().unwrap().apdu_count();
            vcard.lock().unwrap().set_faults(FaultPlan {
                disconnect_after: Some(base + k - 1),
                ..FaultPlan::default()
            });
            let err = Card::open(inner.clone(), config.clone()).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Transport {
                        source: TransportError::Disconnected,
                        ..
                    }
                ),
                "{err}"
            );
            let mut t = inner.clone();
            t.reconnect().unwrap();
            for sw in [0x6F00u16, 0x6A82, 0x6999] {
                let base = vcard.lock().unwrap().apdu_count();
                vcard.lock().unwrap().set_faults(FaultPlan {
                    status_word_at: Some((base + k, sw)),
                    ..FaultPlan::default()
                });
                // A refused MANAGE CHANNEL is no logical channel (the basic channel is not taken
                // unasked); a refused SELECT is an applet not found. Either way: typed, and the
                // next open works.
                match Card::open(inner.clone(), config.clone()) {
                    Ok(card) => {
                        card.read_public_key(&ObjectRef::id([1])).unwrap();
                        card.close().unwrap();
                    }
                    Err(Error::AppletNotFound { .. } | Error::NoLogicalChannel { .. }) => {}
                    Err(e) => panic!("{profile:?} status {sw:04X} at {k}: {e}"),
                }
                vcard.lock().unwrap().set_faults(FaultPlan::default());
                let card = Card::open(inner.clone(), config.clone()).unwrap();
                card.read_public_key(&ObjectRef::id([1])).unwrap();
                card.close().unwrap();
            }
        }
    }
}

#[test]
fn a_stalled_card_delays_but_completes() {
    let r = rig(CardOptions::default(), CardConfig::default());
    let n = apdus_of(Op::SignDigest, &r);
    for k in 1..=n {
        let base = vcard_count(&r);
        set_plan(
            &r,
            FaultPlan {
                stall_at: Some((base + k, Duration::from_millis(30))),
                ..FaultPlan::default()
            },
        );
        let started = Instant::now();
        assert!(bounded(Op::SignDigest, &r).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}

#[test]
fn a_fault_under_concurrent_load_fails_one_operation_only() {
    // 8 threads sign while the card drops the link once: some operations fail with a transport
    // error, none panics or hangs, and all threads then succeed again.
    let r = rig(CardOptions::default(), CardConfig::default());
    let base = vcard_count(&r);
    // A signature is 3 APDUs (Init, Update, close): APDU 20 is the 7th signature's Update. (A
    // drop at a close, APDU 21, would keep the signature and fail nothing.)
    set_plan(
        &r,
        FaultPlan {
            disconnect_after: Some(base + 19),
            ..FaultPlan::default()
        },
    );
    let failed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let card = Arc::clone(&r.card);
            let device = r.device_point;
            let failed = Arc::clone(&failed);
            std::thread::spawn(move || {
                for _ in 0..6 {
                    match run_op(Op::SignDigest, &card, &device, &[]) {
                        Ok(ok) => assert!(ok),
                        Err(Error::Transport { .. }) => failed.store(true, Ordering::SeqCst),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    for t in threads {
        while !t.is_finished() {
            assert!(Instant::now() < deadline, "concurrent signers hung");
            std::thread::sleep(Duration::from_millis(5));
        }
        t.join().unwrap();
    }
    assert!(failed.load(Ordering::SeqCst), "the disconnect did bite");
    assert!(bounded(Op::SignDigest, &r).unwrap());
}

/// Regression: after a card reset that no transport reported, every command on the session's
/// logical channel answered `6881` and the session never recovered. It now selects again and
/// retries the operation once.
#[test]
fn a_silent_reset_is_recovered_by_selecting_again() {
    for config in [CardConfig::default(), CardConfig::wolfssl_compatible()] {
        let r = rig(CardOptions::default(), config);
        r.vcard.lock().unwrap().reset();
        let before = r.card.stats();
        assert!(bounded(Op::SignDigest, &r).unwrap());
        assert_eq!(r.card.stats().since(&before).reconnects, 0);
        assert!(bounded(Op::ReadPublicKey, &r).unwrap());
    }
}
