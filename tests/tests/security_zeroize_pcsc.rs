//! Secrets are wiped in the real PC/SC transport too: the core client's `PcscTransport` through a
//! real pcscd to the virtual card behind vpcd (slot 1), with a T=1 card and a T=0 card (`61xx` +
//! GET RESPONSE). While each secret-bearing operation runs (PRF, HKDF-Extract, COMPUTE DH,
//! GET RANDOM), every block the process frees is logged; no freed block may hold the secret the
//! test sent (PRF secret, HKDF IKM) or the one it got back. The session is then dropped under the
//! watch too: the transport's reused receive buffer must not go back to the allocator holding the
//! last answer.
//!
//! The card and its vpcd client run in a child process (this binary again, one test selected): in
//! this process they would free their own copies of the secrets, which is theirs to do.
//!
//! Needs pcscd with the vpcd driver; skips without it unless `IOTSAFE_REQUIRE_SERVICES=1`.
//!
//! This file needs `unsafe` for the watch's `GlobalAlloc` alone (in `zeroize_watch`), denied
//! everywhere else.
#![cfg(feature = "pcsc")]
#![deny(unsafe_code)]

mod zeroize_watch;

use std::sync::{Arc, Mutex};

use iotsafe_core::pcsc::{PcscOptions, PcscTransport, ReaderChoice};
use iotsafe_core::{Card, CardConfig};
use iotsafe_tests::{pcscd_running, service, vpcd, vpcd_slot_lock, READER_SLOT1};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardOptions, TransportMode, VirtualCard};
use zeroize_watch::{announce, serve_until_stdin_closes, session_leaks, Peer};

/// Set in the child: the card's transport mode (`t0` or `t1`).
const CHILD_ENV: &str = "IOTSAFE_ZEROIZE_VPCD_CARD";
const CHILD_TEST: &str = "vpcd_card_child";

/// Not a test of its own: the virtual card plugged into vpcd slot 1, when run as the child. It
/// unplugs (and waits for pcscd to see the reader empty) when the parent closes its stdin.
#[test]
fn vpcd_card_child() {
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
    let shared: SharedCard = Arc::new(Mutex::new(card));
    let plugged = vpcd::plug(shared);
    announce("plugged: slot 1");
    serve_until_stdin_closes();
    drop(plugged);
}

#[test]
fn the_watch_sees_plain_copies_and_not_wiped_ones() {
    zeroize_watch::self_check();
}

#[test]
fn no_freed_block_holds_a_secret_through_pcscd() {
    let _slot = vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") {
        return;
    }
    let mut found = Vec::new();
    for (card_mode, label) in [("t1", "T=1 card"), ("t0", "T=0 card")] {
        let peer = Peer::start(CHILD_TEST, (CHILD_ENV, card_mode), "plugged: ");
        let transport = PcscTransport::connect(
            &ReaderChoice::Exact(READER_SLOT1.into()),
            PcscOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{label}: connect to the card in {READER_SLOT1}: {e}"));
        let card = Card::open(transport, CardConfig::default())
            .unwrap_or_else(|e| panic!("{label}: select the applet: {e}"));
        found.extend(session_leaks(card, label));
        drop(peer);
    }
    assert!(found.is_empty(), "{found:#?}");
}
