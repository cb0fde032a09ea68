//! Unit tests of the modem emulation against small scripted cards.

use super::*;
use crate::{CardHandler, Reply};
use std::sync::{Arc, Mutex};

/// Records APDUs; answers MANAGE CHANNEL like a card with channels, everything else `9000`
/// preceded by the APDU's CLA (so tests see the class byte the card got).
#[derive(Default)]
struct Recorder {
    seen: Vec<Vec<u8>>,
    powered_on: u32,
    drop_next: bool,
}

impl CardHandler for Recorder {
    fn atr(&self) -> Vec<u8> {
        vec![0x3B, 0x00]
    }
    fn power_on(&mut self) {
        self.powered_on += 1;
    }
    fn power_off(&mut self) {}
    fn reset(&mut self) {}
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.seen.push(apdu.to_vec());
        match apdu {
            [_, 0x70, 0x00, 0x00, ..] => vec![0x02, 0x90, 0x00],
            [_, 0xA4, 0x04, 0x00, _, 0xEE, ..] => vec![0x6A, 0x82],
            [cla, ..] => vec![*cla, 0x90, 0x00],
            [] => vec![0x67, 0x00],
        }
    }
    fn handle(&mut self, apdu: &[u8]) -> Reply {
        if std::mem::take(&mut self.drop_next) {
            return Reply::Disconnect;
        }
        Reply::Answer(self.process(apdu))
    }
}

fn modem(options: AtOptions) -> (AtModem, Arc<Mutex<Recorder>>) {
    let card = Arc::new(Mutex::new(Recorder::default()));
    let shared: SharedCard = card.clone();
    (AtModem::new(shared, options), card)
}

fn talk(modem: &mut AtModem, input: &str) -> String {
    let mut out = Vec::new();
    modem
        .feed(input.as_bytes(), &mut out, &AtomicBool::new(false))
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn echo_then_answer_and_echo_off() {
    let (mut m, _) = modem(AtOptions::default());
    assert_eq!(talk(&mut m, "AT\r\n"), "AT\r\r\nOK\r\n");
    assert_eq!(talk(&mut m, "ATE0\r"), "ATE0\r\r\nOK\r\n");
    assert_eq!(talk(&mut m, "AT\r"), "\r\nOK\r\n");
    assert_eq!(talk(&mut m, "\r\n\r"), "");
    assert_eq!(talk(&mut m, "ATE1\n"), "\r\nOK\r\n");
    assert_eq!(talk(&mut m, "AT\n"), "AT\n\r\nOK\r\n");
}

#[test]
fn split_reads_make_one_line() {
    let (mut m, _) = modem(AtOptions {
        echo: false,
        ..AtOptions::default()
    });
    assert_eq!(talk(&mut m, "AT+CSIM=10,\"00700"), "");
    assert_eq!(
        talk(&mut m, "00001\"\r"),
        "\r\n+CSIM: 6,\"029000\"\r\n\r\nOK\r\n"
    );
    assert_eq!(talk(&mut m, "\nAT\r"), "\r\nOK\r\n");
}

#[test]
fn overlong_line_is_error_and_bounded() {
    let (mut m, _) = modem(AtOptions {
        echo: false,
        max_line: 16,
        ..AtOptions::default()
    });
    let long = format!("AT{}\r", "0".repeat(10_000));
    assert_eq!(talk(&mut m, &long), "\r\nERROR\r\n");
    assert!(m.line.held() <= 16);
    assert_eq!(talk(&mut m, "AT\r"), "\r\nOK\r\n");
}

#[test]
fn logical_channels_patch_the_class_byte() {
    let (mut m, card) = modem(AtOptions {
        echo: false,
        ..AtOptions::default()
    });
    assert_eq!(
        talk(&mut m, "AT+CCHO=\"A0000005590010\"\r"),
        "\r\n+CCHO: 1\r\n\r\nOK\r\n"
    );
    assert_eq!(
        talk(&mut m, "AT+CGLA=1,10,\"80CB000000\"\r"),
        "\r\n+CGLA: 6,\"829000\"\r\n\r\nOK\r\n"
    );
    assert_eq!(
        talk(&mut m, "AT+CGLA=7,4,\"00B0\"\r"),
        "\r\n+CME ERROR: 21\r\n"
    );
    assert_eq!(talk(&mut m, "AT+CCHC=1\r"), "\r\nOK\r\n");
    assert_eq!(talk(&mut m, "AT+CCHC=1\r"), "\r\n+CME ERROR: 21\r\n");
    let seen = card.lock().unwrap().seen.clone();
    assert_eq!(
        seen,
        vec![
            vec![0x00, 0x70, 0x00, 0x00, 0x01],
            vec![0x02, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10],
            vec![0x82, 0xCB, 0x00, 0x00, 0x00],
            vec![0x00, 0x70, 0x80, 0x02],
        ]
    );
    assert_eq!(card.lock().unwrap().powered_on, 1);
}

#[test]
fn ccho_of_a_missing_application_closes_the_channel() {
    let (mut m, card) = modem(AtOptions {
        echo: false,
        ..AtOptions::default()
    });
    assert_eq!(talk(&mut m, "AT+CCHO=\"EE01\"\r"), "\r\n+CME ERROR: 22\r\n");
    assert_eq!(
        card.lock().unwrap().seen.last().unwrap(),
        &vec![0x00, 0x70, 0x80, 0x02]
    );
    assert!(m.sessions().is_empty());
    assert_eq!(talk(&mut m, "AT+CMEE=2\r"), "\r\nOK\r\n");
    assert_eq!(
        talk(&mut m, "AT+CCHO=\"EE01\"\r"),
        "\r\n+CME ERROR: not found\r\n"
    );
    assert_eq!(talk(&mut m, "AT+CMEE=0\r"), "\r\nOK\r\n");
    assert_eq!(talk(&mut m, "AT+CCHO=\"EE01\"\r"), "\r\nERROR\r\n");
}

#[test]
fn lost_sim_is_sim_failure_then_recovers() {
    let (mut m, card) = modem(AtOptions {
        echo: false,
        ..AtOptions::default()
    });
    assert_eq!(
        talk(&mut m, "AT+CCHO=\"A0000005590010\"\r"),
        "\r\n+CCHO: 1\r\n\r\nOK\r\n"
    );
    card.lock().unwrap().drop_next = true;
    assert_eq!(
        talk(&mut m, "AT+CSIM=8,\"00B00000\"\r"),
        "\r\n+CME ERROR: 13\r\n"
    );
    assert!(m.sessions().is_empty());
    assert_eq!(
        talk(&mut m, "AT+CSIM=8,\"00B00000\"\r"),
        "\r\n+CSIM: 6,\"009000\"\r\n\r\nOK\r\n"
    );
    assert_eq!(card.lock().unwrap().powered_on, 2);
}

#[test]
fn switched_off_commands_are_errors() {
    let (mut m, card) = modem(AtOptions {
        echo: false,
        csim: false,
        cgla: false,
        ..AtOptions::default()
    });
    for line in [
        "AT+CSIM=4,\"0000\"\r",
        "AT+CCHO=\"A000\"\r",
        "AT+CSIM=?\r",
        "AT+CCHC=?\r",
    ] {
        assert_eq!(talk(&mut m, line), "\r\nERROR\r\n", "{line}");
    }
    assert!(card.lock().unwrap().seen.is_empty());
}

#[test]
fn urc_comes_before_the_answer() {
    let (mut m, _) = modem(AtOptions {
        echo: false,
        urc: Some(UrcPlan {
            every: 2,
            lines: vec!["RING".to_owned()],
        }),
        ..AtOptions::default()
    });
    assert_eq!(talk(&mut m, "AT\r"), "\r\nOK\r\n");
    assert_eq!(
        talk(&mut m, "AT+CSIM=4,\"0000\"\r"),
        "\r\nRING\r\n\r\n+CSIM: 6,\"009000\"\r\n\r\nOK\r\n"
    );
}

/// Every line a modem with echo off may write.
fn is_known_line(line: &str) -> bool {
    let quoted = |rest: &str| {
        let Some((n, hex)) = rest.split_once(',') else {
            return false;
        };
        let hex = hex.trim_matches('"');
        n.parse() == Ok(hex.len()) && crate::hex::decode(hex).is_some()
    };
    matches!(
        line,
        "OK" | "ERROR"
            | "+CPIN: READY"
            | "iotsafe-vcard virtual modem"
            | "+CFUN: 0"
            | "+CFUN: 1"
            | "+CFUN: 4"
            | "+CFUN: (0,1,4),(0,1)"
    ) || line
        .strip_prefix("+CME ERROR: ")
        .is_some_and(|n| n.parse::<u16>().is_ok())
        || line
            .strip_prefix("+CCHO: ")
            .is_some_and(|n| n.parse::<u32>().is_ok())
        || line.strip_prefix("+CSIM: ").is_some_and(quoted)
        || line.strip_prefix("+CGLA: ").is_some_and(quoted)
}

proptest::proptest! {
    #[test]
    fn any_bytes_in_any_pieces_get_only_well_formed_answers(
        input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
        piece in 1usize..64,
    ) {
        let (mut m, _) = modem(AtOptions {
            echo: false,
            max_line: 128,
            ..AtOptions::default()
        });
        let mut out = Vec::new();
        let stop = AtomicBool::new(false);
        for chunk in input.chunks(piece) {
            m.feed(chunk, &mut out, &stop).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            proptest::prop_assert!(is_known_line(line), "{line:?}");
        }
        proptest::prop_assert!(m.line.held() <= 128);
    }

    #[test]
    fn any_apdu_round_trips_through_csim(
        apdu in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
        spaces in 0usize..3,
        lower in proptest::prelude::any::<bool>(),
    ) {
        let (mut m, card) = modem(AtOptions {
            echo: false,
            ..AtOptions::default()
        });
        let mut hex = crate::hex::encode_upper(&apdu);
        if lower {
            hex = hex.to_ascii_lowercase();
        }
        let pad = " ".repeat(spaces);
        let line = format!("AT+CSIM={pad}{},{pad}\"{hex}\"\r", hex.len());
        let answer = talk(&mut m, &line);
        let expected = card.lock().unwrap().seen.last().cloned();
        proptest::prop_assert_eq!(expected.as_deref(), Some(&apdu[..]));
        let response = crate::hex::encode_upper(&[apdu[0], 0x90, 0x00]);
        let want = match apdu[..] {
            [_, 0x70, 0x00, 0x00, ..] => "\r\n+CSIM: 6,\"029000\"\r\n\r\nOK\r\n".to_owned(),
            [_, 0xA4, 0x04, 0x00, _, 0xEE, ..] => "\r\n+CSIM: 4,\"6A82\"\r\n\r\nOK\r\n".to_owned(),
            _ => format!("\r\n+CSIM: 6,\"{response}\"\r\n\r\nOK\r\n"),
        };
        proptest::prop_assert_eq!(answer, want);
    }
}

#[test]
fn t0_channel_open_follows_61xx() {
    struct T0;
    impl CardHandler for T0 {
        fn atr(&self) -> Vec<u8> {
            Vec::new()
        }
        fn power_on(&mut self) {}
        fn power_off(&mut self) {}
        fn reset(&mut self) {}
        fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
            match apdu {
                [0x00, 0x70, 0x00, 0x00, 0x01] => vec![0x61, 0x01],
                [0x00, 0xC0, 0x00, 0x00, 0x01] => vec![0x05, 0x90, 0x00],
                [0x41, 0xA4, ..] => vec![0x61, 0x10],
                _ => vec![0x6E, 0x00],
            }
        }
    }
    let mut m = AtModem::new(
        super::super::share(T0),
        AtOptions {
            echo: false,
            ..AtOptions::default()
        },
    );
    assert_eq!(
        talk(&mut m, "AT+CCHO=\"A0000005590010\"\r"),
        "\r\n+CCHO: 1\r\n\r\nOK\r\n"
    );
    assert_eq!(m.sessions().channel(1), Some(5));
}

#[test]
fn cmee_starts_as_configured_and_a_modem_may_refuse_it() {
    let (mut m, _) = modem(AtOptions {
        echo: false,
        cmee: 0,
        ..AtOptions::default()
    });
    assert_eq!(talk(&mut m, "AT+CGLA=7,4,\"00B0\"\r"), "\r\nERROR\r\n");
    assert_eq!(talk(&mut m, "AT+CMEE=1\r"), "\r\nOK\r\n");
    assert_eq!(
        talk(&mut m, "AT+CGLA=7,4,\"00B0\"\r"),
        "\r\n+CME ERROR: 21\r\n"
    );
    // ATZ: back to the start mode, not to numeric codes.
    assert_eq!(talk(&mut m, "ATZ\r"), "\r\nOK\r\n");
    assert_eq!(talk(&mut m, "AT+CGLA=7,4,\"00B0\"\r"), "\r\nERROR\r\n");

    let (mut m, _) = modem(AtOptions {
        echo: false,
        cmee: 2,
        cmee_settable: false,
        ..AtOptions::default()
    });
    assert_eq!(talk(&mut m, "AT+CMEE=1\r"), "\r\nERROR\r\n");
    assert_eq!(
        talk(&mut m, "AT+CGLA=7,4,\"00B0\"\r"),
        "\r\n+CME ERROR: invalid index\r\n"
    );
}

#[test]
fn a_modem_restart_from_another_connection_restores_the_start_settings() {
    let card: SharedCard = Arc::new(Mutex::new(Recorder::default()));
    let shared = SharedModem::new();
    let options = AtOptions {
        cmee: 0,
        ..AtOptions::default()
    };
    let mut first = AtModem::attached(card.clone(), options.clone(), &shared);
    let mut second = AtModem::attached(card, options, &shared);
    assert_eq!(talk(&mut first, "ATE0\r"), "ATE0\r\r\nOK\r\n");
    assert_eq!(talk(&mut first, "AT+CMEE=1\r"), "\r\nOK\r\n");
    assert_eq!(
        talk(&mut first, "AT+CCHO=\"A0000005590010\"\r"),
        "\r\n+CCHO: 1\r\n\r\nOK\r\n"
    );
    // A SIM switched off and on is no modem restart: the settings stay.
    assert_eq!(talk(&mut second, "AT+CFUN=0\r"), "AT+CFUN=0\r\r\nOK\r\n");
    assert_eq!(talk(&mut second, "AT+CFUN=1\r"), "AT+CFUN=1\r\r\nOK\r\n");
    assert_eq!(
        talk(&mut first, "AT+CGLA=1,4,\"00B0\"\r"),
        "\r\n+CME ERROR: 21\r\n"
    );
    // A modem restart: echo back on, AT+CMEE back to 0, on every connection.
    assert_eq!(
        talk(&mut second, "AT+CFUN=1,1\r"),
        "AT+CFUN=1,1\r\r\nOK\r\n"
    );
    assert_eq!(
        talk(&mut first, "AT+CGLA=1,4,\"00B0\"\r"),
        "AT+CGLA=1,4,\"00B0\"\r\r\nERROR\r\n"
    );
}

#[test]
fn the_first_ccho_after_a_reset_finds_the_sim_busy() {
    let (mut m, card) = modem(AtOptions {
        echo: false,
        busy_after_reset: 2,
        ..AtOptions::default()
    });
    let open = "AT+CCHO=\"A0000005590010\"\r";
    // Not at start: only after a reset.
    assert_eq!(talk(&mut m, open), "\r\n+CCHO: 1\r\n\r\nOK\r\n");
    assert_eq!(talk(&mut m, "AT+CFUN=1,1\r"), "\r\nOK\r\n");
    let seen = card.lock().unwrap().seen.len();
    assert_eq!(talk(&mut m, open), "\r\n+CME ERROR: 14\r\n");
    assert_eq!(talk(&mut m, "AT+CMEE=2\r"), "\r\nOK\r\n");
    assert_eq!(talk(&mut m, open), "\r\n+CME ERROR: SIM busy\r\n");
    assert_eq!(
        card.lock().unwrap().seen.len(),
        seen,
        "the card saw nothing"
    );
    assert_eq!(talk(&mut m, open), "\r\n+CCHO: 2\r\n\r\nOK\r\n");
    // A lost SIM is a reset too.
    card.lock().unwrap().drop_next = true;
    assert_eq!(
        talk(&mut m, "AT+CSIM=8,\"00B00000\"\r"),
        "\r\n+CME ERROR: SIM failure\r\n"
    );
    assert_eq!(talk(&mut m, open), "\r\n+CME ERROR: SIM busy\r\n");
}

#[test]
fn a_late_answer_comes_before_the_answer_to_the_next_line() {
    let (mut m, card) = modem(AtOptions {
        echo: false,
        inject: Some(AtInjection::once(AtFault::Late, 1)),
        ..AtOptions::default()
    });
    // The command runs on the card at once; its answer waits for the host's next line.
    assert_eq!(talk(&mut m, "AT+CCHO=\"A0000005590010\"\r"), "");
    assert_eq!(m.sessions().len(), 1);
    assert_eq!(card.lock().unwrap().seen.len(), 2);
    assert_eq!(talk(&mut m, "AT\r"), "\r\n+CCHO: 1\r\n\r\nOK\r\n\r\nOK\r\n");
    assert_eq!(talk(&mut m, "AT\r"), "\r\nOK\r\n");
}
