//! Decoding the data of a `+CSIM:` / `+CGLA:` information line, and the session id of an
//! `AT+CCHO` answer.

use crate::hexutil;
use crate::prelude::*;
use core::fmt;

use zeroize::Zeroizing;

use super::strip_prefix_ignore_case;

/// The payload of a `+CSIM:` / `+CGLA:` information line, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexPayload {
    /// The decoded bytes (response data followed by SW1 SW2), in a block of their exact size. They
    /// may be a secret (a DH output): whoever takes them wipes them (`Zeroizing`).
    pub bytes: Vec<u8>,
    /// The length the modem announced, in hex characters, when it gave one (it always matches
    /// the hex: a length that does not is refused with [`PayloadError::LengthMismatch`]).
    pub announced_len: Option<usize>,
}

/// Why an information line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// The line does not start with the prefix.
    MissingPrefix,
    /// No hex data after the prefix.
    Empty,
    /// A character that is not a hex digit (after quotes and spaces are removed).
    NotHex(char),
    /// An odd number of hex digits.
    OddLength(usize),
    /// The announced length (hex characters) is not the number of hex digits that came. A line cut
    /// short would otherwise pass its last data bytes off as SW1 SW2.
    LengthMismatch {
        /// Hex characters announced before the comma.
        announced: usize,
        /// Hex digits received.
        received: usize,
    },
    /// Text before the comma that is not a decimal length.
    BadLength,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::MissingPrefix => f.write_str("the line lacks the expected prefix"),
            PayloadError::Empty => f.write_str("the line carries no data"),
            PayloadError::NotHex(c) => write!(f, "{c:?} is not a hex digit"),
            PayloadError::OddLength(n) => write!(f, "odd number of hex digits ({n})"),
            PayloadError::LengthMismatch {
                announced,
                received,
            } => write!(
                f,
                "the modem announced {announced} hex digits but sent {received}"
            ),
            PayloadError::BadLength => f.write_str("the length before the comma is not a number"),
        }
    }
}

impl core::error::Error for PayloadError {}

/// Decodes `+CSIM: 6,"019000"` (or `+CGLA: ...`): quotes may be missing (Sequans GMS01Q), hex
/// may be lower case, spaces may appear anywhere, and the length may be left out. A length that is
/// given must be a decimal number equal to the count of hex digits that follow (27.007 counts hex
/// characters): anything else is an error, because the status word is read from the last four
/// digits and a line cut short would turn data into a status word.
pub fn parse_hex_payload(line: &str, prefix: &str) -> Result<HexPayload, PayloadError> {
    let rest = strip_prefix_ignore_case(line.trim(), prefix).ok_or(PayloadError::MissingPrefix)?;
    let rest = rest.trim();
    // `<len>,<data>`; a modem that leaves the length out gives just `<data>`.
    let (announced_len, data) = match rest.split_once(',') {
        Some((len, data)) => (
            Some(
                len.trim()
                    .parse::<usize>()
                    .map_err(|_| PayloadError::BadLength)?,
            ),
            data,
        ),
        None => (None, rest),
    };
    // The hex may be a secret's: wiped when dropped, and sized up front (never grows).
    let mut digits = Zeroizing::new(Vec::with_capacity(data.len()));
    for c in data.chars() {
        match c {
            '"' | ' ' | '\t' => {}
            c if c.is_ascii_hexdigit() => digits.push(c as u8),
            c => return Err(PayloadError::NotHex(c)),
        }
    }
    if digits.is_empty() {
        return Err(PayloadError::Empty);
    }
    if digits.len() % 2 != 0 {
        return Err(PayloadError::OddLength(digits.len()));
    }
    // Every digit was checked above, and their count is even.
    let bytes = hexutil::decode_digits(&digits).ok_or(PayloadError::OddLength(digits.len()))?;
    if let Some(announced) = announced_len.filter(|&n| n != digits.len()) {
        return Err(PayloadError::LengthMismatch {
            announced,
            received: digits.len(),
        });
    }
    Ok(HexPayload {
        bytes,
        announced_len,
    })
}

/// Decodes the session id of an `AT+CCHO` answer: `+CCHO: 1`, `+CCHO:1` or a bare `1`.
pub fn parse_session_id(line: &str) -> Option<u32> {
    let line = line.trim();
    let rest = strip_prefix_ignore_case(line, "+CCHO:").unwrap_or(line);
    rest.trim().trim_matches('"').trim().parse::<u32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_lower_case_and_spaces() {
        let p = parse_hex_payload("+CSIM: 6,019000", "+CSIM:").unwrap();
        assert_eq!(p.bytes, vec![0x01, 0x90, 0x00]);
        let p = parse_hex_payload("+csim:4,\"6c0a\"", "+CSIM:").unwrap();
        assert_eq!(p.bytes, vec![0x6C, 0x0A]);
        let p = parse_hex_payload("+CSIM: 6 , \"01 90 00\" ", "+CSIM:").unwrap();
        assert_eq!(p.bytes, vec![0x01, 0x90, 0x00]);
    }

    #[test]
    fn wrong_length_is_refused() {
        // A line cut short: the card sent 01 02 03 04 90 00, the modem passed on 8 digits only.
        // Read leniently, 03 04 would pass for the status word.
        assert_eq!(
            parse_hex_payload("+CSIM: 12,\"01020304\"", "+CSIM:"),
            Err(PayloadError::LengthMismatch {
                announced: 12,
                received: 8
            })
        );
        assert_eq!(
            parse_hex_payload("+CGLA: 8,\"019000\"", "+CGLA:"),
            Err(PayloadError::LengthMismatch {
                announced: 8,
                received: 6
            })
        );
        // Too long is as wrong as too short.
        assert_eq!(
            parse_hex_payload("+CSIM: 4,\"019000\"", "+CSIM:"),
            Err(PayloadError::LengthMismatch {
                announced: 4,
                received: 6
            })
        );
        assert_eq!(
            parse_hex_payload("+CSIM: x4,\"9000\"", "+CSIM:"),
            Err(PayloadError::BadLength)
        );
        let err = parse_hex_payload("+CSIM: 12,\"01020304\"", "+CSIM:").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the modem announced 12 hex digits but sent 8"
        );
        // The right length still decodes, spaces and all.
        let p = parse_hex_payload("+CSIM: 6 , \"01 90 00\"", "+CSIM:").unwrap();
        assert_eq!(p.announced_len, Some(6));
    }

    #[test]
    fn missing_length_is_tolerated() {
        let p = parse_hex_payload("+CSIM: \"9000\"", "+CSIM:").unwrap();
        assert_eq!(p.bytes, vec![0x90, 0x00]);
        assert_eq!(p.announced_len, None);
    }

    #[test]
    fn bad_payloads_are_typed_errors() {
        assert_eq!(
            parse_hex_payload("+CSIM: 4,\"90G0\"", "+CSIM:"),
            Err(PayloadError::NotHex('G'))
        );
        assert_eq!(
            parse_hex_payload("+CSIM: 3,\"900\"", "+CSIM:"),
            Err(PayloadError::OddLength(3))
        );
        assert_eq!(
            parse_hex_payload("+CSIM: 0,\"\"", "+CSIM:"),
            Err(PayloadError::Empty)
        );
        assert_eq!(
            parse_hex_payload("+CGLA: 4,\"9000\"", "+CSIM:"),
            Err(PayloadError::MissingPrefix)
        );
    }
}
