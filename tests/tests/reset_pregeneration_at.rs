//! A device that makes its next ECDHE key ahead of time (`KxOptions::pregenerate`) while another
//! program restarts the modem, SIM included (`AT+CFUN=1,1` on a second connection to the same
//! modem), between two handshakes, with the modem at `AT+CMEE=0` (factory default) and at `=1`:
//! every handshake succeeds at its first attempt. The key made ahead is gone with the reset (the
//! SIM wipes its volatile keys), the session learns of the reset only from the next APDU, and the
//! handshake must not hand the server a key the card no longer holds: the READ PUBLIC KEY that
//! confirms a key made ahead finds it gone, and the handshake generates a fresh one.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_core::at::AtTransport;
use iotsafe_core::{Card, Operation};
use iotsafe_tests::handshake::TlsFixture;
use iotsafe_vcard::frontend::at::{AtHandle, AtOptions as ModemOptions};
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::CardOptions;

fn handshakes_across_resets(cmee: u8) {
    let mut options = CardOptions::default();
    options.quirks.wipe_volatile_on_reset = true;
    let mut modem: Option<(std::net::SocketAddr, AtHandle)> = None;
    let fx = TlsFixture::over(options, true, |vcard| {
        let tcp = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
        let addr = tcp.local_addr().unwrap();
        let modem_options = ModemOptions {
            cmee,
            ..ModemOptions::default()
        };
        let handle = tcp
            .spawn(Arc::new(Mutex::new(vcard)), modem_options)
            .expect("start the modem");
        modem = Some((addr, handle));
        let transport = AtTransport::connect_tcp(addr).expect("connect over AT");
        Arc::new(Card::open(transport, Default::default()).expect("open over AT"))
    });
    let (addr, handle) = modem.expect("the modem");
    let group = fx.tls.kx_group().expect("card ECDHE");
    for round in 0..4 {
        assert!(group.wait_for_background(Duration::from_secs(30)));
        assert!(
            group.has_pregenerated_key(),
            "round {round}: a key made ahead"
        );
        if round % 2 == 1 {
            assert_eq!(
                iotsafe_tests::at_command(addr, "AT+CFUN=1,1"),
                ["OK"],
                "the other program restarts the modem"
            );
        }
        let before = fx.card.stats();
        fx.card_handshake()
            .unwrap_or_else(|e| panic!("CMEE={cmee}, round {round}: {e}"));
        // The next key, made in the background after the signature, is counted too.
        assert!(group.wait_for_background(Duration::from_secs(30)));
        let used = fx.card.stats().since(&before);
        let after_reset = round % 2 == 1;
        // The key made ahead was confirmed on the card; after a reset it was gone, and the
        // handshake generated its own.
        assert_eq!(used.count(Operation::ReadPublicKey), 1, "{used:?}");
        assert_eq!(
            used.count(Operation::GenerateKeyPair),
            1 + u64::from(after_reset),
            "CMEE={cmee}, round {round}: {used:?}"
        );
        assert_eq!(used.count(Operation::Dh), 1);
        assert_eq!(used.count(Operation::Sign), 1);
        assert_eq!(used.card_resets, u64::from(after_reset), "round {round}");
    }
    drop(fx);
    handle.stop().unwrap();
}

#[test]
fn pregenerated_handshakes_survive_a_modem_restart_at_cmee_0() {
    handshakes_across_resets(0);
}

#[test]
fn pregenerated_handshakes_survive_a_modem_restart_at_cmee_1() {
    handshakes_across_resets(1);
}
