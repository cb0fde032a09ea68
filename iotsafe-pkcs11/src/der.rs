//! The few DER encodings PKCS#11 wants for P-256 keys: the curve's `CKA_EC_PARAMS`, a point as
//! the OCTET STRING of `CKA_EC_POINT`, and the point of a SubjectPublicKeyInfo (the one of
//! `CKA_PUBLIC_KEY_INFO` is [`EcPoint::to_p256_spki`]).

use iotsafe_core::objects::P256_SPKI_PREFIX;
use iotsafe_core::EcPoint;

/// `CKA_EC_PARAMS` of P-256: the named curve's OBJECT IDENTIFIER 1.2.840.10045.3.1.7.
pub const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// `CKA_EC_POINT`: the uncompressed point `04‖X‖Y` in a DER OCTET STRING (`04 41 04‖X‖Y`), as
/// PKCS#11 v2.40 specifies it.
pub fn ec_point_attribute(point: &EcPoint) -> Vec<u8> {
    let mut out = Vec::with_capacity(67);
    out.extend_from_slice(&[0x04, 0x41]);
    out.extend_from_slice(point.as_bytes());
    out
}

/// A peer's public point as callers hand it to `CKM_ECDH1_DERIVE`: the raw uncompressed point, or
/// the same in a DER OCTET STRING (OpenSC's `--derive-pass-der`, some other modules). Only points
/// that lie on P-256 are taken: the card must never be asked to multiply by an invalid point.
pub fn peer_point(public_data: &[u8]) -> Option<EcPoint> {
    let raw = match public_data {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        other => other,
    };
    let point = EcPoint::from_slice(raw)?;
    p256::PublicKey::from_sec1_bytes(point.as_bytes()).ok()?;
    Some(point)
}

/// The point of a P-256 SubjectPublicKeyInfo (a certificate's key), if that is what it is.
pub fn point_of_spki(spki: &[u8]) -> Option<EcPoint> {
    let rest = spki.strip_prefix(&P256_SPKI_PREFIX[..])?;
    EcPoint::from_slice(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point() -> EcPoint {
        let secret = p256::SecretKey::from_slice(&[7; 32]).unwrap();
        let encoded = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        EcPoint::from_slice(encoded.as_bytes()).unwrap()
    }

    #[test]
    fn encodings() {
        let p = point();
        let attr = ec_point_attribute(&p);
        assert_eq!(&attr[..3], &[0x04, 0x41, 0x04]);
        assert_eq!(attr.len(), 67);
        assert_eq!(point_of_spki(&p.to_p256_spki()), Some(p));
        assert_eq!(peer_point(&attr), Some(p));
        assert_eq!(peer_point(p.as_bytes()), Some(p));
    }

    #[test]
    fn refuses_points_off_the_curve() {
        let mut bad = *point().as_bytes();
        bad[64] ^= 1;
        assert_eq!(peer_point(&bad), None);
        assert_eq!(peer_point(&[0x04; 33]), None);
        assert_eq!(peer_point(&[]), None);
        assert_eq!(point_of_spki(&[0x30, 0x00]), None);
    }
}
