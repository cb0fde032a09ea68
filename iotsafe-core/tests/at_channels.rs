//! AtTransport's modem-managed channels against a scripted modem: AT+CCHO/AT+CGLA/AT+CCHC, the
//! fallback to AT+CSIM, what each refusal means, and closing channels left over after a
//! reconnect or on drop.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

mod at_support;

use std::io;
use std::net::TcpListener;

use iotsafe_core::at::{AtMode, AtTransport};
use iotsafe_core::{LogicalChannels, Transaction, Transport, TransportError};

use at_support::{
    channel_modem, count, line, modem_error, ok, options, pty, setup, Modem, AID, SELECT_IOTSAFE,
};

#[test]
fn auto_mode_uses_ccho_cgla_cchc() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, true, |l| match l {
        "AT+CCHO=\"A0000005590010\"" => vec![line("+CCHO: 1"), ok()],
        "AT+CGLA=1,10,\"00C0000000\"" => vec![line("+CGLA: 6,\"019000\""), ok()],
        "AT+CCHC=1" => vec![ok()],
        _ => vec![line("ERROR")],
    });
    assert!(t.uses_logical_channel_commands());
    let channel = t.open_channel(&AID).unwrap();
    assert!(channel.is_some());
    assert_eq!(t.session_id(), Some(1));
    let answer = t.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00]).unwrap();
    assert_eq!(answer, vec![0x01, 0x90, 0x00]);
    t.close_channel().unwrap();
    assert_eq!(t.session_id(), None);
    assert_eq!(
        modem.apdu_lines(),
        vec![
            "AT+CCHO=\"A0000005590010\"".to_string(),
            "AT+CGLA=1,10,\"00C0000000\"".to_string(),
            "AT+CCHC=1".to_string(),
        ]
    );
}

#[test]
fn bare_session_id_is_accepted() {
    let (mut t, _modem, _slave) = setup(AtMode::Cgla, true, |l| {
        if l.starts_with("AT+CCHO=") {
            vec![line("7"), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(7));
}

#[test]
fn auto_falls_back_to_csim_when_ccho_is_refused() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, true, |l| {
        if l.starts_with("AT+CCHO=\"") {
            vec![line("+CME ERROR: 4")]
        } else if l.starts_with("AT+CSIM=") {
            vec![line("+CSIM: 4,\"9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(t.uses_logical_channel_commands());
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert!(!t.uses_logical_channel_commands());
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    // Sticky: the next open does not try AT+CCHO again.
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert_eq!(
        modem.apdu_lines(),
        vec![
            "AT+CCHO=\"A0000005590010\"".to_string(),
            "AT+CSIM=24,\"01A4040007A0000005590010\"".to_string(),
        ]
    );
}

#[test]
fn auto_without_ccho_support_uses_csim() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, false, |_| vec![line("ERROR")]);
    assert!(!t.uses_logical_channel_commands());
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert!(modem.apdu_lines().is_empty());
}

#[test]
fn forced_cgla_mode_reports_a_refused_ccho() {
    let (mut t, _modem, _slave) = setup(AtMode::Cgla, true, |_| vec![line("ERROR")]);
    let (command, answer) = modem_error(t.open_channel(&AID));
    assert_eq!(command, "AT+CCHO=\"A0000005590010\"");
    assert_eq!(answer, "ERROR");
}

#[test]
fn lost_sim_is_removed_card_even_for_ccho() {
    let (mut t, _modem, _slave) = setup(AtMode::Auto, true, |l| {
        if l.starts_with("AT+CCHO=\"") || l.starts_with("AT+CSIM=") {
            vec![line("+CME ERROR: 13")]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(matches!(
        t.open_channel(&AID),
        Err(TransportError::RemovedCard)
    ));
    // No fallback happened: AT+CCHO stays in use.
    assert!(t.uses_logical_channel_commands());
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::RemovedCard)
    ));
}

#[test]
fn auto_ccho_not_found_is_a_modem_error_without_fallback() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, true, |l| match l {
        "AT+CCHO=\"A00000003053F12401770101495341\"" => vec![line("+CME ERROR: 22")],
        "AT+CCHO=\"A0000005590010\"" => vec![line("+CCHO: 2"), ok()],
        _ => vec![line("ERROR")],
    });
    let thales_aid = [
        0xA0, 0x00, 0x00, 0x00, 0x30, 0x53, 0xF1, 0x24, 0x01, 0x77, 0x01, 0x01, 0x49, 0x53, 0x41,
    ];
    let (command, answer) = modem_error(t.open_channel(&thales_aid));
    assert_eq!(command, "AT+CCHO=\"A00000003053F12401770101495341\"");
    assert_eq!(answer, "+CME ERROR: 22");
    // Still AT+CCHO: the next AID opens a modem-managed channel.
    assert!(t.uses_logical_channel_commands());
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(2));
    assert_eq!(modem.apdu_lines().len(), 2);
}

#[test]
fn auto_falls_back_when_the_first_cgla_is_refused() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, true, |l| match l {
        "AT+CCHO=\"A0000005590010\"" => vec![line("+CCHO: 3"), ok()],
        "AT+CCHC=3" => vec![ok()],
        l if l.starts_with("AT+CGLA=") => vec![line("ERROR")],
        l if l.starts_with("AT+CSIM=") => vec![line("+CSIM: 4,\"9000\""), ok()],
        _ => vec![line("ERROR")],
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    // ResetCard: the session reconnects, re-selects (now over AT+CSIM) and retries once.
    assert!(matches!(
        t.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00]),
        Err(TransportError::ResetCard)
    ));
    assert!(!t.uses_logical_channel_commands());
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    let lines = modem.apdu_lines();
    assert_eq!(lines[1], "AT+CGLA=3,10,\"00C0000000\"");
    assert_eq!(lines[2], "AT+CCHC=3");
}

#[test]
fn lost_channel_is_reported_as_reset() {
    let mut cgla_calls = 0;
    let (mut t, _modem, _slave) = setup(AtMode::Cgla, true, move |l| match l {
        l if l.starts_with("AT+CCHO=") => vec![line("+CCHO: 1"), ok()],
        l if l.starts_with("AT+CGLA=") => {
            cgla_calls += 1;
            if cgla_calls == 1 {
                vec![line("+CGLA: 4,\"9000\""), ok()]
            } else {
                vec![line("+CME ERROR: 21")]
            }
        }
        _ => vec![line("ERROR")],
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::ResetCard)
    ));
    assert_eq!(t.session_id(), None);
    assert!(t.uses_logical_channel_commands());
}

#[test]
fn dropping_the_transport_closes_its_channel() {
    let (mut t, modem, _slave) = setup(AtMode::Cgla, true, |l| match l {
        l if l.starts_with("AT+CCHO=") => vec![line("+CCHO: 4"), ok()],
        "AT+CCHC=4" => vec![ok()],
        _ => vec![line("ERROR")],
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    drop(t);
    assert_eq!(
        modem.apdu_lines().last().map(String::as_str),
        Some("AT+CCHC=4")
    );
}

#[test]
fn reconnect_through_a_reopened_port_closes_the_old_channel() {
    // A TCP modem bridge that closes: the SIM behind it was not reset and still holds the channel.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client =
        std::thread::spawn(move || AtTransport::connect_tcp_with(addr, options(AtMode::Cgla)));
    let (stream, _) = listener.accept().unwrap();
    let mut first = Modem::start(stream, channel_modem(7));
    let mut t = client.join().unwrap().unwrap();
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(7));
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);

    first.stop();
    drop(first);
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    assert!(err.needs_reconnect(), "{err:?}");

    // reconnect() finds the link dead, dials again, and closes channel 7 on the new link.
    let server = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let reconnect = std::thread::spawn(move || t.reconnect().map(|()| t));
    let second = Modem::start(server.join().unwrap().unwrap(), channel_modem(8));
    let mut t = reconnect.join().unwrap().unwrap();
    assert_eq!(t.session_id(), None);
    assert_eq!(second.apdu_lines(), vec!["AT+CCHC=7".to_string()]);

    // The session's new channel works, and dropping the transport closes it (and nothing twice).
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(8));
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    drop(t);
    let lines = second.apdu_lines();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("AT+CCHC=8"),
        "{lines:?}"
    );
    assert_eq!(count(&lines, "AT+CCHC=7"), 1, "{lines:?}");
}

#[test]
fn a_channel_survives_a_failed_reopen_and_is_closed_by_the_next_reconnect() {
    // Port 1 dies; reopening fails once (the USB modem has not re-enumerated yet), then gives
    // port 2. The channel opened on port 1 is closed on port 2.
    let (master1, path1, slave1) = pty();
    let (master2, path2, _slave2) = pty();
    let first = Modem::start(master1, channel_modem(3));
    let second = Modem::start(master2, channel_modem(4));
    let mut attempts = 0;
    let mut t = AtTransport::new(
        iotsafe_core::at::TtyFile::open(&path1).unwrap(),
        "pty",
        options(AtMode::Cgla),
    )
    .unwrap()
    .with_reopen(move || {
        attempts += 1;
        if attempts == 1 {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no such device yet",
            ))
        } else {
            iotsafe_core::at::TtyFile::open(&path2)
        }
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(3));

    // The modem on port 1 goes away for good.
    let mut first = first;
    first.stop();
    drop(first);
    drop(slave1);
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    assert!(err.needs_reconnect(), "{err:?}");

    assert!(t.reconnect().is_err(), "the first reopen fails");
    t.reconnect().unwrap();
    assert_eq!(second.apdu_lines(), vec!["AT+CCHC=3".to_string()]);

    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(4));
    drop(t);
    let lines = second.apdu_lines();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("AT+CCHC=4"),
        "{lines:?}"
    );
    assert_eq!(count(&lines, "AT+CCHC=3"), 1, "{lines:?}");
}
