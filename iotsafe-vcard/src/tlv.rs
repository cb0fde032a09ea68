//! The card's own tolerant TLV codec for the simple TLVs of IoT.05 command data and answers.
//!
//! Hosts disagree on length encodings (see `docs/protocol.md#tlv-forms`): most write one length byte, tag `33`
//! (signature) often carries a two-byte length (`33 00 40`, `33 01 00` for an RSA signature), Thales
//! writes BER long forms (`81 xx`, `82 xx xx`, `83 xx xx xx`) for long `9B`/`34` values while ZARIOT
//! writes `9B FD` (one plain byte, 253). The reader accepts all of them and never panics: data that is
//! no run of TLVs under any reading is a [`TlvError`], which the dispatcher answers with `6700`.
//!
//! Where a length can be read two ways the card settles it by what follows, in this order:
//! 1. `33 00 xx`: always a two-byte length (an empty signature means nothing);
//! 2. a reading whose value ends exactly at the end of the data (long values and signatures are the
//!    last TLV of their command), the standard reading first (BER, or the two-byte `33` length);
//! 3. a reading after which the rest of the data still reads as a run of TLVs, BER before a plain
//!    byte; a two-byte `33 01 00`/`33 02 xx` length is only ever taken when it ends the data.
//!
//! So `D1 81 <129 bytes> D2 …` (a plain length, more TLVs after it) and `9B 81 90 <144 bytes> 9E …`
//! (BER, more after it) both read as written. Whether the rest reads is worked out once per run,
//! in one pass from its end: linear time whatever the bytes.
//!
//! This is deliberately not `iotsafe-core`'s codec: the card and the client are pinned to the reference
//! bytes independently, so an encoding mistake on one side cannot hide behind the same mistake on the
//! other. The rules above are the ones `docs/protocol.md#tlv-forms` documents for both, and the shared
//! vectors in the workspace's `tests/vectors/tlv.txt` run both codecs over the same bytes. The module
//! is public only so that those vectors can reach it; the card itself is its only other user.

use crate::quirks::TlvLengths;

/// The tag of the signature TLV, whose length may be written on two bytes.
const TAG_SIGNATURE: u8 = 0x33;

/// The longest value the card writes: `82 FF FF`. Its answers are never longer than an extended APDU.
pub const MAX_VALUE_LEN: usize = 0xFFFF;

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

/// A value too long for any length form the card writes: nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("TLV {tag:02X}: a value of {len} bytes does not fit a length field (at most {max})", max = MAX_VALUE_LEN)]
pub struct ValueTooLong {
    /// The tag of the TLV that was to be written.
    pub tag: u8,
    /// The length of its value.
    pub len: usize,
}

/// An answer the card cannot encode is `6F00` (no precise diagnosis), as a real applet answers an
/// internal failure; the host learns nothing but that the command failed.
impl From<ValueTooLong> for u16 {
    fn from(_: ValueTooLong) -> u16 {
        crate::sw::UNKNOWN_ERROR
    }
}

/// One way to read the length field of the TLV at some offset.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Tag and length bytes.
    header: usize,
    /// Value bytes.
    len: usize,
    /// Taken only when the value ends exactly at the end of the data (the two-byte `33 01 00` form).
    only_last: bool,
}

impl Reading {
    fn plain(len: u8) -> Reading {
        Reading {
            header: 2,
            len: usize::from(len),
            only_last: false,
        }
    }

    /// Where the TLV read this way ends, if that is inside the data.
    fn end(&self, at: usize, data_len: usize) -> Option<usize> {
        at.checked_add(self.header)?
            .checked_add(self.len)
            .filter(|end| *end <= data_len)
    }
}

/// The readings of the length field of the TLV at `data[at..]`: the standard one (BER, or the
/// two-byte `33` length) when there is one, then the plain byte. None at all when the data ends
/// before the tag, the length or the bytes a long form announces.
fn readings(data: &[u8], at: usize) -> [Option<Reading>; 2] {
    let (Some(&tag), Some(&first)) = (data.get(at), data.get(at + 1)) else {
        return [None, None];
    };
    let following = |count: usize| -> Option<usize> {
        let bytes = data.get(at + 2..at + 2 + count)?;
        Some(bytes.iter().fold(0, |len, b| len << 8 | usize::from(*b)))
    };
    let long = |header: usize, len: usize, only_last: bool| Reading {
        header,
        len,
        only_last,
    };
    match (tag, first) {
        // `33 00 40`: an empty signature means nothing, so `00` always starts a two-byte length.
        (TAG_SIGNATURE, 0x00) => [following(1).map(|len| long(3, len, false)), None],
        (TAG_SIGNATURE, 0x01..=0x02) => [
            following(1).map(|low| long(3, usize::from(first) << 8 | low, true)),
            Some(Reading::plain(first)),
        ],
        (_, 0x81..=0x83) => {
            let count = usize::from(first - 0x80);
            [
                following(count).map(|len| long(2 + count, len, false)),
                Some(Reading::plain(first)),
            ]
        }
        _ => [None, Some(Reading::plain(first))],
    }
}

/// Splits `data` into TLVs. Fails if no reading of its lengths makes it a run of TLVs to the end.
pub fn parse(data: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let n = data.len();
    // `reads_to_end[i]`: the run from offset i reads to the end of the data (filled from the end).
    let mut reads_to_end = vec![false; n + 1];
    if let Some(last) = reads_to_end.last_mut() {
        *last = true;
    }
    for at in (0..n).rev() {
        let any = readings(data, at).iter().flatten().any(|r| {
            r.end(at, n).is_some_and(|end| {
                end == n || (!r.only_last && reads_to_end.get(end).copied().unwrap_or(false))
            })
        });
        if let Some(slot) = reads_to_end.get_mut(at) {
            *slot = any;
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < n {
        let options = readings(data, at);
        let ends = |r: &&Reading| r.end(at, n);
        let chosen = options
            .iter()
            .flatten()
            .find(|r| ends(r) == Some(n))
            .or_else(|| {
                options.iter().flatten().find(|r| {
                    !r.only_last
                        && ends(r)
                            .is_some_and(|end| reads_to_end.get(end).copied().unwrap_or(false))
                })
            })
            .ok_or(TlvError)?;
        let value_at = at + chosen.header;
        let end = value_at + chosen.len;
        let tag = *data.get(at).ok_or(TlvError)?;
        let value = data.get(value_at..end).ok_or(TlvError)?;
        out.push(Tlv { tag, value });
        at = end;
    }
    Ok(out)
}

/// The value of the first TLV with `tag`, if any.
pub fn find<'a>(tlvs: &[Tlv<'a>], tag: u8) -> Option<&'a [u8]> {
    tlvs.iter().find(|t| t.tag == tag).map(|t| t.value)
}

/// Appends a TLV with a BER length (one byte below 128, `81 xx` up to 255, `82 xx xx` above).
/// A value longer than [`MAX_VALUE_LEN`] writes nothing and fails.
pub fn push(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<(), ValueTooLong> {
    push_with(out, tag, value, TlvLengths::Ber)
}

/// Appends a TLV, writing a length of 128..=255 as `style` says (BER `81 xx` or one plain byte).
/// Longer values get `82 xx xx`; a value longer than [`MAX_VALUE_LEN`] writes nothing and fails.
pub fn push_with(
    out: &mut Vec<u8>,
    tag: u8,
    value: &[u8],
    style: TlvLengths,
) -> Result<(), ValueTooLong> {
    let len = value.len();
    let too_long = ValueTooLong { tag, len };
    match (u8::try_from(len), style) {
        (Ok(n), _) if n < 0x80 => out.extend_from_slice(&[tag, n]),
        (Ok(n), TlvLengths::OneByte) => out.extend_from_slice(&[tag, n]),
        (Ok(n), TlvLengths::Ber) => out.extend_from_slice(&[tag, 0x81, n]),
        (Err(_), _) => {
            let [hi, lo] = u16::try_from(len).map_err(|_| too_long)?.to_be_bytes();
            out.extend_from_slice(&[tag, 0x82, hi, lo]);
        }
    }
    out.extend_from_slice(value);
    Ok(())
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
    fn signature_two_byte_length_only_at_the_end() {
        // RSA: `33 01 00 <256 bytes>` ends the data, so the length is two bytes.
        let mut rsa = vec![0x9E, 0x01, 0xAA, 0x33, 0x01, 0x00];
        rsa.extend([7u8; 256]);
        assert_eq!(find(&parse(&rsa).unwrap(), 0x33).unwrap().len(), 256);
        // Not at the end: the plain byte, one value byte `00`, then more TLVs.
        let t = parse(&[0x33, 0x01, 0x00, 0x9E, 0x01, 0xAA]).unwrap();
        assert_eq!(
            (find(&t, 0x33), find(&t, 0x9E)),
            (Some(&[0][..]), Some(&[0xAA][..]))
        );
        // `33 00` without the second length byte is cut short.
        assert_eq!(parse(&[0x33, 0x00]), Err(TlvError));
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
    fn plain_0x81_followed_by_more_tlvs() {
        // Read as BER, `81 05` would leave `FF FF …`, no run of TLVs; the plain byte leaves `D2`.
        let mut value = vec![0x05, 0x00, 0x01];
        value.resize(0x81, 0xFF);
        let mut data = vec![0xD1, 0x81];
        data.extend_from_slice(&value);
        data.extend_from_slice(&[0xD2, 0x01, 0xCC]);
        let t = parse(&data).unwrap();
        assert_eq!(find(&t, 0xD1), Some(value.as_slice()));
        assert_eq!(find(&t, 0xD2), Some(&[0xCC][..]));
    }

    #[test]
    fn written_lengths() {
        let mut out = Vec::new();
        push(&mut out, 0xC1, &[7u8; 0x7F]).unwrap();
        assert_eq!(out[..2], [0xC1, 0x7F]);
        for (len, style, head) in [
            (0x80, TlvLengths::Ber, vec![0xC1, 0x81, 0x80]),
            (0xFF, TlvLengths::Ber, vec![0xC1, 0x81, 0xFF]),
            (0x80, TlvLengths::OneByte, vec![0xC1, 0x80]),
            (0xFF, TlvLengths::OneByte, vec![0xC1, 0xFF]),
            (0x100, TlvLengths::OneByte, vec![0xC1, 0x82, 0x01, 0x00]),
            (0x1234, TlvLengths::Ber, vec![0xC1, 0x82, 0x12, 0x34]),
            (0xFFFF, TlvLengths::Ber, vec![0xC1, 0x82, 0xFF, 0xFF]),
        ] {
            let mut out = Vec::new();
            push_with(&mut out, 0xC1, &vec![7u8; len], style).unwrap();
            assert_eq!(out[..head.len()], head[..], "{len} {style:?}");
            assert_eq!(out.len(), head.len() + len);
        }
    }

    #[test]
    fn a_value_too_long_fails_and_writes_nothing() {
        for style in [TlvLengths::Ber, TlvLengths::OneByte] {
            let mut out = vec![0x84, 0x01, 0x01];
            let err = push_with(&mut out, 0xC1, &vec![7u8; 0x1_0000], style).unwrap_err();
            assert_eq!(
                err,
                ValueTooLong {
                    tag: 0xC1,
                    len: 0x1_0000
                }
            );
            assert_eq!(out, [0x84, 0x01, 0x01]);
        }
        assert_eq!(
            u16::from(ValueTooLong {
                tag: 0x34,
                len: 1 << 20
            }),
            0x6F00
        );
    }

    #[test]
    fn truncated_is_an_error() {
        assert_eq!(parse(&[0x84, 0x03, 0x01]), Err(TlvError));
        assert_eq!(parse(&[0x84]), Err(TlvError));
    }
}
