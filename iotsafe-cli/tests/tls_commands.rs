//! `iotsafe connect` and `iotsafe bench`: TLS 1.3 with client authentication by the card.

mod common;

use common::{require, Fixture, OpenSslServer};

#[test]
fn connect_to_openssl_s_server_with_client_verification() {
    if !require("openssl") {
        return;
    }
    let f = Fixture::new();
    let server = OpenSslServer::start(&f, &f.pki("ca.pem"));
    let address = format!("127.0.0.1:{}", server.port);
    let ca = f.pki("ca.pem");
    let r = f.run(&["--json", "connect", &address, "--ca", ca.to_str().unwrap()]);
    assert!(r.ok(), "connect failed: {}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["version"], "TLSv1.3");
    assert_eq!(report["group"], "secp256r1");
    assert_eq!(report["group_on_card"], true);
    assert_eq!(
        report["card_signatures"], 1,
        "the card signs once per handshake"
    );
    assert_eq!(report["card_key_generations"], 1);
    assert_eq!(report["card_dh"], 1);
    assert_eq!(report["kind"], "Full");

    let text = f.run(&[
        "connect",
        &format!("localhost:{}", server.port),
        "--ca",
        ca.to_str().unwrap(),
    ]);
    assert!(text.ok(), "{}", text.stderr);
    assert!(text.stdout.contains("handshake OK"));
    assert!(text.stdout.contains("ECDHE on the card"));
}

#[test]
fn connect_fails_when_the_server_does_not_trust_the_card_certificate() {
    if !require("openssl") {
        return;
    }
    let f = Fixture::new();
    // Another card's CA: the server will refuse our certificate.
    let other = Fixture::new();
    let server = OpenSslServer::start(&f, &other.pki("ca.pem"));
    let address = format!("127.0.0.1:{}", server.port);
    let ca = f.pki("ca.pem");
    let r = f.run(&[
        "connect",
        &address,
        "--ca",
        ca.to_str().unwrap(),
        "--wait-ms",
        "2000",
    ]);
    r.assert_clean_error();
    assert!(r.stderr.contains("TLS handshake with"), "{}", r.stderr);
    // And a server certificate we do not trust is refused by the client.
    let r = f.run(&[
        "connect",
        &address,
        "--ca",
        other.pki("ca.pem").to_str().unwrap(),
    ]);
    r.assert_clean_error();
}

#[test]
fn connect_to_a_closed_port_is_a_clean_error() {
    let f = Fixture::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = f.run(&[
        "connect",
        &format!("127.0.0.1:{port}"),
        "--ca",
        f.pki("ca.pem").to_str().unwrap(),
    ]);
    r.assert_clean_error();
    assert!(r.stderr.contains("connecting to"), "{}", r.stderr);
}

#[test]
fn bench_measures_card_operations_and_in_process_handshakes() {
    let f = Fixture::new();
    let report = f.json(&["bench", "--iterations", "3", "--handshakes", "3"]);
    let ops = report["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4);
    for op in ops {
        assert_eq!(op["count"], 3);
        assert!(op["per_second"].as_f64().unwrap() > 0.0);
    }
    let hs = &report["handshakes"];
    assert_eq!(hs["count"], 3);
    assert_eq!(hs["apdus_per_op"], 6.0, "APDU budget of a full handshake");
}

#[test]
fn bench_against_openssl() {
    if !require("openssl") {
        return;
    }
    let f = Fixture::new();
    let server = OpenSslServer::start(&f, &f.pki("ca.pem"));
    let address = format!("127.0.0.1:{}", server.port);
    let report = f.json(&[
        "bench",
        "--iterations",
        "1",
        "--handshakes",
        "2",
        "--server",
        &address,
        "--ca",
        f.pki("ca.pem").to_str().unwrap(),
    ]);
    assert_eq!(report["handshakes"]["count"], 2);
    assert_eq!(report["handshake_server"], address);
}
