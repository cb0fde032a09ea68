//! Every read and write through a caller's pointer, each checked: null pointers, lengths that do
//! not fit in memory, buffers too small. Nothing else in the crate touches a raw pointer.

use crate::attributes::Attribute;
use crate::error::{Error, P11Result};
use crate::mechanisms::{EcdhParams, Mechanism, Params};
use cryptoki_sys::*;
use std::mem::size_of;

/// A length from the caller as a `usize` for `T`s, refused when the bytes would not fit in an
/// `isize` (no real buffer is that long, and `slice::from_raw_parts` requires it).
fn length<T>(len: CK_ULONG) -> P11Result<usize> {
    let n = usize_of(len)?;
    match n.checked_mul(size_of::<T>().max(1)) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(n),
        _ => Err(Error::BadArguments("a length no buffer has")),
    }
}

/// A count or length from the caller as a `usize` (refused when it does not fit one).
pub fn usize_of(len: CK_ULONG) -> P11Result<usize> {
    usize::try_from(len).map_err(|_| Error::BadArguments("a length no buffer has"))
}

/// `len` `T`s at `ptr`; a null pointer is only accepted with a zero length.
///
/// # Safety
/// When `ptr` is not null it must point to `len` readable `T`s that stay valid and unchanged for
/// `'a` (PKCS#11's contract for input buffers).
pub unsafe fn slice<'a, T>(ptr: *const T, len: CK_ULONG) -> P11Result<&'a [T]> {
    let n = length::<T>(len)?;
    if ptr.is_null() {
        return if n == 0 {
            Ok(&[])
        } else {
            Err(Error::BadArguments("a length without its buffer"))
        };
    }
    if !ptr.is_aligned() {
        return Err(Error::BadArguments("a misaligned array"));
    }
    // SAFETY: not null, aligned, and the caller vouches for `n` readable elements (size checked above).
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// Reads a value the caller passed by pointer.
///
/// # Safety
/// When not null, `ptr` must point to a readable, initialized `T`.
pub unsafe fn read<T: Copy>(ptr: *const T) -> P11Result<T> {
    if ptr.is_null() {
        return Err(Error::BadArguments("a null pointer to read"));
    }
    // SAFETY: not null; the caller vouches it points to a `T`.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Writes an output value.
///
/// # Safety
/// When not null, `ptr` must point to writable memory for a `T`.
pub unsafe fn write<T>(ptr: *mut T, value: T) -> P11Result<()> {
    if ptr.is_null() {
        return Err(Error::BadArguments("a null pointer to write"));
    }
    // SAFETY: not null; the caller vouches it is writable for a `T`.
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}

/// Copies `data` to `out`, which the caller says holds at least `data.len()` elements.
///
/// # Safety
/// `out` must be null or writable for `data.len()` `T`s.
pub unsafe fn copy_to<T: Copy>(out: *mut T, data: &[T]) -> P11Result<()> {
    if out.is_null() || !out.is_aligned() {
        return Err(Error::BadArguments("a null or misaligned output array"));
    }
    // SAFETY: not null, aligned, writable for `data.len()` elements (the caller's word), and
    // distinct from `data`, which this module owns.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), out, data.len()) };
    Ok(())
}

/// The PKCS#11 convention for variable-length output (§5.2): with a null `out`, only the length
/// is written (`Ok`); with a buffer too small for `data`, the length needed is written and the
/// call fails with [`Error::BufferTooSmall`]; else `data` is copied and its length written.
///
/// # Safety
/// `len` must be null or point to a writable `CK_ULONG` holding the buffer's capacity; `out`, when
/// not null, must be writable for that many `T`s.
pub unsafe fn fill<T: Copy>(out: *mut T, len: *mut CK_ULONG, data: &[T]) -> P11Result<()> {
    // SAFETY: forwarded contract.
    let room = unsafe { read(len.cast_const())? };
    let needed = data.len() as CK_ULONG;
    if !out.is_null() {
        if room < needed {
            // SAFETY: `len` was readable, so it is this caller's length cell.
            unsafe { write(len, needed)? };
            return Err(Error::BufferTooSmall { needed: data.len() });
        }
        // SAFETY: `out` holds `room >= data.len()` elements, as the caller said.
        unsafe { copy_to(out, data)? };
    }
    // SAFETY: as above.
    unsafe { write(len, needed) }
}

/// The capacity behind an output buffer: `None` for a null buffer (a size query).
///
/// # Safety
/// `len` must be null or point to a readable `CK_ULONG`.
pub unsafe fn room(out: *const u8, len: *const CK_ULONG) -> P11Result<Option<usize>> {
    // SAFETY: forwarded contract.
    let room = unsafe { read(len)? };
    if out.is_null() {
        return Ok(None);
    }
    Ok(Some(length::<u8>(room)?))
}

/// A template the caller passed in, copied out.
///
/// # Safety
/// `ptr` must be null (with `count` 0) or point to `count` `CK_ATTRIBUTE`s whose `pValue`s are
/// null or readable for `ulValueLen` bytes.
pub unsafe fn template(ptr: *const CK_ATTRIBUTE, count: CK_ULONG) -> P11Result<Vec<Attribute>> {
    // SAFETY: forwarded contract.
    let attributes = unsafe { slice(ptr, count)? };
    attributes
        .iter()
        .map(|a| {
            // SAFETY: forwarded contract for each value.
            let value = unsafe { slice(a.pValue.cast::<u8>().cast_const(), a.ulValueLen)? };
            Ok(Attribute::new(a.type_, value))
        })
        .collect()
}

/// A mechanism the caller passed in, its parameters copied out.
///
/// # Safety
/// `ptr` must be null or point to a `CK_MECHANISM` whose `pParameter` is null or readable for
/// `ulParameterLen` bytes; for the ECDH mechanisms, a `CK_ECDH1_DERIVE_PARAMS` whose data
/// pointers follow the same rule.
pub unsafe fn mechanism(ptr: *const CK_MECHANISM) -> P11Result<Mechanism> {
    // SAFETY: forwarded contract.
    let m = unsafe { read(ptr)? };
    let params = if m.pParameter.is_null() && m.ulParameterLen == 0 {
        Params::None
    } else if matches!(m.mechanism, CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE)
        && !m.pParameter.is_null()
        && m.ulParameterLen as usize == size_of::<CK_ECDH1_DERIVE_PARAMS>()
    {
        // SAFETY: not null, and of the size of the structure, as the caller vouches.
        let p = unsafe { read(m.pParameter.cast::<CK_ECDH1_DERIVE_PARAMS>().cast_const())? };
        // SAFETY: forwarded contract for the structure's two buffers.
        let shared = unsafe { slice(p.pSharedData.cast_const(), p.ulSharedDataLen)? };
        // SAFETY: as above.
        let public = unsafe { slice(p.pPublicData.cast_const(), p.ulPublicDataLen)? };
        Params::Ecdh(EcdhParams {
            kdf: p.kdf,
            shared_data: shared.to_vec(),
            public_data: public.to_vec(),
        })
    } else {
        Params::Unreadable
    };
    Ok(Mechanism {
        kind: m.mechanism,
        params,
    })
}
