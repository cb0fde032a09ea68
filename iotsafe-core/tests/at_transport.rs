//! AtTransport over AT+CSIM against a scripted modem on a real pseudo-terminal: the exact
//! lines sent, the shapes of answers read, errors, deadlines and recovery after a timeout.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

mod at_support;

use std::time::{Duration, Instant};

use iotsafe_core::at::{AtMode, AtOptions, AtTransport, ModemQuirks};
use iotsafe_core::{LogicalChannels, Transaction, Transport, TransportError};

use at_support::{
    csim_modem, line, modem_error, ok, options, pty, setup, Modem, Reply, AID, SELECT_IOTSAFE,
};

#[test]
fn csim_sends_the_exact_line_and_returns_without_idle_wait() {
    let (mut t, modem, _slave) = setup(AtMode::Csim, true, |l| {
        if l.starts_with("AT+CSIM=") {
            vec![line("+CSIM: 4,\"9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert!(!t.uses_logical_channel_commands());
    let started = Instant::now();
    let answer = t.transmit(&SELECT_IOTSAFE).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(answer, vec![0x90, 0x00]);
    // The modem said OK at once: the transport must not wait anything like a deadline.
    assert!(elapsed < Duration::from_millis(200), "took {elapsed:?}");
    assert_eq!(
        modem.apdu_lines(),
        vec!["AT+CSIM=24,\"01A4040007A0000005590010\"".to_string()]
    );
    assert_eq!(modem.received()[0], "ATE0");
    assert!(t.describe().contains("AT+CSIM"));
}

#[test]
fn echo_urcs_unquoted_lower_case_and_split_reads() {
    let mut echo = true;
    let (master, path, _slave) = pty();
    let modem = Modem::start(
        master,
        Box::new(move |l: &str| {
            let mut out = Vec::new();
            if echo {
                // Echo as a modem does before ATE0 takes effect.
                out.push(Reply::Raw(format!("{l}\r").into_bytes()));
            }
            if l == "ATE0" {
                echo = false;
            }
            match l {
                "ATE0" | "AT" => out.push(ok()),
                "AT+CGMM" => out.extend([line("GMS01Q"), ok()]),
                l if l.starts_with("AT+CSIM=") && l != "AT+CSIM=?" => out.extend([
                    line("+CREG: 1,5"),
                    line("RING"),
                    Reply::Raw(b"\r\n+CSIM: 8,01".to_vec()),
                    Reply::Pause(Duration::from_millis(30)),
                    Reply::Raw(b"ab90".to_vec()),
                    Reply::Pause(Duration::from_millis(30)),
                    Reply::Raw(b"00\r\n".to_vec()),
                    line("+CEREG: 5"),
                    ok(),
                ]),
                _ => out.push(line("ERROR")),
            }
            out
        }),
    );
    let mut t = AtTransport::open_tty(&path, options(AtMode::Csim)).unwrap();
    assert_eq!(t.quirks().name, "Sequans GMS01Q");
    let answer = t.transmit(&[0x00, 0xB0, 0x00, 0x00, 0x02]).unwrap();
    assert_eq!(answer, vec![0x01, 0xAB, 0x90, 0x00]);
    drop(modem);
}

#[test]
fn procedure_bytes_pass_through() {
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, |l| {
        if l.starts_with("AT+CSIM=") {
            vec![line("+CSIM: 4,\"6142\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert_eq!(
        t.transmit(&[0x00, 0x2B, 0x80, 0x01, 0x00]).unwrap(),
        vec![0x61, 0x42]
    );
}

#[test]
fn errors_name_the_command_and_redact_the_payload() {
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, |l| {
        if l.starts_with("AT+CSIM=78") {
            vec![line("+CME ERROR: 0")]
        } else if l == "AT+CPIN?" {
            vec![line("+CPIN: READY"), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    let mut sign_update = vec![0x00, 0x2B, 0x80, 0x01, 0x22, 0x9E, 0x20];
    sign_update.extend([0x5A; 32]);
    let (command, answer) = modem_error(t.transmit(&sign_update));
    assert_eq!(command, "AT+CSIM=78,\"002B800122…\"");
    assert_eq!(answer, "+CME ERROR: 0");
    let message = t.transmit(&sign_update).unwrap_err().to_string();
    assert!(!message.contains("5A5A"), "payload leaked: {message}");
    // Still usable afterwards, and ERROR is typed too (the SIM is there: `AT+CPIN?` says READY).
    let (command, answer) = modem_error(t.transmit(&SELECT_IOTSAFE));
    assert_eq!(command, "AT+CSIM=24,\"01A4040007…\"");
    assert_eq!(answer, "ERROR");
}

#[test]
fn silent_modem_times_out_within_the_deadline_and_recovers() {
    let mut first = true;
    let (mut t, modem, _slave) = setup(AtMode::Csim, false, move |l| {
        if l.starts_with("AT+CSIM=") {
            if first {
                first = false;
                return Vec::new(); // silence
            }
            vec![line("+CSIM: 4,\"9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    let started = Instant::now();
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, TransportError::Timeout { waited, command }
            if *waited == Duration::from_millis(500) && command.starts_with("AT+CSIM=")),
        "{err:?}"
    );
    // The message names the AT line that went unanswered, not only how long we waited.
    assert!(err.to_string().contains("to AT+CSIM="), "{err}");
    assert!(err.needs_reconnect());
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_millis(1200),
        "took {elapsed:?}"
    );
    // The next command resynchronises (AT → OK) and then works.
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    let lines = modem.received();
    let n = lines.len();
    assert_eq!(lines[n - 2], "AT");
    assert!(lines[n - 1].starts_with("AT+CSIM=24"));
}

#[test]
fn slow_instructions_get_the_long_deadline() {
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, |l| {
        if l.starts_with("AT+CSIM=") {
            // Longer than the normal deadline (500 ms), shorter than the slow one (1500 ms).
            vec![
                Reply::Pause(Duration::from_millis(800)),
                line("+CSIM: 4,\"6145\""),
                ok(),
            ]
        } else {
            vec![line("ERROR")]
        }
    });
    let keygen = [0x81, 0xB9, 0x00, 0x00, 0x03, 0x84, 0x01, 0x01];
    assert_eq!(t.transmit(&keygen).unwrap(), vec![0x61, 0x45]);
}

#[test]
fn garbage_and_overlong_lines_are_protocol_errors_then_recovery() {
    let mut calls = 0;
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, move |l| {
        if l.starts_with("AT+CSIM=") {
            calls += 1;
            match calls {
                1 => vec![Reply::Raw(vec![b'Z'; 10_000])],
                2 => vec![line("+CSIM: 4,\"90ZZ\""), ok()],
                3 => vec![ok()],
                _ => vec![line("+CSIM: 4,\"9000\""), ok()],
            }
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Protocol(_))
    ));
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Protocol(_))
    ));
    // A bare OK with no +CSIM line (after the grace period) is a typed error.
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Modem { .. })
    ));
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
}

#[test]
fn late_answer_line_after_ok_is_used() {
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, |l| {
        if l.starts_with("AT+CSIM=") {
            vec![
                ok(),
                Reply::Pause(Duration::from_millis(50)),
                line("+CSIM: 4,\"9000\""),
            ]
        } else {
            vec![line("ERROR")]
        }
    });
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    // And the next exchange still works (after a resync).
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
}

#[test]
fn width3_length_for_wolfssl_style_emulators() {
    let (master, path, _slave) = pty();
    // A bare OK: the emulator's answer to an Init command.
    let modem = Modem::start(master, csim_modem(vec![ok()]));
    let opts = AtOptions {
        quirks: Some(ModemQuirks::WOLFSSL_EMULATOR),
        ..options(AtMode::Csim)
    };
    let mut t = AtTransport::open_tty(&path, opts).unwrap();
    let init = [0x81, 0x2A, 0x00, 0x01, 0x03, 0x84, 0x01, 0x01];
    assert_eq!(t.transmit(&init).unwrap(), vec![0x90, 0x00]);
    assert_eq!(
        modem.apdu_lines(),
        vec!["AT+CSIM= 16,\"812A000103840101\"".to_string()]
    );
}

#[test]
fn late_answer_of_a_timed_out_command_is_not_taken_for_the_next_one() {
    // A modem that works sequentially: the stalled command's answer comes out (late) before
    // the answer to anything sent after it.
    let mut calls = 0;
    let (mut t, modem, _slave) = setup(AtMode::Csim, false, move |l| {
        if l.starts_with("AT+CSIM=") {
            calls += 1;
            if calls == 1 {
                return vec![
                    Reply::Pause(Duration::from_millis(700)),
                    line("+CSIM: 6,\"AA9000\""),
                    ok(),
                ];
            }
            vec![line("+CSIM: 6,\"BB9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Timeout { .. })
    ));
    // The modem thread is still sleeping; the next command's resync sees the late answer first.
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0xBB, 0x90, 0x00]);
    let received = modem.received();
    assert_eq!(received[received.len() - 2], "AT");
}

#[test]
fn reconnect_after_a_timeout_discards_the_late_answer() {
    let mut calls = 0;
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, move |l| {
        if l.starts_with("AT+CSIM=") {
            calls += 1;
            if calls == 1 {
                return vec![
                    Reply::Pause(Duration::from_millis(700)),
                    line("+CSIM: 6,\"AA9000\""),
                    ok(),
                ];
            }
            vec![line("+CSIM: 6,\"BB9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Timeout { .. })
    ));
    // What the card session does after a transport error: reconnect, then go on.
    t.reconnect().unwrap();
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0xBB, 0x90, 0x00]);
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0xBB, 0x90, 0x00]);
}
