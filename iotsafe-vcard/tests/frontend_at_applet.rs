//! The AT modem in front of the real applet: the flows of `docs/protocol.md#at-framing` and `#wolfssl-handshake-sequence` (wolfSSL's
//! AT+CSIM with an implicit channel, Orange's MANAGE CHANNEL through AT+CSIM, NTT's AT+CCHO/CGLA)
//! in both transport modes.

use std::sync::atomic::AtomicBool;

use iotsafe_vcard::frontend::at::{AtModem, AtOptions};
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::{CardOptions, TransportMode, VirtualCard};

fn modem(transport: TransportMode) -> AtModem {
    let card = VirtualCard::with_default_layout(CardOptions {
        transport,
        ..CardOptions::default()
    });
    AtModem::new(
        share(card),
        AtOptions {
            echo: false,
            ..AtOptions::default()
        },
    )
}

fn talk(modem: &mut AtModem, line: &str) -> String {
    let mut out = Vec::new();
    modem
        .feed(line.as_bytes(), &mut out, &AtomicBool::new(false))
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// The quoted hex of a `+CSIM:`/`+CGLA:` answer, checked against its announced length.
fn payload(answer: &str) -> String {
    let (head, rest) = answer.split_once(",\"").expect("a data answer");
    let hex = rest.split_once('"').unwrap().0;
    let announced: usize = head.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(announced, hex.len(), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\nOK\r\n"), "{answer:?}");
    hex.to_owned()
}

#[test]
fn wolfssl_style_csim_with_an_implicit_channel() {
    for transport in [TransportMode::T1, TransportMode::T0] {
        let mut m = modem(transport);
        assert_eq!(
            talk(&mut m, "AT+CSIM= 24,\"01A4040007A0000005590010\"\r\n"),
            "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n",
            "{transport:?}"
        );
        let random = payload(&talk(&mut m, "AT+CSIM= 10,\"8184000008\"\r\n"));
        assert_eq!(random.len(), 20, "{transport:?}: {random}");
        assert!(random.ends_with("9000"));
    }
}

#[test]
fn orange_style_manage_channel_through_csim() {
    let mut m = modem(TransportMode::T1);
    assert_eq!(
        talk(&mut m, "AT+CSIM=10,\"0070000001\"\r\n"),
        "\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n"
    );
    assert_eq!(
        talk(&mut m, "AT+CSIM=24,\"01A4040007A0000005590010\"\r\n"),
        "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n"
    );
    assert_eq!(
        talk(&mut m, "AT+CSIM=10,\"0070800100\"\r\n"),
        "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n"
    );
}

#[test]
fn ntt_style_logical_channel_commands() {
    for transport in [TransportMode::T1, TransportMode::T0] {
        let mut m = modem(transport);
        assert_eq!(
            talk(&mut m, "AT+CCHO=\"A0000005590010\"\r\n"),
            "\r\n+CCHO: 1\r\n\r\nOK\r\n",
            "{transport:?}"
        );
        // The host writes CLA 00; the modem puts the channel in.
        let random = payload(&talk(&mut m, "AT+CGLA=1,10,\"0084000010\"\r\n"));
        assert_eq!(random.len(), 36, "{transport:?}: {random}");
        assert_eq!(talk(&mut m, "AT+CCHC=1\r\n"), "\r\nOK\r\n");
        // The channel is closed on the card too: a command on it now fails.
        assert_eq!(
            payload(&talk(&mut m, "AT+CSIM=10,\"0184000008\"\r\n")),
            "6881",
            "{transport:?}"
        );
        // An AID the card does not have.
        assert_eq!(
            talk(&mut m, "AT+CCHO=\"A0000002480400\"\r\n"),
            "\r\n+CME ERROR: 22\r\n"
        );
    }
}
