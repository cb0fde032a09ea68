//! Sessions left open, end to end: full TLS 1.3 handshakes through the virtual card's real front
//! ends (in process, its AT modem on loopback TCP, pcscd + vpcd) on three cards: one that opens a
//! session afresh at its next Init (6 APDUs per handshake on T=1, 9 on T=0), one that refuses
//! an Init while the session is still open (`--reopen-refused 6985`), and one with a single
//! session at a time (`--max-sessions 1`, `6A84`). On the refusing cards every handshake
//! succeeds: the first refusal costs the sessions' closes and the Init again, and from then on
//! the card's sessions are closed after use (8 APDUs). docs/real-sims.md §13 says what each
//! card does.
#![forbid(unsafe_code)]

use std::sync::Arc;

use iotsafe_core::{Card, CardConfig, CardStats, Operation};
use iotsafe_tests::handshake::TlsFixture;
use iotsafe_vcard::{CardOptions, Quirks, TransportMode};

/// The three cards, and the APDUs of their first three handshakes on T=1.
fn cards() -> Vec<(&'static str, Quirks, [u64; 3])> {
    vec![
        // Keygen 1, put Init + Update 2, DH 1, sign Init + Update 2.
        ("opens afresh", Quirks::default(), [6, 6, 6]),
        (
            // The second handshake's put Init is refused: both sessions closed (2), the Init
            // again (1), and from then on every session closed (+1 put, +1 sign).
            "refuses a re-open (6985)",
            Quirks {
                reopen_refused: Some(0x6985),
                ..Quirks::default()
            },
            [6, 11, 8],
        ),
        (
            // The first handshake's sign Init meets the put session left open: 6A84, the put
            // session closed, the sign Init again, the sign session closed.
            "one session at a time (6A84)",
            Quirks {
                max_sessions: 1,
                ..Quirks::default()
            },
            [9, 8, 8],
        ),
    ]
}

fn options(quirks: Quirks, transport: TransportMode) -> CardOptions {
    CardOptions {
        quirks,
        transport,
        ..CardOptions::default()
    }
}

/// Three handshakes, each succeeding, with the card work each did.
fn three_handshakes(fx: &TlsFixture, name: &str) -> Vec<CardStats> {
    (0..3)
        .map(|i| {
            let used = fx
                .card_handshake()
                .unwrap_or_else(|e| panic!("{name}: handshake {i}: {e}"));
            assert_eq!(used.count(Operation::Sign), 1, "{name} {i}: {used:?}");
            assert_eq!(used.count(Operation::Dh), 1, "{name} {i}: {used:?}");
            used
        })
        .collect()
}

fn check(name: &str, used: &[CardStats], expected: [u64; 3], refusals: u64, card: &Card) {
    let apdus: Vec<u64> = used.iter().map(|u| u.apdus).collect();
    assert_eq!(apdus, expected, "{name}: APDUs per handshake");
    assert_eq!(card.stats().reopen_refusals, refusals, "{name}");
    assert_eq!(card.sessions_need_closing(), refusals > 0, "{name}");
}

#[test]
fn in_process_every_handshake_succeeds_on_each_card() {
    for (name, quirks, expected) in cards() {
        let refusals = u64::from(expected != [6, 6, 6]);
        let fx = TlsFixture::new(
            options(quirks, TransportMode::T1),
            CardConfig::default(),
            false,
        );
        let used = three_handshakes(&fx, name);
        check(name, &used, expected, refusals, &fx.card);
    }
}

#[test]
fn on_t0_the_session_closes_saved_are_the_same_two() {
    let fx = TlsFixture::new(
        options(Quirks::default(), TransportMode::T0),
        CardConfig::default(),
        false,
    );
    let used = three_handshakes(&fx, "T=0");
    // Each data-bearing answer (key pair, secret, signature) adds a GET RESPONSE: 6 + 3.
    assert!(used.iter().all(|u| u.apdus == 9), "{used:?}");
}

#[test]
fn always_closing_is_the_8_apdus_of_before() {
    use iotsafe_core::SessionClosing;
    let config = CardConfig {
        close_sessions: SessionClosing::Always,
        ..CardConfig::default()
    };
    let fx = TlsFixture::new(options(Quirks::default(), TransportMode::T1), config, false);
    let used = three_handshakes(&fx, "always");
    assert!(used.iter().all(|u| u.apdus == 8), "{used:?}");
}

#[cfg(feature = "at")]
#[test]
fn through_the_at_modem_every_handshake_succeeds_on_each_card() {
    use iotsafe_core::at::AtTransport;
    use iotsafe_vcard::frontend::at::AtOptions as ModemOptions;
    use iotsafe_vcard::frontend::tcp::TcpModem;
    use std::sync::Mutex;

    for (name, quirks, expected) in cards() {
        let refusals = u64::from(expected != [6, 6, 6]);
        let mut modem = None;
        let fx = TlsFixture::over(options(quirks, TransportMode::T1), false, |vcard| {
            let listener = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
            let addr = listener.local_addr().unwrap();
            modem = Some(
                listener
                    .spawn(Arc::new(Mutex::new(vcard)), ModemOptions::default())
                    .expect("start the modem"),
            );
            let transport = AtTransport::connect_tcp(addr).expect("connect over AT");
            Arc::new(Card::open(transport, CardConfig::default()).expect("open over AT"))
        });
        let used = three_handshakes(&fx, name);
        check(name, &used, expected, refusals, &fx.card);
        drop(fx);
        modem.expect("the modem").stop().unwrap();
    }
}

#[cfg(feature = "pcsc")]
#[test]
fn through_pcscd_every_handshake_succeeds_on_each_card() {
    use iotsafe_tests::vpcd;
    use std::sync::Mutex;

    if !iotsafe_tests::service(iotsafe_tests::pcscd_running(), "pcscd with vpcd") {
        return;
    }
    for (name, quirks, expected) in cards() {
        let refusals = u64::from(expected != [6, 6, 6]);
        let mut plugged = None;
        let fx = TlsFixture::over(options(quirks, TransportMode::T1), false, |vcard| {
            plugged = Some(vpcd::plug(Arc::new(Mutex::new(vcard))));
            vpcd::open_card()
        });
        let used = three_handshakes(&fx, name);
        check(name, &used, expected, refusals, &fx.card);
        drop(fx);
        drop(plugged);
    }
}
