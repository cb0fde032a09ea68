#![no_main]
//! The AT answer parser (what a modem sends back to AT+CSIM / AT+CCHO / AT+CGLA) on arbitrary
//! bytes, fed in arbitrary pieces: no panic, the line and line-count bounds hold, an answer once
//! complete stays complete, and the payload and session-id parsers accept what they see or say why.
use iotsafe_core::at::parser::{
    parse_hex_payload, parse_session_id, redact_answer_line, AnswerParser, FinalResult, Progress,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&shape, bytes)) = data.split_first() else {
        return;
    };
    let max_line = 16 + usize::from(shape & 0x3F) * 8;
    let max_lines = 1 + usize::from(shape >> 6) * 4;
    let mut parser = AnswerParser::new(&["+CSIM:", "+CGLA:", "+CCHO:"])
        .accept_bare_number(shape & 1 == 1)
        .with_limits(max_line, max_lines);
    // Feed in pieces whose sizes come from the input itself.
    let mut rest = bytes;
    let mut done = false;
    while !rest.is_empty() {
        let n = (usize::from(rest[0]) % 7 + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        match parser.feed(piece) {
            Ok(Progress::Done(answer)) => {
                assert!(!done, "a second answer from one parser");
                done = true;
                for line in &answer.info {
                    assert!(line.len() <= max_line, "a kept line beyond the bound");
                    let _ = parse_hex_payload(line, "+CSIM:");
                    let _ = parse_hex_payload(line, "+CGLA:");
                    let _ = parse_session_id(line);
                    let _ = redact_answer_line(line);
                }
                let _ = answer.summary();
            }
            Ok(Progress::NeedMore) => {}
            Err(_) => break,
        }
        assert!(parser.info_lines().len() <= max_lines + 1);
        let _ = parser.partial_summary();
    }
    // The same bytes, one line at a time, through the single-line helpers.
    for line in bytes.split(|b| *b == b'\n' || *b == b'\r') {
        let line = String::from_utf8_lossy(line);
        let _ = FinalResult::from_line(&line);
        let _ = parse_hex_payload(&line, "+CSIM:");
        let _ = parse_session_id(&line);
        let _ = redact_answer_line(&line);
    }
});
