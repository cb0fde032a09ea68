//! The crate's one hex codec: configuration strings, traces, messages and the AT transport's
//! hex payloads all go through it.

use crate::prelude::*;
use core::fmt::Write as _;

/// Upper-case hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_upper(&mut s, bytes);
    s
}

/// Appends the upper-case hex of `bytes` to `out` (which the caller may have sized, and made
/// `Zeroizing`, for a secret-bearing line).
pub fn push_upper(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
}

/// The value of one hex digit, either case; `None` for anything else.
pub fn digit_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex, ignoring ASCII white space; `None` on odd length or a non-hex character.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    decode_digits(&digits)
}

/// Decodes hex digits (ASCII, either case), two a byte, into a vector of its final size (it never
/// grows, so a secret's bytes are not left behind in a freed block); `None` on odd length or a
/// non-hex digit.
pub fn decode_digits(digits: &[u8]) -> Option<Vec<u8>> {
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks_exact(2) {
        out.push(digit_value(pair[0])? << 4 | digit_value(pair[1])?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::decode("01 a4 04").unwrap(), [1, 0xA4, 4]);
        assert_eq!(super::encode(&[1, 0xA4]), "01A4");
        assert!(super::decode("0").is_none());
        assert!(super::decode("zz").is_none());
        assert_eq!(super::decode_digits(b"0aF1").unwrap(), [0x0A, 0xF1]);
        assert!(super::decode_digits(b"0a 1").is_none());
    }
}
