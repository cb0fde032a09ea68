//! Property tests of the pure AT answer parser: no panics and bounded memory on any input.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

use iotsafe_core::at::parser::{parse_hex_payload, parse_session_id, AnswerParser, Progress};
use proptest::prelude::*;

/// Bytes that look like modem output often enough to reach every branch.
fn modem_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"OK".to_vec()),
        Just(b"ERROR".to_vec()),
        Just(b"+CME ERROR: 0".to_vec()),
        Just(b"+CSIM: ".to_vec()),
        Just(b"\"".to_vec()),
        Just(b",".to_vec()),
        Just(b"+CREG: 1,5".to_vec()),
        "[0-9A-Fa-f]{0,12}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn parser_never_panics_and_stays_bounded(
        bytes in modem_bytes(),
        splits in proptest::collection::vec(1usize..64, 1..8),
        max_line in 1usize..128,
        max_lines in 1usize..16,
    ) {
        let mut parser = AnswerParser::new(&["+CSIM:"]).with_limits(max_line, max_lines);
        let mut rest: &[u8] = &bytes;
        let mut i = 0;
        while !rest.is_empty() {
            let n = splits[i % splits.len()].min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            i += 1;
            match parser.feed(chunk) {
                Ok(Progress::Done(answer)) => {
                    prop_assert!(answer.info.len() <= max_lines);
                    for line in &answer.info {
                        prop_assert!(line.len() <= max_line);
                        let _ = parse_hex_payload(line, "+CSIM:");
                    }
                }
                Ok(Progress::NeedMore) => {}
                Err(_) => break,
            }
            prop_assert!(parser.leftover().len() <= max_line);
            prop_assert!(parser.info_lines().len() <= max_lines);
        }
    }

    #[test]
    fn payload_decoders_never_panic(line in "\\PC{0,200}") {
        let _ = parse_hex_payload(&line, "+CSIM:");
        let _ = parse_hex_payload(&line, "+CGLA:");
        let _ = parse_session_id(&line);
    }

    #[test]
    fn well_formed_answers_round_trip(data in proptest::collection::vec(any::<u8>(), 0..300), lower in any::<bool>(), quoted in any::<bool>()) {
        let mut hex: String = data.iter().chain([0x90u8, 0x00].iter()).map(|b| format!("{b:02X}")).collect();
        if lower { hex = hex.to_lowercase(); }
        let body = if quoted { format!("\"{hex}\"") } else { hex.clone() };
        let text = format!("\r\n+CSIM: {},{body}\r\n\r\nOK\r\n", hex.len());
        let mut parser = AnswerParser::new(&["+CSIM:"]);
        match parser.feed(text.as_bytes()).unwrap() {
            Progress::Done(answer) => {
                let payload = parse_hex_payload(&answer.info[0], "+CSIM:").unwrap();
                let mut expected = data.clone();
                expected.extend([0x90, 0x00]);
                prop_assert_eq!(payload.bytes, expected);
            }
            Progress::NeedMore => prop_assert!(false, "answer incomplete"),
        }
    }
}
