//! TLS 1.3 with client authentication against `openssl s_server`, the client key and ECDHE on a
//! virtual card behind REAL pcscd + vpcd (slot 1): the handshake works and costs exactly one key
//! generation, one DH and one signature on the card; a card certified by another CA is refused by
//! the server and the client sees the alert.
//!
//! Needs pcscd with the vpcd driver and the `openssl` binary; skips without them unless
//! `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotsafe_core::{CardStats, Operation};
use iotsafe_tests::handshake::card_client_config;
use iotsafe_tests::{
    have_program, openssl_server, pcscd_running, provisioned, service, vpcd, vpcd_slot_lock,
};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::CardOptions;
use rustls::pki_types::ServerName;

/// Upper bound for any one network step: only catches hangs.
const DEADLINE: Duration = Duration::from_secs(15);

fn services() -> bool {
    service(pcscd_running(), "pcscd") && service(have_program("openssl"), "openssl")
}

fn connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let tcp = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to s_server");
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    tcp.set_write_timeout(Some(DEADLINE)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).expect("client connection");
    rustls::StreamOwned::new(conn, tcp)
}

/// Key generations, DHs and signatures in `used`.
fn ops(used: &CardStats) -> (u64, u64, u64) {
    (
        used.count(Operation::GenerateKeyPair),
        used.count(Operation::Dh),
        used.count(Operation::Sign),
    )
}

#[test]
fn openssl_s_server_accepts_the_card_behind_pcscd() {
    let _slot = vpcd_slot_lock();
    if !services() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, vcard) = provisioned(dir.path(), CardOptions::default());
    let pki = &report.pki_dir;
    let _plugged = vpcd::plug(Arc::new(Mutex::new(vcard)) as SharedCard);
    let card = vpcd::open_card();
    let config = card_client_config(card.clone(), &pki.join("ca.pem"));
    let (mut server, addr) = openssl_server(
        dir.path(),
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &pki.join("ca.pem"),
    );

    let before = card.stats();
    let mut tls = connect(config, addr);
    tls.write_all(b"hello from the card behind pcscd\n")
        .expect("handshake and first record");
    tls.flush().unwrap();
    assert!(
        server.wait_for_log("hello from the card behind pcscd", DEADLINE),
        "s_server never got the line: {}",
        server.log()
    );
    // And back: s_server sends its stdin to the client.
    server.write_stdin(b"hello from s_server\n").unwrap();
    let wanted = b"hello from s_server\n";
    let mut got = Vec::new();
    let started = Instant::now();
    while !got.ends_with(wanted) {
        let mut buf = [0u8; 256];
        let n = tls.read(&mut buf).expect("read s_server's line");
        assert!(n > 0, "s_server closed: {}", server.log());
        got.extend_from_slice(&buf[..n]);
        assert!(started.elapsed() < DEADLINE, "{got:?}");
    }
    let used = card.stats().since(&before);
    eprintln!("handshake through pcscd: {used:?}");
    assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
    assert_eq!(used.reconnects, 0, "{used:?}");
    for (op, stats) in &used.operations {
        assert_eq!(stats.failures, 0, "{op:?}: {used:?}");
    }
    let log = server.log();
    // s_server verified the card's certificate (CN device-0001) and its ECDSA CertificateVerify
    // over a P-256 ECDHE.
    for expected in [
        "subject=CN = device-0001",
        "issuer=CN = iotsafe-rs test CA",
        "Peer signature type: ECDSA",
        "Shared groups: secp256r1",
    ] {
        assert!(log.contains(expected), "no {expected:?} in {log}");
    }
    assert!(!log.contains("verify error"), "{log}");
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

#[test]
fn a_card_from_another_ca_is_refused_cleanly() {
    let _slot = vpcd_slot_lock();
    if !services() {
        return;
    }
    let trusted = tempfile::tempdir().unwrap();
    let (trusted_report, _) = provisioned(trusted.path(), CardOptions::default());
    let other = tempfile::tempdir().unwrap();
    let (other_report, vcard) = provisioned(other.path(), CardOptions::default());
    assert_ne!(trusted_report.ca_cert_der, other_report.ca_cert_der);
    let pki = &trusted_report.pki_dir;
    let _plugged = vpcd::plug(Arc::new(Mutex::new(vcard)) as SharedCard);
    let card = vpcd::open_card();
    // The client trusts the server's CA; the server only trusts the first CA.
    let config = card_client_config(card.clone(), &pki.join("ca.pem"));
    let (server, addr) = openssl_server(
        trusted.path(),
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &pki.join("ca.pem"),
    );

    let before = card.stats();
    let mut tls = connect(config, addr);
    // TLS 1.3: the client's half of the handshake ends before the server judged its
    // certificate; the refusal arrives as an alert on the first read.
    let written = tls.write_all(b"let me in\n").and_then(|()| tls.flush());
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let err = match written {
        Err(err) => err,
        Ok(()) => tls
            .read(&mut buf)
            .map(|n| format!("read {n} bytes"))
            .expect_err("the server must refuse the card's certificate"),
    };
    assert!(started.elapsed() < DEADLINE);
    let message = format!("{err} / {err:?}");
    eprintln!("refused: {message}");
    assert!(
        ["UnknownCA", "DecryptError", "BadCertificate"]
            .iter()
            .any(|alert| message.contains(alert)),
        "expected a TLS alert, got {message}"
    );
    // The card still did its part of the handshake, once.
    let used = card.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
    // s_server saw the device certificate fail verification (both CAs are called "iotsafe-rs
    // test CA", so OpenSSL reports a signature failure and alerts decrypt_error).
    assert!(
        server.wait_for_log("verify error", DEADLINE),
        "{}",
        server.log()
    );
    assert!(!server.log().contains("let me in"), "{}", server.log());
}
