//! The MQTT demo end to end with the virtual card and the embedded broker (rumqttd requiring
//! client certificates): the binary with no arguments, the library path, failures and Ctrl-C.

use iotsafe_cli::CardSelection;
use iotsafe_core::Operation;
use iotsafe_examples::{run_mqtt_client, Backoff, BrokerTarget, ClientOptions, EmbeddedBroker};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn demo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqtt-demo"))
}

#[test]
fn demo_with_no_arguments_succeeds_and_reports() {
    let out = demo().output().expect("running mqtt-demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "IoT SAFE mutual-TLS MQTT demo: OK",
        "AID A0000005590010",
        "device key:    ID 01 \"device\"",
        "subject CN=device-0001",
        "embedded rumqttd",
        "protocol:      TLSv1.3",
        "group:         secp256r1 (ECDHE on the card)",
        "cipher suite:  TLS13_",
        "card:          1 signature(s), 1 key generation(s), 1 ECDH, 6 APDUs",
        "card during connect: 1 signature(s), 1 key generation(s), 1 ECDH",
        "messages: 3 published, 3 received back",
        "disconnected cleanly",
        "2 handshake(s), 2 card signature(s) (one per handshake: yes)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn demo_json_report_with_an_explicit_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    let out = demo()
        .args([
            "--vcard",
            state.to_str().unwrap(),
            "--json",
            "--count",
            "5",
            "--client-id",
            "sensor-7",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["success"], true);
    assert_eq!(report["messages"]["sent"], 5);
    assert_eq!(report["messages"]["received"], 5);
    assert_eq!(report["mqtt"]["client_id"], "sensor-7");
    assert_eq!(report["mqtt"]["topic"], "iotsafe/demo/sensor-7");
    assert_eq!(report["mqtt"]["connect_card_signatures"], 1);
    // The demo runs on a current_thread runtime and says how long it stalled while connecting.
    assert_eq!(report["mqtt"]["runtime"], "tokio current_thread");
    assert!(report["mqtt"]["connect_longest_runtime_stall_ms"].is_f64());
    assert_eq!(report["handshake"]["version"], "TLSv1.3");
    assert_eq!(report["handshake"]["card_signatures"], 1);
    assert_eq!(report["handshakes"], report["card_signatures"]);
    assert!(state.exists() && dir.path().join("card-pki/ca.pem").exists());
}

#[test]
fn library_path_against_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let opened = CardSelection::virtual_card(dir.path().join("card.json"))
        .open()
        .unwrap();
    let pki = opened.pki.clone().expect("test PKI");
    let broker = EmbeddedBroker::start(&pki.ca_cert, &pki.server_cert, &pki.server_key).unwrap();
    let target = BrokerTarget {
        host: "localhost".into(),
        port: broker.address.port(),
        ca: pki.ca_cert.clone(),
        server_name: None,
        description: "embedded rumqttd".into(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let card = Arc::clone(&opened.card);
    let opts = ClientOptions {
        count: 4,
        ..ClientOptions::default()
    };
    let report = runtime
        .block_on(run_mqtt_client(card, target, opts))
        .expect("demo client");
    assert!(report.success());
    assert_eq!(report.messages.received, 4);
    assert_eq!(report.mqtt.connections, 1);
    assert_eq!(report.handshakes(), 2);
    // The card signed once per handshake, and did the ECDHE of each.
    assert_eq!(report.card_signatures(), 2);
    assert_eq!(report.mqtt.first_connect_card.count(Operation::Sign), 1);
    assert_eq!(
        report
            .mqtt
            .first_connect_card
            .count(Operation::GenerateKeyPair),
        1
    );
    assert_eq!(report.mqtt.first_connect_card.count(Operation::Dh), 1);
    let v = report.verification.as_ref().unwrap();
    assert_eq!(v.version, "TLSv1.3");
    assert!(v.group_on_card);
}

#[test]
fn broker_that_does_not_trust_the_card_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ours = CardSelection::virtual_card(dir.path().join("a.json"))
        .open()
        .unwrap();
    let theirs = CardSelection::virtual_card(dir.path().join("b.json"))
        .open()
        .unwrap();
    let our_pki = ours.pki.clone().unwrap();
    let their_pki = theirs.pki.clone().unwrap();
    // The broker's certificate is ours, but it only trusts clients from the other CA.
    let broker = EmbeddedBroker::start(
        &their_pki.ca_cert,
        &our_pki.server_cert,
        &our_pki.server_key,
    )
    .unwrap();
    let out = demo()
        .args([
            "--vcard",
            dir.path().join("a.json").to_str().unwrap(),
            "--broker",
            &format!("mqtts://127.0.0.1:{}", broker.address.port()),
            "--ca",
            our_pki.ca_cert.to_str().unwrap(),
            "--max-retries",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("mqtt-demo: error:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // One retry, with back-off, then a clear error.
    assert!(stderr.contains("retrying in"), "{stderr}");
}

#[test]
fn bad_arguments_are_one_clear_error() {
    let out = demo()
        .args(["--broker", "mqtt://plain:1883", "--ca", "/nonexistent"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("plain-text"), "{stderr}");
    let out = demo()
        .args(["--broker", "mqtts://localhost:8883"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--broker without --ca is a usage error"
    );
}

#[test]
fn ctrl_c_stops_the_demo_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    let mut child = demo()
        .args([
            "--vcard",
            state.to_str().unwrap(),
            "--latency",
            "sim",
            "--count",
            "100000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the card is provisioned the demo is past its start-up; then let it handshake a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.exists() {
        assert!(
            Instant::now() < deadline,
            "the demo never provisioned its card"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a PID"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT to the demo");
    let deadline = Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not stop within 15 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn broker_urls() {
    let t = BrokerTarget::parse("mqtts://broker.example:8884", "ca.pem".into()).unwrap();
    assert_eq!((t.host.as_str(), t.port), ("broker.example", 8884));
    assert_eq!(
        BrokerTarget::parse("mqtts://h", "ca.pem".into())
            .unwrap()
            .port,
        8883
    );
    assert_eq!(
        BrokerTarget::parse("[::1]:1", "ca.pem".into())
            .unwrap()
            .address(),
        "[::1]:1"
    );
    assert!(BrokerTarget::parse("mqtts://h:x", "ca.pem".into()).is_err());
    let _ = Backoff::default();
}
