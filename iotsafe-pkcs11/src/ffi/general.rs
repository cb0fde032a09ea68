//! Library, slot, token and mechanism functions.

use super::{guard, ptr, with_module};
use crate::error::{Error, P11Result};
use crate::info::{self, padded, Version};
use cryptoki_sys::*;

fn version(v: Version) -> CK_VERSION {
    CK_VERSION {
        major: v.major,
        minor: v.minor,
    }
}

/// Checks `CK_C_INITIALIZE_ARGS`: the mutex functions all or none, no reserved pointer. This
/// module locks with the operating system's primitives, so it takes `CKF_OS_LOCKING_OK`, or no
/// locking request at all; the application's own mutex functions alone it cannot use.
unsafe fn check_init_args(args: *const CK_C_INITIALIZE_ARGS) -> P11Result<()> {
    if args.is_null() {
        return Ok(());
    }
    // SAFETY: not null; PKCS#11 makes it point to a CK_C_INITIALIZE_ARGS.
    let a = unsafe { ptr::read(args)? };
    if !a.pReserved.is_null() {
        return Err(Error::BadArguments("pReserved is set"));
    }
    let given = [
        a.CreateMutex.is_some(),
        a.DestroyMutex.is_some(),
        a.LockMutex.is_some(),
        a.UnlockMutex.is_some(),
    ];
    let all = given.iter().all(|g| *g);
    if given.iter().any(|g| *g) && !all {
        return Err(Error::BadArguments("some mutex functions, not all four"));
    }
    if all && a.flags & CKF_OS_LOCKING_OK == 0 {
        return Err(Error::CantLock);
    }
    Ok(())
}

/// `C_Initialize`: installs the diagnostics' subscriber when `IOTSAFE_PKCS11_DEBUG=1`
/// (`crate::diag`), reads the configuration (environment, or `IOTSAFE_PKCS11_CONF`); cards are
/// opened on first use.
#[no_mangle]
pub unsafe extern "C" fn C_Initialize(args: *mut std::ffi::c_void) -> CK_RV {
    // First: the call's own span and events then reach the subscriber.
    crate::diag::install();
    guard("C_Initialize", || {
        // SAFETY: forwarded PKCS#11 contract.
        unsafe { check_init_args(args.cast::<CK_C_INITIALIZE_ARGS>())? };
        crate::lifecycle::initialize()
    })
}

/// `C_Finalize`: closes every session; each card's channel closes once no call uses it.
#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: *mut std::ffi::c_void) -> CK_RV {
    guard("C_Finalize", || {
        if !reserved.is_null() {
            return Err(Error::BadArguments("pReserved is set"));
        }
        crate::lifecycle::finalize()
    })
}

/// `C_GetInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(out: *mut CK_INFO) -> CK_RV {
    with_module("C_GetInfo", |_| {
        let i = info::library();
        let value = CK_INFO {
            cryptokiVersion: version(i.cryptoki),
            manufacturerID: padded(&i.manufacturer),
            flags: 0,
            libraryDescription: padded(&i.description),
            libraryVersion: version(i.version),
        };
        // SAFETY: checked for null; PKCS#11 makes it writable.
        unsafe { ptr::write(out, value) }
    })
}

/// `C_GetSlotList`.
#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    with_module("C_GetSlotList", |m| {
        if count.is_null() {
            return Err(Error::BadArguments("pulCount is null"));
        }
        let slots = m.slot_list(token_present != CK_FALSE);
        // SAFETY: PKCS#11 output buffer convention; both pointers checked inside.
        unsafe { ptr::fill(list, count, &slots) }
    })
}

/// `C_GetSlotInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, out: *mut CK_SLOT_INFO) -> CK_RV {
    with_module("C_GetSlotInfo", |m| {
        if out.is_null() {
            return Err(Error::BadArguments("the output pointer is null"));
        }
        let i = m.slot_info(slot)?;
        let value = CK_SLOT_INFO {
            slotDescription: padded(&i.description),
            manufacturerID: padded(&i.manufacturer),
            flags: i.flags,
            hardwareVersion: version(Version { major: 0, minor: 0 }),
            firmwareVersion: version(Version { major: 0, minor: 0 }),
        };
        // SAFETY: checked for null; PKCS#11 makes it writable.
        unsafe { ptr::write(out, value) }
    })
}

/// `C_GetTokenInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, out: *mut CK_TOKEN_INFO) -> CK_RV {
    with_module("C_GetTokenInfo", |m| {
        if out.is_null() {
            return Err(Error::BadArguments("the output pointer is null"));
        }
        let i = m.token_info(slot)?;
        let value = CK_TOKEN_INFO {
            label: padded(&i.label),
            manufacturerID: padded(&i.manufacturer),
            model: padded(&i.model),
            serialNumber: padded(&i.serial),
            flags: i.flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: i.sessions,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: i.rw_sessions,
            ulMaxPinLen: 0,
            ulMinPinLen: 0,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: version(i.hardware),
            firmwareVersion: version(Version { major: 0, minor: 0 }),
            utcTime: [b' '; 16],
        };
        // SAFETY: checked for null; PKCS#11 makes it writable.
        unsafe { ptr::write(out, value) }
    })
}

/// `C_GetMechanismList`.
#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    with_module("C_GetMechanismList", |m| {
        if count.is_null() {
            return Err(Error::BadArguments("pulCount is null"));
        }
        let mechanisms = m.mechanism_list(slot)?;
        // SAFETY: PKCS#11 output buffer convention; both pointers checked inside.
        unsafe { ptr::fill(list, count, &mechanisms) }
    })
}

/// `C_GetMechanismInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    mechanism: CK_MECHANISM_TYPE,
    out: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    with_module("C_GetMechanismInfo", |m| {
        if out.is_null() {
            return Err(Error::BadArguments("the output pointer is null"));
        }
        let i = m.mechanism_info(slot, mechanism)?;
        let value = CK_MECHANISM_INFO {
            ulMinKeySize: i.min_key_bits,
            ulMaxKeySize: i.max_key_bits,
            flags: i.flags,
        };
        // SAFETY: checked for null; PKCS#11 makes it writable.
        unsafe { ptr::write(out, value) }
    })
}
