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
