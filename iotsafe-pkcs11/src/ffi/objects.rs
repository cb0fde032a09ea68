//! Object functions: search, attributes, sizes, destruction.

use super::{ptr, with_module};
use crate::error::Error;
use crate::search::{fill, overall, Fill};
use cryptoki_sys::*;

/// `C_FindObjectsInit`.
#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    with_module("C_FindObjectsInit", |m| {
        // SAFETY: PKCS#11 input template; pointers checked inside.
        let template = unsafe { ptr::template(template, count)? };
        m.find_init(session, &template)
    })
}

/// `C_FindObjects`.
#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    out: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    found: *mut CK_ULONG,
) -> CK_RV {
    with_module("C_FindObjects", |m| {
        if found.is_null() || (out.is_null() && max != 0) {
            return Err(Error::BadArguments(
                "pulObjectCount is null, or phObject without room",
            ));
        }
        let max = ptr::usize_of(max)?;
        let handles = m.find_next(session, max)?;
        if !handles.is_empty() {
            // SAFETY: `out` holds `max >= handles.len()` handles, as the caller said.
            unsafe { ptr::copy_to(out, &handles)? };
        }
        // SAFETY: checked for null; PKCS#11 makes it writable.
        unsafe { ptr::write(found, handles.len() as CK_ULONG) }
    })
}

/// `C_FindObjectsFinal`.
#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    with_module("C_FindObjectsFinal", |m| m.find_final(session))
}

/// `C_GetAttributeValue`: every attribute of the template is answered (value, length, or
/// `CK_UNAVAILABLE_INFORMATION`), then the call's return value says whether any failed.
#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    with_module("C_GetAttributeValue", |m| {
        // SAFETY: PKCS#11 template; checked for null, alignment and size.
        // Copied out, so that nothing borrows the caller's array while lengths are written to it.
        let attributes = unsafe { ptr::slice(template.cast_const(), count)? }.to_vec();
        let types: Vec<CK_ATTRIBUTE_TYPE> = attributes.iter().map(|a| a.type_).collect();
        let lookups = m.attributes(session, object, &types)?;
        let mut fills = Vec::with_capacity(lookups.len());
        for (i, lookup) in lookups.iter().enumerate() {
            let a = attributes[i];
            let room = if a.pValue.is_null() {
                None
            } else {
                Some(ptr::usize_of(a.ulValueLen)?)
            };
            let f = fill(lookup, room);
            let len = match &f {
                Fill::Copy(bytes) => {
                    // SAFETY: `pValue` is not null and the caller said it holds `ulValueLen`
                    // bytes, at least `bytes.len()`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            bytes.as_ptr(),
                            a.pValue.cast::<u8>(),
                            bytes.len(),
                        )
                    };
                    bytes.len() as CK_ULONG
                }
                Fill::Length(n) => *n as CK_ULONG,
                Fill::Unavailable(_) => CK_UNAVAILABLE_INFORMATION,
            };
            // SAFETY: `template` holds `count > i` attributes, writable as PKCS#11 says.
            unsafe { (*template.add(i)).ulValueLen = len };
            fills.push((a.type_, f));
        }
        overall(&fills)
    })
}

/// `C_GetObjectSize`.
#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    with_module("C_GetObjectSize", |m| {
        if size.is_null() {
            return Err(Error::BadArguments("pulSize is null"));
        }
        let bytes = m.object_size(session, object)?;
        // SAFETY: checked for null; PKCS#11 makes it writable.
        unsafe { ptr::write(size, bytes as CK_ULONG) }
    })
}

/// `C_DestroyObject`.
#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module("C_DestroyObject", |m| m.destroy(session, object))
}
