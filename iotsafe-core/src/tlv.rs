//! A tolerant TLV codec for the forms IoT SAFE cards use.
//!
//! IoT SAFE data fields are runs of one-byte tags with these length forms, all seen on real cards:
//! - one byte, `00`..`7F` (and `80`..`FF` from applets that write a plain byte, e.g. ZARIOT's `9B FD`);
//! - BER long forms `81 xx`, `82 xx xx`, `83 xx xx xx` (Thales);
//! - the signature tag `33` with a two-byte big-endian length, `33 00 40` (wolfSSL, ZARIOT, newer
//!   Thales), next to the one-byte `33 40` (NTT, older Thales).
//!
//! Choice for the ambiguous cases (`iotsafe-apdu.md` §2 leaves them open), written down here:
//! - Tag `33` whose first length byte is `00` is read as a two-byte length (an empty signature is
//!   meaningless, so nothing is lost); so is a `33 01 00`/`33 02 xx` length that ends exactly at the
//!   end of the input (RSA signatures, Thales PKCS#11), since the signature is always the last TLV.
//! - A first length byte `81`/`82`/`83` is read as BER long form, unless only the plain one-byte
//!   reading ends exactly at the end of the input or the BER reading does not fit. This keeps
//!   `9B 81 90 …` (BER) and `9B 81 …`/`9B FD …` (plain byte) readable.
//!
//! Parsing never panics and never allocates more than the input.

use std::fmt;

/// One parsed TLV, borrowing its value from the input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The one-byte tag.
    pub tag: u8,
    /// The value.
    pub value: &'a [u8],
}

impl fmt::Debug for Tlv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tlv({:02X}, {} bytes)", self.tag, self.value.len())
    }
}

/// Why a TLV run could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    /// The input ends inside a tag or length field.
    #[error("TLV at offset {offset}: the length field is cut short")]
    TruncatedLength {
        /// Offset of the TLV.
        offset: usize,
    },
    /// The value is longer than what is left of the input.
    #[error("TLV {tag:02X} at offset {offset} announces {announced} bytes, only {available} left")]
    TruncatedValue {
        /// The tag.
        tag: u8,
        /// Offset of the TLV.
        offset: usize,
        /// Announced length.
        announced: usize,
        /// Bytes left in the input.
        available: usize,
    },
}

/// The signature tag, whose length may be two bytes.
pub const TAG_SIGNATURE: u8 = 0x33;

/// Reads the TLV at the start of `input`; returns it and the number of bytes consumed.
pub fn read_one(input: &[u8], offset: usize) -> Result<(Tlv<'_>, usize), TlvError> {
    let tag = *input.first().ok_or(TlvError::TruncatedLength { offset })?;
    let first = *input.get(1).ok_or(TlvError::TruncatedLength { offset })?;
    let rest = &input[2..];
    let value_at = |header: usize, len: usize| -> Result<(Tlv<'_>, usize), TlvError> {
        let available = input.len() - header;
        if len > available {
            return Err(TlvError::TruncatedValue {
                tag,
                offset,
                announced: len,
                available,
            });
        }
        Ok((
            Tlv {
                tag,
                value: &input[header..header + len],
            },
            header + len,
        ))
    };
    if tag == TAG_SIGNATURE {
        if let Some(&second) = rest.first() {
            let two = usize::from(first) << 8 | usize::from(second);
            // `33 00 40`, or a two-byte length that ends exactly at the end of the input
            // (the signature is the last TLV of every command and answer that carries one).
            if first == 0x00 || (first <= 0x02 && two == input.len() - 3) {
                return value_at(3, two);
            }
        } else if first == 0x00 {
            return Err(TlvError::TruncatedLength { offset });
        }
    }
    let long_bytes = match first {
        0x81 => 1,
        0x82 => 2,
        0x83 => 3,
        _ => 0,
    };
    if long_bytes > 0 && rest.len() >= long_bytes {
        let len = rest[..long_bytes]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let header = 2 + long_bytes;
        let fits_ber = len <= input.len() - header;
        let plain_len = usize::from(first);
        let fits_plain = plain_len <= input.len() - 2;
        // A reading that ends exactly at the end of the input wins: long values are the last TLV
        // of their command (`9B`, `34`), so that is the reading the writer meant.
        let plain_exact = plain_len == input.len() - 2;
        let ber_exact = fits_ber && len == input.len() - header;
        if !plain_exact && (fits_ber || !fits_plain) || ber_exact {
            return value_at(header, len);
        }
    }
    value_at(2, usize::from(first))
}

/// Iterates over a run of TLVs. Stops at the first error, which it yields once.
pub struct TlvIter<'a> {
    input: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, TlvError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.input.is_empty() {
            return None;
        }
        match read_one(self.input, self.offset) {
            Ok((tlv, used)) => {
                self.input = &self.input[used..];
                self.offset += used;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterates over the TLVs of `input`.
pub fn iter(input: &[u8]) -> TlvIter<'_> {
    TlvIter {
        input,
        offset: 0,
        failed: false,
    }
}

/// Parses a whole run of TLVs.
pub fn parse_all(input: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    iter(input).collect()
}

/// The first TLV with `tag` in a run (a malformed run yields its error).
pub fn find(input: &[u8], tag: u8) -> Result<Option<&[u8]>, TlvError> {
    for tlv in iter(input) {
        let tlv = tlv?;
        if tlv.tag == tag {
            return Ok(Some(tlv.value));
        }
    }
    Ok(None)
}

/// How to write a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthForm {
    /// One byte below `80`, BER `81 xx` / `82 xx xx` above (Thales).
    #[default]
    Ber,
    /// Always one plain byte (values up to 255; Orange, Quantag, ZARIOT full-text chunks).
    OneByte,
    /// Always two bytes big-endian (the signature tag `33 00 40`).
    TwoBytes,
}

/// Appends one TLV to `out`. Fails (returns `false`, writes nothing) when the value does not fit the form.
pub fn write(out: &mut Vec<u8>, tag: u8, value: &[u8], form: LengthForm) -> bool {
    let len = value.len();
    match form {
        LengthForm::OneByte if len <= 0xFF => {
            out.push(tag);
            out.push(len as u8);
        }
        LengthForm::TwoBytes if len <= 0xFFFF => {
            out.push(tag);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        LengthForm::Ber if len < 0x80 => {
            out.push(tag);
            out.push(len as u8);
        }
        LengthForm::Ber if len <= 0xFF => {
            out.extend_from_slice(&[tag, 0x81, len as u8]);
        }
        LengthForm::Ber if len <= 0xFFFF => {
            out.extend_from_slice(&[tag, 0x82]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => return false,
    }
    out.extend_from_slice(value);
    true
}

/// Appends one TLV with a one-byte length (values of at most 127 bytes, the common IoT SAFE case).
pub(crate) fn push(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    let ok = write(out, tag, value, LengthForm::Ber);
    debug_assert!(ok, "internal TLV values are small");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn signature_forms() {
        let rs = [0x11u8; 64];
        let mut two = vec![0x33, 0x00, 0x40];
        two.extend_from_slice(&rs);
        let mut one = vec![0x33, 0x40];
        one.extend_from_slice(&rs);
        assert_eq!(find(&two, 0x33).unwrap().unwrap(), &rs);
        assert_eq!(find(&one, 0x33).unwrap().unwrap(), &rs);
        // A 256-byte RSA signature only fits the two-byte form: `33 01 00 …` (Thales PKCS#11).
        let mut rsa = vec![0x33, 0x01, 0x00];
        rsa.extend_from_slice(&[7u8; 256]);
        assert_eq!(find(&rsa, 0x33).unwrap().unwrap().len(), 256);
    }

    #[test]
    fn ber_and_plain_long_lengths() {
        let mut ber = vec![0x9B, 0x81, 0x90];
        ber.extend_from_slice(&[1u8; 0x90]);
        assert_eq!(find(&ber, 0x9B).unwrap().unwrap().len(), 0x90);
        let mut plain = vec![0x9B, 0xFD];
        plain.extend_from_slice(&[2u8; 0xFD]);
        assert_eq!(find(&plain, 0x9B).unwrap().unwrap().len(), 0xFD);
        // 81 as a plain length: 0x81 bytes follow, not a BER form.
        let mut plain81 = vec![0x9B, 0x81];
        plain81.extend_from_slice(&[3u8; 0x81]);
        assert_eq!(find(&plain81, 0x9B).unwrap().unwrap().len(), 0x81);
        let mut ber82 = vec![0x34, 0x82, 0x01, 0x00];
        ber82.extend_from_slice(&[4u8; 256]);
        assert_eq!(find(&ber82, 0x34).unwrap().unwrap().len(), 256);
    }

    #[test]
    fn truncation_is_an_error() {
        assert!(matches!(
            parse_all(&[0x84]),
            Err(TlvError::TruncatedLength { .. })
        ));
        assert!(matches!(
            parse_all(&[0x84, 0x02, 0x01]),
            Err(TlvError::TruncatedValue { .. })
        ));
        assert!(matches!(
            parse_all(&[0x33, 0x00]),
            Err(TlvError::TruncatedLength { .. })
        ));
        assert_eq!(parse_all(&[]).unwrap(), vec![]);
    }

    #[test]
    fn descriptor_from_reference() {
        // Quantag's private-key descriptor (iotsafe-apdu.md §3.3).
        let d = [
            0x84, 0x02, 0x00, 0x02, 0x74, 0x02, 0x31, 0x31, 0x60, 0x01, 0x02, 0x4B, 0x01, 0x13,
            0x4E, 0x01, 0x03, 0x61, 0x01, 0x07, 0x92, 0x01, 0x04, 0x91, 0x02, 0x00, 0x07, 0x6F,
            0x01, 0x01,
        ];
        let tags: Vec<u8> = parse_all(&d).unwrap().iter().map(|t| t.tag).collect();
        assert_eq!(tags, [0x84, 0x74, 0x60, 0x4B, 0x4E, 0x61, 0x92, 0x91, 0x6F]);
    }

    proptest! {
        #[test]
        fn never_panics(input in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_all(&input);
            for t in iter(&input).flatten() {
                prop_assert!(t.value.len() <= input.len());
            }
        }

        #[test]
        fn round_trips(items in proptest::collection::vec(
            (any::<u8>().prop_filter("not the signature tag", |t| *t != TAG_SIGNATURE),
             proptest::collection::vec(any::<u8>(), 0..300)), 0..6)) {
            let mut out = Vec::new();
            for (tag, value) in &items {
                prop_assert!(write(&mut out, *tag, value, LengthForm::Ber));
            }
            let parsed = parse_all(&out).unwrap();
            prop_assert_eq!(parsed.len(), items.len());
            for (p, (tag, value)) in parsed.iter().zip(&items) {
                prop_assert_eq!(p.tag, *tag);
                prop_assert_eq!(p.value, value.as_slice());
            }
        }

        #[test]
        fn signature_round_trips(value in proptest::collection::vec(any::<u8>(), 1..0x80),
                                 two in any::<bool>()) {
            let mut out = Vec::new();
            let form = if two { LengthForm::TwoBytes } else { LengthForm::OneByte };
            prop_assert!(write(&mut out, TAG_SIGNATURE, &value, form));
            prop_assert_eq!(find(&out, TAG_SIGNATURE).unwrap().unwrap(), value.as_slice());
        }
    }
}
