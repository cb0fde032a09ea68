//! T=0 procedure bytes through a whole `Card` operation: a strict card that answers `6Cxx` to
//! GET RESPONSE with Le=00, and a warning (`63CF`) standing in for `61xx` after a case-4 command.

use iotsafe_core::config::GetResponseLe;
use iotsafe_core::hexutil::decode;
use iotsafe_core::testing::{ScriptedTransport, Step};
use iotsafe_core::{Card, CardConfig, CardSignature, Error, HashAlgorithm, ObjectRef, StatusWord};

const HASH: &str = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";

fn sign_steps(update_answer: &str, fetch: Vec<Step>) -> Vec<Step> {
    let mut steps = vec![
        Step::apdu("01A4040007A0000005590010", "9000"),
        Step::apdu(
            "81 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
            "9000",
        ),
        Step::apdu(&format!("81 2B 80 01 22 9E 20 {HASH}"), update_answer),
    ];
    steps.extend(fetch);
    steps.push(Step::apdu("81 2A 01 01 00", "9000"));
    steps
}

fn rs() -> String {
    "C3".repeat(64)
}

fn sign(steps: Vec<Step>, le: GetResponseLe) -> (Result<CardSignature, Error>, Option<String>) {
    let (t, log) = ScriptedTransport::new(steps);
    let config = CardConfig {
        get_response_le: le,
        ..CardConfig::wolfssl_compatible()
    };
    let card = Card::open(t, config).unwrap();
    let result = card.sign_digest(
        &ObjectRef::id([1]),
        HashAlgorithm::Sha256,
        &decode(HASH).unwrap(),
    );
    let problem = log
        .mismatch()
        .or_else(|| (log.remaining() > 0).then(|| format!("{} steps left", log.remaining())));
    (result, problem)
}

#[test]
fn le_00_refused_with_6cxx_is_resent_with_the_card_s_length() {
    let steps = sign_steps(
        "6143",
        vec![
            Step::apdu("01 C0 00 00 00", "6C43"),
            Step::apdu("01 C0 00 00 43", &format!("330040 {} 9000", rs())),
        ],
    );
    let (result, problem) = sign(steps, GetResponseLe::Zero);
    assert_eq!(problem, None);
    assert_eq!(
        result.unwrap(),
        CardSignature::RawRs(decode(&rs()).unwrap())
    );
}

#[test]
fn remote_admin_warning_after_the_update_still_yields_the_signature() {
    let steps = sign_steps(
        "63CF",
        vec![
            Step::apdu("01 C0 00 00 00", "6C43"),
            Step::apdu("01 C0 00 00 43", &format!("330040 {} 9000", rs())),
        ],
    );
    let (result, problem) = sign(steps, GetResponseLe::Announced);
    assert_eq!(problem, None);
    assert_eq!(
        result.unwrap(),
        CardSignature::RawRs(decode(&rs()).unwrap())
    );
}

#[test]
fn a_counter_warning_after_the_update_is_a_typed_refusal() {
    let steps = sign_steps(
        "63C1",
        vec![Step::apdu(
            "01 C0 00 00 00",
            &format!("330040 {} 9000", rs()),
        )],
    );
    let (result, problem) = sign(steps, GetResponseLe::Announced);
    assert_eq!(problem, None);
    match result {
        Err(Error::Status { sw, .. }) => assert_eq!(sw, StatusWord(0x63C1)),
        other => panic!("expected the 63C1 refusal, got {other:?}"),
    }
}
