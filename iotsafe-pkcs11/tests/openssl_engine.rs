//! `openssl s_client` with the device key on the card through the module, loaded by OpenSSL's
//! `pkcs11` engine (libp11) or by OpenSSL 3's pkcs11-provider, in TLS 1.3 and TLS 1.2 mutual
//! authentication to `openssl s_server -Verify 1 -verify_return_error`: the server verifies the
//! card's certificate and its signature, a line goes each way, and the card made exactly one
//! signature per handshake. The card is the virtual card behind the REAL pcscd + vpcd (slot 1).
//!
//! The engine finds the module either through an OpenSSL configuration file that sets its
//! `MODULE_PATH` (`OPENSSL_CONF`), or through the environment variable `PKCS11_MODULE_PATH`; the
//! TLS 1.3 handshake uses the first, the TLS 1.2 one the second, so both ways are tried. The
//! provider (`-provider default -provider pkcs11`) finds it in `PKCS11_PROVIDER_MODULE`, for both
//! versions and for `openssl pkeyutl -sign`.
//!
//! Needs pcscd with the vpcd driver, `openssl`, the engine (Debian: `libengine-pkcs11-openssl`)
//! and the provider (Debian 12: `pkcs11-provider` from bookworm-backports); skips without them
//! unless `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]

mod support;
mod vpcd_card;

use iotsafe_tests::{have_program, pcscd_running, service, vpcd_slot_lock, ChildGuard};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use vpcd_card::{lock, spawn_logged, wait_exited, with_card_env, DEADLINE, KEY_URI};

/// Where Debian's `libengine-pkcs11-openssl` puts the engine for OpenSSL 3.
const ENGINE_SO: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";
/// Where Debian's `pkcs11-provider` puts the provider.
const PROVIDER_SO: &str = "/usr/lib/x86_64-linux-gnu/ossl-modules/pkcs11.so";
/// The provider options of every `openssl` command that takes the card's key through it: the
/// default provider for everything else, then the pkcs11 one for `pkcs11:` URIs.
const PROVIDERS: [&str; 4] = ["-provider", "default", "-provider", "pkcs11"];

/// How OpenSSL gets to the module.
#[derive(Clone, Copy, Debug)]
enum ModuleBy {
    /// The engine, from an OpenSSL configuration file (`OPENSSL_CONF`) setting `MODULE_PATH`.
    ConfigFile,
    /// The engine, from the environment variable `PKCS11_MODULE_PATH`.
    Environment,
    /// The pkcs11-provider, from the environment variable `PKCS11_PROVIDER_MODULE`.
    Provider,
}

/// Whether pcscd, `openssl` and `loader` (the engine's or the provider's library) are there.
fn services(loader: &str, name: &str) -> bool {
    service(pcscd_running(), "pcscd")
        && service(have_program("openssl"), "openssl")
        && service(Path::new(loader).is_file(), name)
}

/// The OpenSSL configuration that loads the engine with the module, as a user would write it.
fn engine_config(module: &str) -> String {
    format!(
        "openssl_conf = openssl_init\n\n[openssl_init]\nengines = engine_section\n\n\
         [engine_section]\npkcs11 = pkcs11_section\n\n[pkcs11_section]\nengine_id = pkcs11\n\
         dynamic_path = {ENGINE_SO}\nMODULE_PATH = {module}\ninit = 0\n"
    )
}

/// `openssl s_server` for one connection with `version` (`-tls1_3`, `-tls1_2`), requiring a
/// client certificate from the test CA; returns when it listens.
fn server(dir: &Path, pki: &Path, version: &str, port: u16) -> ChildGuard {
    let mut command = Command::new("openssl");
    command
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args(["-naccept", "1", version, "-cert"])
        .arg(pki.join("server.pem"))
        .arg("-key")
        .arg(pki.join("server.key"))
        .arg("-CAfile")
        .arg(pki.join("ca.pem"))
        .args(["-Verify", "1", "-verify_return_error"])
        .current_dir(dir);
    let server = spawn_logged(command, dir, &format!("s_server{version}"));
    // Not a TCP probe: with -naccept 1 the probe would be the one connection served.
    assert!(
        server.wait_for_log("ACCEPT", DEADLINE),
        "s_server did not start: {}",
        server.log()
    );
    server
}

/// `openssl s_client` with the card's key through the engine or the provider, as a user types it.
fn client(dir: &Path, pki: &Path, version: &str, port: u16, by: ModuleBy) -> ChildGuard {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", version, "-CAfile"])
        .arg(pki.join("ca.pem"))
        .arg("-verify_return_error");
    match by {
        ModuleBy::ConfigFile | ModuleBy::Environment => {
            command.args(["-engine", "pkcs11", "-keyform", "engine"])
        }
        ModuleBy::Provider => command.args(PROVIDERS),
    };
    command
        .args(["-key", KEY_URI, "-cert"])
        .arg(pki.join("device.pem"))
        .current_dir(dir);
    with_card_env(&mut command);
    let module = vpcd_card::module();
    match by {
        ModuleBy::ConfigFile => {
            let conf = dir.join("openssl-pkcs11.cnf");
            std::fs::write(&conf, engine_config(&module)).unwrap();
            command.env("OPENSSL_CONF", conf);
        }
        ModuleBy::Environment => {
            command.env("PKCS11_MODULE_PATH", module);
        }
        ModuleBy::Provider => {
            command.env("PKCS11_PROVIDER_MODULE", module);
        }
    }
    spawn_logged(command, dir, &format!("s_client{version}-{by:?}"))
}

/// One mutual-auth handshake with `version`: a line each way, then the client quits.
fn handshake(dir: &Path, pki: &Path, card: &vpcd_card::Card, version: &str, by: ModuleBy) {
    let signatures = lock(card).signatures();
    let port = iotsafe_tests::free_port();
    let mut server = server(dir, pki, version, port);
    let mut client = client(dir, pki, version, port, by);
    let both = |server: &ChildGuard, client: &ChildGuard| {
        format!(
            "({version}, module by {by:?})\n--- s_server:\n{}\n--- s_client:\n{}",
            server.log(),
            client.log()
        )
    };

    // The server prints what the client sends only after it verified the client's certificate
    // and CertificateVerify (-verify_return_error ends the connection otherwise).
    let up = format!("hello from the SIM over {version}");
    client.write_stdin(format!("{up}\n").as_bytes()).unwrap();
    assert!(
        server.wait_for_log(&up, DEADLINE),
        "s_server never got the line: {}",
        both(&server, &client)
    );
    let down = format!("hello back over {version}");
    server.write_stdin(format!("{down}\n").as_bytes()).unwrap();
    assert!(
        client.wait_for_log(&down, DEADLINE),
        "s_client never got the line: {}",
        both(&server, &client)
    );
    // "Q" on a line of its own: s_client closes the connection and exits; s_server (-naccept 1)
    // exits after it.
    client.write_stdin(b"Q\n").unwrap();
    assert!(
        wait_exited(&mut client),
        "s_client: {}",
        both(&server, &client)
    );
    assert!(
        wait_exited(&mut server),
        "s_server: {}",
        both(&server, &client)
    );

    let (server_log, client_log) = (server.log(), client.log());
    let context = both(&server, &client);
    let negotiated = match version {
        "-tls1_3" => "New, TLSv1.3,",
        _ => "New, TLSv1.2,",
    };
    assert!(client_log.contains(negotiated), "{context}");
    assert!(
        client_log.contains("Verify return code: 0 (ok)"),
        "{context}"
    );
    for expected in [
        // The card's certificate, verified up to the test CA.
        "depth=1 CN = iotsafe-rs test CA\nverify return:1",
        "depth=0 CN = device-0001\nverify return:1",
        "subject=CN = device-0001",
        // Its CertificateVerify: ECDSA over SHA-256, made on the card.
        "Peer signing digest: SHA256",
        "Peer signature type: ECDSA",
    ] {
        assert!(server_log.contains(expected), "no {expected:?}: {context}");
    }
    assert!(!server_log.contains("verify error"), "{context}");
    assert_eq!(
        lock(card).signatures(),
        signatures + 1,
        "one signature on the card per handshake: {context}"
    );
}

#[test]
fn s_client_through_the_engine_in_tls13_and_tls12_mutual_auth() {
    let _slot = vpcd_slot_lock();
    if !services(ENGINE_SO, "OpenSSL's pkcs11 engine") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, card, _plugged) = vpcd_card::plugged(dir.path());
    let pki = &report.pki_dir;
    handshake(dir.path(), pki, &card, "-tls1_3", ModuleBy::ConfigFile);
    handshake(dir.path(), pki, &card, "-tls1_2", ModuleBy::Environment);
}

#[test]
fn s_client_and_pkeyutl_through_the_provider() {
    let _slot = vpcd_slot_lock();
    if !services(PROVIDER_SO, "OpenSSL's pkcs11-provider") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, card, _plugged) = vpcd_card::plugged(dir.path());
    let pki = &report.pki_dir;
    handshake(dir.path(), pki, &card, "-tls1_3", ModuleBy::Provider);
    handshake(dir.path(), pki, &card, "-tls1_2", ModuleBy::Provider);

    // A signature over a SHA-256 digest, on the card, checked with the certificate's key.
    let digest = Sha256::digest(b"signed by the SIM through the provider");
    std::fs::write(dir.path().join("digest.bin"), digest).unwrap();
    let signatures = lock(&card).signatures();
    let mut sign = Command::new("openssl");
    sign.args(["pkeyutl", "-sign"])
        .args(PROVIDERS)
        .args(["-inkey", KEY_URI, "-in", "digest.bin", "-out", "digest.sig"])
        .current_dir(dir.path());
    with_card_env(&mut sign).env("PKCS11_PROVIDER_MODULE", vpcd_card::module());
    let mut signer = spawn_logged(sign, dir.path(), "pkeyutl-sign");
    assert!(wait_exited(&mut signer), "pkeyutl -sign: {}", signer.log());
    assert_eq!(lock(&card).signatures(), signatures + 1, "{}", signer.log());
    let der = std::fs::read(dir.path().join("digest.sig")).expect("the signature");
    let signature = p256::ecdsa::Signature::from_der(&der).expect("a DER ECDSA signature");
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&report.device_public_key)
        .unwrap()
        .verify_prehash(&digest, &signature)
        .expect("the card's signature verifies with the device key");
}
