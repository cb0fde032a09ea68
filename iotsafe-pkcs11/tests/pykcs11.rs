//! The module shared with other programs, through PyKCS11 (Debian's python3-pykcs11, as a
//! device's Python tooling would load it), on the virtual card behind its AT modem on TCP:
//!
//! - a prefork server: `C_Initialize` and a signature in the parent, `fork`, the child initializes
//!   again and signs, the parent signs after; every signature verifies with the device key;
//! - a PKCS#11 program generating an ephemeral key pair and deriving with it, over and over, while
//!   this process makes rustls handshakes on the same card (2 threads × 4): every secret is the
//!   software ECDH of the peer with the point the program generated, and every handshake succeeds.
#![cfg(feature = "at")]

mod support;

use iotsafe_core::at::AtTransport;
use iotsafe_core::{Card, CardConfig};
use iotsafe_rustls::IotSafeTls;
use iotsafe_tests::echo_server::{self, EchoServer};
use iotsafe_tests::service;
use iotsafe_vcard::{CardOptions, Latency};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

const PYTHON: &str = "/usr/bin/python3";

/// Debian's Python with PyKCS11.
fn pykcs11() -> bool {
    let found = Command::new(PYTHON)
        .args(["-c", "import PyKCS11"])
        .output()
        .is_ok_and(|o| o.status.success());
    service(found, "python3-pykcs11")
}

/// Runs one of this test's Python scripts with the module, the card named by `modem`.
fn python(script: &str, args: &[&Path], modem: SocketAddr) -> Command {
    let mut command = Command::new(PYTHON);
    command
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/py")
                .join(script),
        )
        .arg(support::module_path())
        .args(args);
    for var in support::CARD_VARIABLES {
        command.env_remove(var);
    }
    command.env("IOTSAFE_MODEM", format!("tcp://{modem}"));
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_forked_child_initializes_afresh_and_signs_and_the_parent_signs_after() {
    if !pykcs11() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, address, handle) = support::at_modem(dir.path(), CardOptions::default());
    let output = python("fork_sign.py", &[], address).output().unwrap();
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("child exit 0"), "{text}");
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&report.device_public_key).unwrap();
    let mut signed = Vec::new();
    for line in text.lines() {
        let (who, hex) = line.split_once(' ').unwrap();
        if !["parent", "child", "after"].contains(&who) || hex.starts_with("exit") {
            continue;
        }
        let raw = support::unhex(hex);
        let signature = p256::ecdsa::Signature::from_slice(&raw).expect("r‖s");
        key.verify_prehash(&[0u8; 32], &signature)
            .unwrap_or_else(|e| panic!("{who}'s signature: {e}"));
        signed.push(who);
    }
    assert_eq!(signed, ["parent", "child", "after"], "{text}");
    let _ = handle.stop();
}

#[test]
fn a_pkcs11_program_derives_with_its_own_key_while_rustls_handshakes_on_the_card() {
    if !pykcs11() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let options = CardOptions {
        latency: Latency::typical_sim(),
        ..CardOptions::default()
    };
    let (_, address, handle) = support::at_modem(dir.path(), options);
    let peers: Vec<p256::SecretKey> = (0..6)
        .map(|_| p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng))
        .collect();
    let peers_file = dir.path().join("peers.txt");
    let lines: Vec<String> = peers
        .iter()
        .map(|p| support::hex(p.public_key().to_encoded_point(false).as_bytes()))
        .collect();
    std::fs::write(&peers_file, lines.join("\n")).unwrap();

    // This process: rustls handshakes on the same card, its own connection to the modem.
    let server = EchoServer::start(&dir.path().join("pki"));
    let card = Arc::new(
        Card::open(
            AtTransport::connect_tcp(address).expect("connect over AT"),
            CardConfig::default(),
        )
        .expect("open over AT"),
    );
    let tls = IotSafeTls::builder(Arc::clone(&card)).build().unwrap();
    let roots = echo_server::roots(&dir.path().join("pki/ca.pem")).unwrap();
    let config = Arc::new(tls.client_config(roots).unwrap());

    let program = python("generate_derive.py", &[&peers_file], address)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let handshakes: Vec<_> = (0..2)
        .map(|t| {
            let (config, server) = (Arc::clone(&config), server.addr().to_string());
            std::thread::spawn(move || {
                (0..4)
                    .filter_map(|i| {
                        let line = format!("thread {t} handshake {i}");
                        echo_server::talk(&config, &server, &line)
                            .err()
                            .map(|e| format!("{line}: {e}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let output = program.wait_with_output().unwrap();
    let failed: Vec<String> = handshakes
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(failed.is_empty(), "handshakes failed: {failed:?}");

    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<&str> = text.lines().collect();
    assert_eq!(results.len(), peers.len(), "{text}");
    for (i, (line, peer)) in results.iter().zip(&peers).enumerate() {
        let (point_der, secret) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("derivation {i}: {line}"));
        // CKA_EC_POINT: the point in a DER OCTET STRING (04 41 04‖X‖Y).
        let point = support::unhex(point_der);
        let generated = p256::PublicKey::from_sec1_bytes(&point[2..])
            .unwrap_or_else(|e| panic!("derivation {i}: the generated point: {e}"));
        let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), generated.as_affine());
        assert_eq!(
            support::unhex(secret),
            expected.raw_secret_bytes().to_vec(),
            "derivation {i}: the secret is the ECDH of the point the program generated"
        );
    }
    drop((config, tls, card));
    let _ = handle.stop();
}
