//! `--reader NAME` through a real pcscd: the virtual card plugged into vpcd slot 1
//! (`Virtual PCD 00 01`), then `info`, `cert` and `connect` as a user would run them.
//! Needs the `pcsc` feature and a running pcscd with the vpcd driver (scripts/test.sh starts
//! one); skipped without them unless `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]

mod common;

use common::{require, Fixture, OpenSslServer};
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::frontend::vpcd::{VpcdClient, VpcdOptions};
use iotsafe_vcard::VirtualCard;
use std::time::{Duration, Instant};

const VPCD_SLOT1: &str = "127.0.0.1:35964";
const READER_SLOT1: &str = "Virtual PCD 00 01";

fn pcscd_running() -> bool {
    if std::path::Path::new("/run/pcscd/pcscd.comm").exists() {
        return true;
    }
    if std::env::var("IOTSAFE_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("pcscd is required (IOTSAFE_REQUIRE_SERVICES=1) but not running");
    }
    eprintln!("skipping: pcscd is not running");
    false
}

/// Waits until `iotsafe readers` reports slot 1 with (or without) a card.
fn wait_for_card(f: &Fixture, present: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = common::iotsafe(&["--json", "readers"], f.dir.path());
        if r.ok() {
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            let slot = v["readers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == READER_SLOT1)
                .cloned();
            if let Some(slot) = slot {
                if slot["card_present"] == present {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "pcscd never saw slot 1 with card_present={present}: {}",
            r.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reader_commands_and_connect_through_pcscd() {
    if !pcscd_running() {
        return;
    }
    let f = Fixture::new();
    wait_for_card(&f, false);
    let card = VirtualCard::open_state(&f.state, Default::default()).unwrap();
    let client = VpcdClient::new(
        share(card),
        VPCD_SLOT1.parse().unwrap(),
        VpcdOptions::default(),
    );
    let handle = client.spawn().expect("vpcd client");
    wait_for_card(&f, true);

    let run = |args: &[&str]| {
        let mut full = vec!["--reader", "PCD 00 01", "--json"];
        full.extend_from_slice(args);
        let r = common::iotsafe(&full, f.dir.path());
        assert!(r.ok(), "iotsafe {args:?} via PC/SC failed: {}", r.stderr);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    let info = run(&["info"]);
    assert_eq!(info["aid"], "A0000005590010");
    assert_eq!(info["card"], format!("PC/SC reader {READER_SLOT1:?}"));
    assert_eq!(run(&["cert"])["key_match"], true);

    if require("openssl") {
        let server = OpenSslServer::start(&f, &f.pki("ca.pem"));
        let port = server.port;
        let report = run(&[
            "connect",
            &format!("127.0.0.1:{port}"),
            "--ca",
            f.pki("ca.pem").to_str().unwrap(),
        ]);
        drop(server);
        assert_eq!(report["card_signatures"], 1);
        assert_eq!(report["group_on_card"], true);
    }
    let _ = handle.stop();
    wait_for_card(&f, false);
}
