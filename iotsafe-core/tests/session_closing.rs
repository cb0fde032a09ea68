//! When the card's sign and put-public-key sessions are closed (`SessionClosing`), byte by byte:
//! left open by default and opened afresh by the next Init; closed, and the Init sent again, on a
//! card that refuses it (`6985`: close first; `6A84`: one session at a time), then closed after
//! every operation on that card; always closed with `SessionClosing::Always`.

use iotsafe_core::testing::{ScriptedTransport, Step};
use iotsafe_core::{Card, CardConfig, EcPoint, HashAlgorithm, ObjectRef, SessionClosing};

const SIGN_INIT: &str = "812A0001 0D 840101 A10103 91020001 920104";
const SIGN_CLOSE: &str = "812A010100";
const PUT_INIT: &str = "81240002 03 850105";
const PUT_CLOSE: &str = "8124010200";

fn open_channel_1() -> Vec<Step> {
    vec![
        Step::apdu("0070000001", "01 9000"),
        Step::apdu("01A4040007A0000005590010", "9000"),
    ]
}

fn sign_update() -> Step {
    Step::apdu(
        &format!("812B8001 22 9E20 {}", "00".repeat(32)),
        &format!("330040{} 9000", "5A".repeat(64)),
    )
}

fn point() -> EcPoint {
    let g = "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C2964FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5";
    EcPoint::from_slice(&iotsafe_core::hexutil::decode(g).unwrap()).unwrap()
}

fn put_update() -> Step {
    let g = hex_of(&point());
    Step::apdu(&format!("81D88002 47 34454943 8641 {g}"), "9000")
}

fn hex_of(p: &EcPoint) -> String {
    iotsafe_core::hexutil::encode(p.as_bytes())
}

fn sign(card: &Card) {
    card.sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &[0; 32])
        .unwrap();
}

fn card_with(
    steps: Vec<Step>,
    closing: SessionClosing,
) -> (Card, iotsafe_core::testing::ScriptLog) {
    let (t, log) = ScriptedTransport::new(steps);
    let config = CardConfig {
        close_sessions: closing,
        ..CardConfig::default()
    };
    (Card::open(t, config).unwrap(), log)
}

#[test]
fn by_default_sessions_are_left_open_and_opened_afresh() {
    let mut steps = open_channel_1();
    steps.extend([Step::apdu(SIGN_INIT, "9000"), sign_update()]);
    steps.extend([Step::apdu(SIGN_INIT, "9000"), sign_update()]);
    let (card, log) = card_with(steps, SessionClosing::default());
    sign(&card);
    sign(&card);
    log.assert_done();
    assert_eq!(card.stats().apdus, 2 + 4);
    assert!(!card.sessions_need_closing());
    std::mem::forget(card);
}

#[test]
fn a_card_that_refuses_the_init_gets_its_sessions_closed_from_then_on() {
    let mut steps = open_channel_1();
    steps.extend([Step::apdu(SIGN_INIT, "9000"), sign_update()]);
    // The second Init is refused while the first session is still open: close, Init again ...
    steps.extend([
        Step::apdu(SIGN_INIT, "6985"),
        Step::apdu(SIGN_CLOSE, "9000"),
        Step::apdu(SIGN_INIT, "9000"),
        sign_update(),
        // ... and from then on the session is closed after use.
        Step::apdu(SIGN_CLOSE, "9000"),
    ]);
    steps.extend([
        Step::apdu(SIGN_INIT, "9000"),
        sign_update(),
        Step::apdu(SIGN_CLOSE, "9000"),
    ]);
    let (card, log) = card_with(steps, SessionClosing::default());
    for _ in 0..3 {
        sign(&card);
    }
    log.assert_done();
    assert!(card.sessions_need_closing());
    assert_eq!(card.stats().reopen_refusals, 1);
    std::mem::forget(card);
}

#[test]
fn one_session_at_a_time_closes_the_other_kind_left_open() {
    let mut steps = open_channel_1();
    steps.extend([Step::apdu(PUT_INIT, "9000"), put_update()]);
    steps.extend([
        // The put session holds the card's only session: the sign Init is refused with 6A84.
        Step::apdu(SIGN_INIT, "6A84"),
        Step::apdu(PUT_CLOSE, "9000"),
        Step::apdu(SIGN_INIT, "9000"),
        sign_update(),
        Step::apdu(SIGN_CLOSE, "9000"),
    ]);
    let (card, log) = card_with(steps, SessionClosing::default());
    card.put_public_key(&ObjectRef::id([5]), &point()).unwrap();
    sign(&card);
    log.assert_done();
    assert_eq!(card.stats().reopen_refusals, 1);
    std::mem::forget(card);
}

#[test]
fn a_refusal_for_another_reason_is_the_error_and_changes_nothing() {
    let mut steps = open_channel_1();
    steps.extend([Step::apdu(SIGN_INIT, "9000"), sign_update()]);
    // The key is gone: the Init is refused before and after the close.
    steps.extend([
        Step::apdu(SIGN_INIT, "6A88"),
        Step::apdu(SIGN_CLOSE, "9000"),
        Step::apdu(SIGN_INIT, "6A88"),
    ]);
    // Nothing is left open now: the next refusal is the error at once.
    steps.push(Step::apdu(SIGN_INIT, "6A88"));
    let (card, log) = card_with(steps, SessionClosing::default());
    sign(&card);
    let key = ObjectRef::id([1]);
    assert!(card
        .sign_digest(&key, HashAlgorithm::Sha256, &[0; 32])
        .is_err());
    assert!(card
        .sign_digest(&key, HashAlgorithm::Sha256, &[0; 32])
        .is_err());
    log.assert_done();
    assert!(!card.sessions_need_closing());
    assert_eq!(card.stats().reopen_refusals, 0);
    std::mem::forget(card);
}

#[test]
fn a_card_known_to_want_closes_gets_them_from_the_first_operation() {
    let mut steps = open_channel_1();
    steps.extend([
        Step::apdu(SIGN_INIT, "9000"),
        sign_update(),
        Step::apdu(SIGN_CLOSE, "9000"),
    ]);
    let (card, log) = card_with(steps, SessionClosing::default());
    card.assume_sessions_need_closing();
    sign(&card);
    log.assert_done();
    std::mem::forget(card);
}

#[test]
fn always_closes_and_never_does_not() {
    let mut steps = open_channel_1();
    steps.extend([
        Step::apdu(SIGN_INIT, "9000"),
        sign_update(),
        Step::apdu(SIGN_CLOSE, "9000"),
    ]);
    let (card, log) = card_with(steps, SessionClosing::Always);
    sign(&card);
    log.assert_done();
    std::mem::forget(card);

    let mut steps = open_channel_1();
    steps.extend([Step::apdu(SIGN_INIT, "6985")]);
    let (card, log) = card_with(steps, SessionClosing::Never);
    // Never closes, so nothing is known to be left open: the refusal is the error.
    assert!(card
        .sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &[0; 32])
        .is_err());
    log.assert_done();
    std::mem::forget(card);
}

#[test]
fn a_new_channel_has_nothing_left_open() {
    // The session's channel is closed and opened again between two signatures: the second
    // Init's refusal is the error (a fresh channel has no session of ours to close).
    let mut steps = open_channel_1();
    steps.extend([Step::apdu(SIGN_INIT, "9000"), sign_update()]);
    steps.push(Step::apdu("0070800100", "9000"));
    steps.push(Step::Reconnect);
    steps.extend(open_channel_1());
    steps.push(Step::apdu(SIGN_INIT, "6985"));
    let (card, log) = card_with(steps, SessionClosing::default());
    sign(&card);
    card.close().unwrap();
    assert!(card
        .sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &[0; 32])
        .is_err());
    log.assert_done();
    std::mem::forget(card);
}
