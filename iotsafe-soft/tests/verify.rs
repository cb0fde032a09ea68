//! ECDSA P-256 verification: RFC 6979's signatures accepted, every altered signature, message
//! and key refused without a panic, and the same verdicts as webpki's ring algorithms.

use iotsafe_soft::verify::{
    ECDSA_P256_SHA256, ECDSA_P256_SHA384, SUPPORTED_SIG_ALGS, SUPPORTED_SIG_ALGS_WITH_SHA384,
};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand_core::{RngCore, SeedableRng};
use rustls::pki_types::{alg_id, SignatureVerificationAlgorithm};
use rustls::SignatureScheme;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 6979, A.2.5: the P-256 key.
fn rfc6979_public_key() -> Vec<u8> {
    hex(concat!(
        "04",
        "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6",
        "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"
    ))
}

/// RFC 6979, A.2.5: the signatures of "sample" with SHA-256 and with SHA-384, DER-encoded.
fn rfc6979_signature_sha256() -> Vec<u8> {
    der(
        &hex("efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"),
        &hex("f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"),
    )
}

fn rfc6979_signature_sha384() -> Vec<u8> {
    der(
        &hex("0eafea039b20e9b42309fb1d89e213057cbf973dc0cfc8f129edddc800ef7719"),
        &hex("4861f0491e6998b9455193e34e7b0d284ddd7149a74b95b9261f13abde940954"),
    )
}

/// The P-256 group order.
const N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` for any r and s (short forms only).
fn der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(v: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        if v.is_empty() || v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let body = [integer(r), integer(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// webpki's ring algorithm with the same identifiers: the reference verdict.
fn ring_twin(
    ours: &dyn SignatureVerificationAlgorithm,
) -> &'static dyn SignatureVerificationAlgorithm {
    rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all
        .iter()
        .copied()
        .find(|alg| {
            alg.public_key_alg_id() == ours.public_key_alg_id()
                && alg.signature_alg_id() == ours.signature_alg_id()
        })
        .expect("ring verifies the same algorithm")
}

/// Our verdict, checked against ring's.
fn verdict(alg: &dyn SignatureVerificationAlgorithm, key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let ours = alg.verify_signature(key, msg, sig).is_ok();
    let ring = ring_twin(alg).verify_signature(key, msg, sig).is_ok();
    assert_eq!(ours, ring, "ring disagrees: key {key:02x?} sig {sig:02x?}");
    ours
}

#[test]
fn rfc6979_signatures_verify() {
    let key = rfc6979_public_key();
    assert!(verdict(
        ECDSA_P256_SHA256,
        &key,
        b"sample",
        &rfc6979_signature_sha256()
    ));
    assert!(verdict(
        ECDSA_P256_SHA384,
        &key,
        b"sample",
        &rfc6979_signature_sha384()
    ));
    // Each signature is over its own hash only.
    assert!(!verdict(
        ECDSA_P256_SHA384,
        &key,
        b"sample",
        &rfc6979_signature_sha256()
    ));
    assert!(!verdict(
        ECDSA_P256_SHA256,
        &key,
        b"sample",
        &rfc6979_signature_sha384()
    ));
    // Another message.
    assert!(!verdict(
        ECDSA_P256_SHA256,
        &key,
        b"Sample",
        &rfc6979_signature_sha256()
    ));
    assert!(!verdict(
        ECDSA_P256_SHA256,
        &key,
        b"test",
        &rfc6979_signature_sha256()
    ));
}

#[test]
fn both_forms_of_s_verify_as_in_webpki() {
    // RFC 6979's SHA-256 signature has the high s; n - s is the same signature's low form.
    // X.509 and TLS do not require low s, and ring accepts both.
    let high = Signature::from_der(&rfc6979_signature_sha256()).unwrap();
    let low = high.normalize_s().expect("the RFC's s is the high one");
    let key = rfc6979_public_key();
    assert!(verdict(
        ECDSA_P256_SHA256,
        &key,
        b"sample",
        low.to_der().as_bytes()
    ));
}

#[test]
fn every_flipped_bit_of_the_signature_is_refused() {
    let key = rfc6979_public_key();
    let sig = rfc6979_signature_sha256();
    for i in 0..sig.len() {
        for bit in 0..8 {
            let mut bad = sig.clone();
            bad[i] ^= 1 << bit;
            assert!(
                !verdict(ECDSA_P256_SHA256, &key, b"sample", &bad),
                "byte {i} bit {bit}"
            );
        }
    }
}

#[test]
fn every_flipped_bit_of_the_key_is_refused() {
    let key = rfc6979_public_key();
    let sig = rfc6979_signature_sha256();
    for i in 0..key.len() {
        for bit in 0..8 {
            let mut bad = key.clone();
            bad[i] ^= 1 << bit;
            assert!(
                !verdict(ECDSA_P256_SHA256, &bad, b"sample", &sig),
                "byte {i} bit {bit}"
            );
        }
    }
}

#[test]
fn malformed_keys_are_refused() {
    let key = rfc6979_public_key();
    let sig = rfc6979_signature_sha256();
    let (x, y) = (&key[1..33], &key[33..]);
    let compressed = [&[0x02 | (y[31] & 1)][..], x].concat();
    let not_on_curve = [&[0x04][..], x, &hex(N)].concat();
    let keys: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("the identity", vec![0x00]),
        ("the tag alone", vec![0x04]),
        ("all zeros", [&[0x04][..], &[0; 64]].concat()),
        ("not on the curve", not_on_curve),
        ("one byte short", key[..64].to_vec()),
        ("one byte long", [&key[..], &[0]].concat()),
        (
            "hybrid tag",
            [&[0x06 | (y[31] & 1)][..], &key[1..]].concat(),
        ),
        // Valid SEC1, but webpki takes uncompressed points only; so does this crate.
        ("compressed", compressed),
        ("garbage", vec![0xff; 65]),
        ("a SubjectPublicKeyInfo, not its key", {
            let mut spki = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
            spki.extend(&key);
            spki
        }),
    ];
    for (what, bad) in keys {
        for alg in [ECDSA_P256_SHA256, ECDSA_P256_SHA384] {
            assert!(!verdict(alg, &bad, b"sample", &sig), "{what}");
        }
    }
}

#[test]
fn malformed_signatures_are_refused() {
    let key = rfc6979_public_key();
    let good = rfc6979_signature_sha256();
    let (r, s) = (
        hex("efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"),
        hex("f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"),
    );
    let n = hex(N);
    let sigs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("r = 0", der(&[0], &s)),
        ("s = 0", der(&r, &[0])),
        ("r = n", der(&n, &s)),
        ("s = n", der(&r, &n)),
        ("r and s swapped", der(&s, &r)),
        ("raw r || s", [&r[..], &s[..]].concat()),
        ("trailing byte", [&good[..], &[0]].concat()),
        ("cut short", good[..good.len() - 1].to_vec()),
        ("negative r", {
            let mut v = der(&r, &s);
            v.remove(4); // the sign byte before r's high bit: r reads as negative
            v[1] -= 1;
            v[3] -= 1;
            v
        }),
    ];
    for (what, bad) in sigs {
        for alg in [ECDSA_P256_SHA256, ECDSA_P256_SHA384] {
            assert!(!verdict(alg, &key, b"sample", &bad), "{what}");
        }
    }
}

#[test]
fn random_keys_and_signatures_never_panic() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6979);
    let key = rfc6979_public_key();
    let sig = rfc6979_signature_sha256();
    for round in 0..500 {
        let mut bad_key = vec![0u8; (rng.next_u32() % 100) as usize];
        rng.fill_bytes(&mut bad_key);
        if round % 2 == 0 && !bad_key.is_empty() {
            bad_key[0] = 0x04;
        }
        let mut bad_sig = vec![0u8; (rng.next_u32() % 80) as usize];
        rng.fill_bytes(&mut bad_sig);
        if round % 3 == 0 && bad_sig.len() > 2 {
            bad_sig[0] = 0x30;
            bad_sig[1] = (bad_sig.len() - 2) as u8;
        }
        for alg in [ECDSA_P256_SHA256, ECDSA_P256_SHA384] {
            assert!(!verdict(alg, &bad_key, b"sample", &sig));
            assert!(!verdict(alg, &key, b"sample", &bad_sig));
        }
    }
}

#[test]
fn signatures_by_a_p256_signer_verify() {
    let signing = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let key = signing.verifying_key().to_encoded_point(false);
    for len in [0usize, 1, 64, 1000] {
        let msg = vec![0x5a; len];
        let sig: Signature = signing.sign(&msg);
        assert!(verdict(
            ECDSA_P256_SHA256,
            key.as_bytes(),
            &msg,
            sig.to_der().as_bytes()
        ));
        let mut other = msg.clone();
        other.push(0);
        assert!(!verdict(
            ECDSA_P256_SHA256,
            key.as_bytes(),
            &other,
            sig.to_der().as_bytes()
        ));
    }
}

#[test]
fn identifiers_and_the_supported_set() {
    assert_eq!(ECDSA_P256_SHA256.public_key_alg_id(), alg_id::ECDSA_P256);
    assert_eq!(ECDSA_P256_SHA256.signature_alg_id(), alg_id::ECDSA_SHA256);
    assert_eq!(ECDSA_P256_SHA384.public_key_alg_id(), alg_id::ECDSA_P256);
    assert_eq!(ECDSA_P256_SHA384.signature_alg_id(), alg_id::ECDSA_SHA384);
    assert!(!ECDSA_P256_SHA256.fips());

    // Certificates: SHA-256 only by default; SHA-384 too in the larger set.
    let ids = |algs: &[&dyn SignatureVerificationAlgorithm]| -> Vec<_> {
        algs.iter().map(|a| a.signature_alg_id()).collect()
    };
    assert_eq!(ids(SUPPORTED_SIG_ALGS.all), [alg_id::ECDSA_SHA256]);
    assert_eq!(
        ids(SUPPORTED_SIG_ALGS_WITH_SHA384.all),
        [alg_id::ECDSA_SHA256, alg_id::ECDSA_SHA384]
    );
    for set in [&SUPPORTED_SIG_ALGS, &SUPPORTED_SIG_ALGS_WITH_SHA384] {
        // The only scheme offered to the server, and the only one its CertificateVerify may use.
        assert_eq!(
            set.supported_schemes(),
            vec![SignatureScheme::ECDSA_NISTP256_SHA256]
        );
        assert_eq!(ids(set.mapping[0].1), [alg_id::ECDSA_SHA256]);
    }
}
