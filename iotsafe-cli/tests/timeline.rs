//! `--timeline FILE.svg`: `iotsafe connect` through an AT modem (the virtual card's AT front end
//! on loopback) to `openssl s_server`, and `iotsafe bench` with its in-process server, each
//! drawing a file that parses as SVG and names the handshake's APDUs and the totals. Only
//! structure and counts are checked, never durations.

mod common;

use common::{iotsafe_with_env, require, Fixture, OpenSslServer};
use iotsafe_vcard::frontend::at::AtOptions;
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::VirtualCard;
use std::path::Path;

/// The commands every card handshake sends (key share, peer key, ECDH, CertificateVerify).
const HANDSHAKE_COMMANDS: [&str; 4] = [
    "GENERATE KEY PAIR",
    "PUT PUBLIC KEY",
    "COMPUTE DH",
    "COMPUTE SIGNATURE",
];

/// The labels of the totals.
const TOTALS: [&str; 7] = [
    "wall time",
    "card time",
    "serial time",
    "network wait",
    "host work",
    "APDUs",
    "UART bytes",
];

/// The SVG's root element name and every text node's text, one per line.
fn svg_text(path: &Path) -> (String, String) {
    let svg = std::fs::read_to_string(path).expect("the timeline file");
    let doc = roxmltree::Document::parse(&svg).expect("the timeline parses as XML");
    let root = doc.root_element().tag_name().name().to_string();
    let text: Vec<&str> = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    (root, text.join("\n"))
}

fn lines_equal_to(text: &str, wanted: &str) -> usize {
    text.lines().filter(|l| *l == wanted).count()
}

#[test]
fn connect_through_an_at_modem_draws_the_handshake_as_an_svg_timeline() {
    if !cfg!(feature = "at") || !require("openssl") {
        return;
    }
    let f = Fixture::new();
    let server = OpenSslServer::start(&f, &f.pki("ca.pem"));
    let address = format!("127.0.0.1:{}", server.port);
    let card = VirtualCard::open_state(&f.state, Default::default()).unwrap();
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let target = format!("tcp://{}", modem.local_addr().unwrap());
    let handle = modem.spawn(share(card), AtOptions::default()).unwrap();
    let svg = f.path("t.svg");
    let ca = f.pki("ca.pem");
    let cache = f.path("cache");
    let env = [("IOTSAFE_CACHE_DIR", cache.to_str().unwrap())];
    let connect = |extra: &[&str]| {
        let mut args = vec!["--modem", &target, "--json", "connect", &address];
        args.extend_from_slice(&["--ca", ca.to_str().unwrap(), "--wait-ms", "100"]);
        args.extend_from_slice(extra);
        iotsafe_with_env(&args, f.dir.path(), &env)
    };

    let r = connect(&["--timeline", svg.to_str().unwrap(), "--baud", "9600"]);
    assert!(r.ok(), "connect --timeline failed: {}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["timeline"], svg.to_str().unwrap());
    let (root, text) = svg_text(&svg);
    assert_eq!(root, "svg");
    for label in HANDSHAKE_COMMANDS.iter().chain(&TOTALS) {
        assert!(text.contains(label), "{label:?} missing from:\n{text}");
    }
    // One key pair, one ECDH: one row each.
    assert_eq!(lines_equal_to(&text, "GENERATE KEY PAIR"), 1, "{text}");
    assert_eq!(lines_equal_to(&text, "COMPUTE DH"), 1, "{text}");
    // The modem reports the AT text it moved, so serial time is split out at 9600 baud.
    assert!(text.contains("at 9600 baud"), "{text}");
    assert!(!text.contains("none reported"), "{text}");
    for row in [
        "open card",
        "TLS handshake",
        "TCP connect",
        "waiting for a refusal",
    ] {
        assert!(text.lines().any(|l| l == row), "no {row:?} row in:\n{text}");
    }
    assert!(text.contains("round trip 1:"), "{text}");

    // Without the flag: no file and no timeline in the report.
    let r = connect(&[]);
    assert!(r.ok(), "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(report.get("timeline").is_none(), "{report}");
    let _ = handle.stop();
}

#[test]
fn bench_draws_its_first_handshake_only() {
    let f = Fixture::new();
    let svg = f.path("bench.svg");
    let report = f.json(&[
        "bench",
        "--iterations",
        "1",
        "--handshakes",
        "3",
        "--timeline",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(report["handshakes"]["count"], 3);
    assert_eq!(report["timeline"], svg.to_str().unwrap());
    let (root, text) = svg_text(&svg);
    assert_eq!(root, "svg");
    for label in HANDSHAKE_COMMANDS.iter().chain(&TOTALS) {
        assert!(text.contains(label), "{label:?} missing from:\n{text}");
    }
    // Neither the card operations measured before nor the two handshakes after are drawn.
    assert_eq!(lines_equal_to(&text, "COMPUTE DH"), 1, "{text}");
    assert_eq!(lines_equal_to(&text, "TLS handshake"), 1, "{text}");
    assert!(!text.contains("open card"), "{text}");
    // An in-process card reports no UART bytes: every APDU is card time.
    assert!(text.contains("none reported"), "{text}");
}
