//! What of a modem's answer may appear in logs and errors: an information line keeps its length
//! and status word, an echoed command keeps its APDU header, and nothing else of the data.

use super::strip_prefix_ignore_case;
use crate::prelude::*;

/// An information line with its data replaced by `…`, keeping the length and the last four hex
/// digits (the status word): `+CSIM: 136,"…9000"`.
pub fn redact_answer_line(line: &str) -> String {
    // `+CSIM: <len>,<data>`, or `+CSIM: <data>` from a modem that leaves the length out.
    let Some((head, separator, data)) = line
        .split_once(',')
        .map(|(h, d)| (h, ',', d))
        .or_else(|| line.split_once(':').map(|(h, d)| (h, ':', d)))
    else {
        return abbreviate(line, 80);
    };
    let hex_digits = |c: &char| c.is_ascii_hexdigit();
    if data.chars().filter(hex_digits).count() <= 4 {
        return abbreviate(line, 80);
    }
    // Only the last four digits are copied: a copy of all of them would be a copy of the secret.
    let mut status: Vec<char> = data.chars().rev().filter(hex_digits).take(4).collect();
    status.reverse();
    let status: String = status.into_iter().collect();
    format!("{}{separator}\"…{status}\"", abbreviate(head, 40))
}

/// A skipped line for diagnostics. The echo of a command (`AT...`) keeps only the APDU header
/// (ten hex digits after the quote); other lines (URCs) are kept, abbreviated.
pub(super) fn redact_skipped_line(line: &str) -> String {
    if strip_prefix_ignore_case(line, "AT").is_some() {
        if let Some((head, data)) = line.split_once('"') {
            let data = data.trim_end_matches('"');
            let header: String = data.chars().take(10).collect();
            let tail = if data.chars().count() > 10 {
                "…"
            } else {
                "\""
            };
            return format!("{}\"{header}{tail}", abbreviate(head, 40));
        }
    }
    abbreviate(line, 120)
}

/// At most `max` characters of `text`, with `…` when cut.
fn abbreviate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::super::AnswerParser;
    use super::*;

    #[test]
    fn redaction_keeps_length_and_status_word_only() {
        assert_eq!(
            redact_answer_line("+CSIM: 12,\"0102030405069000\""),
            "+CSIM: 12,\"…9000\""
        );
        assert_eq!(redact_answer_line("+CSIM: 4,\"6142\""), "+CSIM: 4,\"6142\"");
        assert_eq!(redact_answer_line("+CCHO: 1"), "+CCHO: 1");
        assert_eq!(
            redact_skipped_line("AT+CSIM=78,\"002B8001229E20AABBCCDD\""),
            "AT+CSIM=78,\"002B800122…"
        );
        let mut parser = AnswerParser::new(&["+CSIM:"]);
        let _ = parser.feed(b"+CSIM: 12,\"0102030405069000\"\r\n+CSIM: 4,\"AABB");
        let partial = parser.partial_summary();
        assert!(
            !partial.contains("0102") && !partial.contains("AABB"),
            "{partial}"
        );
    }

    #[test]
    fn redaction_without_a_length_field_hides_the_data_too() {
        assert_eq!(
            redact_answer_line("+CSIM: 0102030405069000"),
            "+CSIM:\"…9000\""
        );
        assert_eq!(redact_answer_line("+CSIM: \"9000\""), "+CSIM: \"9000\"");
        assert_eq!(redact_answer_line("+CCHO:1"), "+CCHO:1");
    }

    #[test]
    fn abbreviate_is_char_safe() {
        assert_eq!(abbreviate("ééé", 2), "éé…");
        assert_eq!(abbreviate("ab", 2), "ab");
    }
}
