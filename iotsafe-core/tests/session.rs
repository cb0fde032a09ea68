//! The one place that handles procedure bytes, and the session's recovery paths.

use iotsafe_core::config::ChannelStrategy;
use iotsafe_core::hexutil::decode;
use iotsafe_core::testing::{ScriptedTransport, Step};
use iotsafe_core::{
    Card, CardConfig, Direction, Error, HashAlgorithm, ObjectKind, ObjectRef, Operation,
    StatusWord, TraceEvent, TransportError,
};
use std::sync::{Arc, Mutex};

fn select() -> Step {
    Step::apdu("01A4040007A0000005590010", "9000")
}

fn wolf() -> CardConfig {
    CardConfig::wolfssl_compatible()
}

#[test]
fn wrong_le_is_resent_with_the_right_one() {
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::apdu("81CB000044", "6C30"),
        Step::apdu("81CB000030", "10 01 01 B7 01 04 9000"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let info = card.applet_info().unwrap();
    assert_eq!(info.max_sessions, Some(4));
    // Cached: no more APDUs.
    card.applet_info().unwrap();
    log.assert_done();
}

#[test]
fn get_response_loops_until_done_and_91xx_is_success() {
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::apdu("81 84 00 00 08", "6104"),
        Step::apdu("01 C0 00 00 04", "01020304 6104"),
        Step::apdu("01 C0 00 00 04", "05060708 9110"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    assert_eq!(
        card.get_random(8).unwrap().as_slice(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    log.assert_done();
    assert_eq!(card.stats().of(Operation::Random).apdus, 3);
}

#[test]
fn endless_61xx_is_bounded() {
    let mut steps = vec![select(), Step::apdu("81 84 00 00 08", "6101")];
    for _ in 0..40 {
        steps.push(Step::apdu("01 C0 00 00 01", "00 6101"));
    }
    let (t, _log) = ScriptedTransport::new(steps);
    let card = Card::open(t, wolf()).unwrap();
    assert!(matches!(
        card.get_random(8).unwrap_err(),
        Error::Runaway { .. }
    ));
}

#[test]
fn object_list_with_6300_continuation() {
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::apdu("81CB010000", "C1 09 84 01 01 74 04 64657669 6300"),
        Step::apdu("81CB010100", "C3 0A 83 01 02 60 01 01 20 02 01 2C 9000"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let list = card.objects().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].kind, Some(ObjectKind::PrivateKey));
    assert_eq!(list[0].label_text().as_deref(), Some("devi"));
    assert_eq!(list[1].file_size, Some(300));
    assert_eq!(
        card.find(ObjectKind::File, &ObjectRef::id([2]))
            .unwrap()
            .file_size,
        Some(300)
    );
    assert!(matches!(
        card.find(ObjectKind::File, &ObjectRef::id([9])),
        Err(Error::UnknownObject(_))
    ));
    log.assert_done();
}

#[test]
fn keygen_without_key_data_falls_back_to_read_public_key() {
    let xy = "AB".repeat(64);
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::apdu("81B9000003840104", "840107 850108 9000"),
        Step::apdu("81CD000003850108", &format!("34454943864104{xy}9000")),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let kp = card.generate_key_pair(&ObjectRef::id([4])).unwrap();
    // The IDs the card returned are authoritative.
    assert_eq!(kp.private, ObjectRef::id([7]));
    assert_eq!(kp.public, ObjectRef::id([8]));
    log.assert_done();
}

#[test]
fn removed_card_is_typed_and_the_next_operation_reconnects_and_reselects() {
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::Fail {
            command: decode("8184000008").unwrap(),
            error: || TransportError::RemovedCard,
        },
        Step::Reconnect,
        select(),
        Step::apdu("8184000008", "0102030405060708 9000"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let err = card.get_random(8).unwrap_err();
    assert!(
        matches!(err.transport(), Some(TransportError::RemovedCard)),
        "{err}"
    );
    assert_eq!(card.get_random(8).unwrap().len(), 8);
    assert_eq!(card.stats().reconnects, 1);
    log.assert_done();
}

#[test]
fn a_connection_found_dead_before_the_first_apdu_is_reconnected_and_the_operation_retried() {
    // pcscd restarted while the session was idle: the operation's transaction cannot begin.
    // Nothing reached the card, so the session reconnects, re-selects and runs it: the caller
    // sees no error.
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::Refuse {
            error: || TransportError::NoService,
        },
        Step::Reconnect,
        select(),
        Step::apdu("8184000008", "0102030405060708 9000"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    assert_eq!(
        card.get_random(8).unwrap().as_slice(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    let stats = card.stats();
    assert_eq!(stats.reconnects, 1, "{stats:?}");
    assert_eq!(stats.of(Operation::Random).failures, 1, "{stats:?}");
    log.assert_done();
}

#[test]
fn a_connection_lost_after_an_apdu_went_out_is_not_retried() {
    // The card may have acted on the APDU: the error goes to the caller, once, and only the
    // next operation reconnects.
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::Fail {
            command: decode("8184000008").unwrap(),
            error: || TransportError::NoService,
        },
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let err = card.get_random(8).unwrap_err();
    assert!(
        matches!(err.transport(), Some(TransportError::NoService)),
        "{err}"
    );
    assert_eq!(card.stats().reconnects, 0);
    log.assert_done();
}

#[test]
fn a_connection_still_dead_after_the_reconnect_is_reported_once() {
    // Refused, reconnect fails too: one typed error, no loop.
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::Refuse {
            error: || TransportError::NoService,
        },
    ]);
    let card = Card::open(t, wolf()).unwrap();
    // The script has no Reconnect step: the scripted reconnect fails ("unexpected reconnect").
    let err = card.get_random(8).unwrap_err();
    assert!(err.to_string().contains("reconnect"), "{err}");
    assert_eq!(card.stats().reconnects, 1);
    assert_eq!(log.remaining(), 0);
}

#[test]
fn a_reset_card_is_reselected_and_the_operation_retried_once() {
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::Fail {
            command: decode("8184000004").unwrap(),
            error: || TransportError::ResetCard,
        },
        Step::Reconnect,
        select(),
        Step::apdu("8184000004", "01020304 9000"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    assert_eq!(card.get_random(4).unwrap().len(), 4);
    log.assert_done();
}

#[test]
fn manage_channel_refused_is_a_typed_error_by_default() {
    let (t, log) = ScriptedTransport::new(vec![Step::apdu("0070000001", "6A81")]);
    let err = Card::open(t, CardConfig::default()).unwrap_err();
    assert!(
        matches!(err, Error::NoLogicalChannel { sw } if sw == StatusWord(0x6A81)),
        "{err}"
    );
    log.assert_done();
}

#[test]
fn manage_channel_refused_falls_back_to_basic_channel_when_allowed() {
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("0070000001", "6881"),
        Step::apdu("00A4040007A0000005590010", "9000"),
        Step::apdu("8084000002", "AAAA9000"),
    ]);
    let config = CardConfig {
        allow_basic_channel: true,
        ..CardConfig::default()
    };
    let card = Card::open(t, config).unwrap();
    assert_eq!(card.selection().unwrap().1, 0);
    card.get_random(2).unwrap();
    log.assert_done();
}

#[test]
fn probing_tries_the_known_aids_in_order() {
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("00A4040007A0000005590010", "6A82"),
        Step::apdu("00A404000FA00000003053F12401770101495341", "9000"),
    ]);
    let config = CardConfig {
        channel: ChannelStrategy::Basic,
        ..CardConfig::default()
    }
    .probing_known_aids();
    let card = Card::open(t, config).unwrap();
    assert_eq!(
        card.selection().unwrap().0,
        decode("A00000003053F12401770101495341").unwrap()
    );
    log.assert_done();
}

#[test]
fn a_stale_ephemeral_key_fails_cleanly() {
    let xy = "AB".repeat(64);
    let (t, _log) = ScriptedTransport::new(vec![
        select(),
        Step::apdu("81B9000003840104", &format!("34454943864104{xy}9000")),
        Step::apdu("81B9000003840104", &format!("34454943864104{xy}9000")),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let first = card.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    let second = card.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    assert_eq!(second.generation, first.generation + 1);
    // The session's generations say so, and the slot queue (the second took the slot over)
    // refuses first: nothing is sent.
    assert!(!card.ephemeral_is_current(&first));
    assert!(card.ephemeral_is_current(&second));
    let err = card
        .ephemeral_agreement(&first, &ObjectRef::id([5]), &second.key_pair.point)
        .unwrap_err();
    assert!(matches!(err, Error::SlotTakenOver { .. }), "{err}");
}

#[test]
fn verify_mismatch_is_false_and_other_refusals_are_errors() {
    let rs = "11".repeat(64);
    let hash = "22".repeat(32);
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::apdu("812C00010D850105A1010391020001920104", "9000"),
        Step::apdu(&format!("812D8001659E20{hash}330040{rs}"), "6D01"),
        Step::apdu("812C010100", "9000"),
        Step::apdu("812C00010D850105A1010391020001920104", "6985"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let key = ObjectRef::id([5]);
    let digest = decode(&hash).unwrap();
    let sig = decode(&rs).unwrap();
    assert!(!card
        .verify_digest(&key, HashAlgorithm::Sha256, &digest, &sig)
        .unwrap());
    let err = card
        .verify_digest(&key, HashAlgorithm::Sha256, &digest, &sig)
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusWord(0x6985)));
    log.assert_done();
}

#[test]
fn a_failed_sign_update_still_closes_the_session() {
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::apdu("812A00010D840101A1010391020001920104", "9000"),
        Step::apdu(&format!("812B8001229E20{}", "33".repeat(32)), "6985"),
        Step::apdu("812A010100", "9000"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let err = card
        .sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &[0x33; 32])
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusWord(0x6985)));
    assert_eq!(card.stats().of(Operation::Sign).failures, 1);
    log.assert_done();
}

#[test]
fn traces_redact_secrets() {
    let secret = "7D".repeat(32);
    let (t, _log) = ScriptedTransport::new(vec![
        select(),
        Step::apdu("81460000068401048501 05", &format!("{secret}9000")),
        Step::apdu(
            &format!(
                "814A000048D120{}D520{}91020001",
                "42".repeat(32),
                "00".repeat(32)
            ),
            &format!("{}9000", "99".repeat(32)),
        ),
        Step::apdu("8184000004", "DEADBEEF9000"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    let events: Arc<Mutex<Vec<TraceEvent>>> = Arc::default();
    let sink = events.clone();
    card.set_trace(Some(Arc::new(move |e: &TraceEvent| {
        sink.lock().unwrap().push(e.clone())
    })));
    let shared = card
        .compute_dh(&ObjectRef::id([4]), &ObjectRef::id([5]))
        .unwrap();
    assert_eq!(shared.as_slice(), decode(&secret).unwrap());
    card.hkdf_extract(&[0x42; 32], &[], HashAlgorithm::Sha256)
        .unwrap();
    card.get_random(4).unwrap();
    let text: String = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| format!("{:?} {}\n", e.direction, e.text))
        .collect();
    assert!(!text.contains(&secret), "{text}");
    assert!(!text.contains(&"42".repeat(32)), "{text}");
    assert!(!text.contains(&"99".repeat(32)), "{text}");
    assert!(!text.contains("DEADBEEF"), "{text}");
    assert!(text.contains("8146000006840104850105"), "{text}");
    assert!(text.contains("<32 bytes redacted> 9000"), "{text}");
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.direction == Direction::Command));
}

#[test]
fn the_card_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Card>();
}

#[test]
fn a_trace_given_at_open_sees_the_selection() {
    let (t, log) = ScriptedTransport::new(vec![Step::apdu("0070000001", "019000"), select()]);
    let events: Arc<Mutex<Vec<TraceEvent>>> = Arc::default();
    let sink = events.clone();
    let trace: iotsafe_core::TraceSink =
        Arc::new(move |e: &TraceEvent| sink.lock().unwrap().push(e.clone()));
    let card = Card::open_traced(t, CardConfig::default(), Some(trace)).unwrap();
    let texts: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.text.clone())
        .collect();
    assert_eq!(
        texts,
        ["0070000001", "019000", "01A4040007A0000005590010", "9000"]
    );
    assert_eq!(card.selection().unwrap().1, 1);
    log.assert_done();
}

#[test]
fn a_panicking_trace_sink_leaves_a_session_that_selects_again() {
    // The panic comes before the GET RANDOM reaches the transport; the lock is poisoned.
    let (t, log) = ScriptedTransport::new(vec![
        select(),
        Step::Reconnect,
        select(),
        Step::apdu("81 84 00 00 02", "0102 9000"),
    ]);
    let card = Card::open(t, wolf()).unwrap();
    card.set_trace(Some(Arc::new(|_: &TraceEvent| panic!("trace sink failed"))));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| card.get_random(2)));
    assert!(outcome.is_err());
    // Taken over, not refused: the accessors answer, the ephemeral key is retired, and the next
    // operation selects the applet again before it runs.
    card.set_trace(None);
    assert_eq!(card.ephemeral_generation(), 1);
    assert_eq!(card.get_random(2).unwrap().as_slice(), [1, 2]);
    assert_eq!(card.stats().of(Operation::Select).count, 2);
    log.assert_done();
}
