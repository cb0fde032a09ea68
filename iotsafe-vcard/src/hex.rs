//! The card's one hex codec: state file, AT lines, command-line flags. Its own, like the rest of
//! the card: it shares no code with the client it tests.

use std::fmt::Write as _;
use zeroize::Zeroizing;

/// Upper-case hex, as modems answer.
pub fn encode_upper(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// Lower-case hex in one block of its final size, wiped when dropped (the state file holds
/// private scalars this way).
pub fn encode_lower(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Decodes hex of either case; `None` for an odd length or any other character.
pub fn decode(hex: &str) -> Option<Vec<u8>> {
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks_exact(2) {
        let [hi, lo] = *pair else {
            return None;
        };
        out.push(nibble(hi)? << 4 | nibble(lo)?);
    }
    Some(out)
}

/// [`decode`], with ASCII white space allowed anywhere (flags and hand-edited state files).
pub fn decode_spaced(text: &str) -> Option<Vec<u8>> {
    let digits: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    decode(&digits)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        assert_eq!(encode_upper(&[0x01, 0xA4]), "01A4");
        assert_eq!(encode_lower(&[0x01, 0xA4]).as_str(), "01a4");
        assert_eq!(decode("01a4FF"), Some(vec![0x01, 0xA4, 0xFF]));
        assert_eq!(decode("0"), None);
        assert_eq!(decode("zz"), None);
        assert_eq!(decode("01 a4"), None);
        assert_eq!(decode("é0"), None);
        assert_eq!(decode_spaced(" 01 a4\n"), Some(vec![0x01, 0xA4]));
    }
}
