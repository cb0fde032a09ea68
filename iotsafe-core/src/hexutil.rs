//! Hex helpers for configuration strings, traces and messages.

/// Upper-case hex.
pub fn encode(bytes: &[u8]) -> String {
    crate::error::hex(bytes)
}

/// Decodes hex, ignoring ASCII white space; `None` on odd length or a non-hex character.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::decode("01 a4 04").unwrap(), [1, 0xA4, 4]);
        assert_eq!(super::encode(&[1, 0xA4]), "01A4");
        assert!(super::decode("0").is_none());
        assert!(super::decode("zz").is_none());
    }
}
