//! AtTransport over each kind of port (pty through `serialport`, TCP), and what happens when
//! the port goes away.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

mod at_support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use iotsafe_core::at::{AtMode, AtTransport};
use iotsafe_core::{Transaction, Transport, TransportError};

use at_support::{csim_modem, line, ok, options, pty, setup, Modem, SELECT_IOTSAFE};

#[test]
fn modem_hang_up_is_disconnected_not_a_hang() {
    let (mut t, mut modem, slave) = setup(AtMode::Csim, false, |_| vec![line("ERROR")]);
    modem.stop();
    drop(modem);
    drop(slave);
    // The master side is gone (the modem thread owned it).
    let started = Instant::now();
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Disconnected | TransportError::Io(_) | TransportError::Timeout { .. }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn opens_through_serialport_on_a_pty() {
    let (master, path, _slave) = pty();
    let modem = Modem::start(master, csim_modem(vec![line("+CSIM: 4,\"9000\""), ok()]));
    let mut t =
        AtTransport::open_serial_with(path.to_str().unwrap(), 115_200, options(AtMode::Auto))
            .unwrap();
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    assert_eq!(
        modem.apdu_lines(),
        vec!["AT+CSIM=24,\"01A4040007A0000005590010\"".to_string()]
    );
}

#[test]
fn works_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let client =
        std::thread::spawn(move || AtTransport::connect_tcp_with(addr, options(AtMode::Csim)));
    let stream = server.join().unwrap().unwrap();
    let modem = Modem::start(stream, csim_modem(vec![line("+CSIM: 6,\"019000\""), ok()]));
    let mut t = client.join().unwrap().unwrap();
    assert_eq!(
        t.transmit(&[0x00, 0x70, 0x00, 0x00, 0x01]).unwrap(),
        vec![0x01, 0x90, 0x00]
    );
    assert_eq!(
        modem.apdu_lines(),
        vec!["AT+CSIM=10,\"0070000001\"".to_string()]
    );
}

#[test]
fn reconnect_reopens_a_closed_tcp_link() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let script = || csim_modem(vec![line("+CSIM: 4,\"9000\""), ok()]);
    let client =
        std::thread::spawn(move || AtTransport::connect_tcp_with(addr, options(AtMode::Csim)));
    let (stream, _) = listener.accept().unwrap();
    let mut first = Modem::start(stream, script());
    let mut t = client.join().unwrap().unwrap();
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);

    // The modem goes away: typed error, quickly.
    first.stop();
    drop(first);
    let started = Instant::now();
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    assert!(err.needs_reconnect(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // reconnect() dials again and the link works.
    let server = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let reconnect = std::thread::spawn(move || t.reconnect().map(|()| t));
    let second = Modem::start(server.join().unwrap().unwrap(), script());
    let mut t = reconnect.join().unwrap().unwrap();
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    assert!(second.apdu_lines().len() == 1);
}
