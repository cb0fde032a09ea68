//! Signature, key and random functions.

use super::{ptr, with_module};
use crate::error::{Error, P11Result};
use crate::sign::{Signed, SIGNATURE_LEN};
use cryptoki_sys::*;

/// An argument of a call inside a signature or verification, or the reason it could not be read;
/// then `end` ends the operation first, as PKCS#11 v2.40 ends it on every failed call (§5.12,
/// §5.13) and the module never saw this one.
fn read_or_end<T>(read: P11Result<T>, end: impl FnOnce()) -> P11Result<T> {
    read.inspect_err(|_| end())
}

/// Writes a signing call's result back: the signature, or only its length.
unsafe fn signed_out(
    result: P11Result<Signed>,
    signature: *mut CK_BYTE,
    len: *mut CK_ULONG,
) -> P11Result<()> {
    match result {
        // SAFETY: `len` was read before the call; PKCS#11 makes it writable.
        Ok(Signed::Length(n)) => unsafe { ptr::write(len, n as CK_ULONG) },
        // SAFETY: PKCS#11 output buffer convention; the room was checked by the module.
        Ok(Signed::Signature(bytes)) => unsafe { ptr::fill(signature, len, &bytes) },
        Err(too_small @ Error::BufferTooSmall { .. }) => {
            // SAFETY: as above.
            unsafe { ptr::write(len, SIGNATURE_LEN as CK_ULONG)? };
            Err(too_small)
        }
        Err(error) => Err(error),
    }
}

/// `C_SignInit`.
#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module("C_SignInit", |m| {
        // SAFETY: PKCS#11 mechanism; pointers checked inside.
        let mechanism = unsafe { ptr::mechanism(mechanism)? };
        m.sign_init(session, &mechanism, key)
    })
}

/// `C_Sign`: raw `r‖s`; a null buffer asks for the length.
#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    with_module("C_Sign", |m| {
        let end = || m.sign_failed(session);
        // SAFETY: PKCS#11 input buffer and output length; checked inside.
        let data = read_or_end(unsafe { ptr::slice(data.cast_const(), data_len) }, end)?;
        // SAFETY: as above.
        let room = read_or_end(unsafe { ptr::room(signature, signature_len) }, end)?;
        let result = m.sign(session, data, room);
        // SAFETY: PKCS#11 output buffer convention.
        unsafe { signed_out(result, signature, signature_len) }
    })
}

/// `C_SignUpdate`.
#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> CK_RV {
    with_module("C_SignUpdate", |m| {
        // SAFETY: PKCS#11 input buffer; checked inside.
        let part = unsafe { ptr::slice(part.cast_const(), part_len) };
        m.sign_update(session, read_or_end(part, || m.sign_failed(session))?)
    })
}

/// `C_SignFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    with_module("C_SignFinal", |m| {
        // SAFETY: PKCS#11 output length; checked inside.
        let room = unsafe { ptr::room(signature, signature_len) };
        let result = m.sign_final(session, read_or_end(room, || m.sign_failed(session))?);
        // SAFETY: PKCS#11 output buffer convention.
        unsafe { signed_out(result, signature, signature_len) }
    })
}

/// `C_VerifyInit`.
#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module("C_VerifyInit", |m| {
        // SAFETY: PKCS#11 mechanism; pointers checked inside.
        let mechanism = unsafe { ptr::mechanism(mechanism)? };
        m.verify_init(session, &mechanism, key)
    })
}

/// `C_Verify`: `r‖s` over the data.
#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    with_module("C_Verify", |m| {
        let end = || m.verify_failed(session);
        // SAFETY: PKCS#11 input buffers; checked inside.
        let data = read_or_end(unsafe { ptr::slice(data.cast_const(), data_len) }, end)?;
        // SAFETY: as above.
        let signature = unsafe { ptr::slice(signature.cast_const(), signature_len) };
        m.verify(session, data, read_or_end(signature, end)?)
    })
}

/// `C_VerifyUpdate`.
#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> CK_RV {
    with_module("C_VerifyUpdate", |m| {
        // SAFETY: PKCS#11 input buffer; checked inside.
        let part = unsafe { ptr::slice(part.cast_const(), part_len) };
        m.verify_update(session, read_or_end(part, || m.verify_failed(session))?)
    })
}

/// `C_VerifyFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    with_module("C_VerifyFinal", |m| {
        // SAFETY: PKCS#11 input buffer; checked inside.
        let signature = unsafe { ptr::slice(signature.cast_const(), signature_len) };
        m.verify_final(
            session,
            read_or_end(signature, || m.verify_failed(session))?,
        )
    })
}

/// `C_GenerateKeyPair`.
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    public_template: *mut CK_ATTRIBUTE,
    public_count: CK_ULONG,
    private_template: *mut CK_ATTRIBUTE,
    private_count: CK_ULONG,
    public_key: *mut CK_OBJECT_HANDLE,
    private_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module("C_GenerateKeyPair", |m| {
        // Checked before the card is asked: a key made and then not returned would be lost.
        if public_key.is_null() || private_key.is_null() {
            return Err(Error::BadArguments("phPublicKey or phPrivateKey is null"));
        }
        // SAFETY: PKCS#11 mechanism and templates; pointers checked inside.
        let mechanism = unsafe { ptr::mechanism(mechanism)? };
        // SAFETY: as above.
        let public = unsafe { ptr::template(public_template, public_count)? };
        // SAFETY: as above.
        let private = unsafe { ptr::template(private_template, private_count)? };
        let (p, k) = m.generate_key_pair(session, &mechanism, &public, &private)?;
        // SAFETY: checked for null; PKCS#11 makes them writable.
        unsafe {
            ptr::write(public_key, p)?;
            ptr::write(private_key, k)
        }
    })
}

/// `C_DeriveKey`.
#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module("C_DeriveKey", |m| {
        if key.is_null() {
            return Err(Error::BadArguments("phKey is null"));
        }
        // SAFETY: PKCS#11 mechanism and template; pointers checked inside.
        let mechanism = unsafe { ptr::mechanism(mechanism)? };
        // SAFETY: as above.
        let template = unsafe { ptr::template(template, count)? };
        let handle = m.derive(session, &mechanism, base, &template)?;
        // SAFETY: checked for null; PKCS#11 makes it writable.
        unsafe { ptr::write(key, handle) }
    })
}

/// `C_SeedRandom`: the card's generator takes no seed.
#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    seed_len: CK_ULONG,
) -> CK_RV {
    with_module("C_SeedRandom", |m| {
        // SAFETY: PKCS#11 input buffer; checked inside.
        unsafe { ptr::slice(seed.cast_const(), seed_len)? };
        m.session_info(session)?;
        Err(Error::SeedNotTaken)
    })
}

/// The most random bytes one call asks of the card (256 GET RANDOM commands).
const MAX_RANDOM: usize = 0x1_0000;

/// `C_GenerateRandom`: from the card's generator.
#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    with_module("C_GenerateRandom", |m| {
        let n = ptr::usize_of(len)?;
        if (out.is_null() && n != 0) || n > MAX_RANDOM {
            return Err(Error::BadArguments(
                "pRandomData is null, or more than 64 KiB asked",
            ));
        }
        let bytes = m.random(session, n)?;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: `out` is not null and holds `len` bytes, as the caller said.
        unsafe { ptr::copy_to(out, &bytes) }
    })
}
