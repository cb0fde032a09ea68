//! The deterministic APDU budget of one full TLS 1.3 mutual-auth handshake with everything on the
//! card (issue #7): APDUs and bytes exchanged with the card, asserted exactly. A regression (one
//! more APDU, a longer command) fails here. Nothing is timed.
//!
//! Budget (`docs/architecture.md#one-handshake`): 6 APDUs on T=1 — GENERATE KEY PAIR (1), PUT PUBLIC KEY
//! Init/Update (2), COMPUTE DH (1), COMPUTE SIGNATURE Init/Update (2) with the default `CardConfig`,
//! whose sessions stay open until their next Init (8 with `SessionClosing::Always`: the two closes).
//! On T=0 each data-bearing answer (the key pair, the shared secret, the signature) costs one GET
//! RESPONSE more: 9.
#![forbid(unsafe_code)]

use iotsafe_core::{CardConfig, CardStats, Operation};
use iotsafe_tests::handshake::TlsFixture;
use iotsafe_vcard::{CardOptions, TransportMode};

/// T=1 (or a PC/SC reader hiding T=0): APDUs per full handshake.
const T1_APDUS: u64 = 6;
/// Bytes sent to / received from the card per full handshake on T=1 (status words included).
const T1_BYTES: (u64, u64) = (160, 188);
/// T=0 (AT+CSIM): the T=1 count plus 3 GET RESPONSEs.
const T0_APDUS: u64 = T1_APDUS + 3;
/// Bytes per full handshake on T=0.
const T0_BYTES: (u64, u64) = (175, 194);
/// The design budget on T=1.
const DESIGN_BUDGET_T1: u64 = 6;

fn fixture(mode: TransportMode, pregenerate: bool) -> TlsFixture {
    let options = CardOptions {
        transport: mode,
        ..CardOptions::default()
    };
    TlsFixture::new(options, CardConfig::default(), pregenerate)
}

fn check_ops(used: &CardStats) {
    assert_eq!(used.count(Operation::GenerateKeyPair), 1, "{used:?}");
    assert_eq!(used.count(Operation::PutPublicKey), 1, "{used:?}");
    assert_eq!(used.count(Operation::Dh), 1, "{used:?}");
    assert_eq!(used.count(Operation::Sign), 1, "{used:?}");
    assert_eq!(used.count(Operation::ReadFile), 0, "{used:?}");
    assert_eq!(used.count(Operation::Verify), 0, "{used:?}");
    assert_eq!(used.count(Operation::Hkdf), 0, "{used:?}");
}

#[test]
fn t1_full_handshake_apdus_and_bytes() {
    let fx = fixture(TransportMode::T1, false);
    let used = fx.card_handshake().expect("handshake");
    eprintln!(
        "T=1: {} APDUs, {} bytes sent, {} bytes received: {used:?}",
        used.apdus, used.bytes_sent, used.bytes_received
    );
    check_ops(&used);
    assert_eq!(used.of(Operation::GenerateKeyPair).apdus, 1);
    assert_eq!(used.of(Operation::PutPublicKey).apdus, 2);
    assert_eq!(used.of(Operation::Dh).apdus, 1);
    assert_eq!(used.of(Operation::Sign).apdus, 2);
    assert_eq!(used.apdus, T1_APDUS, "{used:?}");
    assert!(used.apdus <= DESIGN_BUDGET_T1);
    assert_eq!((used.bytes_sent, used.bytes_received), T1_BYTES);
}

#[test]
fn t0_full_handshake_adds_one_get_response_per_data_bearing_answer() {
    let fx = fixture(TransportMode::T0, false);
    let used = fx.card_handshake().expect("handshake");
    eprintln!(
        "T=0: {} APDUs, {} bytes sent, {} bytes received: {used:?}",
        used.apdus, used.bytes_sent, used.bytes_received
    );
    check_ops(&used);
    // Key pair, shared secret and signature come back through GET RESPONSE.
    assert_eq!(used.of(Operation::GenerateKeyPair).apdus, 2);
    assert_eq!(used.of(Operation::PutPublicKey).apdus, 2);
    assert_eq!(used.of(Operation::Dh).apdus, 2);
    assert_eq!(used.of(Operation::Sign).apdus, 3);
    assert_eq!(used.apdus, T0_APDUS, "{used:?}");
    assert_eq!((used.bytes_sent, used.bytes_received), T0_BYTES);
}

#[test]
fn every_handshake_costs_the_same_and_the_chain_is_read_once_per_session() {
    let fx = fixture(TransportMode::T1, false);
    let reads = fx.card.stats().count(Operation::ReadFile);
    assert!(
        reads >= 1,
        "IotSafeTls read the certificate when it was built"
    );
    let before = fx.card.stats();
    for round in 0..5 {
        let used = fx.card_handshake().expect("handshake");
        assert_eq!(used.apdus, T1_APDUS, "round {round}: {used:?}");
        assert_eq!(
            (used.bytes_sent, used.bytes_received),
            T1_BYTES,
            "round {round}"
        );
        assert_eq!(
            fx.card.stats().count(Operation::ReadFile),
            reads,
            "round {round}"
        );
    }
    let total = fx.card.stats().since(&before);
    assert_eq!(total.count(Operation::ReadFile), 0);
    assert_eq!(total.apdus, 5 * T1_APDUS);
}

#[test]
fn pregeneration_moves_the_key_generation_and_adds_one_confirming_apdu() {
    let fx = fixture(TransportMode::T1, true);
    fx.wait_for_background();
    for round in 0..3 {
        fx.wait_for_background();
        let before = fx.card.stats();
        let used = fx.card_handshake().expect("handshake");
        // The handshake itself generated no key: it took the one made ahead of time ...
        assert_eq!(used.count(Operation::Dh), 1, "round {round}: {used:?}");
        assert_eq!(used.count(Operation::Sign), 1, "round {round}: {used:?}");
        // ... confirmed on the card first (READ PUBLIC KEY of its public half: a reset by another
        // program would have wiped it) ...
        assert_eq!(
            used.count(Operation::ReadPublicKey),
            1,
            "round {round}: {used:?}"
        );
        // ... and the next key's GENERATE KEY PAIR (started in the background when the key
        // exchange ended) brings the total back to the same 6 APDUs and bytes, plus that one:
        // `81 CD 00 00 03 85 01 04` (8 bytes) and `34 45 49 43 86 41 04‖X‖Y 90 00` (73 bytes).
        fx.wait_for_background();
        let total = fx.card.stats().since(&before);
        check_ops(&total);
        assert_eq!(total.apdus, T1_APDUS + 1, "round {round}: {total:?}");
        assert_eq!(
            (total.bytes_sent, total.bytes_received),
            (T1_BYTES.0 + 8, T1_BYTES.1 + 73)
        );
    }
}

/// The anchor for comparison (`docs/protocol.md#wolfssl-handshake-sequence`): wolfSSL's IoT-SAFE card calls for the same
/// handshake, replayed on the same card with the core client in its wolfSSL-compatible
/// configuration. 29 APDUs with 3 server-side signatures verified on the card, 23 with 2.
#[test]
fn wolfssl_replay_matches_the_anchor_apdu_count() {
    use iotsafe_core::Card;
    use iotsafe_tests::handshake::replay_wolfssl_handshake;
    use iotsafe_vcard::{InProcessTransport, VirtualCard};
    let card = Card::open(
        InProcessTransport::new(VirtualCard::with_default_layout(CardOptions::default())),
        CardConfig::wolfssl_compatible(),
    )
    .expect("open the card as wolfSSL does");
    let three = replay_wolfssl_handshake(&card, 3);
    let two = replay_wolfssl_handshake(&card, 2);
    eprintln!(
        "wolfSSL replay: 3 verifies {} APDUs {}/{} bytes; 2 verifies {} APDUs {}/{} bytes",
        three.apdus,
        three.bytes_sent,
        three.bytes_received,
        two.apdus,
        two.bytes_sent,
        two.bytes_received
    );
    assert_eq!(three.apdus, ANCHOR_APDUS);
    assert_eq!(two.apdus, ANCHOR_APDUS - 6);
    assert_eq!((three.bytes_sent, three.bytes_received), ANCHOR_BYTES);
    assert_eq!(three.count(Operation::Verify), 3);
    assert_eq!(three.count(Operation::Hkdf), 3);
    assert!(three.apdus > 4 * T1_APDUS);
}

/// APDUs of the anchor's handshake (`docs/performance.md#comparison-figures`).
const ANCHOR_APDUS: u64 = 29;
/// Bytes to / from the card of the replayed anchor handshake (3 verifies).
const ANCHOR_BYTES: (u64, u64) = (1055, 330);
