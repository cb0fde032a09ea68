//! The card's own tolerant reader for the simple TLVs of IoT.05 command data.
//!
//! Hosts disagree on length encodings (see `docs/protocol.md#tlv-forms`): most write one length byte, tag `33`
//! (signature) often carries a two-byte length (`33 00 40`), and Thales writes BER long forms (`81 xx`,
//! `82 xx xx`) for long `9B`/`34` values while ZARIOT writes `9B FD` (one byte, 253). The reader accepts
//! all of them and never panics: a value running past the end of the data is a [`TlvError`], which the
//! dispatcher answers with `6700`.
//!
//! This is deliberately not `iotsafe-core`'s codec: the card and the client are pinned to the reference
//! bytes independently, so an encoding mistake on one side cannot hide behind the same mistake on the other.

use crate::quirks::TlvLengths;

/// The tag of the signature TLV, whose length may be written on two bytes.
const TAG_SIGNATURE: u8 = 0x33;

/// One tag-length-value element borrowed from the command data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The one-byte tag.
    pub tag: u8,
    /// The value bytes.
    pub value: &'a [u8],
}

/// The command data is not a well-formed TLV sequence (a length runs past the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvError;

/// Splits `data` into TLVs. Fails if any length runs past the end of the data.
pub fn parse(data: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&tag, after_tag)) = rest.split_first() {
        let (value, remainder) = split_value(tag, after_tag)?;
        out.push(Tlv { tag, value });
        rest = remainder;
    }
    Ok(out)
}

/// Reads the length at the start of `bytes` (just after the tag) and splits off the value.
fn split_value(tag: u8, bytes: &[u8]) -> Result<(&[u8], &[u8]), TlvError> {
    let first = *bytes.first().ok_or(TlvError)?;
    let mut candidates: Vec<(usize, usize)> = Vec::with_capacity(2);
    // (header length after the tag, value length)
    if tag == TAG_SIGNATURE && first == 0x00 {
        if let Some(len) = be_len(bytes.get(0..2)) {
            candidates.push((2, len));
        }
    }
    if (0x81..=0x83).contains(&first) {
        let n = usize::from(first - 0x80);
        if let Some(len) = be_len(bytes.get(1..1 + n)) {
            candidates.push((1 + n, len));
        }
    }
    candidates.push((1, usize::from(first)));

    // A candidate that ends exactly at the end of the data wins (the common single-TLV case, where a
    // one-byte length of 0x81..0x83 and a BER long form can both be read); otherwise the first that fits.
    let fits =
        |&(head, len): &(usize, usize)| head.checked_add(len).filter(|end| *end <= bytes.len());
    let chosen = candidates
        .iter()
        .find(|c| fits(c) == Some(bytes.len()))
        .or_else(|| candidates.iter().find(|c| fits(c).is_some()))
        .ok_or(TlvError)?;
    let (head, len) = *chosen;
    let value = bytes.get(head..head + len).ok_or(TlvError)?;
    let rest = bytes.get(head + len..).ok_or(TlvError)?;
    Ok((value, rest))
}

fn be_len(bytes: Option<&[u8]>) -> Option<usize> {
    let bytes = bytes?;
    Some(
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
    )
}

/// The value of the first TLV with `tag`, if any.
pub fn find<'a>(tlvs: &[Tlv<'a>], tag: u8) -> Option<&'a [u8]> {
    tlvs.iter().find(|t| t.tag == tag).map(|t| t.value)
}

/// Appends a TLV with a BER length (one byte below 128, `81 xx` up to 255, `82 xx xx` above).
pub fn push(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    push_with(out, tag, value, TlvLengths::Ber);
}

/// Appends a TLV, writing a length of 128..=255 as `style` says (BER `81 xx` or one plain byte).
/// Longer values always get `82 xx xx`; values longer than 65 535 bytes (never built by the card) are
/// cut to that.
pub fn push_with(out: &mut Vec<u8>, tag: u8, value: &[u8], style: TlvLengths) {
    let value = value.get(..value.len().min(0xFFFF)).unwrap_or(value);
    out.push(tag);
    let len = value.len();
    match (u8::try_from(len), style) {
        (Ok(n), _) if n < 0x80 => out.push(n),
        (Ok(n), TlvLengths::OneByte) => out.push(n),
        (Ok(n), TlvLengths::Ber) => out.extend_from_slice(&[0x81, n]),
        (Err(_), _) => {
            out.push(0x82);
            out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_lengths() {
        let t = parse(&[0x84, 0x01, 0x01, 0xA1, 0x01, 0x03]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(find(&t, 0xA1), Some(&[0x03][..]));
    }

    #[test]
    fn signature_two_byte_length() {
        let mut d = vec![0x9E, 0x01, 0xAA, 0x33, 0x00, 0x40];
        d.extend([7u8; 64]);
        let t = parse(&d).unwrap();
        assert_eq!(find(&t, 0x33).unwrap().len(), 64);
    }

    #[test]
    fn signature_one_byte_length() {
        let mut d = vec![0x33, 0x40];
        d.extend([7u8; 64]);
        assert_eq!(find(&parse(&d).unwrap(), 0x33).unwrap().len(), 64);
    }

    #[test]
    fn ber_long_form_and_one_byte_0x81() {
        let mut ber = vec![0x9B, 0x81, 0x90];
        ber.extend([1u8; 0x90]);
        assert_eq!(find(&parse(&ber).unwrap(), 0x9B).unwrap().len(), 0x90);
        let mut short = vec![0x9B, 0x81];
        short.extend([1u8; 0x81]);
        assert_eq!(find(&parse(&short).unwrap(), 0x9B).unwrap().len(), 0x81);
        let mut zariot = vec![0x9B, 0xFD];
        zariot.extend([1u8; 0xFD]);
        assert_eq!(find(&parse(&zariot).unwrap(), 0x9B).unwrap().len(), 0xFD);
    }

    #[test]
    fn written_lengths() {
        let mut out = Vec::new();
        push(&mut out, 0xC1, &[7u8; 0x7F]);
        assert_eq!(out[..2], [0xC1, 0x7F]);
        for (len, style, head) in [
            (0x80, TlvLengths::Ber, vec![0xC1, 0x81, 0x80]),
            (0xFF, TlvLengths::Ber, vec![0xC1, 0x81, 0xFF]),
            (0x80, TlvLengths::OneByte, vec![0xC1, 0x80]),
            (0xFF, TlvLengths::OneByte, vec![0xC1, 0xFF]),
            (0x100, TlvLengths::OneByte, vec![0xC1, 0x82, 0x01, 0x00]),
            (0x1234, TlvLengths::Ber, vec![0xC1, 0x82, 0x12, 0x34]),
        ] {
            let mut out = Vec::new();
            push_with(&mut out, 0xC1, &vec![7u8; len], style);
            assert_eq!(out[..head.len()], head[..], "{len} {style:?}");
            assert_eq!(out.len(), head.len() + len);
        }
    }

    #[test]
    fn truncated_is_an_error() {
        assert_eq!(parse(&[0x84, 0x03, 0x01]), Err(TlvError));
        assert_eq!(parse(&[0x84]), Err(TlvError));
    }
}
