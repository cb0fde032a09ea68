//! Card signatures to the minimal DER `ECDSA-Sig-Value` TLS wants.
//!
//! IoT SAFE cards answer COMPUTE SIGNATURE with raw `r ‖ s` (32 + 32 bytes for P-256); a few
//! applets answer DER, sometimes not minimal (a superfluous leading `00`, or a missing one). TLS
//! peers (ring/webpki, OpenSSL) reject non-minimal INTEGERs, and a hand-rolled converter that
//! forgets to strip leading zeros fails about once in 256 signatures. So: raw `r ‖ s` goes through
//! `p256::ecdsa::Signature::from_slice(..).to_der()`; DER is read tolerantly into `r ‖ s` first and
//! then re-encoded the same way, which also rejects `r` or `s` equal to 0 or not below the order.

use iotsafe_core::CardSignature;
use p256::ecdsa::Signature;

/// Why a card signature could not be turned into DER.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFormatError {
    /// Raw `r ‖ s` of the wrong length.
    #[error("raw signature must be 64 bytes r‖s for P-256, got {0} bytes")]
    RawLength(usize),
    /// `r` or `s` is zero or not below the curve order.
    #[error("r or s is out of range for P-256")]
    OutOfRange,
    /// The DER the card returned is not a `SEQUENCE { INTEGER r, INTEGER s }`.
    #[error("card DER signature is malformed: {0}")]
    MalformedDer(&'static str),
}

/// Converts what the card returned into a minimal DER ECDSA P-256 signature (70..=72 bytes).
pub fn card_signature_to_der(signature: &CardSignature) -> Result<Vec<u8>, SignatureFormatError> {
    match signature {
        CardSignature::RawRs(raw) => raw_rs_to_der(raw),
        CardSignature::Der(der) => normalize_der(der),
    }
}

/// `r ‖ s` (32 + 32 bytes, big-endian) to minimal DER.
pub fn raw_rs_to_der(raw: &[u8]) -> Result<Vec<u8>, SignatureFormatError> {
    if raw.len() != 64 {
        return Err(SignatureFormatError::RawLength(raw.len()));
    }
    let sig = Signature::from_slice(raw).map_err(|_| SignatureFormatError::OutOfRange)?;
    Ok(sig.to_der().as_bytes().to_vec())
}

/// Re-encodes a possibly non-minimal DER signature as minimal DER.
pub fn normalize_der(der: &[u8]) -> Result<Vec<u8>, SignatureFormatError> {
    raw_rs_to_der(&der_to_raw_rs(der)?)
}

/// Reads `SEQUENCE { INTEGER r, INTEGER s }` tolerantly (extra leading zeros, missing sign byte)
/// into 64 bytes `r ‖ s`.
pub fn der_to_raw_rs(der: &[u8]) -> Result<[u8; 64], SignatureFormatError> {
    let (tag, body, rest) = read_tlv(der)?;
    if tag != 0x30 {
        return Err(SignatureFormatError::MalformedDer("not a SEQUENCE"));
    }
    if !rest.is_empty() {
        return Err(SignatureFormatError::MalformedDer(
            "trailing bytes after the SEQUENCE",
        ));
    }
    let (tag_r, r, after_r) = read_tlv(body)?;
    let (tag_s, s, after_s) = read_tlv(after_r)?;
    if tag_r != 0x02 || tag_s != 0x02 {
        return Err(SignatureFormatError::MalformedDer(
            "r or s is not an INTEGER",
        ));
    }
    if !after_s.is_empty() {
        return Err(SignatureFormatError::MalformedDer(
            "trailing bytes inside the SEQUENCE",
        ));
    }
    let mut out = [0u8; 64];
    copy_left_padded(r, &mut out[..32])?;
    copy_left_padded(s, &mut out[32..])?;
    Ok(out)
}

fn copy_left_padded(int: &[u8], dest: &mut [u8]) -> Result<(), SignatureFormatError> {
    let first_nonzero = int.iter().position(|&b| b != 0).unwrap_or(int.len());
    let digits = &int[first_nonzero..];
    if digits.len() > dest.len() {
        return Err(SignatureFormatError::OutOfRange);
    }
    let pad = dest.len() - digits.len();
    dest[pad..].copy_from_slice(digits);
    Ok(())
}

/// One TLV with a short or one/two-byte long-form length: (tag, value, rest).
fn read_tlv(data: &[u8]) -> Result<(u8, &[u8], &[u8]), SignatureFormatError> {
    let truncated = SignatureFormatError::MalformedDer("truncated");
    let (&tag, rest) = data.split_first().ok_or(truncated.clone())?;
    let (&first, rest) = rest.split_first().ok_or(truncated.clone())?;
    let (len, rest) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        0x81 => {
            let (&n, rest) = rest.split_first().ok_or(truncated.clone())?;
            (usize::from(n), rest)
        }
        0x82 => {
            if rest.len() < 2 {
                return Err(truncated);
            }
            (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            )
        }
        _ => {
            return Err(SignatureFormatError::MalformedDer(
                "unsupported length form",
            ))
        }
    };
    if rest.len() < len {
        return Err(truncated);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_int(v: &[u8]) -> Vec<u8> {
        // Minimal DER INTEGER of an unsigned big-endian value.
        let i = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
        let mut digits = v[i..].to_vec();
        if digits[0] & 0x80 != 0 {
            digits.insert(0, 0);
        }
        let mut out = vec![0x02, digits.len() as u8];
        out.extend(digits);
        out
    }

    fn expected_der(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
        let mut body = der_int(r);
        body.extend(der_int(s));
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }

    fn raw(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
        let mut v = r.to_vec();
        v.extend_from_slice(s);
        v
    }

    fn value(first: u8, fill: u8) -> [u8; 32] {
        let mut v = [fill; 32];
        v[0] = first;
        v
    }

    #[test]
    fn high_bit_values_get_one_sign_byte() {
        let r = value(0x80, 0x11);
        let s = value(0xFF, 0x01);
        let der = raw_rs_to_der(&raw(&r, &s)).unwrap();
        assert_eq!(der, expected_der(&r, &s));
        assert_eq!(der.len(), 72);
        assert_eq!(&der[2..5], &[0x02, 0x21, 0x00]);
    }

    #[test]
    fn leading_zero_bytes_are_stripped() {
        // r = 00 00 7F .., s = 00 80 .. (after stripping, s needs a sign byte again).
        let mut r = value(0x00, 0x22);
        r[1] = 0x00;
        r[2] = 0x7F;
        let mut s = value(0x00, 0x33);
        s[1] = 0x80;
        let der = raw_rs_to_der(&raw(&r, &s)).unwrap();
        assert_eq!(der, expected_der(&r, &s));
        // r: 30 digits, no sign byte; s: 31 digits + sign byte.
        assert_eq!(&der[2..4], &[0x02, 30]);
        assert_eq!(der[4], 0x7F);
        assert_eq!(der.len(), 2 + 2 + 30 + 2 + 32);
    }

    #[test]
    fn small_low_values_are_minimal() {
        let r = value(0x01, 0x00);
        let s = value(0x7F, 0x7F);
        let der = raw_rs_to_der(&raw(&r, &s)).unwrap();
        assert_eq!(der, expected_der(&r, &s));
        assert_eq!(der.len(), 70);
    }

    #[test]
    fn zero_or_order_or_wrong_length_is_refused() {
        assert_eq!(
            raw_rs_to_der(&[0u8; 64]),
            Err(SignatureFormatError::OutOfRange)
        );
        assert_eq!(
            raw_rs_to_der(&[0xFFu8; 64]),
            Err(SignatureFormatError::OutOfRange)
        );
        assert_eq!(
            raw_rs_to_der(&[1u8; 63]),
            Err(SignatureFormatError::RawLength(63))
        );
    }

    #[test]
    fn non_minimal_der_from_a_quirky_card_is_normalised() {
        let r = value(0x05, 0x44);
        let s = value(0x90, 0x55);
        // r with two superfluous leading zeros; s without its sign byte.
        let mut r_int = vec![0x02, 34, 0x00, 0x00];
        r_int.extend_from_slice(&r);
        let mut s_int = vec![0x02, 32];
        s_int.extend_from_slice(&s);
        let mut body = r_int;
        body.extend(s_int);
        let mut sloppy = vec![0x30, body.len() as u8];
        sloppy.extend(body);
        let fixed = card_signature_to_der(&CardSignature::Der(sloppy)).unwrap();
        assert_eq!(fixed, expected_der(&r, &s));
        // Already minimal DER passes unchanged.
        let again = card_signature_to_der(&CardSignature::Der(fixed.clone())).unwrap();
        assert_eq!(again, fixed);
    }

    #[test]
    fn malformed_der_is_refused_without_panicking() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02, 0x01],
            &[0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
            &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00],
            &[0x30, 0x06, 0x04, 0x01, 0x01, 0x02, 0x01, 0x01],
        ] {
            assert!(normalize_der(bad).is_err(), "{bad:02X?}");
        }
    }

    #[test]
    fn roundtrip_with_p256_verification() {
        use p256::ecdsa::signature::{Signer as _, Verifier as _};
        use p256::ecdsa::{SigningKey, VerifyingKey};
        let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
        let vk = VerifyingKey::from(&key);
        for i in 0..64u8 {
            let msg = [i; 130];
            let sig: Signature = key.sign(&msg);
            let der = raw_rs_to_der(&sig.to_bytes()).unwrap();
            let parsed = Signature::from_der(&der).unwrap();
            vk.verify(&msg, &parsed).unwrap();
            assert_eq!(der_to_raw_rs(&der).unwrap()[..], sig.to_bytes()[..]);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Reference: minimal DER INTEGER of a non-zero unsigned big-endian value, written out by hand.
    fn reference_int(v: &[u8]) -> Vec<u8> {
        let first = v.iter().position(|&b| b != 0).expect("non-zero");
        let mut digits = v[first..].to_vec();
        if digits[0] & 0x80 != 0 {
            digits.insert(0, 0);
        }
        let mut out = vec![0x02, digits.len() as u8];
        out.extend(digits);
        out
    }

    /// Values below the P-256 order with a random number of leading zero bytes and a random top
    /// byte: exactly the shapes naive converters get wrong.
    fn scalar() -> impl Strategy<Value = [u8; 32]> {
        (0usize..4, any::<[u8; 32]>(), 1u8..=0xFF).prop_map(|(zeros, mut v, top)| {
            v[0] = if zeros == 0 { top.min(0xFE) } else { 0 };
            for b in v.iter_mut().take(zeros).skip(1) {
                *b = 0;
            }
            if zeros > 0 && zeros < 32 {
                v[zeros] = top;
            }
            v
        })
    }

    proptest! {
        #[test]
        fn raw_to_der_is_minimal_and_round_trips(r in scalar(), s in scalar()) {
            let mut raw = r.to_vec();
            raw.extend_from_slice(&s);
            let der = raw_rs_to_der(&raw).unwrap();
            let mut body = reference_int(&r);
            body.extend(reference_int(&s));
            let mut expected = vec![0x30, body.len() as u8];
            expected.extend(body);
            prop_assert_eq!(&der, &expected);
            prop_assert_eq!(der_to_raw_rs(&der).unwrap().to_vec(), raw);
            prop_assert_eq!(normalize_der(&der).unwrap(), der);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = normalize_der(&bytes);
            let _ = raw_rs_to_der(&bytes);
        }
    }
}
