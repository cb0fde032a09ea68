//! The transport's decisions over a scripted in-memory port: which command family carries an
//! APDU, what each refusal becomes, the fallback from AT+CCHO/AT+CGLA to AT+CSIM.

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
/// with `OK` when `ccho`), everything else by `script`. Returns the transport and the lines
/// written after the handshake.
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
        (AtMode::Auto, &["ATE0", "AT", "AT+CCHO=?", "AT+CSIM=?"][..]),
        (AtMode::Csim, &["ATE0", "AT"][..]),
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
    let mut opened = false;
    let (mut t, _) = transport(AtMode::Cgla, true, move |_| {
        if opened {
            vec![line("+CME ERROR: 10")]
        } else {
            opened = true;
            vec![line("+CCHO: 1"), line("OK")]
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
        ]
    );

    let (mut t, _) = transport(AtMode::Cgla, true, script);
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
