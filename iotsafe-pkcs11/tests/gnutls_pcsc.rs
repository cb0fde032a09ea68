//! GnuTLS with the module: `gnutls-cli --provider libiotsafe_pkcs11.so` authenticates with the
//! card's key (`pkcs11:object=device;type=private`) to `openssl s_server -Verify 1
//! -verify_return_error`, which accepts the card's certificate only if the handshake was signed
//! with the key that exists on the card alone. The card is the virtual card behind a REAL pcscd
//! (vpcd slot 1).
//!
//! Needs pcscd with the vpcd driver, openssl and gnutls-bin; skips without them unless
//! `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]

mod support;

use iotsafe_tests::{
    free_port, have_program, pcscd_running, provisioned, service, vpcd, wait_for_port, ChildGuard,
    READER_SLOT1,
};
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::CardOptions;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The card's key as GnuTLS names it.
const KEY_URI: &str = "pkcs11:object=device;type=private";

/// `openssl s_server` requiring a client certificate from the test CA, any TLS version.
fn s_server(dir: &Path) -> (ChildGuard, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("s_server.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("openssl")
        .args(["s_server", "-accept", &addr.to_string()])
        .args(["-cert", "pki/server.pem", "-key", "pki/server.key"])
        .args([
            "-CAfile",
            "pki/ca.pem",
            "-Verify",
            "1",
            "-verify_return_error",
        ])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start openssl s_server");
    let guard = ChildGuard::new(child, "openssl s_server", Some(log));
    assert!(
        wait_for_port(addr, Duration::from_secs(10)),
        "s_server: {}",
        guard.log()
    );
    (guard, addr)
}

#[test]
fn gnutls_cli_with_the_module() {
    let _slot = iotsafe_tests::vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") || !service(have_program("gnutls-cli"), "gnutls-cli") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, card) = provisioned(dir.path(), CardOptions::default());
    let _plugged = vpcd::plug(share(card));
    let (server, addr) = s_server(dir.path());
    let module = support::module_path();
    let port = addr.port().to_string();
    let args = [
        "--provider",
        module.to_str().unwrap(),
        "-p",
        &port,
        "127.0.0.1",
        "--x509cafile",
        "pki/ca.pem",
        "--x509keyfile",
        KEY_URI,
        "--x509certfile",
        "pki/device.pem",
        "--verify-hostname",
        "localhost",
    ];
    let out = support::run(
        "gnutls-cli",
        &args,
        dir.path(),
        &[("IOTSAFE_READER", READER_SLOT1.to_owned())],
    )
    .ok();
    assert!(out.contains("Handshake was completed"), "{out}");
    assert!(
        server.wait_for_log("depth=0 CN = device-0001", Duration::from_secs(5)),
        "{}",
        server.log()
    );
}
