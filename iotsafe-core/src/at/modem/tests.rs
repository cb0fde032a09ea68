//! The transport's decisions over a scripted in-memory port: which command family carries an
//! APDU, what each refusal becomes, the fallback from AT+CCHO/AT+CGLA to AT+CSIM, the error mode
//! (`AT+CMEE=1`), plain `ERROR` answers and late AT+CCHO answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::at::fake_port::{line, lines, FakePort, Said};
use crate::at::framing::Deadlines;
use crate::at::refusal::expect_modem_error;

const AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10];
const GET_RESPONSE: [u8; 5] = [0x00, 0xC0, 0x00, 0x00, 0x00];

fn options(mode: AtMode) -> AtOptions {
    AtOptions {
        mode,
        deadlines: Deadlines {
            normal: Duration::from_millis(100),
            slow: Duration::from_millis(100),
        },
        ready_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(100),
        quirks: Some(ModemQuirks {
            late_answer_grace: Duration::from_millis(20),
            ..ModemQuirks::GENERIC
        }),
        ..AtOptions::default()
    }
}

/// A transport over a fake modem: the opening handshake and probes are answered (`AT+CCHO=?`
/// with `OK` when `ccho`), everything else (`AT+CMEE=1` included) by `script`. Returns the
/// transport and the lines written after the handshake.
fn transport(
    mode: AtMode,
    ccho: bool,
    mut script: impl FnMut(&str) -> Vec<Said> + Send + 'static,
) -> (AtTransport<FakePort>, Arc<Mutex<Vec<String>>>) {
    let port = FakePort::new(move |l| match l {
        "ATE0" | "AT" | "AT+CSIM=?" => vec![line("OK")],
        "AT+CCHO=?" if ccho => vec![line("OK")],
        "AT+CCHO=?" => vec![line("ERROR")],
        _ => script(l),
    });
    let written = port.written();
    let transport = AtTransport::new(port, "fake", options(mode)).expect("open");
    written.lock().unwrap().clear();
    (transport, written)
}

#[test]
fn the_opening_handshake_probes_in_auto_mode_only() {
    for (mode, expected) in [
        (
            AtMode::Auto,
            &["ATE0", "AT", "AT+CMEE=1", "AT+CCHO=?", "AT+CSIM=?"][..],
        ),
        (AtMode::Csim, &["ATE0", "AT", "AT+CMEE=1"][..]),
    ] {
        let port = FakePort::new(|_| vec![line("OK")]);
        let written = port.written();
        let transport = AtTransport::new(port, "fake", options(mode)).unwrap();
        assert_eq!(lines(&written), expected);
        assert_eq!(
            transport.uses_logical_channel_commands(),
            mode == AtMode::Auto
        );
    }
}

#[test]
fn csim_carries_the_apdu_and_the_answer_is_decoded() {
    let (mut t, written) = transport(AtMode::Csim, false, |_| {
        vec![line("+CSIM: 6,\"019000\""), line("OK")]
    });
    assert_eq!(t.transmit(&GET_RESPONSE).unwrap(), [0x01, 0x90, 0x00]);
    assert_eq!(lines(&written), ["AT+CSIM=10,\"00C0000000\""]);
}

#[test]
fn apdus_the_modem_cannot_carry_are_refused_before_anything_is_written() {
    let (mut t, written) = transport(AtMode::Csim, false, |_| vec![line("OK")]);
    assert!(matches!(
        t.transmit(&[0x00, 0xC0, 0x00]),
        Err(TransportError::Protocol(_))
    ));
    assert!(matches!(
        t.transmit(&[0u8; 262]),
        Err(TransportError::Protocol(_))
    ));
    assert!(lines(&written).is_empty());
}

#[test]
fn a_lost_sim_is_removed_card_for_csim_cgla_and_ccho_alike() {
    let sim_gone = |_: &str| vec![line("+CME ERROR: SIM failure")];
    let (mut t, _) = transport(AtMode::Csim, false, sim_gone);
    assert!(matches!(
        t.transmit(&GET_RESPONSE),
        Err(TransportError::RemovedCard)
    ));
    let (mut t, _) = transport(AtMode::Auto, true, sim_gone);
    assert!(matches!(
        t.open_channel(&AID),
        Err(TransportError::RemovedCard)
    ));
    assert!(t.uses_logical_channel_commands(), "no fallback");
    let (mut t, _) = transport(AtMode::Cgla, true, |l| {
        if l.starts_with("AT+CCHO=") {
            vec![line("+CCHO: 1"), line("OK")]
        } else {
            vec![line("+CME ERROR: 10")]
        }
    });
    t.open_channel(&AID).unwrap();
    assert!(matches!(
        t.transmit(&GET_RESPONSE),
        Err(TransportError::RemovedCard)
    ));
    assert_eq!(t.session_id(), Some(1), "the channel is not given up");
}

#[test]
fn ccho_refusals_fall_back_in_auto_mode_except_not_found() {
    let (mut t, written) = transport(AtMode::Auto, true, |l| match l {
        "AT+CCHO=\"A0\"" => vec![line("+CME ERROR: not found")],
        _ => vec![line("+CME ERROR: 4")],
    });
    assert!(matches!(
        t.open_channel(&[0xA0]),
        Err(TransportError::Modem { .. })
    ));
    assert!(t.uses_logical_channel_commands());
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert!(!t.uses_logical_channel_commands());
    assert_eq!(
        lines(&written),
        ["AT+CCHO=\"A0\"", "AT+CCHO=\"A0000005590010\""]
    );

    // Forced AT+CGLA mode: no fallback, the refusal is the error.
    let (mut t, _) = transport(AtMode::Cgla, true, |_| vec![line("+CME ERROR: 4")]);
    let (command, answer) = expect_modem_error(t.open_channel(&AID));
    assert_eq!(command, "AT+CCHO=\"A0000005590010\"");
    assert_eq!(answer, "+CME ERROR: 4");
}

#[test]
fn an_invalid_index_to_cgla_is_a_reset_and_forgets_the_channel() {
    let mut cgla = 0;
    let (mut t, written) = transport(AtMode::Auto, true, move |l| match l {
        l if l.starts_with("AT+CCHO=") => vec![line("+CCHO: 2"), line("OK")],
        l if l.starts_with("AT+CGLA=") => {
            cgla += 1;
            if cgla == 1 {
                vec![line("+CGLA: 4,\"9000\""), line("OK")]
            } else {
                vec![line("+CME ERROR: 21")]
            }
        }
        _ => vec![line("ERROR")],
    });
    t.open_channel(&AID).unwrap();
    assert_eq!(t.transmit(&GET_RESPONSE).unwrap(), [0x90, 0x00]);
    assert!(matches!(
        t.transmit(&GET_RESPONSE),
        Err(TransportError::ResetCard)
    ));
    assert_eq!(t.session_id(), None);
    assert!(t.uses_logical_channel_commands(), "still AT+CGLA");
    // The channel the modem forgot is not closed.
    drop(t);
    assert!(!lines(&written).iter().any(|l| l.starts_with("AT+CCHC")));
}

#[test]
fn a_refusal_of_the_first_cgla_falls_back_to_csim_in_auto_mode_only() {
    let script = |l: &str| match l {
        l if l.starts_with("AT+CCHO=") => vec![line("+CCHO: 3"), line("OK")],
        "AT+CCHC=3" => vec![line("OK")],
        _ => vec![line("ERROR")],
    };
    let (mut t, written) = transport(AtMode::Auto, true, script);
    t.open_channel(&AID).unwrap();
    assert!(matches!(
        t.transmit(&GET_RESPONSE),
        Err(TransportError::ResetCard)
    ));
    assert!(!t.uses_logical_channel_commands());
    assert_eq!(t.transmit(&GET_RESPONSE).ok(), None);
    assert_eq!(
        lines(&written),
        [
            "AT+CCHO=\"A0000005590010\"",
            "AT+CGLA=3,10,\"00C0000000\"",
            "AT+CCHC=3",
            "AT+CSIM=10,\"00C0000000\"",
            // A plain ERROR to AT+CSIM: is the SIM there?
            "AT+CPIN?",
        ]
    );

    // Forced AT+CGLA mode: no fallback. The plain ERROR is read as a lost channel once, then as
    // the command's own refusal.
    let (mut t, _) = transport(AtMode::Cgla, true, script);
    t.open_channel(&AID).unwrap();
    assert!(matches!(
        t.transmit(&GET_RESPONSE),
        Err(TransportError::ResetCard)
    ));
    t.open_channel(&AID).unwrap();
    let (command, answer) = expect_modem_error(t.transmit(&GET_RESPONSE));
    assert_eq!(command, "AT+CGLA=3,10,\"00C0000000\"");
    assert_eq!(answer, "ERROR");
}

#[test]
fn a_bare_ok_is_9000_only_for_emulators_that_mean_it() {
    let (mut t, _) = transport(AtMode::Csim, false, |_| vec![line("OK")]);
    let (_, answer) = expect_modem_error(t.transmit(&GET_RESPONSE));
    assert_eq!(answer, "OK without a +CSIM: line");
    // The emulator answers everything with a bare OK.
    let port = FakePort::new(|_| vec![line("OK")]);
    let written = port.written();
    let mut t = AtTransport::new(
        port,
        "fake",
        AtOptions {
            quirks: Some(ModemQuirks::WOLFSSL_EMULATOR),
            ..options(AtMode::Csim)
        },
    )
    .unwrap();
    assert_eq!(t.transmit(&GET_RESPONSE).unwrap(), [0x90, 0x00]);
    assert_eq!(
        lines(&written).last().map(String::as_str),
        Some("AT+CSIM= 10,\"00C0000000\"")
    );
}

#[test]
fn the_last_of_several_answer_lines_counts() {
    let (mut t, _) = transport(AtMode::Csim, false, |_| {
        vec![
            line("+CSIM: 4,\"6A82\""),
            line("+CSIM: 6,\"019000\""),
            line("OK"),
        ]
    });
    assert_eq!(t.transmit(&GET_RESPONSE).unwrap(), [0x01, 0x90, 0x00]);
}

#[test]
fn a_reconnect_retires_the_channel_and_closes_it_once_the_modem_answers() {
    let (mut t, written) = transport(AtMode::Cgla, true, |l| match l {
        l if l.starts_with("AT+CCHO=") => vec![line("+CCHO: 5"), line("OK")],
        "AT+CCHC=5" => vec![line("OK")],
        _ => vec![line("ERROR")],
    });
    t.open_channel(&AID).unwrap();
    t.reconnect().unwrap();
    assert_eq!(t.session_id(), None);
    assert_eq!(
        lines(&written),
        [
            "AT+CCHO=\"A0000005590010\"",
            "AT",
            "ATE0",
            "AT",
            "AT+CCHC=5"
        ]
    );
    drop(t);
    assert_eq!(count(&lines(&written), "AT+CCHC=5"), 1, "closed once");
}

fn count(lines: &[String], wanted: &str) -> usize {
    lines.iter().filter(|l| *l == wanted).count()
}

/// GET RESPONSE in an operation of its own, as the session sends APDUs (in a transaction).
fn in_operation(t: &mut AtTransport<FakePort>) -> Result<Vec<u8>, TransportError> {
    let mut operation = t.transaction().unwrap();
    operation.transmit(&GET_RESPONSE)
}

/// What the session does after a reset before it retries: reconnect, reopen the channel.
fn recover(t: &mut AtTransport<FakePort>) {
    t.reconnect().unwrap();
    t.open_channel(&AID).unwrap();
}

/// A fake modem whose opening handshake is answered, `AT+CMEE=1` with `OK` when `numeric`
/// (`ERROR` otherwise), everything else by `script`, `AT` included once the transport is open;
/// the lines written after the handshake.
fn transport_with_cmee(
    mode: AtMode,
    numeric: bool,
    mut script: impl FnMut(&str) -> Vec<Said> + Send + 'static,
) -> (AtTransport<FakePort>, Arc<Mutex<Vec<String>>>) {
    let open = Arc::new(AtomicBool::new(false));
    let opened = open.clone();
    let port = FakePort::new(move |l| match l {
        "ATE0" | "AT+CSIM=?" | "AT+CCHO=?" => vec![line("OK")],
        "AT" if !opened.load(Ordering::SeqCst) => vec![line("OK")],
        "AT+CMEE=1" if numeric => vec![line("OK")],
        "AT+CMEE=1" => vec![line("ERROR")],
        _ => script(l),
    });
    let written = port.written();
    let transport = AtTransport::new(port, "fake", options(mode)).expect("open");
    open.store(true, Ordering::SeqCst);
    written.lock().unwrap().clear();
    (transport, written)
}

#[test]
fn a_modem_that_refuses_or_ignores_cmee_is_still_opened() {
    for answer in [vec![line("ERROR")], vec![line("+CME ERROR: 3")], vec![]] {
        let port = FakePort::new(move |l| match l {
            "AT+CMEE=1" => answer.clone(),
            _ => vec![line("OK")],
        });
        let written = port.written();
        let mut t = AtTransport::new(port, "fake", options(AtMode::Csim)).expect("open");
        assert_eq!(t.errors, ErrorMode::Plain);
        assert_eq!(lines(&written), ["ATE0", "AT", "AT+CMEE=1"]);
        // A silent AT+CMEE left the line dirty: the next command resynchronises first.
        assert!(t.transmit(&GET_RESPONSE).is_err());
    }
}

#[test]
fn a_reconnect_asks_for_numeric_errors_again_only_when_the_modem_took_them() {
    for numeric in [true, false] {
        let (mut t, written) = transport_with_cmee(AtMode::Csim, numeric, |l| match l {
            "AT" => vec![line("OK")],
            _ => vec![line("ERROR")],
        });
        t.reconnect().unwrap();
        let mut expected = vec!["AT", "ATE0", "AT"];
        if numeric {
            expected.push("AT+CMEE=1");
        }
        assert_eq!(lines(&written), expected, "numeric {numeric}");
    }
}

#[test]
fn a_reopened_port_is_asked_for_numeric_errors_again() {
    // The first port dies after the handshake (every read then ends the stream); the second
    // is a fresh modem.
    let mut opened = 0;
    let first = FakePort::new(move |l| {
        opened += 1;
        match l {
            "ATE0" | "AT" | "AT+CMEE=1" if opened <= 3 => vec![line("OK")],
            _ => vec![Said::Eof],
        }
    });
    let second = FakePort::new(|_| vec![line("OK")]);
    let reopened = second.written();
    let mut spare = Some(second);
    let mut t = AtTransport::new(first, "fake", options(AtMode::Csim))
        .expect("open")
        .with_reopen(move || {
            spare
                .take()
                .ok_or_else(|| TransportError::Port("only one spare port".into()))
        });
    t.reconnect().unwrap();
    assert_eq!(lines(&reopened), ["ATE0", "AT", "AT+CMEE=1"]);
    assert_eq!(t.errors, ErrorMode::Numeric);
}

#[test]
fn a_plain_error_to_cgla_is_a_lost_channel_once_per_operation() {
    // At AT+CMEE=0 a modem says a plain ERROR where it would say `+CME ERROR: 21`.
    let mut sessions = 0;
    let mut cgla = 0;
    let (mut t, written) = transport_with_cmee(AtMode::Cgla, false, move |l| match l {
        l if l.starts_with("AT+CCHO=") => {
            sessions += 1;
            vec![line(&format!("+CCHO: {sessions}")), line("OK")]
        }
        l if l.starts_with("AT+CGLA=") => {
            cgla += 1;
            match cgla {
                1 | 3 => vec![line("+CGLA: 4,\"9000\""), line("OK")],
                _ => vec![line("ERROR")],
            }
        }
        "AT" => vec![line("OK")],
        _ => vec![line("ERROR")],
    });
    // An operation works, then its channel is lost: the plain ERROR is read as a reset, the
    // channel is retired and closed at the reconnect, the retry goes through a new channel.
    t.open_channel(&AID).unwrap();
    assert_eq!(in_operation(&mut t).unwrap(), [0x90, 0x00]);
    assert!(matches!(
        in_operation(&mut t),
        Err(TransportError::ResetCard)
    ));
    assert_eq!(t.session_id(), None);
    recover(&mut t);
    assert_eq!(in_operation(&mut t).unwrap(), [0x90, 0x00]);
    // A command the modem will never take: one recovery, and the retry's refusal is the
    // command's own, typed.
    assert!(matches!(
        in_operation(&mut t),
        Err(TransportError::ResetCard)
    ));
    recover(&mut t);
    let (command, answer) = expect_modem_error(in_operation(&mut t));
    assert_eq!(
        (command.as_str(), answer.as_str()),
        ("AT+CGLA=3,10,\"00C0000000\"", "ERROR")
    );
    assert_eq!(
        t.session_id(),
        Some(3),
        "the command's refusal keeps the channel"
    );
    let written = lines(&written);
    assert_eq!(count(&written, "AT+CCHC=1"), 1, "{written:?}");
    assert_eq!(count(&written, "AT+CCHC=2"), 1, "{written:?}");
}

#[test]
fn a_plain_error_to_csim_is_a_lost_sim_only_when_at_cpin_says_so() {
    // The SIM is there: the refusal is the command's own, typed at once; no reset that would
    // make the session open another channel.
    let (mut t, written) = transport_with_cmee(AtMode::Csim, false, |l| match l {
        "AT+CPIN?" => vec![line("+CPIN: READY"), line("OK")],
        _ => vec![line("ERROR")],
    });
    for _ in 0..2 {
        let (command, answer) = expect_modem_error(in_operation(&mut t));
        assert_eq!(
            (command.as_str(), answer.as_str()),
            ("AT+CSIM=10,\"00C0000000\"", "ERROR")
        );
    }
    assert_eq!(
        lines(&written),
        ["AT+CSIM=10,\"00C0000000\"", "AT+CPIN?"].repeat(2)
    );
    // The SIM is gone (at AT+CMEE=0, `+CME ERROR: 13` is a plain ERROR too): as the numeric code.
    let (mut t, _) = transport_with_cmee(AtMode::Csim, false, |_| vec![line("ERROR")]);
    assert!(matches!(
        t.transmit(&GET_RESPONSE),
        Err(TransportError::RemovedCard)
    ));
    // Numbered refusals keep their meaning, without a question.
    let (mut t, written) = transport_with_cmee(AtMode::Csim, true, |_| vec![line("+CME ERROR: 3")]);
    let (_, answer) = expect_modem_error(t.transmit(&GET_RESPONSE));
    assert_eq!(answer, "+CME ERROR: 3");
    assert_eq!(lines(&written), ["AT+CSIM=10,\"00C0000000\""]);
}

#[test]
fn a_busy_sim_does_not_make_auto_mode_give_up_ccho() {
    for busy in ["+CME ERROR: 14", "+CME ERROR: SIM busy"] {
        let mut opens = 0;
        let (mut t, written) = transport_with_cmee(AtMode::Auto, true, move |l| match l {
            l if l.starts_with("AT+CCHO=") => {
                opens += 1;
                if opens == 1 {
                    vec![line(busy)]
                } else {
                    vec![line("+CCHO: 1"), line("OK")]
                }
            }
            _ => vec![line("ERROR")],
        });
        assert!(matches!(
            t.open_channel(&AID),
            Err(TransportError::ResetCard)
        ));
        assert!(t.uses_logical_channel_commands(), "{busy}: no fallback");
        assert!(t.open_channel(&AID).unwrap().is_some());
        assert_eq!(count(&lines(&written), "AT+CCHO=\"A0000005590010\""), 2);
    }
}

#[test]
fn a_plain_error_to_ccho_falls_back_only_when_it_means_an_unknown_command() {
    // Numeric codes on: a plain ERROR is a syntax error, the modem lacks AT+CCHO.
    let (mut t, _) = transport_with_cmee(AtMode::Auto, true, |_| vec![line("ERROR")]);
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert!(!t.uses_logical_channel_commands());
    // At AT+CMEE=0 it may be a busy SIM or a missing applet: no fallback on a guess.
    let (mut t, _) = transport_with_cmee(AtMode::Auto, false, |_| vec![line("ERROR")]);
    let (command, answer) = expect_modem_error(t.open_channel(&AID));
    assert_eq!(
        (command.as_str(), answer.as_str()),
        ("AT+CCHO=\"A0000005590010\"", "ERROR")
    );
    assert!(t.uses_logical_channel_commands());
}

/// A modem whose first AT+CCHO gets no answer in time: its `late` answer line comes before the
/// answer to the next `AT` the host writes (the resync's). Later AT+CCHO open session `next`.
fn late_ccho_transport(
    late: &'static str,
    next: u32,
) -> (AtTransport<FakePort>, Arc<Mutex<Vec<String>>>) {
    let mut opens = 0;
    let mut pending = false;
    transport_with_cmee(AtMode::Cgla, true, move |l| match l {
        l if l.starts_with("AT+CCHO=") => {
            opens += 1;
            pending = opens == 1;
            if pending {
                vec![]
            } else {
                vec![line(&format!("+CCHO: {next}")), line("OK")]
            }
        }
        "AT" if pending => {
            pending = false;
            vec![line(late), line("OK"), line("OK")]
        }
        l if l == "AT" || l.starts_with("AT+CCHC=") => vec![line("OK")],
        _ => vec![line("ERROR")],
    })
}

#[test]
fn the_channel_a_late_ccho_answer_names_is_closed() {
    const CCHO: &str = "AT+CCHO=\"A0000005590010\"";
    // Found by the resync of a reconnect, or by the next open itself (no reconnect in between;
    // a bare session id, as 27.007 writes it), and closed before a new channel is opened.
    let cases: [(&str, bool, &[&str]); 2] = [
        (
            "+CCHO: 7",
            true,
            &[CCHO, "AT", "ATE0", "AT", "AT+CMEE=1", "AT+CCHC=7", CCHO],
        ),
        ("7", false, &[CCHO, "AT", "AT+CCHC=7", CCHO]),
    ];
    for (late, reconnect, expected) in cases {
        let (mut t, written) = late_ccho_transport(late, 8);
        assert!(matches!(
            t.open_channel(&AID),
            Err(TransportError::Timeout { .. })
        ));
        if reconnect {
            t.reconnect().unwrap();
        }
        assert!(t.open_channel(&AID).unwrap().is_some());
        assert_eq!(t.session_id(), Some(8));
        assert_eq!(lines(&written), expected, "{late}");
        // Closed once: nothing stale is left for the drop.
        drop(t);
        assert_eq!(count(&lines(&written), "AT+CCHC=7"), 1, "{late}");
    }
}

#[test]
fn once_ccho_has_opened_a_channel_no_refusal_makes_auto_mode_fall_back() {
    for numeric in [true, false] {
        let mut opens = 0;
        let (mut t, _) = transport_with_cmee(AtMode::Auto, numeric, move |l| match l {
            "AT+CCHO=\"A001\"" => vec![line("ERROR")],
            l if l.starts_with("AT+CCHO=") => {
                opens += 1;
                match opens {
                    1 => vec![line("+CCHO: 1"), line("OK")],
                    2 => vec![line("ERROR")],
                    _ => vec![line("+CME ERROR: 4")],
                }
            }
            _ => vec![line("OK")],
        });
        assert!(t.open_channel(&AID).unwrap().is_some());
        // A plain ERROR to the AT+CCHO that worked: a busy SIM or a restarted modem.
        assert!(matches!(
            t.open_channel(&AID),
            Err(TransportError::ResetCard)
        ));
        // Any other refusal is the error it names; AT+CCHO stays.
        let (_, answer) = expect_modem_error(t.open_channel(&AID));
        assert_eq!(answer, "+CME ERROR: 4");
        // A plain ERROR for another AID may be a missing applet (or, with numeric codes, the
        // command refused): the error, never the fallback.
        let (command, _) = expect_modem_error(t.open_channel(&[0xA0, 0x01]));
        assert_eq!(command, "AT+CCHO=\"A001\"");
        assert!(t.uses_logical_channel_commands(), "numeric {numeric}");
    }
}
