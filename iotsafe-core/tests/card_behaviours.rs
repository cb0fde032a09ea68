//! What real cards do that the session must get right: its channel reused after a dropped link,
//! re-opened after a reset the transport never saw, given back when the session is dropped; a
//! result kept when the card refuses the session close; a file read past short chunks; and each
//! signature checked against the key's public point. Byte-exact, through the scripted transport.

use iotsafe_core::hexutil::decode;
use iotsafe_core::testing::{ScriptedTransport, Step};
use iotsafe_core::{
    Card, CardConfig, CardSignature, EcPoint, Error, HashAlgorithm, ObjectRef, SessionClosing,
    TransportError,
};

/// MANAGE CHANNEL open (channel 1) and SELECT on it: how every session here starts.
fn open_channel_1() -> Vec<Step> {
    vec![
        Step::apdu("0070000001", "01 9000"),
        Step::apdu("01A4040007A0000005590010", "9000"),
    ]
}

fn random_2() -> Step {
    Step::apdu("8184000002", "AAAA 9000")
}

fn fail(command: &str, error: fn() -> TransportError) -> Step {
    Step::Fail {
        command: decode(command).unwrap(),
        error,
    }
}

fn timeout() -> TransportError {
    TransportError::Timeout {
        waited: std::time::Duration::from_secs(1),
        command: String::from("AT+CSIM"),
    }
}

#[test]
fn after_a_dropped_link_the_old_channel_is_selected_again_not_leaked() {
    let mut steps = open_channel_1();
    steps.extend([
        fail("8184000002", || TransportError::Disconnected),
        Step::Reconnect,
        // The SIM kept its state: SELECT on channel 1 again, no MANAGE CHANNEL.
        Step::apdu("01A4040007A0000005590010", "9000"),
        random_2(),
        fail("8184000002", timeout),
        Step::Reconnect,
        Step::apdu("01A4040007A0000005590010", "9000"),
        random_2(),
    ]);
    let (t, log) = ScriptedTransport::new(steps);
    let card = Card::open(t, CardConfig::default()).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            card.get_random(2).unwrap_err(),
            Error::Transport { .. }
        ));
        card.get_random(2).unwrap();
    }
    log.assert_done();
    let stats = card.stats();
    assert_eq!(stats.reconnects, 2);
    assert_eq!(stats.card_resets, 0);
    std::mem::forget(card); // no MANAGE CHANNEL close in this script
}

#[test]
fn a_refused_old_channel_means_a_reset_a_new_one_is_opened() {
    let mut steps = open_channel_1();
    steps.extend([
        fail("8184000002", || TransportError::Disconnected),
        Step::Reconnect,
        Step::apdu("01A4040007A0000005590010", "6881"),
        Step::apdu("0070000001", "02 9000"),
        Step::apdu("02A4040007A0000005590010", "9000"),
        Step::apdu("8284000002", "AAAA 9000"),
    ]);
    let (t, log) = ScriptedTransport::new(steps);
    let card = Card::open(t, CardConfig::default()).unwrap();
    let generation = card.ephemeral_generation();
    card.get_random(2).unwrap_err();
    card.get_random(2).unwrap();
    log.assert_done();
    assert_eq!(card.selection().unwrap().1, 2);
    assert_eq!(card.stats().card_resets, 1);
    assert!(card.ephemeral_generation() > generation);
    std::mem::forget(card);
}

#[test]
fn a_reset_card_reported_by_the_transport_gets_a_new_channel_at_once() {
    let mut steps = open_channel_1();
    steps.extend([
        fail("8184000002", || TransportError::RemovedCard),
        Step::Reconnect,
        Step::apdu("0070000001", "01 9000"),
        Step::apdu("01A4040007A0000005590010", "9000"),
        random_2(),
    ]);
    let (t, log) = ScriptedTransport::new(steps);
    let card = Card::open(t, CardConfig::default()).unwrap();
    card.get_random(2).unwrap_err();
    card.get_random(2).unwrap();
    log.assert_done();
    assert_eq!(card.stats().card_resets, 1);
    std::mem::forget(card);
}

#[test]
fn a_channel_lost_to_an_unseen_reset_is_reopened_and_the_operation_retried() {
    let mut steps = open_channel_1();
    steps.extend([
        // The modem restarted the SIM (AT+CFUN): channel 1 is closed on the card.
        Step::apdu("8184000002", "6881"),
        Step::apdu("0070000001", "01 9000"),
        Step::apdu("01A4040007A0000005590010", "9000"),
        random_2(),
        // And again later: the session recovers every time, not once.
        Step::apdu("8184000002", "6881"),
        Step::apdu("0070000001", "01 9000"),
        Step::apdu("01A4040007A0000005590010", "9000"),
        random_2(),
        random_2(),
    ]);
    let (t, log) = ScriptedTransport::new(steps);
    let card = Card::open(t, CardConfig::default()).unwrap();
    let generation = card.ephemeral_generation();
    for _ in 0..3 {
        card.get_random(2).unwrap();
    }
    log.assert_done();
    assert_eq!(card.stats().card_resets, 2);
    assert_eq!(card.stats().reconnects, 0);
    assert!(card.ephemeral_generation() >= generation + 2);
    std::mem::forget(card);
}

#[test]
fn a_key_agreement_after_an_unseen_reset_fails_as_stale_then_the_next_works() {
    let point = EcPoint::from_slice(&{
        let mut p = vec![0x04];
        p.extend([0x11; 64]);
        p
    })
    .unwrap();
    let key_pair_answer = format!(
        "8401 04 8501 04 3445 4943 8641 {} 9000",
        "04".to_owned() + &"22".repeat(64)
    );
    let mut steps = open_channel_1();
    steps.extend([
        Step::apdu(
            "81B900000384010 4".replace(' ', "").as_str(),
            &key_pair_answer,
        ),
        // PUT PUBLIC KEY Init: the channel is gone; the session re-opens it, and sends nothing
        // more of the agreement: the reset took the ephemeral key with it.
        Step::apdu("8124000203850105", "6881"),
        Step::apdu("0070000001", "01 9000"),
        Step::apdu("01A4040007A0000005590010", "9000"),
    ]);
    let (t, log) = ScriptedTransport::new(steps);
    let card = Card::open(t, CardConfig::default()).unwrap();
    let key = card.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    let err = card
        .ephemeral_agreement(&key, &ObjectRef::id([5]), &point)
        .unwrap_err();
    assert!(matches!(err, Error::StaleEphemeral { .. }), "{err}");
    log.assert_done();
    std::mem::forget(card);
}

#[test]
fn a_refused_session_close_keeps_the_signature_and_is_counted() {
    let rs = "5A".repeat(64);
    let mut steps = open_channel_1();
    steps.extend([
        Step::apdu("812A0001 0D 840101 A10103 91020001 920104", "9000"),
        Step::apdu(
            &format!("812B8001 22 9E20 {}", "00".repeat(32)),
            &format!("330040{rs} 9000"),
        ),
        // The card closed the session itself after the final Update.
        Step::apdu("812A010100", "6985"),
    ]);
    let (t, log) = ScriptedTransport::new(steps);
    let config = CardConfig {
        close_sessions: SessionClosing::Always,
        ..CardConfig::default()
    };
    let card = Card::open(t, config).unwrap();
    let signature = card
        .sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &[0; 32])
        .unwrap();
    let CardSignature::RawRs(raw) = signature else {
        panic!("{signature:?}");
    };
    assert_eq!(raw, decode(&rs).unwrap());
    log.assert_done();
    assert_eq!(card.stats().close_failures, 1);
    std::mem::forget(card);
}

#[test]
fn a_dropped_session_gives_its_channel_back() {
    let mut steps = open_channel_1();
    steps.push(Step::apdu("0070800100", "9000"));
    let (t, log) = ScriptedTransport::new(steps);
    drop(Card::open(t, CardConfig::default()).unwrap());
    log.assert_done();
}

#[test]
fn a_file_of_unknown_size_is_read_past_short_chunks_to_the_end() {
    let config = CardConfig {
        read_chunk: 4,
        ..CardConfig::default()
    };
    let mut steps = open_channel_1();
    steps.extend([
        // No GET DATA for the file on this card.
        Step::apdu("81CBC300 03 830102", "6D00"),
        Step::apdu("81B00000 03 830102 04", "0102 9000"),
        Step::apdu("81B00002 03 830102 04", "03040506 9000"),
        Step::apdu("81B00006 03 830102 04", "07 9000"),
        Step::apdu("81B00007 03 830102 04", "6A86"),
    ]);
    let (t, log) = ScriptedTransport::new(steps);
    let card = Card::open(t, config).unwrap();
    assert_eq!(
        card.read_file(&ObjectRef::id([2])).unwrap(),
        [1, 2, 3, 4, 5, 6, 7]
    );
    log.assert_done();
    std::mem::forget(card);
}

mod signature_check {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};

    fn key() -> SigningKey {
        SigningKey::from_slice(&[0x42; 32]).unwrap()
    }

    fn public() -> EcPoint {
        let point = key().verifying_key().to_encoded_point(false);
        EcPoint::from_slice(point.as_bytes()).unwrap()
    }

    fn sign_with_answer(answer: &str) -> (Result<CardSignature, Error>, Card) {
        let mut steps = open_channel_1();
        steps.extend([
            Step::apdu("812A0001 0D 840101 A10103 91020001 920104", "9000"),
            // The session is left open (`SessionClosing::UnlessRefused`).
            Step::apdu(&format!("812B8001 22 9E20 {}", "07".repeat(32)), answer),
        ]);
        let (t, log) = ScriptedTransport::new(steps);
        let card = Card::open(t, CardConfig::default()).unwrap();
        let result = card.sign_digest_checked(
            &ObjectRef::id([1]),
            HashAlgorithm::Sha256,
            &[7; 32],
            &public(),
        );
        log.assert_done();
        (result, card)
    }

    #[test]
    fn a_good_signature_passes_in_each_form() {
        let signature: Signature = key().sign_prehash(&[7; 32]).unwrap();
        let rs = iotsafe_core::hexutil::encode(&signature.to_bytes());
        let der = iotsafe_core::hexutil::encode(signature.to_der().as_bytes());
        for answer in [
            format!("330040 {rs} 9000"),
            format!("3340 {rs} 9000"),
            format!("{rs} 9000"),
            format!("{der} 9000"),
        ] {
            let (result, card) = sign_with_answer(&answer);
            result.unwrap_or_else(|e| panic!("{answer}: {e}"));
            assert_eq!(card.stats().bad_signatures, 0);
            std::mem::forget(card);
        }
    }

    #[test]
    fn a_signature_that_does_not_verify_is_a_typed_error_and_counted() {
        let other: Signature = SigningKey::from_slice(&[0x43; 32])
            .unwrap()
            .sign_prehash(&[7; 32])
            .unwrap();
        let rs = iotsafe_core::hexutil::encode(&other.to_bytes());
        let (result, card) = sign_with_answer(&format!("330040 {rs} 9000"));
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::SignatureCheck { form, .. } if form == "33 with a two-byte length, r‖s"),
            "{err}"
        );
        assert_eq!(card.stats().bad_signatures, 1);
        std::mem::forget(card);
    }
}
