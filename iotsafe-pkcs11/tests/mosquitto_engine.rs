//! `mosquitto_pub` with the device key on the card through the module and OpenSSL's `pkcs11`
//! engine (`--tls-engine pkcs11 --keyform engine --key pkcs11:…`) publishes to a mosquitto broker
//! that requires client certificates (TLS 1.3, the certificate's CN as user name), and a
//! `mosquitto_sub` subscriber (a software client certificate) receives the message. The card is
//! the virtual card behind the REAL pcscd + vpcd (slot 1).
//!
//! Two things mosquitto 2.0 (Debian 12) needs, found here:
//! - It does not read the OpenSSL configuration file, so the engine learns the module from
//!   `PKCS11_MODULE_PATH`.
//! - `mosquitto_pub` checks that `--key` names a readable file before it looks at `--keyform`
//!   (fixed upstream after 2.0.15), so a file named like the URI must exist in the working
//!   directory; it may be empty, nothing reads it.
//!
//! Needs pcscd with the vpcd driver, mosquitto, its clients and the engine; skips without them
//! unless `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]

mod support;
mod vpcd_card;

use iotsafe_tests::{have_program, mosquitto, pcscd_running, service, vpcd_slot_lock};
use std::path::Path;
use std::process::{Command, Stdio};
use vpcd_card::{finish, lock, spawn_logged, with_card_env, DEADLINE, KEY_URI};

const TOPIC: &str = "iotsafe/pkcs11";
const MESSAGE: &str = "hello from the SIM through mosquitto_pub";

fn services() -> bool {
    service(pcscd_running(), "pcscd")
        && service(have_program("mosquitto"), "mosquitto")
        && service(have_program("mosquitto_pub"), "mosquitto_pub")
        && service(have_program("mosquitto_sub"), "mosquitto_sub")
        && service(
            Path::new("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so").is_file(),
            "OpenSSL's pkcs11 engine",
        )
}

#[test]
fn mosquitto_pub_through_the_engine_to_a_broker_requiring_client_certificates() {
    let _slot = vpcd_slot_lock();
    if !services() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (report, card, _plugged) = vpcd_card::plugged(dir);
    let pki = &report.pki_dir;

    // The broker trusts the test CA (the card's certificate) and the subscriber's own CA.
    let subscriber = iotsafe_vcard::foreign_client_pki(&dir.join("subscriber")).unwrap();
    let trusted = dir.join("trusted-cas.pem");
    let bundle = [
        std::fs::read(pki.join("ca.pem")).unwrap(),
        std::fs::read(&subscriber.ca_pem).unwrap(),
    ]
    .concat();
    std::fs::write(&trusted, bundle).unwrap();
    let (broker, addr) = mosquitto(
        dir,
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &trusted,
    );
    let port = addr.port().to_string();
    let tls = |command: &mut Command| {
        command
            .args(["-h", "127.0.0.1", "-p", &port, "--tls-version", "tlsv1.3"])
            .arg("--cafile")
            .arg(pki.join("ca.pem"))
            .current_dir(dir);
    };

    let mut sub = Command::new("mosquitto_sub");
    tls(&mut sub);
    sub.args(["-t", TOPIC, "-C", "1", "-v", "--cert"])
        .arg(&subscriber.client_pem)
        .arg("--key")
        .arg(&subscriber.client_key);
    let mut sub = spawn_logged(sub, dir, "mosquitto_sub");
    // Publish only once the broker has the subscription.
    assert!(
        broker.wait_for_log(&format!(" 0 {TOPIC}"), DEADLINE),
        "the subscriber never subscribed: {}\n{}",
        sub.log(),
        broker.log()
    );

    // The placeholder mosquitto_pub 2.0 wants for --key (see the top of this file).
    std::fs::write(dir.join(KEY_URI), b"").unwrap();
    let signatures = lock(&card).signatures();
    let mut publish = Command::new("mosquitto_pub");
    tls(&mut publish);
    publish
        .args([
            "--tls-engine",
            "pkcs11",
            "--keyform",
            "engine",
            "--key",
            KEY_URI,
        ])
        .arg("--cert")
        .arg(pki.join("device.pem"))
        .args(["-t", TOPIC, "-m", MESSAGE, "-d"]);
    with_card_env(&mut publish).env("PKCS11_MODULE_PATH", vpcd_card::module());
    let pub_log = dir.join("mosquitto_pub.log");
    let out = std::fs::File::create(&pub_log).unwrap();
    let publisher = publish
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start mosquitto_pub");
    let status = finish(publisher, "mosquitto_pub", &pub_log);
    let said = std::fs::read_to_string(&pub_log).unwrap();
    assert!(
        status.success(),
        "mosquitto_pub failed ({status}): {said}\n--- broker:\n{}",
        broker.log()
    );
    assert!(said.contains("received CONNACK (0)"), "{said}");

    // The subscriber got the message (-C 1: it exits after one).
    assert!(
        vpcd_card::wait_exited(&mut sub),
        "the subscriber got nothing: {}\n--- broker:\n{}",
        sub.log(),
        broker.log()
    );
    assert_eq!(sub.log().trim_end(), format!("{TOPIC} {MESSAGE}"));
    let log = broker.log();
    // The broker took the card's certificate as the publisher's identity.
    assert!(
        log.contains("(p2, c1, k60, u'device-0001')"),
        "the broker did not see the card's identity: {log}"
    );
    assert!(log.contains(&format!("'{TOPIC}'")), "{log}");
    assert_eq!(
        lock(&card).signatures(),
        signatures + 1,
        "the TLS handshake made one signature on the card: {said}"
    );
}
