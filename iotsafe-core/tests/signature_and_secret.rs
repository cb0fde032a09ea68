//! COMPUTE SIGNATURE and COMPUTE DH answers: every raw signature form reads back as exactly the
//! r‖s that went in, whatever bytes r starts with; DER only when strict; a shared secret only
//! when it can be a P-256 x coordinate.

use iotsafe_core::commands::{
    parse_shared_secret, parse_signature, parse_signature_for, CardSignature, SignatureForm,
};
use iotsafe_core::hexutil::decode;
use iotsafe_core::Error;
use proptest::prelude::*;

/// Prefixes that look like a DER header or a `33` TLV header: the readings a raw r‖s must not
/// be mistaken for.
const TRICKY_PREFIXES: &[&[u8]] = &[
    &[0x30, 0x3E],
    &[0x30, 0x3E, 0x02, 0x1D],
    &[0x30, 0x40],
    &[0x30, 0x81],
    &[0x30, 0x81, 0x3E],
    &[0x30, 0x44, 0x02, 0x20],
    &[0x33, 0x3E],
    &[0x33, 0x40],
    &[0x33, 0x00],
    &[0x33, 0x00, 0x3D],
    &[0x33, 0x00, 0x40],
    &[0x33, 0x81],
    &[0x33, 0x81, 0x3D],
    &[0x33, 0x82],
    &[0x33, 0x82, 0x00, 0x3C],
    &[0x33, 0x01, 0x00],
];

fn wrap(rs: &[u8], form: SignatureForm) -> Vec<u8> {
    let mut out = match form {
        SignatureForm::TwoByteLength => vec![0x33, 0x00, rs.len() as u8],
        SignatureForm::OneByteLength => vec![0x33, rs.len() as u8],
        _ => vec![],
    };
    out.extend_from_slice(rs);
    out
}

fn rs_with_prefix() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(any::<u8>(), 64),
        proptest::option::of(0..TRICKY_PREFIXES.len()),
    )
        .prop_map(|(mut rs, prefix)| {
            if let Some(i) = prefix {
                let p = TRICKY_PREFIXES[i];
                rs[..p.len()].copy_from_slice(p);
            }
            rs
        })
}

proptest! {
    #[test]
    fn raw_forms_read_back_exactly(rs in rs_with_prefix()) {
        for form in [SignatureForm::TwoByteLength, SignatureForm::OneByteLength, SignatureForm::Bare] {
            let parsed = parse_signature_for(&wrap(&rs, form), 32).unwrap();
            prop_assert_eq!(&parsed.signature, &CardSignature::RawRs(rs.clone()));
            prop_assert_eq!(parsed.form, form);
            prop_assert_eq!(parse_signature(&wrap(&rs, form)).unwrap(), CardSignature::RawRs(rs.clone()));
        }
    }

    #[test]
    fn der_reads_back_bare_and_wrapped(r in proptest::collection::vec(any::<u8>(), 32),
                                       s in proptest::collection::vec(any::<u8>(), 32)) {
        let der = der_of(&r, &s);
        prop_assume!(der.is_some());
        let der = der.unwrap();
        // A 64-byte DER is also a bare r‖s, and the raw forms come first (about 1 in 2^24).
        prop_assume!(der.len() != 64);
        let parsed = parse_signature_for(&der, 32).unwrap();
        prop_assert_eq!(parsed.form, SignatureForm::Der);
        prop_assert_eq!(&parsed.signature, &CardSignature::Der(der.clone()));
        for header in [vec![0x33, der.len() as u8], vec![0x33, 0x00, der.len() as u8]] {
            let mut wrapped = header;
            wrapped.extend_from_slice(&der);
            let parsed = parse_signature_for(&wrapped, 32).unwrap();
            prop_assert_eq!(parsed.form, SignatureForm::DerWrapped);
            prop_assert_eq!(&parsed.signature, &CardSignature::Der(der.clone()));
        }
    }

    #[test]
    fn signature_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200),
                                     field_len in 0usize..80) {
        let _ = parse_signature_for(&data, field_len);
    }
}

/// Minimal DER of r and s (leading zeros stripped, `00` added before a set top bit); `None` when r
/// or s is zero (not a signature).
fn der_of(r: &[u8], s: &[u8]) -> Option<Vec<u8>> {
    fn int(v: &[u8]) -> Option<Vec<u8>> {
        let first = v.iter().position(|&b| b != 0)?;
        let mut out = vec![0x02];
        let v = &v[first..];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        Some(out)
    }
    let (r, s) = (int(r)?, int(s)?);
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    Some(out)
}

/// The signatures that used to be misread: a bare r‖s that starts like DER (`30 3E`, 1 in 65 536
/// signatures) and bare ones that start like a `33` TLV whose length ends at the end.
#[test]
fn known_misreadings_are_raw() {
    for prefix in [
        &[0x30, 0x3E][..],
        &[0x33, 0x3E],
        &[0x33, 0x00, 0x3D],
        &[0x33, 0x81, 0x3D],
        &[0x33, 0x82, 0x00, 0x3C],
    ] {
        let mut rs = [0x5Au8; 64];
        rs[..prefix.len()].copy_from_slice(prefix);
        let parsed = parse_signature_for(&rs, 32).unwrap();
        assert_eq!(
            parsed.signature,
            CardSignature::RawRs(rs.to_vec()),
            "{prefix:02X?}"
        );
        assert_eq!(parsed.form, SignatureForm::Bare);
    }
}

#[test]
fn reference_signature_forms() {
    // NTT trace (`docs/protocol.md#traces`): `33 40 r‖s`.
    let r = "73B3A470B67ADD1B954EAC15CFFB4F6BA77B53D91E35E1244526621D97C38524";
    let s = "0E2656458895A4F99A73B7E5263C4073C98A4B0D66AC71005871694660B9EC9C";
    let ntt = decode(&format!("3340{r}{s}")).unwrap();
    let parsed = parse_signature_for(&ntt, 32).unwrap();
    assert_eq!(parsed.form, SignatureForm::OneByteLength);
    assert_eq!(
        parsed.signature,
        CardSignature::RawRs(decode(&format!("{r}{s}")).unwrap())
    );
    assert_eq!(
        SignatureForm::OneByteLength.to_string(),
        "33 with a one-byte length, r‖s"
    );
}

#[test]
fn loose_der_is_refused() {
    let r = [0x11u8; 32];
    let s = [0x22u8; 32];
    let good = der_of(&r, &s).unwrap();
    assert!(parse_signature_for(&good, 32).is_ok());
    let refused = |data: &[u8], why: &str| {
        let err = parse_signature_for(data, 32).unwrap_err();
        assert!(
            matches!(err, Error::Malformed { .. }),
            "{why}: {err:?} for {data:02X?}"
        );
    };
    // Trailing byte after the SEQUENCE.
    let mut trailing = good.clone();
    trailing.push(0x00);
    refused(&trailing, "trailing byte");
    // SEQUENCE length one short / one long.
    let mut short = good.clone();
    short[1] -= 1;
    refused(&short, "sequence length");
    // Non-minimal INTEGER (an extra leading 00 before a clear top bit).
    refused(
        &[0x30, 0x08, 0x02, 0x02, 0x00, 0x11, 0x02, 0x02, 0x00, 0x22],
        "non-minimal",
    );
    // Negative INTEGER.
    refused(
        &[0x30, 0x06, 0x02, 0x01, 0x91, 0x02, 0x01, 0x22],
        "negative",
    );
    // Zero.
    refused(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x22], "zero");
    // Three INTEGERs.
    refused(
        &[
            0x30, 0x09, 0x02, 0x01, 0x11, 0x02, 0x01, 0x22, 0x02, 0x01, 0x33,
        ],
        "three integers",
    );
    // An INTEGER longer than the field (33 significant bytes).
    let mut long = vec![0x30, 0x26, 0x02, 0x21];
    long.extend_from_slice(&[0x11; 33]);
    long.extend_from_slice(&[0x02, 0x01, 0x22]);
    refused(&long, "too long for P-256");
    // A wrapped DER whose 33 length does not span it.
    let mut wrapped = vec![0x33, good.len() as u8 + 1];
    wrapped.extend_from_slice(&good);
    refused(&wrapped, "wrapper length");
    refused(&[], "empty");
    refused(&[0x33, 0x00, 0x40], "empty raw");
    // 63 and 65 raw bytes are not P-256 signatures.
    refused(&[0x11; 63], "63 bytes");
    refused(&[0x11; 65], "65 bytes");
}

#[test]
fn other_field_lengths() {
    let rs = [0x30u8; 96];
    let parsed = parse_signature_for(&rs, 48).unwrap();
    assert_eq!(
        (parsed.signature, parsed.form),
        (CardSignature::RawRs(rs.to_vec()), SignatureForm::Bare)
    );
    // The P-256 reading refuses 96 bytes.
    assert!(parse_signature(&rs).is_err());
    assert!(parse_signature_for(&rs, 0).is_err());
}

fn secret_error(data: &[u8]) -> String {
    match parse_shared_secret(data, 32).unwrap_err() {
        Error::Malformed { expected, got, .. } => format!("{expected} / {got}"),
        other => panic!("not Malformed: {other:?}"),
    }
}

#[test]
fn shared_secret_exactly_an_x_coordinate() {
    let x: Vec<u8> = (1..=32).collect();
    assert_eq!(parse_shared_secret(&x, 32).unwrap(), x);
    // One TLV around exactly 32 bytes.
    let mut wrapped = vec![0xD1, 0x20];
    wrapped.extend_from_slice(&x);
    assert_eq!(parse_shared_secret(&wrapped, 32).unwrap(), x);
    // The top of the range: p − 1 is a field element, p is not.
    let mut p_minus_1 =
        decode("FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFE").unwrap();
    assert_eq!(parse_shared_secret(&p_minus_1, 32).unwrap(), p_minus_1);
    p_minus_1[31] = 0xFF;
    assert!(secret_error(&p_minus_1).contains("below the field prime"));
    assert!(parse_shared_secret(&[0xFF; 32], 32).is_err());
}

#[test]
fn shared_secret_of_other_sizes_is_refused_without_its_bytes() {
    // SHA-1 of x (Java Card ALG_EC_SVDP_DH): 20 bytes.
    let sha1 = [0xABu8; 20];
    let msg = secret_error(&sha1);
    assert!(msg.contains("20 bytes") && msg.contains("SHA-1"), "{msg}");
    assert!(!msg.contains("AB"), "secret bytes leaked: {msg}");
    // 31 bytes (a stripped leading zero, or a cut answer) and 1 byte: not padded.
    for len in [1usize, 31] {
        let msg = secret_error(&vec![0xCD; len]);
        assert!(msg.contains(&format!("{len} bytes")), "{msg}");
        assert!(!msg.contains("CD"), "secret bytes leaked: {msg}");
    }
    // A TLV around 20 or 31 bytes, 33 bare bytes, and an empty answer.
    let mut tlv20 = vec![0xD1, 0x14];
    tlv20.extend_from_slice(&[0xEF; 20]);
    let mut tlv31 = vec![0xD1, 0x1F];
    tlv31.extend_from_slice(&[0xEF; 31]);
    for data in [tlv20, tlv31, vec![0xEF; 33], vec![]] {
        let msg = secret_error(&data);
        assert!(!msg.contains("EF"), "secret bytes leaked: {msg}");
    }
}
