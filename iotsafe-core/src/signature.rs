//! Card signatures on the host: the one conversion each way between `r‖s` and DER, and the
//! software check of each signature against the key's public point.
//!
//! The card's answer is read once, by [`parse_signature_for`](crate::answers::parse_signature_for),
//! into a [`CardSignature`]: raw `r‖s`, or DER that is already strict. Everything that needs a
//! signature in another shape goes through this module: the rustls signer and the CLI want
//! minimal DER ([`CardSignature::to_der`]), the PKCS#11 module and VERIFY SIGNATURE want `r‖s`
//! ([`CardSignature::to_rs`], [`der_to_rs`]).
//!
//! The check exists because a misread form gives a signature that the peer rejects much later, as
//! a failed handshake with no hint of the cause. Verifying here costs one ECDSA verification on
//! the host (measured in `docs/performance.md`) and turns any misreading, or a card that signed
//! with another key, into a typed error at the card boundary.

use crate::answers::{CardSignature, P256_FIELD_LEN};
use crate::objects::EcPoint;
use crate::prelude::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};

/// The longest field of a curve a card may sign with, in bytes (P-521).
pub const MAX_FIELD_LEN: usize = 66;

/// Why a signature could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFormatError {
    /// Raw `r ‖ s` of the wrong length.
    #[error("raw signature must be 64 bytes r‖s for P-256, got {0} bytes")]
    RawLength(usize),
    /// `r` or `s` is zero or not below the curve order.
    #[error("r or s is out of range for P-256")]
    OutOfRange,
    /// The DER is not a strict `SEQUENCE { INTEGER r, INTEGER s }`.
    #[error("card DER signature is malformed: {0}")]
    MalformedDer(&'static str),
    /// A field length no curve has (1 to 66 bytes: P-256 has 32, P-521 66).
    #[error("a field of {0} bytes is not an elliptic curve's (1 to 66)")]
    FieldLength(usize),
}

/// `r ‖ s` (32 + 32 bytes, big-endian) to the minimal DER `ECDSA-Sig-Value` of P-256 (70 to 72
/// bytes), which is what TLS peers (ring/webpki, OpenSSL) accept: a leading zero byte is dropped
/// and a sign byte added where the value needs one. `r` and `s` must lie in `[1, n-1]`.
pub fn rs_to_der(rs: &[u8]) -> Result<Vec<u8>, SignatureFormatError> {
    Ok(p256_from_rs(rs)?.to_der().as_bytes().to_vec())
}

/// A strict DER `SEQUENCE { INTEGER r, INTEGER s }` to `r ‖ s`, each half left-padded to
/// `field_len` bytes (32 for P-256; 1 to [`MAX_FIELD_LEN`]).
///
/// Strict: definite minimal lengths, both INTEGERs positive, minimally encoded, not zero and of at
/// most `field_len` significant bytes, nothing after either. It does not check `r` and `s`
/// against a curve order (it knows no curve); [`CardSignature::to_rs`] does for P-256.
pub fn der_to_rs(der: &[u8], field_len: usize) -> Result<Vec<u8>, SignatureFormatError> {
    use SignatureFormatError::MalformedDer;
    if !(1..=MAX_FIELD_LEN).contains(&field_len) {
        return Err(SignatureFormatError::FieldLength(field_len));
    }
    let (&tag, rest) = der.split_first().ok_or(MalformedDer("empty"))?;
    if tag != 0x30 {
        return Err(MalformedDer("not a SEQUENCE"));
    }
    let (body, after) = definite(rest)?;
    if !after.is_empty() {
        return Err(MalformedDer("trailing bytes after the SEQUENCE"));
    }
    let (r, after_r) = integer(body, field_len)?;
    let (s, after_s) = integer(after_r, field_len)?;
    if !after_s.is_empty() {
        return Err(MalformedDer("trailing bytes inside the SEQUENCE"));
    }
    let mut out = vec![0u8; 2 * field_len];
    out[field_len - r.len()..field_len].copy_from_slice(r);
    out[2 * field_len - s.len()..].copy_from_slice(s);
    Ok(out)
}

/// A definite DER length (short form below `0x80`, else `81 xx` with `xx ≥ 0x80`: minimal) and
/// the content it spans: (content, the rest).
fn definite(input: &[u8]) -> Result<(&[u8], &[u8]), SignatureFormatError> {
    let (len, header) = match *input {
        [n, ..] if n < 0x80 => (usize::from(n), 1),
        [0x81, n, ..] if n >= 0x80 => (usize::from(n), 2),
        [] | [0x81] => return Err(SignatureFormatError::MalformedDer("truncated")),
        _ => {
            return Err(SignatureFormatError::MalformedDer(
                "not a minimal definite length",
            ))
        }
    };
    let rest = &input[header..];
    if rest.len() < len {
        return Err(SignatureFormatError::MalformedDer("truncated"));
    }
    Ok(rest.split_at(len))
}

/// One strict INTEGER of at most `field_len` significant bytes: (its significant bytes, the
/// rest).
fn integer(input: &[u8], field_len: usize) -> Result<(&[u8], &[u8]), SignatureFormatError> {
    use SignatureFormatError::MalformedDer;
    let (&tag, rest) = input.split_first().ok_or(MalformedDer("truncated"))?;
    if tag != 0x02 {
        return Err(MalformedDer("r or s is not an INTEGER"));
    }
    let (value, rest) = definite(rest)?;
    match value {
        [] => Err(MalformedDer("an empty INTEGER")),
        [first, ..] if first & 0x80 != 0 => Err(MalformedDer("a negative INTEGER")),
        // A leading 00 only when the next byte would read as negative.
        [0, next, ..] if next & 0x80 == 0 => Err(MalformedDer("a non-minimal INTEGER")),
        _ if value.iter().all(|&b| b == 0) => Err(SignatureFormatError::OutOfRange),
        [0, digits @ ..] | digits if digits.len() <= field_len => Ok((digits, rest)),
        _ => Err(SignatureFormatError::OutOfRange),
    }
}

/// The P-256 signature of `r ‖ s`, checked for length and range.
fn p256_from_rs(rs: &[u8]) -> Result<Signature, SignatureFormatError> {
    if rs.len() != 2 * P256_FIELD_LEN {
        return Err(SignatureFormatError::RawLength(rs.len()));
    }
    Signature::from_slice(rs).map_err(|_| SignatureFormatError::OutOfRange)
}

impl CardSignature {
    /// The signature as P-256 `r ‖ s` (32 + 32 bytes), whichever form the card sent; `r` and `s`
    /// checked to lie in `[1, n-1]`.
    pub fn to_rs(&self) -> Result<Vec<u8>, SignatureFormatError> {
        Ok(self.to_p256()?.to_bytes().to_vec())
    }

    /// The signature as the minimal DER `ECDSA-Sig-Value` of P-256 that TLS wants (see
    /// [`rs_to_der`]), whichever form the card sent.
    pub fn to_der(&self) -> Result<Vec<u8>, SignatureFormatError> {
        rs_to_der(&self.to_rs()?)
    }

    fn to_p256(&self) -> Result<Signature, SignatureFormatError> {
        match self {
            CardSignature::RawRs(rs) => p256_from_rs(rs),
            CardSignature::Der(der) => p256_from_rs(&der_to_rs(der, P256_FIELD_LEN)?),
        }
    }
}

/// True when `signature` is a valid P-256 ECDSA signature of `digest` under `public`.
///
/// `digest` is the hash the card signed (COMPUTE SIGNATURE mode 03, or the hash the card computed
/// in mode 01); a digest longer than 32 bytes is truncated as ECDSA prescribes. A signature that
/// is not a P-256 signature at all (wrong size, bad DER) is simply not valid.
pub fn verifies_p256(signature: &CardSignature, public: &EcPoint, digest: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_sec1_bytes(public.as_bytes()) else {
        return false;
    };
    signature
        .to_p256()
        .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: the minimal DER INTEGER of an unsigned big-endian value, written out by hand.
    fn der_int(v: &[u8]) -> Vec<u8> {
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
        let der = rs_to_der(&raw(&r, &s)).unwrap();
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
        let der = rs_to_der(&raw(&r, &s)).unwrap();
        assert_eq!(der, expected_der(&r, &s));
        // r: 30 digits, no sign byte; s: 31 digits + sign byte.
        assert_eq!(&der[2..4], &[0x02, 30]);
        assert_eq!(der[4], 0x7F);
        assert_eq!(der.len(), 2 + 2 + 30 + 2 + 32);
        assert_eq!(der_to_rs(&der, 32).unwrap(), raw(&r, &s));
    }

    #[test]
    fn small_low_values_are_minimal() {
        let r = value(0x01, 0x00);
        let s = value(0x7F, 0x7F);
        let der = rs_to_der(&raw(&r, &s)).unwrap();
        assert_eq!(der, expected_der(&r, &s));
        assert_eq!(der.len(), 70);
    }

    #[test]
    fn zero_or_order_or_wrong_length_is_refused() {
        assert_eq!(rs_to_der(&[0u8; 64]), Err(SignatureFormatError::OutOfRange));
        assert_eq!(
            rs_to_der(&[0xFFu8; 64]),
            Err(SignatureFormatError::OutOfRange)
        );
        assert_eq!(
            rs_to_der(&[1u8; 63]),
            Err(SignatureFormatError::RawLength(63))
        );
        // The same through the card's forms: r not below the order, in r‖s and in strict DER.
        let s = value(0x01, 0x01);
        assert_eq!(
            CardSignature::RawRs(raw(&[0xFF; 32], &s)).to_rs(),
            Err(SignatureFormatError::OutOfRange)
        );
        let mut body = der_int(&[0xFF; 32]);
        body.extend(der_int(&s));
        let mut r_too_big = vec![0x30, body.len() as u8];
        r_too_big.extend(body);
        assert!(der_to_rs(&r_too_big, 32).is_ok());
        assert_eq!(
            CardSignature::Der(r_too_big).to_der(),
            Err(SignatureFormatError::OutOfRange)
        );
    }

    #[test]
    fn der_is_read_strictly() {
        let r = value(0x05, 0x44);
        let s = value(0x90, 0x55);
        let good = expected_der(&r, &s);
        assert_eq!(der_to_rs(&good, 32).unwrap(), raw(&r, &s));
        assert_eq!(CardSignature::Der(good.clone()).to_der().unwrap(), good);
        // r with a superfluous leading zero; s without its sign byte; a long-form length that
        // is not minimal; a byte after the SEQUENCE; a byte inside it after s; r of 33
        // significant bytes for a 32-byte field.
        let mut r_padded = vec![0x02, 33, 0x00];
        r_padded.extend_from_slice(&r);
        let mut s_unsigned = vec![0x02, 32];
        s_unsigned.extend_from_slice(&s);
        let sequence = |body: &[u8]| {
            let mut out = vec![0x30, body.len() as u8];
            out.extend_from_slice(body);
            out
        };
        let non_minimal_r = sequence(&[&r_padded[..], &der_int(&s)[..]].concat());
        let negative_s = sequence(&[&der_int(&r)[..], &s_unsigned[..]].concat());
        let mut long_form = vec![0x30, 0x81, good.len() as u8 - 2];
        long_form.extend_from_slice(&good[2..]);
        let mut trailing = good.clone();
        trailing.push(0);
        let mut inner_trailing = sequence(&[&good[2..], &[0x00][..]].concat());
        inner_trailing[1] = (good.len() - 1) as u8;
        for bad in [
            non_minimal_r,
            negative_s,
            long_form,
            trailing,
            inner_trailing,
        ] {
            assert!(
                matches!(
                    der_to_rs(&bad, 32),
                    Err(SignatureFormatError::MalformedDer(_))
                ),
                "{bad:02X?}"
            );
            assert!(CardSignature::Der(bad).to_der().is_err());
        }
        let mut wide = vec![0x02, 33];
        wide.extend([0x11; 33]);
        let wide = sequence(&[&wide[..], &der_int(&s)[..]].concat());
        assert_eq!(der_to_rs(&wide, 32), Err(SignatureFormatError::OutOfRange));
        assert_eq!(der_to_rs(&wide, 33).unwrap().len(), 66);
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
            &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01],
        ] {
            assert!(der_to_rs(bad, 32).is_err(), "{bad:02X?}");
            assert!(CardSignature::Der(bad.to_vec()).to_der().is_err());
        }
    }

    #[test]
    fn round_trip_with_p256_verification() {
        use p256::ecdsa::signature::{Signer as _, Verifier as _};
        use p256::ecdsa::SigningKey;
        let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
        let vk = VerifyingKey::from(&key);
        for i in 0..64u8 {
            let msg = [i; 130];
            let sig: Signature = key.sign(&msg);
            let der = rs_to_der(&sig.to_bytes()).unwrap();
            let parsed = Signature::from_der(&der).unwrap();
            vk.verify(&msg, &parsed).unwrap();
            assert_eq!(der_to_rs(&der, 32).unwrap()[..], sig.to_bytes()[..]);
            assert_eq!(
                CardSignature::Der(der.clone()).to_rs().unwrap(),
                sig.to_bytes()[..]
            );
            assert_eq!(
                CardSignature::RawRs(sig.to_bytes().to_vec())
                    .to_der()
                    .unwrap(),
                der
            );
        }
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
            let raw = raw(&r, &s);
            let der = rs_to_der(&raw).unwrap();
            prop_assert_eq!(&der, &expected_der(&r, &s));
            prop_assert_eq!(der_to_rs(&der, 32).unwrap(), raw);
            prop_assert_eq!(CardSignature::Der(der.clone()).to_der().unwrap(), der);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
            field_len in 0usize..70,
        ) {
            let _ = der_to_rs(&bytes, field_len);
            let _ = rs_to_der(&bytes);
            let _ = CardSignature::Der(bytes.clone()).to_der();
        }
    }
}
