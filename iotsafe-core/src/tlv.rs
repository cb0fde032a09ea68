//! A tolerant TLV codec for the forms IoT SAFE cards use.
//!
//! IoT SAFE data fields are runs of one-byte tags with these length forms, all seen on real cards:
//! - one byte, `00`..`7F` (and `80`..`FF` from applets that write a plain byte, e.g. ZARIOT's `9B FD`);
//! - BER long forms `81 xx`, `82 xx xx`, `83 xx xx xx` (Thales);
//! - the signature tag `33` with a two-byte big-endian length, `33 00 40` (wolfSSL, ZARIOT, newer
//!   Thales), next to the one-byte `33 40` (NTT, older Thales).
//!
//! Choice for the ambiguous cases (`docs/protocol.md#tlv-forms`; no published source settles them), written down here:
//! - Tag `33` whose first length byte is `00` is read as a two-byte length (an empty signature is
//!   meaningless, so nothing is lost); so is a `33 01 00`/`33 02 xx` length that ends exactly at the
//!   end of the input (RSA signatures, Thales PKCS#11), since the signature is always the last TLV.
//! - A first length byte `81`/`82`/`83` is BER long form or a plain byte. The reading is chosen
//!   by what follows, in this order: a reading that ends exactly at the end of the input (BER
//!   first: long values are the last TLV of their command); else a reading after which the rest
//!   of the input still parses as a run of TLVs (BER first); else BER when it fits. So
//!   `9B 81 90 …` (BER), `9B 81 …`/`9B FD …` (plain byte, last) and `D1 81 <129 bytes> D2 …`
//!   (plain byte, more TLVs after it) all read as written. When both readings leave a parseable
//!   run, BER wins: it is the standard, and only a few applets write plain bytes.
//!
//! Parsing never panics. Whether the rest of a run parses is worked out once per run, from its end,
//! and only when an ambiguous length turns up: reading a run takes linear time and at most one
//! extra byte of memory per input byte, whatever its content.

use crate::prelude::*;
use core::fmt;

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
///
/// `input` is the rest of the run the TLV belongs to: where the length is ambiguous, the reading
/// is chosen by what follows it (see the module documentation).
pub fn read_one(input: &[u8], offset: usize) -> Result<(Tlv<'_>, usize), TlvError> {
    read_at(input, 0, offset, &mut None)
}

/// The ways the length at `input[at..]` can be read: `(header, value length)` for the reading
/// every writer we know would mean, then the second reading when there is an ambiguity. Readings
/// may run past the end of the input (the caller checks).
#[derive(Debug, Clone, Copy)]
enum Readings {
    /// Not even a tag and a length byte.
    Truncated,
    /// One reading.
    One(usize, usize),
    /// `33 01 00`/`33 02 xx`: two-byte length (RSA) or plain byte.
    SignatureTwoByte(usize, usize),
    /// `81`..`83`: BER long form, or a plain byte.
    LongForm {
        /// Header and length of the BER reading.
        ber: (usize, usize),
        /// Value length of the plain reading (header 2).
        plain: usize,
    },
}

fn readings(input: &[u8], at: usize) -> Readings {
    let (Some(&tag), Some(&first)) = (input.get(at), input.get(at + 1)) else {
        return Readings::Truncated;
    };
    let rest = &input[at + 2..];
    if tag == TAG_SIGNATURE {
        match (first, rest.first()) {
            // `33 00 40`: an empty signature is meaningless, so `00` always starts a two-byte length.
            (0x00, Some(&second)) => return Readings::One(3, usize::from(second)),
            (0x00, None) => return Readings::Truncated,
            (0x01..=0x02, Some(&second)) => {
                return Readings::SignatureTwoByte(3, usize::from(first) << 8 | usize::from(second))
            }
            _ => {}
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
        return Readings::LongForm {
            ber: (2 + long_bytes, len),
            plain: usize::from(first),
        };
    }
    Readings::One(2, usize::from(first))
}

/// For every offset of `input`, whether the run of TLVs starting there, read as [`read_at`] reads
/// it, ends exactly at the end of the input. (`read_at` takes a reading that leaves a complete run
/// whenever there is one, so "some reading completes" is the same test.) One pass from the end.
fn complete_runs(input: &[u8]) -> Vec<bool> {
    let n = input.len();
    let mut complete = vec![false; n + 1];
    complete[n] = true;
    for at in (0..n).rev() {
        let ends = |header: usize, len: usize| {
            let end = at.saturating_add(header).saturating_add(len);
            end <= n && complete[end]
        };
        complete[at] = match readings(input, at) {
            Readings::Truncated => false,
            Readings::One(h, l) => ends(h, l),
            // Mirrors `read_at`: the two-byte reading only when it ends the input.
            Readings::SignatureTwoByte(h, l) => at + h + l == n || ends(2, input[at + 1].into()),
            Readings::LongForm { ber, plain } => ends(ber.0, ber.1) || ends(2, plain),
        };
    }
    complete
}

/// Reads the TLV at `input[at..]`; `memo` caches [`complete_runs`] of `input` across calls.
fn read_at<'a>(
    input: &'a [u8],
    at: usize,
    offset: usize,
    memo: &mut Option<Vec<bool>>,
) -> Result<(Tlv<'a>, usize), TlvError> {
    let n = input.len();
    let value_at = |header: usize, len: usize| -> Result<(Tlv<'a>, usize), TlvError> {
        let available = n.saturating_sub(at + header);
        if at + header > n || len > available {
            return Err(TlvError::TruncatedValue {
                tag: input[at],
                offset,
                announced: len,
                available,
            });
        }
        Ok((
            Tlv {
                tag: input[at],
                value: &input[at + header..at + header + len],
            },
            header + len,
        ))
    };
    let end = |header: usize, len: usize| at.saturating_add(header).saturating_add(len);
    let mut completes = |header: usize, len: usize| {
        let e = end(header, len);
        e <= n && memo.get_or_insert_with(|| complete_runs(input))[e]
    };
    match readings(input, at) {
        Readings::Truncated => Err(TlvError::TruncatedLength { offset }),
        Readings::One(h, l) => value_at(h, l),
        Readings::SignatureTwoByte(h, l) => {
            // The signature is the last TLV of every command and answer that carries one: a
            // two-byte length is taken only when it ends exactly there.
            if end(h, l) == n {
                value_at(h, l)
            } else {
                value_at(2, usize::from(input[at + 1]))
            }
        }
        Readings::LongForm { ber, plain } => {
            // BER is the standard; some applets write a plain byte (`9B 81 …`, ZARIOT's `9B FD`).
            // In order: a reading that ends exactly at the end of the input (long values are the
            // last TLV of their command); then a reading after which the rest still parses as
            // TLVs, BER first; else BER when it fits, for the error message.
            let ber_fits = end(ber.0, ber.1) <= n;
            if end(ber.0, ber.1) == n {
                value_at(ber.0, ber.1)
            } else if end(2, plain) == n {
                value_at(2, plain)
            } else if completes(ber.0, ber.1) {
                value_at(ber.0, ber.1)
            } else if completes(2, plain) || !ber_fits {
                value_at(2, plain)
            } else {
                value_at(ber.0, ber.1)
            }
        }
    }
}

/// Iterates over a run of TLVs. Stops at the first error, which it yields once.
pub struct TlvIter<'a> {
    input: &'a [u8],
    pos: usize,
    failed: bool,
    /// [`complete_runs`] of `input`, computed at the first ambiguous length.
    complete: Option<Vec<bool>>,
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, TlvError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.input.len() {
            return None;
        }
        match read_at(self.input, self.pos, self.pos, &mut self.complete) {
            Ok((tlv, used)) => {
                self.pos += used;
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
        pos: 0,
        failed: false,
        complete: None,
    }
}

/// Parses a whole run of TLVs.
pub fn parse_all(input: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    iter(input).collect()
}

/// Parses a whole run of TLVs whose lengths are all one plain byte (`00`..`FF`), as some cards
/// write every length. For an answer [`parse_all`] cannot read as the writer meant: a plain
/// length `81`..`83` in the middle of a run can also be read as BER, and sometimes both readings
/// parse.
pub fn parse_all_one_byte(input: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < input.len() {
        let rest = &input[offset..];
        let (&tag, &len) = rest
            .first()
            .zip(rest.get(1))
            .ok_or(TlvError::TruncatedLength { offset })?;
        let len = usize::from(len);
        let value = rest.get(2..2 + len).ok_or(TlvError::TruncatedValue {
            tag,
            offset,
            announced: len,
            available: rest.len() - 2,
        })?;
        out.push(Tlv { tag, value });
        offset += 2 + len;
    }
    Ok(out)
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
    fn plain_long_length_followed_by_more_tlvs() {
        // `D1 81 <0x81 bytes> D2 03 …`: read as BER, `81 05` would take 5 bytes and leave
        // `FF FF …`, which is no TLV run; the plain reading leaves `D2 03 AA BB CC`.
        for (len_byte, len) in [(0x81u8, 0x81usize), (0x82, 0x82), (0x83, 0x83)] {
            let mut value = vec![0x05, 0x00, 0x01];
            value.resize(len, 0xFF);
            let mut data = vec![0xD1, len_byte];
            data.extend_from_slice(&value);
            data.extend_from_slice(&[0xD2, 0x03, 0xAA, 0xBB, 0xCC]);
            let run = parse_all(&data).unwrap();
            assert_eq!(run.len(), 2, "length byte {len_byte:02X}");
            assert_eq!(run[0].tag, 0xD1);
            assert_eq!(run[0].value, value.as_slice());
            assert_eq!(run[1].tag, 0xD2);
            assert_eq!(run[1].value, &[0xAA, 0xBB, 0xCC]);
            // One TLV at a time, with the rest of the run as context, gives the same.
            let (first, used) = read_one(&data, 0).unwrap();
            assert_eq!((first.value.len(), used), (len, len + 2));
        }
    }

    #[test]
    fn ber_long_length_followed_by_more_tlvs() {
        // The other way round: the plain reading of `81` would cut into the value and leave
        // `FF …`; BER leaves `9E 02 01 02`.
        let mut data = vec![0x9B, 0x81, 0x90];
        data.extend_from_slice(&[0xFF; 0x90]);
        data.extend_from_slice(&[0x9E, 0x02, 0x01, 0x02]);
        let run = parse_all(&data).unwrap();
        assert_eq!(run.len(), 2);
        assert_eq!(run[0].value, &[0xFF; 0x90][..]);
        assert_eq!(run[1].value, &[1, 2]);
        // BER with two length bytes, then more.
        let mut data = vec![0x34, 0x82, 0x01, 0x00];
        data.extend_from_slice(&[0xEE; 256]);
        data.extend_from_slice(&[0x84, 0x01, 0x07]);
        let run = parse_all(&data).unwrap();
        assert_eq!((run[0].value.len(), run[1].value), (256, &[7u8][..]));
    }

    #[test]
    fn both_readings_parse_then_ber_wins() {
        // `D1 81 02 AA BB` + `00 × 126` + `D2 01 CC`: as BER, D1 holds AA BB and the zeros read
        // as 63 empty TLVs; as a plain byte, D1 holds 129 bytes. Both leave a run that parses;
        // BER is the standard form, so it is the reading taken.
        let mut data = vec![0xD1, 0x81, 0x02, 0xAA, 0xBB];
        data.extend_from_slice(&[0x00; 126]);
        data.extend_from_slice(&[0xD2, 0x01, 0xCC]);
        let run = parse_all(&data).unwrap();
        assert_eq!(run[0].value, &[0xAA, 0xBB]);
        assert_eq!(run.last().unwrap().value, &[0xCC]);
        assert_eq!(run.len(), 2 + 63);
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
        // Quantag's private-key descriptor (`docs/protocol.md#object-list`).
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
        fn mixed_length_forms_parse_to_the_end(items in proptest::collection::vec(
            (any::<u8>().prop_filter("not the signature tag", |t| *t != TAG_SIGNATURE),
             // Half of the values get the lengths whose plain byte looks like a BER long form.
             prop_oneof![
                 proptest::collection::vec(any::<u8>(), 0x81..=0x83),
                 proptest::collection::vec(any::<u8>(), 0..300),
             ],
             any::<bool>()), 1..6)) {
            // Some applets write plain one-byte lengths, others BER: whatever mix a card sends,
            // the run is read to its end (which reading is taken where both work is another test).
            let mut out = Vec::new();
            for (tag, value, plain) in &items {
                let form = if *plain && value.len() <= 0xFF { LengthForm::OneByte } else { LengthForm::Ber };
                prop_assert!(write(&mut out, *tag, value, form));
            }
            let parsed = parse_all(&out);
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
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
