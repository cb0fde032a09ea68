//! The demo's MQTT client path against mosquitto (OpenSSL, `require_certificate true`) with the
//! card behind REAL pcscd + vpcd (slot 1): CONNACK, subscribe, publish, receive; and a card
//! certified by another CA is refused by the broker.
//!
//! Needs pcscd with the vpcd driver and mosquitto; skips without them unless
//! `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_core::Operation;
use iotsafe_examples::{run_mqtt_client, Backoff, BrokerTarget, ClientOptions};
use iotsafe_tests::{
    have_program, mosquitto, pcscd_running, provisioned, service, vpcd, vpcd_slot_lock,
};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::CardOptions;

fn services() -> bool {
    service(pcscd_running(), "pcscd") && service(have_program("mosquitto"), "mosquitto")
}

fn options(count: u32) -> ClientOptions {
    ClientOptions {
        count,
        verification_handshake: false,
        step_timeout: Duration::from_secs(15),
        // A refused certificate must not be retried for long.
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_millis(200), 1),
        ..ClientOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn mqtt_over_mtls_with_the_card_behind_pcscd_and_mosquitto() {
    let _slot = vpcd_slot_lock();
    if !services() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, vcard) = provisioned(dir.path(), CardOptions::default());
    let pki = &report.pki_dir;
    let (broker, addr) = mosquitto(
        dir.path(),
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &pki.join("ca.pem"),
    );
    let shared: SharedCard = Arc::new(Mutex::new(vcard));
    let _plugged = vpcd::plug(shared);
    let card = vpcd::open_card();
    let before = card.stats();
    let target = BrokerTarget {
        host: "127.0.0.1".into(),
        port: addr.port(),
        ca: pki.join("ca.pem"),
        server_name: Some("localhost".into()),
        description: "mosquitto".into(),
    };
    let result = runtime().block_on(run_mqtt_client(card.clone(), target, options(3)));
    let mqtt =
        result.unwrap_or_else(|e| panic!("MQTT through mosquitto failed: {e}\n{}", broker.log()));
    assert!(mqtt.success(), "{}", mqtt.to_text());
    let used = card.stats().since(&before);
    assert_eq!(used.count(Operation::Sign), 1, "{used:?}");
    assert_eq!(used.count(Operation::GenerateKeyPair), 1, "{used:?}");
    assert_eq!(used.count(Operation::Dh), 1, "{used:?}");
    let log = broker.log();
    assert!(
        log.contains("device-0001"),
        "mosquitto did not see the card's identity:\n{log}"
    );
}

#[test]
fn a_card_from_another_ca_is_refused_by_mosquitto() {
    let _slot = vpcd_slot_lock();
    if !services() {
        return;
    }
    let trusted = tempfile::tempdir().unwrap();
    let (trusted_report, _) = provisioned(trusted.path(), CardOptions::default());
    let other = tempfile::tempdir().unwrap();
    let (_, foreign_card) = provisioned(other.path(), CardOptions::default());
    let pki = &trusted_report.pki_dir;
    let (broker, addr) = mosquitto(
        trusted.path(),
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &pki.join("ca.pem"),
    );
    let shared: SharedCard = Arc::new(Mutex::new(foreign_card));
    let _plugged = vpcd::plug(shared);
    let card = vpcd::open_card();
    let target = BrokerTarget {
        host: "127.0.0.1".into(),
        port: addr.port(),
        ca: pki.join("ca.pem"),
        server_name: Some("localhost".into()),
        description: "mosquitto".into(),
    };
    let result = runtime().block_on(run_mqtt_client(card.clone(), target, options(1)));
    let err = match result {
        Ok(report) => panic!(
            "mosquitto accepted a certificate from another CA: {}",
            report.to_text()
        ),
        Err(e) => e.to_string(),
    };
    // The card did sign: the refusal is the broker's verdict on the chain, not a card failure.
    assert!(card.stats().count(Operation::Sign) >= 1);
    let log = broker.log();
    assert!(
        log.contains("certificate verify failed") || log.contains("OpenSSL Error"),
        "mosquitto did not log a verification failure (client saw: {err}):\n{log}"
    );
}
