//! Keys through the raw function list: no attribute of any object ever holds a private key,
//! key pair generation and ECDH derivation with every kind of wrong argument and then right,
//! derived secrets as session objects, and several threads signing at once.
#![allow(unsafe_code)]
// `call!` wraps each raw call, and its pointer arguments, in `unsafe`: the point of these tests.
#![allow(clippy::macro_metavars_in_unsafe)]

mod support;

use cryptoki_sys::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};
use std::ptr::null_mut;
use support::raw::{attribute, bytes, fixture, nil, Raw, P256};

/// P-384's, which the card does not offer.
const P384: [u8; 7] = [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];

#[test]
fn no_attribute_of_any_object_holds_a_private_key() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let s = raw.session();
    let objects = raw.find(s, &mut []);
    // The device key pair and the certificate files (the ephemeral slot shows once generated).
    assert!(objects.len() >= 4, "keys, certificates: {objects:?}");
    // Every standard attribute type, the array-valued ones, and some vendor-defined ones.
    let types: Vec<CK_ATTRIBUTE_TYPE> = (0..0x800)
        .chain([
            CKA_WRAP_TEMPLATE,
            CKA_UNWRAP_TEMPLATE,
            CKA_DERIVE_TEMPLATE,
            CKA_VENDOR_DEFINED,
            CKA_VENDOR_DEFINED + 1,
            CK_ULONG::MAX - 1,
        ])
        .collect();
    let windows: Vec<&[u8]> = f.device_scalar.windows(12).collect();
    let mut shown = 0;
    for &o in &objects {
        for &t in &types {
            match raw.attribute(s, o, t) {
                Ok(value) => {
                    shown += 1;
                    assert!(
                        !windows
                            .iter()
                            .any(|w| value.windows(w.len()).any(|v| v == *w)),
                        "attribute {t:#x} of object {o} holds part of the device key"
                    );
                }
                Err(rv) => assert!(
                    rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE,
                    "attribute {t:#x} of object {o}: {rv:#x}"
                ),
            }
        }
    }
    assert!(shown > 90, "only {shown} attributes answered");
    let key = raw.object(s, CKO_PRIVATE_KEY, "device");
    assert_eq!(
        raw.attribute(s, key, CKA_VALUE),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    for t in [CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_MODULUS] {
        assert_eq!(raw.attribute(s, key, t), Err(CKR_ATTRIBUTE_TYPE_INVALID));
    }
    assert_eq!(raw.attribute(s, key, CKA_SENSITIVE), Ok(vec![CK_TRUE]));
    assert_eq!(raw.attribute(s, key, CKA_EXTRACTABLE), Ok(vec![CK_FALSE]));
    let point = raw.attribute(s, key, CKA_EC_POINT).unwrap();
    assert_eq!(&point[2..], f.report.device_public_key.as_slice());
    assert_eq!(raw.finalize(), CKR_OK);
}

/// `C_DeriveKey` with ECDH1 (`kdf`, the peer's point) and the given template.
fn derive(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    base: CK_OBJECT_HANDLE,
    kdf: CK_EC_KDF_TYPE,
    peer: &mut [u8],
    template: &mut [CK_ATTRIBUTE],
) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    let mut params = CK_ECDH1_DERIVE_PARAMS {
        kdf,
        ulSharedDataLen: 0,
        pSharedData: null_mut(),
        ulPublicDataLen: peer.len() as CK_ULONG,
        pPublicData: peer.as_mut_ptr(),
    };
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_ECDH1_DERIVE,
        pParameter: (&mut params as *mut CK_ECDH1_DERIVE_PARAMS).cast(),
        ulParameterLen: std::mem::size_of::<CK_ECDH1_DERIVE_PARAMS>() as CK_ULONG,
    };
    let mut key = 0;
    let n = template.len() as CK_ULONG;
    match call!(
        raw,
        C_DeriveKey(s, &mut mechanism, base, template.as_mut_ptr(), n, &mut key)
    ) {
        CKR_OK => Ok(key),
        rv => Err(rv),
    }
}

#[test]
fn key_pair_generation_and_ecdh_derivation() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let mut read_only = 0;
    let rv = call!(
        raw,
        C_OpenSession(0, CKF_SERIAL_SESSION, nil(), None, &mut read_only)
    );
    assert_eq!(rv, CKR_OK);
    let s = raw.session();
    // A fresh card: the ephemeral slot (ID 04) was never generated, so it is not shown at all
    // (its private key would have no public half, which OpenSC's p11test usage_test refuses).
    let with_id_04 = || raw.find(s, &mut [bytes(CKA_ID, &mut [4u8])]);
    assert_eq!(with_id_04(), Vec::<CK_OBJECT_HANDLE>::new());
    every_private_key_has_its_public_half(raw, s);
    let mut p256 = P256;
    assert_eq!(
        raw.generate(read_only, &mut p256, 4, true),
        Err(CKR_SESSION_READ_ONLY)
    );
    assert_eq!(
        raw.generate(s, &mut [], 4, true),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    assert_eq!(
        raw.generate(s, &mut P384.clone(), 4, true),
        Err(CKR_CURVE_NOT_SUPPORTED)
    );
    assert_eq!(
        raw.generate(s, &mut p256, 9, true),
        Err(CKR_TEMPLATE_INCONSISTENT),
        "no key 09"
    );
    assert_eq!(
        raw.generate(s, &mut p256, 1, true),
        Err(CKR_TEMPLATE_INCONSISTENT),
        "the device key does not derive"
    );
    let mut rsa = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS_KEY_PAIR_GEN,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    let (mut p, mut k) = (0, 0);
    assert_eq!(
        call!(
            raw,
            C_GenerateKeyPair(s, &mut rsa, nil(), 0, nil(), 0, &mut p, &mut k)
        ),
        CKR_MECHANISM_INVALID
    );
    let mut ec = CK_MECHANISM {
        mechanism: CKM_EC_KEY_PAIR_GEN,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    assert_eq!(
        call!(
            raw,
            C_GenerateKeyPair(s, &mut ec, nil(), 0, nil(), 0, &mut p, nil())
        ),
        CKR_ARGUMENTS_BAD
    );

    let (public, private) = raw
        .generate(s, &mut p256, 4, true)
        .expect("generate into the ephemeral slot");
    let point = raw.attribute(s, public, CKA_EC_POINT).unwrap();
    assert_eq!(raw.attribute(s, private, CKA_EC_POINT).unwrap(), point);
    assert_eq!(with_id_04(), vec![private, public], "shown once generated");
    every_private_key_has_its_public_half(raw, s);
    let ephemeral = p256::PublicKey::from_sec1_bytes(&point[2..]).expect("a P-256 point");

    let peer = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), ephemeral.as_affine());
    let expected = expected.raw_secret_bytes().to_vec();
    let mut peer_point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&peer.public_key(), false)
            .as_bytes()
            .to_vec();
    let device = raw.object(s, CKO_PRIVATE_KEY, "device");
    let cert = raw.object(s, CKO_CERTIFICATE, "device-cert");
    assert_eq!(
        derive(raw, s, device, CKD_NULL, &mut peer_point, &mut []),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    assert_eq!(
        derive(raw, s, cert, CKD_NULL, &mut peer_point, &mut []),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(
        derive(raw, s, 0xBAD, CKD_NULL, &mut peer_point, &mut []),
        Err(CKR_KEY_HANDLE_INVALID)
    );
    assert_eq!(
        derive(raw, s, private, CKD_SHA1_KDF, &mut peer_point, &mut []),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut off_curve = peer_point.clone();
    off_curve[64] ^= 1;
    assert_eq!(
        derive(raw, s, private, CKD_NULL, &mut off_curve, &mut []),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut yes = CK_TRUE;
    assert_eq!(
        derive(
            raw,
            s,
            private,
            CKD_NULL,
            &mut peer_point,
            &mut [attribute(CKA_TOKEN, &mut yes)]
        ),
        Err(CKR_TEMPLATE_INCONSISTENT)
    );
    let mut no_params = CK_MECHANISM {
        mechanism: CKM_ECDH1_DERIVE,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    let mut key = 0;
    assert_eq!(
        call!(
            raw,
            C_DeriveKey(s, &mut no_params, private, nil(), 0, &mut key)
        ),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        call!(
            raw,
            C_DeriveKey(s, &mut no_params, private, nil(), 0, nil())
        ),
        CKR_ARGUMENTS_BAD
    );
    let mut ecdsa = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    assert_eq!(
        call!(raw, C_DeriveKey(s, &mut ecdsa, private, nil(), 0, &mut key)),
        CKR_MECHANISM_INVALID
    );

    // The raw point and the same in a DER OCTET STRING give the peer's own secret.
    let secret = derive(raw, s, private, CKD_NULL, &mut peer_point, &mut []).unwrap();
    assert_eq!(raw.attribute(s, secret, CKA_VALUE).unwrap(), expected);
    assert_eq!(
        raw.attribute(s, secret, CKA_CLASS).unwrap(),
        CKO_SECRET_KEY.to_ne_bytes()
    );
    let mut der = vec![0x04, 0x41];
    der.extend_from_slice(&peer_point);
    let (mut sixteen, mut sensitive) = (16 as CK_ULONG, CK_TRUE);
    let short = derive(
        raw,
        s,
        private,
        CKD_NULL,
        &mut der,
        &mut [attribute(CKA_VALUE_LEN, &mut sixteen)],
    )
    .unwrap();
    assert_eq!(raw.attribute(s, short, CKA_VALUE).unwrap(), expected[..16]);
    let hidden = derive(
        raw,
        s,
        private,
        CKD_NULL,
        &mut peer_point,
        &mut [attribute(CKA_SENSITIVE, &mut sensitive)],
    )
    .unwrap();
    assert_eq!(
        raw.attribute(s, hidden, CKA_VALUE),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );

    // Session objects: seen by the application's other sessions, gone with their session.
    let secrets = |session| {
        let mut class = CKO_SECRET_KEY;
        raw.find(session, &mut [attribute(CKA_CLASS, &mut class)])
    };
    assert_eq!(secrets(read_only), vec![secret, short, hidden]);
    assert_eq!(call!(raw, C_DestroyObject(s, short)), CKR_OK);
    assert_eq!(
        call!(raw, C_DestroyObject(s, short)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    assert!(
        secrets(read_only).is_empty(),
        "closing the session destroyed its secrets"
    );
    assert_eq!(
        raw.attribute(read_only, secret, CKA_VALUE),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
    assert_eq!(raw.finalize(), CKR_OK);
}

/// OpenSC p11test's `usage_test` rule: every private key has a public key of the same `CKA_ID`,
/// which verifies if the private key signs and derives exactly when it derives.
fn every_private_key_has_its_public_half(raw: &Raw, s: CK_SESSION_HANDLE) {
    let of_class = |class: CK_OBJECT_CLASS| {
        let mut class = class;
        raw.find(s, &mut [attribute(CKA_CLASS, &mut class)])
    };
    let flag = |o, kind| raw.attribute(s, o, kind).unwrap() == [CK_TRUE];
    let publics = of_class(CKO_PUBLIC_KEY);
    let privates = of_class(CKO_PRIVATE_KEY);
    assert!(!privates.is_empty());
    for private in privates {
        let id = raw.attribute(s, private, CKA_ID).unwrap();
        let halves: Vec<_> = publics
            .iter()
            .filter(|p| raw.attribute(s, **p, CKA_ID).unwrap() == id)
            .collect();
        assert_eq!(halves.len(), 1, "the public half of private key {id:02x?}");
        let public = *halves[0];
        if flag(private, CKA_SIGN) {
            assert!(
                flag(public, CKA_VERIFY),
                "key {id:02x?} signs: its public half verifies"
            );
        }
        assert_eq!(
            flag(private, CKA_DERIVE),
            flag(public, CKA_DERIVE),
            "CKA_DERIVE of key {id:02x?} on both halves"
        );
    }
}

#[test]
fn sessions_on_several_threads_sign_at_once() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            scope.spawn(move || {
                let s = raw.session();
                let key = raw.object(s, CKO_PRIVATE_KEY, "device");
                for i in 0..5u8 {
                    let message = [t, i];
                    let sig = raw.sign(s, CKM_ECDSA_SHA256, key, &message).unwrap();
                    let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
                    f.device_key()
                        .verify_prehash(&Sha256::digest(message), &sig)
                        .unwrap();
                }
                assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
            });
        }
    });
    assert_eq!(raw.finalize(), CKR_OK);
}
