//! Signatures and attributes through the raw function list: wrong keys and mechanisms, size
//! queries and short buffers, multi-part signing, digests of every length, and templates whose
//! attributes fail one by one.
#![allow(unsafe_code)]
// `call!` wraps each raw call, and its pointer arguments, in `unsafe`: the point of these tests.
#![allow(clippy::macro_metavars_in_unsafe)]

mod support;

use cryptoki_sys::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256, Sha384};
use support::raw::{attribute, fixture, nil, P256};

#[test]
fn signatures_bad_mechanisms_and_short_buffers() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let s = raw.session();
    let key = raw.object(s, CKO_PRIVATE_KEY, "device");
    // The ephemeral slot's key, generated first: a slot never generated is not shown.
    let (_, ecdhe) = raw.generate(s, &mut P256.clone(), 4, true).unwrap();
    let cert = raw.object(s, CKO_CERTIFICATE, "device-cert");
    let mut m = CK_MECHANISM {
        mechanism: CKM_ECDSA_SHA256,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    assert_eq!(call!(raw, C_SignInit(s, nil(), key)), CKR_ARGUMENTS_BAD);
    assert_eq!(
        raw.sign(s, CKM_RSA_PKCS, key, b"x"),
        Err(CKR_MECHANISM_INVALID)
    );
    assert_eq!(
        raw.sign(s, CKM_ECDSA_SHA384, key, b"x"),
        Err(CKR_MECHANISM_INVALID)
    );
    assert_eq!(
        raw.sign(s, CKM_ECDSA, 0xBAD, b"x"),
        Err(CKR_KEY_HANDLE_INVALID)
    );
    assert_eq!(
        raw.sign(s, CKM_ECDSA, cert, b"x"),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(
        raw.sign(s, CKM_ECDSA, ecdhe, b"x"),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    let mut param = [0u8; 4];
    let mut with_param = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: param.as_mut_ptr().cast(),
        ulParameterLen: 4,
    };
    assert_eq!(
        call!(raw, C_SignInit(s, &mut with_param, key)),
        CKR_MECHANISM_PARAM_INVALID
    );
    let mut out = [0u8; 64];
    let mut len: CK_ULONG = 64;
    let mut msg = b"short buffers".to_vec();
    let msg_len = msg.len() as CK_ULONG;
    let data = msg.as_mut_ptr();
    let c_sign = |out: *mut u8, len: *mut CK_ULONG| call!(raw, C_Sign(s, data, msg_len, out, len));
    assert_eq!(
        c_sign(out.as_mut_ptr(), &mut len),
        CKR_OPERATION_NOT_INITIALIZED
    );

    assert_eq!(call!(raw, C_SignInit(s, &mut m, key)), CKR_OK);
    assert_eq!(call!(raw, C_SignInit(s, &mut m, key)), CKR_OPERATION_ACTIVE);
    assert_eq!(c_sign(out.as_mut_ptr(), nil()), CKR_ARGUMENTS_BAD);
    assert_eq!(
        call!(raw, C_SignInit(s, &mut m, key)),
        CKR_OK,
        "the failed call ended the operation"
    );
    len = 0;
    assert_eq!(c_sign(nil(), &mut len), CKR_OK);
    assert_eq!(len, 64, "a null buffer asks the length");
    len = 10;
    assert_eq!(c_sign(out.as_mut_ptr(), &mut len), CKR_BUFFER_TOO_SMALL);
    assert_eq!(len, 64);
    assert_eq!(
        c_sign(out.as_mut_ptr(), &mut len),
        CKR_OK,
        "the operation survived the size queries"
    );
    let sig = p256::ecdsa::Signature::from_slice(&out[..len as usize]).unwrap();
    f.device_key()
        .verify_prehash(&Sha256::digest(&msg), &sig)
        .unwrap();
    assert_eq!(
        c_sign(out.as_mut_ptr(), &mut len),
        CKR_OPERATION_NOT_INITIALIZED
    );

    // Multi-part ECDSA-SHA256.
    assert_eq!(call!(raw, C_SignInit(s, &mut m, key)), CKR_OK);
    for part in msg.chunks_mut(5) {
        let n = part.len() as CK_ULONG;
        assert_eq!(call!(raw, C_SignUpdate(s, part.as_mut_ptr(), n)), CKR_OK);
    }
    assert_eq!(
        call!(
            raw,
            C_Sign(s, msg.as_mut_ptr(), msg_len, out.as_mut_ptr(), &mut len)
        ),
        CKR_OPERATION_ACTIVE,
        "C_Sign cannot end a multi-part signature"
    );
    // That failure ended it, as every failure does: again, ended by C_SignFinal.
    assert_eq!(call!(raw, C_SignInit(s, &mut m, key)), CKR_OK);
    for part in msg.chunks_mut(5) {
        let n = part.len() as CK_ULONG;
        assert_eq!(call!(raw, C_SignUpdate(s, part.as_mut_ptr(), n)), CKR_OK);
    }
    len = 64;
    assert_eq!(
        call!(raw, C_SignFinal(s, out.as_mut_ptr(), &mut len)),
        CKR_OK
    );
    let sig = p256::ecdsa::Signature::from_slice(&out[..64]).unwrap();
    f.device_key()
        .verify_prehash(&Sha256::digest(&msg), &sig)
        .unwrap();
    assert_eq!(
        call!(raw, C_SignUpdate(s, msg.as_mut_ptr(), msg_len)),
        CKR_OPERATION_NOT_INITIALIZED
    );

    // CKM_ECDSA over digests of several lengths: each verifies as ECDSA defines it for P-256.
    for digest in [
        Sha256::digest(b"a").to_vec(),
        Sha384::digest(b"b").to_vec(),
        sha1_like(20),
    ] {
        let sig = raw.sign(s, CKM_ECDSA, key, &digest).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        f.device_key()
            .verify_prehash(&digest, &sig)
            .unwrap_or_else(|e| panic!("{} byte digest: {e}", digest.len()));
    }
    assert_eq!(raw.sign(s, CKM_ECDSA, key, &[]), Err(CKR_DATA_LEN_RANGE));
    assert_eq!(
        raw.sign(s, CKM_ECDSA, key, &[1; 65]),
        Err(CKR_DATA_LEN_RANGE)
    );
    assert!(
        raw.sign(s, CKM_ECDSA, key, &[1; 32]).is_ok(),
        "a failed C_Sign ended its operation"
    );
    assert_eq!(raw.finalize(), CKR_OK);
}

/// Twenty bytes of a fixed pattern (a SHA-1-sized digest).
fn sha1_like(n: usize) -> Vec<u8> {
    (0..n as u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect()
}

#[test]
fn attribute_templates_answer_each_attribute() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let s = raw.session();
    let key = raw.object(s, CKO_PRIVATE_KEY, "device");
    let mut label = [0u8; 6];
    let mut value = [0u8; 64];
    let mut class: CK_OBJECT_CLASS = 0;
    let mut short = [0u8; 2];
    let mut template = [
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_mut_ptr().cast(),
            ulValueLen: 6,
        },
        CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: value.as_mut_ptr().cast(),
            ulValueLen: 64,
        },
        CK_ATTRIBUTE {
            type_: CKA_MODULUS,
            pValue: nil(),
            ulValueLen: 0,
        },
        attribute(CKA_CLASS, &mut class),
        CK_ATTRIBUTE {
            type_: CKA_EC_PARAMS,
            pValue: short.as_mut_ptr().cast(),
            ulValueLen: 2,
        },
    ];
    let rv = call!(raw, C_GetAttributeValue(s, key, template.as_mut_ptr(), 5));
    assert_eq!(rv, CKR_ATTRIBUTE_SENSITIVE);
    assert_eq!((&label, template[0].ulValueLen), (b"device", 6));
    assert_eq!(
        template[1].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "the key's value"
    );
    assert_eq!(value, [0; 64], "nothing written for the key's value");
    assert_eq!(
        template[2].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "no modulus"
    );
    assert_eq!(class, CKO_PRIVATE_KEY);
    assert_eq!(
        template[4].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "2 bytes are too few"
    );
    assert_eq!(raw.finalize(), CKR_OK);
}

/// `C_VerifyInit` + `C_Verify`; the `CKR_*` of whichever failed.
fn verify(
    raw: &support::raw::Raw,
    s: CK_SESSION_HANDLE,
    mechanism: CK_MECHANISM_TYPE,
    key: CK_OBJECT_HANDLE,
    data: &[u8],
    signature: &[u8],
) -> CK_RV {
    let mut m = CK_MECHANISM {
        mechanism,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    let rv = call!(raw, C_VerifyInit(s, &mut m, key));
    if rv != CKR_OK {
        return rv;
    }
    let (mut data, mut signature) = (data.to_vec(), signature.to_vec());
    let (n, k) = (data.len() as CK_ULONG, signature.len() as CK_ULONG);
    call!(
        raw,
        C_Verify(s, data.as_mut_ptr(), n, signature.as_mut_ptr(), k)
    )
}

#[test]
fn verification_with_the_public_key() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let s = raw.session();
    let key = raw.object(s, CKO_PRIVATE_KEY, "device");
    let public = raw.object(s, CKO_PUBLIC_KEY, "device");
    let msg = b"checked on the host";
    let sig = raw.sign(s, CKM_ECDSA_SHA256, key, msg).unwrap();
    assert_eq!(verify(raw, s, CKM_ECDSA_SHA256, public, msg, &sig), CKR_OK);
    let digest = Sha256::digest(msg);
    assert_eq!(verify(raw, s, CKM_ECDSA, public, &digest, &sig), CKR_OK);
    let mut wrong = sig.clone();
    wrong[40] ^= 1;
    assert_eq!(
        verify(raw, s, CKM_ECDSA_SHA256, public, msg, &wrong),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(
        verify(raw, s, CKM_ECDSA_SHA256, public, b"another", &sig),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(
        verify(raw, s, CKM_ECDSA_SHA256, public, msg, &sig[..63]),
        CKR_SIGNATURE_LEN_RANGE
    );
    assert_eq!(
        verify(raw, s, CKM_ECDSA_SHA256, key, msg, &sig),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        verify(raw, s, CKM_RSA_PKCS, public, msg, &sig),
        CKR_MECHANISM_INVALID
    );
    let mut sig = sig;
    assert_eq!(
        call!(raw, C_VerifyFinal(s, sig.as_mut_ptr(), 64)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // Multi-part.
    let mut m = CK_MECHANISM {
        mechanism: CKM_ECDSA_SHA256,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    assert_eq!(call!(raw, C_VerifyInit(s, &mut m, public)), CKR_OK);
    assert_eq!(
        call!(raw, C_VerifyInit(s, &mut m, public)),
        CKR_OPERATION_ACTIVE
    );
    let mut msg = msg.to_vec();
    for part in msg.chunks_mut(4) {
        let n = part.len() as CK_ULONG;
        assert_eq!(call!(raw, C_VerifyUpdate(s, part.as_mut_ptr(), n)), CKR_OK);
    }
    assert_eq!(call!(raw, C_VerifyFinal(s, sig.as_mut_ptr(), 64)), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
}

/// PKCS#11 v2.40 §5.12/§5.13: a call to `C_Sign`, `C_SignUpdate` or `C_SignFinal` that fails ends
/// the signature (only a successful size query and `CKR_BUFFER_TOO_SMALL` leave it active), and
/// any failed `C_Verify`, `C_VerifyUpdate` or `C_VerifyFinal` ends the verification: also when
/// the failure is an argument the module could not read.
#[test]
fn every_failure_ends_the_operation() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let s = raw.session();
    let key = raw.object(s, CKO_PRIVATE_KEY, "device");
    let public = raw.object(s, CKO_PUBLIC_KEY, "device");
    let mut m = CK_MECHANISM {
        mechanism: CKM_ECDSA_SHA256,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    let mut msg = *b"every failure ends it";
    let n = msg.len() as CK_ULONG;
    let data = msg.as_mut_ptr();
    let mut out = [0u8; 64];
    let mut len: CK_ULONG = 64;
    let sig = out.as_mut_ptr();

    // Each failing call, after a fresh C_SignInit; then the operation must be gone.
    let sign_failures: [(&str, &dyn Fn() -> CK_RV, CK_RV); 5] = [
        (
            "C_Sign, no length",
            &|| call!(raw, C_Sign(s, data, n, sig, nil())),
            CKR_ARGUMENTS_BAD,
        ),
        (
            "C_Sign, data length without data",
            &|| call!(raw, C_Sign(s, nil(), 4, sig, &mut 64)),
            CKR_ARGUMENTS_BAD,
        ),
        (
            "C_SignFinal, no length",
            &|| call!(raw, C_SignFinal(s, sig, nil())),
            CKR_ARGUMENTS_BAD,
        ),
        (
            "C_SignUpdate, length without data",
            &|| call!(raw, C_SignUpdate(s, nil(), 4)),
            CKR_ARGUMENTS_BAD,
        ),
        (
            "C_Sign after C_SignUpdate",
            &|| {
                assert_eq!(call!(raw, C_SignUpdate(s, data, n)), CKR_OK);
                call!(raw, C_Sign(s, data, n, sig, &mut 64))
            },
            CKR_OPERATION_ACTIVE,
        ),
    ];
    for (what, fail, rv) in sign_failures {
        assert_eq!(call!(raw, C_SignInit(s, &mut m, key)), CKR_OK, "{what}");
        assert_eq!(fail(), rv, "{what}");
        assert_eq!(
            call!(raw, C_SignFinal(s, sig, &mut len)),
            CKR_OPERATION_NOT_INITIALIZED,
            "{what} ended the signature"
        );
    }
    // The two that keep it: a size query, and a buffer too small.
    assert_eq!(call!(raw, C_SignInit(s, &mut m, key)), CKR_OK);
    assert_eq!(call!(raw, C_Sign(s, data, n, nil(), &mut len)), CKR_OK);
    len = 63;
    assert_eq!(
        call!(raw, C_Sign(s, data, n, sig, &mut len)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(call!(raw, C_Sign(s, data, n, sig, &mut len)), CKR_OK);

    let signature = raw.sign(s, CKM_ECDSA_SHA256, key, &msg).unwrap();
    let mut signature = signature;
    let sig = signature.as_mut_ptr();
    let verify_failures: [(&str, &dyn Fn() -> CK_RV, CK_RV); 5] = [
        (
            "C_Verify, signature length without signature",
            &|| call!(raw, C_Verify(s, data, n, nil(), 64)),
            CKR_ARGUMENTS_BAD,
        ),
        (
            "C_Verify, data length without data",
            &|| call!(raw, C_Verify(s, nil(), 3, sig, 64)),
            CKR_ARGUMENTS_BAD,
        ),
        (
            "C_VerifyUpdate, length without data",
            &|| call!(raw, C_VerifyUpdate(s, nil(), 3)),
            CKR_ARGUMENTS_BAD,
        ),
        (
            "C_VerifyFinal, length without signature",
            &|| call!(raw, C_VerifyFinal(s, nil(), 64)),
            CKR_ARGUMENTS_BAD,
        ),
        (
            "C_Verify after C_VerifyUpdate",
            &|| {
                assert_eq!(call!(raw, C_VerifyUpdate(s, data, n)), CKR_OK);
                call!(raw, C_Verify(s, data, n, sig, 64))
            },
            CKR_OPERATION_ACTIVE,
        ),
    ];
    for (what, fail, rv) in verify_failures {
        assert_eq!(
            call!(raw, C_VerifyInit(s, &mut m, public)),
            CKR_OK,
            "{what}"
        );
        assert_eq!(fail(), rv, "{what}");
        assert_eq!(
            call!(raw, C_VerifyFinal(s, sig, 64)),
            CKR_OPERATION_NOT_INITIALIZED,
            "{what} ended the verification"
        );
    }
    assert_eq!(raw.finalize(), CKR_OK);
}
