//! Secrets are wiped in the real AT transport too: the core client's `AtTransport` on loopback TCP
//! to the virtual card's AT modem emulation, through AT+CCHO/AT+CGLA and through AT+CSIM, with a
//! T=1 card and a T=0 card (`61xx` + GET RESPONSE). While each secret-bearing operation runs
//! (PRF, HKDF-Extract, COMPUTE DH, GET RANDOM), every block the process frees is logged; no freed
//! block may hold the secret the test sent (PRF secret, HKDF IKM) or the one it got back, raw or
//! as the hex of an AT line (the command line built, the line read back, the hex decoded).
//!
//! The card and its modem run in a child process (this binary again, one test selected): in this
//! process they would free their own copies of the secrets, which is theirs to do.
//!
//! This file needs `unsafe` for the watch's `GlobalAlloc` alone (in `zeroize_watch`), denied
//! everywhere else.
#![cfg(feature = "at")]
#![deny(unsafe_code)]

mod zeroize_watch;

use std::time::Duration;

use iotsafe_core::at::{AtMode, AtOptions, AtTransport};
use iotsafe_core::{Card, CardConfig};
use iotsafe_vcard::frontend::at::AtOptions as ModemOptions;
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, TransportMode, VirtualCard};
use zeroize_watch::{announce, serve_until_stdin_closes, session_leaks, Peer};

/// Set in the child: the card's transport mode (`t0` or `t1`).
const CHILD_ENV: &str = "IOTSAFE_ZEROIZE_AT_MODEM";
const CHILD_TEST: &str = "at_modem_child";

/// Not a test of its own: the virtual card's AT modem on a loopback port, when run as the child.
#[test]
fn at_modem_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let transport = if mode == "t0" {
        TransportMode::T0
    } else {
        TransportMode::T1
    };
    let card = VirtualCard::with_default_layout(CardOptions {
        transport,
        ..CardOptions::default()
    });
    let modem = TcpModem::bind("127.0.0.1:0".parse().expect("loopback")).expect("bind");
    let addr = modem.local_addr().expect("the modem's address");
    let handle = modem
        .spawn(share(card), ModemOptions::default())
        .expect("start the modem");
    announce(&format!("at-tcp: {addr}"));
    serve_until_stdin_closes();
    let _ = handle.stop();
}

#[test]
fn the_watch_sees_plain_copies_and_not_wiped_ones() {
    zeroize_watch::self_check();
}

fn host_options(mode: AtMode) -> AtOptions {
    AtOptions {
        mode,
        ready_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(10),
        ..AtOptions::default()
    }
}

#[test]
fn no_freed_block_holds_a_secret_through_the_at_transport() {
    let mut found = Vec::new();
    for (card_mode, card_label) in [("t1", "T=1"), ("t0", "T=0")] {
        let peer = Peer::start(CHILD_TEST, (CHILD_ENV, card_mode), "at-tcp: ");
        let addr = peer.said.clone();
        for mode in [AtMode::Cgla, AtMode::Csim] {
            let label = format!("{card_label} card, {mode:?}");
            let transport = AtTransport::connect_tcp_with(addr.as_str(), host_options(mode))
                .unwrap_or_else(|e| panic!("{label}: connect to the modem at {addr}: {e}"));
            assert_eq!(
                transport.uses_logical_channel_commands(),
                mode == AtMode::Cgla,
                "{label}"
            );
            let card = Card::open(transport, CardConfig::default())
                .unwrap_or_else(|e| panic!("{label}: open the session: {e}"));
            found.extend(session_leaks(card, &label));
        }
        drop(peer);
    }
    assert!(found.is_empty(), "{found:#?}");
}
