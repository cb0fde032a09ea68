//! The AT modem on a loopback TCP port: a fresh AT parser for each host, channels a departed host
//! left open are closed, non-loopback refused.

mod frontend_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use frontend_support::TestCard;
use iotsafe_vcard::frontend::at::AtOptions;
use iotsafe_vcard::frontend::tcp::TcpModem;

const DEADLINE: Duration = Duration::from_secs(5);

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    stream
}

/// Sends `command`, reads until `answer.len()` bytes came, checks them exactly.
fn exchange(stream: &mut TcpStream, command: &str, answer: &str) {
    stream.write_all(command.as_bytes()).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 1024];
    while got.len() < answer.len() && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        answer,
        "answer to {command:?}"
    );
}

#[test]
fn one_host_after_another_each_with_a_fresh_parser() {
    let (shared, card) = TestCard::shared();
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = modem.local_addr().unwrap();
    let handle = modem.spawn(shared, AtOptions::default()).unwrap();

    let mut first = connect(addr);
    exchange(&mut first, "ATE0\r\n", "ATE0\r\r\nOK\r\n");
    exchange(
        &mut first,
        "AT+CCHO=\"A0000005590010\"\r\n",
        "\r\n+CCHO: 1\r\n\r\nOK\r\n",
    );
    exchange(
        &mut first,
        "AT+CSIM=10,\"00CA000000\"\r\n",
        "\r\n+CSIM: 6,\"009000\"\r\n\r\nOK\r\n",
    );
    // The host goes away with its channel open: the modem closes it on the card.
    drop(first);

    let mut second = connect(addr);
    // Fresh modem: echo is on again.
    exchange(&mut second, "AT\r", "AT\r\r\nOK\r\n");
    // Hosts are served at once, so the first one's clean-up may still be under way.
    let deadline = Instant::now() + DEADLINE;
    while card.lock().unwrap().apdus().last() != Some(&vec![0x00, 0x70, 0x80, 0x01]) {
        assert!(
            Instant::now() < deadline,
            "the departed host's channel was never closed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    exchange(&mut second, "ATE0\r", "ATE0\r\r\nOK\r\n");
    exchange(
        &mut second,
        "AT+CCHO=\"A0000005590010\"\r",
        "\r\n+CCHO: 1\r\n\r\nOK\r\n",
    );
    drop(second);

    let started = Instant::now();
    handle.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn non_loopback_is_refused_unless_allowed() {
    let err = TcpModem::bind("0.0.0.0:0".parse().unwrap()).err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(TcpModem::bind_with("0.0.0.0:0".parse().unwrap(), true).is_ok());
}

/// A virtual card whose latency model is `latency`, shared for a front end.
fn card_with(latency: iotsafe_vcard::Latency) -> iotsafe_vcard::frontend::SharedCard {
    iotsafe_vcard::frontend::share(iotsafe_vcard::VirtualCard::with_default_layout(
        iotsafe_vcard::CardOptions {
            latency,
            ..iotsafe_vcard::CardOptions::default()
        },
    ))
}

/// Sends `command` and reads until a final result code came; the answer, and the time from the
/// first byte written to the last byte read.
fn timed_exchange(stream: &mut TcpStream, command: &str) -> (String, Duration) {
    let started = Instant::now();
    stream.write_all(command.as_bytes()).unwrap();
    let mut got = Vec::new();
    let deadline = started + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !(got.ends_with(b"OK\r\n") || got.ends_with(b"ERROR\r\n")) && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (String::from_utf8(got).unwrap(), started.elapsed())
}

#[test]
fn the_modem_charges_its_uart_for_every_byte_in_and_out() {
    use iotsafe_vcard::{Latency, SerialLink};
    let link = SerialLink::new(9_600).unwrap();
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = modem.local_addr().unwrap();
    let latency = Latency {
        serial: Some(link),
        ..Latency::none()
    };
    let handle = modem
        .spawn(card_with(latency), AtOptions::default())
        .unwrap();
    let mut host = connect(addr);

    // A modem command with echo on: 5 bytes in, the echo out as they come in (one byte behind),
    // then `\r\nOK\r\n`. Sleeps never end early, so the modelled time is a lower bound.
    let (answer, took) = timed_exchange(&mut host, "ATE0\r");
    assert_eq!(answer, "ATE0\r\r\nOK\r\n");
    assert!(took >= link.time_of(5 + 1 + 6), "ATE0 took {took:?}");
    let (answer, took) = timed_exchange(&mut host, "AT+CMEE=1\r");
    assert_eq!(answer, "\r\nOK\r\n");
    assert!(took >= link.time_of(10 + 6), "AT+CMEE=1 took {took:?}");

    // One AT+CSIM exchange: its line in, then its answer out, at 10 bits a byte.
    let line = "AT+CSIM=24,\"00A4040007A0000005590010\"\r";
    let (answer, took) = timed_exchange(&mut host, line);
    // SELECT on the basic channel: (38 + 25) bytes × 10 / 9,600 baud = 65.6 ms.
    assert_eq!(answer, "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n");
    let modelled = link.time_of(line.len() + answer.len());
    assert_eq!(modelled, link.time_of(63));
    assert!(
        took >= modelled,
        "AT+CSIM took {took:?}, modelled {modelled:?}"
    );

    // AT+CCHO and AT+CGLA are charged the same way.
    let (answer, took) = timed_exchange(&mut host, "AT+CCHO=\"A0000005590010\"\r");
    assert_eq!(answer, "\r\n+CCHO: 1\r\n\r\nOK\r\n");
    assert!(
        took >= link.time_of(25 + answer.len()),
        "AT+CCHO took {took:?}"
    );
    let line = "AT+CGLA=1,10,\"80CA000000\"\r";
    let (answer, took) = timed_exchange(&mut host, line);
    assert!(answer.starts_with("\r\n+CGLA: "), "{answer:?}");
    assert!(
        took >= link.time_of(line.len() + answer.len()),
        "AT+CGLA took {took:?}"
    );
    handle.stop().unwrap();
}

#[test]
fn the_cards_own_latency_comes_on_top_of_the_uart() {
    use iotsafe_vcard::{Latency, SerialLink};
    let link = SerialLink::new(9_600).unwrap();
    let per_apdu = Duration::from_millis(40);
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = modem.local_addr().unwrap();
    let latency = Latency {
        apdu: per_apdu,
        serial: Some(link),
        ..Latency::none()
    };
    let handle = modem
        .spawn(
            card_with(latency),
            AtOptions {
                echo: false,
                ..AtOptions::default()
            },
        )
        .unwrap();
    let mut host = connect(addr);
    let line = "AT+CSIM=10,\"0070000001\"\r";
    let (answer, took) = timed_exchange(&mut host, line);
    assert_eq!(answer, "\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n");
    let modelled = link.time_of(line.len() + answer.len()) + per_apdu;
    assert!(took >= modelled, "took {took:?}, modelled {modelled:?}");
    handle.stop().unwrap();
}
