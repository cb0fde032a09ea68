//! The whole stack over AT: the core client's AT transport (AT+CCHO/AT+CGLA) on loopback TCP to
//! the virtual card's AT modem emulation, with faults injected by the modem (ERROR, +CME ERROR,
//! a garbage line, silence) at each card command of a signature, and a card that stalls past the
//! host's deadline. Every fault ends the operation with a typed error within its deadline (but a
//! bare `ERROR` to AT+CGLA, read as the lost channel it may stand for and recovered within the
//! operation), and the next operation on the same session succeeds.
//!
//! (The AT transport's own parser and deadline rules are pinned by iotsafe-core's scripted-modem
//! tests; these tests add the real emulator and the card session's recovery on top.)
#![cfg(feature = "at")]

use std::time::{Duration, Instant};

use iotsafe_core::at::Deadlines;
use iotsafe_core::at::{AtMode, AtOptions as HostOptions, AtTransport};
use iotsafe_core::{
    Card, CardConfig, CardSignature, Error, HashAlgorithm, ObjectRef, TransportError,
};
use iotsafe_vcard::frontend::at::{AtFault, AtInjection, AtOptions as ModemOptions};
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, FaultPlan, VirtualCard};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// The host's deadline per AT command (short, so silence costs little).
const NORMAL: Duration = Duration::from_millis(400);
/// What any faulty operation must finish within: the deadline plus a resync and slack.
const BOUND: Duration = Duration::from_secs(6);

fn host_options() -> HostOptions {
    HostOptions {
        mode: AtMode::Auto,
        deadlines: Deadlines {
            normal: NORMAL,
            slow: Duration::from_millis(800),
        },
        ready_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        ..HostOptions::default()
    }
}

/// A modem on a loopback port with `inject` (counted in card commands per connection: the
/// AT+CCHO of `Card::open` is number 1) and a card with `faults`; the session opened on it.
fn session(
    inject: Option<AtInjection>,
    faults: FaultPlan,
) -> (Card, iotsafe_vcard::frontend::at::AtHandle) {
    let card = VirtualCard::with_default_layout(CardOptions {
        faults,
        ..CardOptions::default()
    });
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = modem.local_addr().unwrap();
    let handle = modem
        .spawn(
            share(card),
            ModemOptions {
                inject,
                ..ModemOptions::default()
            },
        )
        .unwrap();
    let transport = AtTransport::connect_tcp_with(addr, host_options()).unwrap();
    // Sessions closed after use, so that a fault can hit the close (by default there is none).
    let config = CardConfig {
        close_sessions: iotsafe_core::SessionClosing::Always,
        ..CardConfig::default()
    };
    let card = Card::open(transport, config).unwrap();
    (card, handle)
}

fn verifies(signature: &CardSignature, vk: &VerifyingKey, digest: &[u8]) -> bool {
    let parsed = match signature {
        CardSignature::RawRs(raw) => Signature::from_slice(raw),
        CardSignature::Der(der) => Signature::from_der(der),
    };
    parsed.is_ok_and(|s| vk.verify_prehash(digest, &s).is_ok())
}

fn sign_ok(card: &Card, vk: &VerifyingKey) -> bool {
    let digest = Sha256::digest(b"over AT");
    card.sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &digest)
        .is_ok_and(|signature| verifies(&signature, vk, &digest))
}

fn verifying_key(card: &Card) -> VerifyingKey {
    let point = card.read_public_key(&ObjectRef::id([1])).unwrap();
    VerifyingKey::from_sec1_bytes(point.as_bytes()).unwrap()
}

#[test]
fn modem_faults_at_every_card_command_of_a_signature() {
    let faults = [
        AtFault::Error,
        AtFault::CmeError(13),
        AtFault::CmeError(4),
        AtFault::Garbage,
        AtFault::Silence,
    ];
    for fault in faults {
        // Card commands per connection: 1 AT+CCHO (open), 2 READ PUBLIC KEY (our set-up),
        // then the signature's Init, Update, close: 3, 4, 5.
        for k in 3..=5u64 {
            let (card, handle) = session(
                Some(AtInjection::once(fault.clone(), k)),
                FaultPlan::default(),
            );
            let vk = verifying_key(&card);
            let started = Instant::now();
            let digest = Sha256::digest(b"over AT");
            let out = card.sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &digest);
            let took = started.elapsed();
            assert!(took < BOUND, "{fault:?} at {k}: took {took:?}");
            match &out {
                // A fault at the session close (5) comes after the signature arrived: the
                // signature is kept, the failed close only counted.
                Ok(signature) if k == 5 => {
                    assert!(verifies(signature, &vk, &digest), "{fault:?} at {k}");
                    assert_eq!(card.stats().close_failures, 1, "{fault:?} at {k}");
                }
                // A bare ERROR to AT+CGLA may be a lost channel (`+CME ERROR: 21` at
                // AT+CMEE=0): the session reopens it once and the signature goes through.
                Ok(signature) if fault == AtFault::Error => {
                    assert!(verifies(signature, &vk, &digest), "{fault:?} at {k}");
                    assert_eq!(card.stats().card_resets, 1, "{fault:?} at {k}");
                }
                Err(Error::Transport { source, .. }) => match (fault.clone(), source) {
                    (AtFault::Silence, TransportError::Timeout { .. }) => {}
                    (
                        AtFault::Garbage,
                        TransportError::Protocol(_) | TransportError::Modem { .. },
                    ) => {}
                    (AtFault::Error | AtFault::CmeError(_), TransportError::Modem { .. }) => {}
                    // A +CME ERROR the modem uses for a lost SIM or channel.
                    (
                        AtFault::CmeError(_),
                        TransportError::RemovedCard | TransportError::ResetCard,
                    ) => {}
                    (f, s) => panic!("{f:?} at card command {k}: unexpected {s:?}"),
                },
                other => panic!("{fault:?} at card command {k}: {other:?}"),
            }
            // The next operation on the same session succeeds.
            let started = Instant::now();
            assert!(sign_ok(&card, &vk), "{fault:?} at {k}: the next signature");
            assert!(started.elapsed() < BOUND);
            drop(card);
            handle.stop().unwrap();
        }
    }
}

#[test]
fn a_card_stalled_past_the_deadline_times_out_and_the_session_recovers() {
    // Card APDUs: MANAGE CHANNEL + SELECT behind AT+CCHO (1, 2), READ PUBLIC KEY (3), then the
    // signature's Init (4): stalled 3× past the normal deadline.
    let stall = FaultPlan {
        stall_at: Some((4, NORMAL * 3)),
        ..FaultPlan::default()
    };
    let (card, handle) = session(None, stall);
    let vk = verifying_key(&card);
    let started = Instant::now();
    let digest = Sha256::digest(b"over AT");
    let out = card.sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &digest);
    let took = started.elapsed();
    assert!(
        matches!(
            out,
            Err(Error::Transport {
                source: TransportError::Timeout { .. },
                ..
            })
        ),
        "{out:?}"
    );
    assert!(took >= NORMAL && took < BOUND, "{took:?}");
    // The late answer must not be taken for the next command's.
    for _ in 0..3 {
        assert!(sign_ok(&card, &vk));
    }
    drop(card);
    handle.stop().unwrap();
}
