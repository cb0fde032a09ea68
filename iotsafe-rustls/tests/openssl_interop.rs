//! Interop with an independent TLS stack: `openssl s_server` (OpenSSL 3) on loopback requires a
//! client certificate; the rustls client signs and does ECDHE with the in-process virtual card.
//! This checks the DER signature and the card's ECDHE against a strict peer, without pcscd (the
//! pcscd + vpcd variant belongs to the cross-crate tests). Skipped, with a message, when the
//! `openssl` binary is absent.

mod common;

use common::*;
use iotsafe_rustls::IotSafeTls;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct SServer {
    child: Child,
    port: u16,
}

impl Drop for SServer {
    fn drop(&mut self) {
        // Only the child this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_s_server(pki: &std::path::Path, extra: &[&str]) -> SServer {
    let port = free_port();
    let mut child = Command::new("openssl")
        .arg("s_server")
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .args(["-cert", pki.join("server.pem").to_str().unwrap()])
        .args(["-key", pki.join("server.key").to_str().unwrap()])
        .args(["-CAfile", pki.join("ca.pem").to_str().unwrap()])
        .args(["-Verify", "1", "-verify_return_error", "-www"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openssl s_server");
    // s_server prints ACCEPT once it listens.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("ACCEPT") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("openssl s_server did not start");
    SServer { child, port }
}

/// One HTTPS GET through the card-backed client; returns the response text.
fn get(config: Arc<rustls::ClientConfig>, port: u16) -> Result<String, std::io::Error> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn =
        rustls::ClientConnection::new(config, server_name()).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = Vec::new();
    let started = Instant::now();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // s_server -www closes without close_notify.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn run(options: iotsafe_vcard::CardOptions, rounds: usize, extra: &[&str]) {
    if !openssl_available() {
        eprintln!("SKIPPED: the openssl binary is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    let pki = dir.path().join("pki");
    iotsafe_vcard::provision(&state, &pki, options.clone()).unwrap();
    let vcard = iotsafe_vcard::VirtualCard::open_state(&state, options).unwrap();
    let card = Arc::new(
        iotsafe_core::Card::open(
            iotsafe_vcard::InProcessTransport::new(vcard),
            iotsafe_core::CardConfig::default(),
        )
        .unwrap(),
    );
    let tls = IotSafeTls::builder(card.clone())
        .resumption(false)
        .build()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls::pki_types::CertificateDer::pem_file_iter(pki.join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let config = Arc::new(tls.client_config(roots).unwrap());
    let server = start_s_server(&pki, extra);
    for round in 0..rounds {
        let before = card.stats();
        let page = get(config.clone(), server.port).expect("HTTPS GET through openssl s_server");
        assert!(page.starts_with("HTTP/1.0 200 ok"), "round {round}: {page}");
        // OpenSSL's own account: it verified our ECDSA CertificateVerify over secp256r1 ECDHE.
        for expected in [
            "Peer signing digest: SHA256",
            "Peer signature type: ECDSA",
            "Shared groups: secp256r1",
            "Verify return code: 0 (ok)",
        ] {
            assert!(
                page.contains(expected),
                "round {round}: no {expected:?} in {page}"
            );
        }
        let used = card.stats().since(&before);
        assert_eq!(ops(&used), (1, 1, 1), "round {round}: {used:?}");
        assert_eq!(used.apdus, 6, "round {round}: {used:?}");
    }
}

use rustls::pki_types::pem::PemObject;

#[test]
fn openssl_s_server_accepts_the_card_client_certificate() {
    // Many rounds: a signature with a short r or s (about 1 in 128) must still be minimal DER.
    run(iotsafe_vcard::CardOptions::default(), 24, &["-tls1_3"]);
}

#[test]
fn openssl_s_server_with_aes_256_gcm_sha384() {
    run(
        iotsafe_vcard::CardOptions::default(),
        2,
        &["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"],
    );
}

#[test]
fn openssl_s_server_with_a_card_answering_der() {
    let mut options = iotsafe_vcard::CardOptions::default();
    options.quirks.signature_format = iotsafe_vcard::SignatureFormat::Der;
    run(options, 4, &["-tls1_3"]);
}

#[test]
fn openssl_s_client_accepts_the_card_as_tls_server() {
    if !openssl_available() {
        eprintln!("SKIPPED: the openssl binary is not installed");
        return;
    }
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone()).build().unwrap();
    let config = Arc::new(
        tls.server_config(Arc::new(rustls::server::NoClientAuth))
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let before = fx.stats();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(b"hello from the card\n").unwrap();
        tls.flush().unwrap();
        tls.conn.send_close_notify();
        let _ = tls.conn.complete_io(&mut tls.sock);
    });
    let out = Command::new("openssl")
        .arg("s_client")
        .args(["-connect", &format!("127.0.0.1:{port}")])
        // -ign_eof: keep reading after stdin ends, until the card server closes.
        .args(["-tls1_3", "-groups", "P-256", "-ign_eof"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run openssl s_client");
    server.join().expect("card server thread");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("hello from the card"), "{text}");
    assert!(text.contains("Peer signature type: ECDSA"), "{text}");
    assert!(text.contains("Server Temp Key: ECDH, prime256v1"), "{text}");
    assert!(text.contains("device-0001"), "{text}");
    let used = fx.stats().since(&before);
    assert_eq!(ops(&used), (1, 1, 1), "{used:?}");
    assert_eq!(used.apdus, 6);
}
