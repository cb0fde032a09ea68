//! Session and login functions.

use super::{ptr, with_module};
use crate::error::Error;
use cryptoki_sys::*;

/// `C_OpenSession`. Notification callbacks are never called (nothing here is asynchronous).
#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut std::ffi::c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    with_module("C_OpenSession", |m| {
        if session.is_null() {
            return Err(Error::BadArguments("phSession is null"));
        }
        let handle = m.open_session(slot, flags)?;
        // SAFETY: checked for null; PKCS#11 makes it writable.
        let written = unsafe { ptr::write(session, handle) };
        if written.is_err() {
            let _ = m.close_session(handle);
        }
        written
    })
}

/// `C_CloseSession`.
#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    with_module("C_CloseSession", |m| m.close_session(session))
}

/// `C_CloseAllSessions`.
#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    with_module("C_CloseAllSessions", |m| m.close_all_sessions(slot))
}

/// `C_GetSessionInfo`.
#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    session: CK_SESSION_HANDLE,
    out: *mut CK_SESSION_INFO,
) -> CK_RV {
    with_module("C_GetSessionInfo", |m| {
        if out.is_null() {
            return Err(Error::BadArguments("pInfo is null"));
        }
        let (slot, state, flags) = m.session_info(session)?;
        let value = CK_SESSION_INFO {
            slotID: slot,
            state,
            flags,
            ulDeviceError: 0,
        };
        // SAFETY: checked for null; PKCS#11 makes it writable.
        unsafe { ptr::write(out, value) }
    })
}

/// `C_Login`: the token needs no PIN, so any PIN is accepted and none is read; only a stated
/// length without its buffer is refused (`CKR_ARGUMENTS_BAD`).
#[no_mangle]
pub unsafe extern "C" fn C_Login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    with_module("C_Login", |m| {
        if pin.is_null() && pin_len != 0 {
            return Err(Error::BadArguments("a PIN length without its buffer"));
        }
        m.login(session, user)
    })
}

/// `C_Logout`.
#[no_mangle]
pub unsafe extern "C" fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV {
    with_module("C_Logout", |m| m.logout(session))
}
