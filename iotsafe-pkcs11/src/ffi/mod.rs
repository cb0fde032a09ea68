//! The C ABI: the one place with `unsafe` code. Each exported `C_*` function checks every
//! pointer it is given (through `ptr`), converts the arguments to Rust values, calls the safe
//! [`Module`], and writes the results back. [`guard`] wraps every body: a failure becomes its
//! `CKR_*` there ([`Error::rv`]), and `catch_unwind` keeps a panic from crossing into the caller:
//! it becomes `CKR_GENERAL_ERROR`.
//!
//! Safety contract of every function here: PKCS#11's. Pointers the standard allows to be null
//! are checked for null; lengths are taken as the caller states them.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::missing_safety_doc)]
#![allow(non_snake_case)]

mod crypto;
mod general;
mod objects;
mod ptr;
mod sessions;
mod unsupported;

use crate::error::{Error, P11Result};
use crate::module::Module;
use cryptoki_sys::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs the body of the C function `function` and gives its return value: `CKR_OK`, the `CKR_*`
/// of its failure (said in the diagnostics, inside the span of the call as every event of it),
/// or `CKR_GENERAL_ERROR` for a panic.
fn guard(function: &'static str, body: impl FnOnce() -> P11Result<()>) -> CK_RV {
    let _call = enter(function);
    answer(catch_unwind(AssertUnwindSafe(body)))
}

/// The span of a call to `function`. Apart from [`guard`], as [`answer`] is, so that the code
/// each of the ~70 functions gets is only the call of its body.
#[inline(never)]
fn enter(function: &'static str) -> tracing::span::EnteredSpan {
    tracing::debug_span!("pkcs11", function).entered()
}

/// The return value of a call that ended with `outcome` (an `Err` outside: it panicked).
#[inline(never)]
fn answer(outcome: std::thread::Result<P11Result<()>>) -> CK_RV {
    match outcome.unwrap_or(Err(Error::Panicked)) {
        Ok(()) => CKR_OK,
        Err(error) => {
            crate::diag::failed(&error);
            error.rv()
        }
    }
}

/// Runs the body of `function`, which needs the initialized module (`CKR_CRYPTOKI_NOT_INITIALIZED`
/// otherwise). The state lock is held only to take the module: a long card operation never
/// blocks another thread's `C_Finalize` or call.
fn with_module(function: &'static str, body: impl FnOnce(&Module) -> P11Result<()>) -> CK_RV {
    guard(function, || {
        let module = crate::lifecycle::current().ok_or(Error::NotInitialized)?;
        body(&module)
    })
}

/// The function list `C_GetFunctionList` hands out (PKCS#11 v2.40).
static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(general::C_Initialize),
    C_Finalize: Some(general::C_Finalize),
    C_GetInfo: Some(general::C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(general::C_GetSlotList),
    C_GetSlotInfo: Some(general::C_GetSlotInfo),
    C_GetTokenInfo: Some(general::C_GetTokenInfo),
    C_GetMechanismList: Some(general::C_GetMechanismList),
    C_GetMechanismInfo: Some(general::C_GetMechanismInfo),
    C_InitToken: Some(unsupported::C_InitToken),
    C_InitPIN: Some(unsupported::C_InitPIN),
    C_SetPIN: Some(unsupported::C_SetPIN),
    C_OpenSession: Some(sessions::C_OpenSession),
    C_CloseSession: Some(sessions::C_CloseSession),
    C_CloseAllSessions: Some(sessions::C_CloseAllSessions),
    C_GetSessionInfo: Some(sessions::C_GetSessionInfo),
    C_GetOperationState: Some(unsupported::C_GetOperationState),
    C_SetOperationState: Some(unsupported::C_SetOperationState),
    C_Login: Some(sessions::C_Login),
    C_Logout: Some(sessions::C_Logout),
    C_CreateObject: Some(unsupported::C_CreateObject),
    C_CopyObject: Some(unsupported::C_CopyObject),
    C_DestroyObject: Some(objects::C_DestroyObject),
    C_GetObjectSize: Some(objects::C_GetObjectSize),
    C_GetAttributeValue: Some(objects::C_GetAttributeValue),
    C_SetAttributeValue: Some(unsupported::C_SetAttributeValue),
    C_FindObjectsInit: Some(objects::C_FindObjectsInit),
    C_FindObjects: Some(objects::C_FindObjects),
    C_FindObjectsFinal: Some(objects::C_FindObjectsFinal),
    C_EncryptInit: Some(unsupported::C_EncryptInit),
    C_Encrypt: Some(unsupported::C_Encrypt),
    C_EncryptUpdate: Some(unsupported::C_EncryptUpdate),
    C_EncryptFinal: Some(unsupported::C_EncryptFinal),
    C_DecryptInit: Some(unsupported::C_DecryptInit),
    C_Decrypt: Some(unsupported::C_Decrypt),
    C_DecryptUpdate: Some(unsupported::C_DecryptUpdate),
    C_DecryptFinal: Some(unsupported::C_DecryptFinal),
    C_DigestInit: Some(unsupported::C_DigestInit),
    C_Digest: Some(unsupported::C_Digest),
    C_DigestUpdate: Some(unsupported::C_DigestUpdate),
    C_DigestKey: Some(unsupported::C_DigestKey),
    C_DigestFinal: Some(unsupported::C_DigestFinal),
    C_SignInit: Some(crypto::C_SignInit),
    C_Sign: Some(crypto::C_Sign),
    C_SignUpdate: Some(crypto::C_SignUpdate),
    C_SignFinal: Some(crypto::C_SignFinal),
    C_SignRecoverInit: Some(unsupported::C_SignRecoverInit),
    C_SignRecover: Some(unsupported::C_SignRecover),
    C_VerifyInit: Some(crypto::C_VerifyInit),
    C_Verify: Some(crypto::C_Verify),
    C_VerifyUpdate: Some(crypto::C_VerifyUpdate),
    C_VerifyFinal: Some(crypto::C_VerifyFinal),
    C_VerifyRecoverInit: Some(unsupported::C_VerifyRecoverInit),
    C_VerifyRecover: Some(unsupported::C_VerifyRecover),
    C_DigestEncryptUpdate: Some(unsupported::C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(unsupported::C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(unsupported::C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(unsupported::C_DecryptVerifyUpdate),
    C_GenerateKey: Some(unsupported::C_GenerateKey),
    C_GenerateKeyPair: Some(crypto::C_GenerateKeyPair),
    C_WrapKey: Some(unsupported::C_WrapKey),
    C_UnwrapKey: Some(unsupported::C_UnwrapKey),
    C_DeriveKey: Some(crypto::C_DeriveKey),
    C_SeedRandom: Some(crypto::C_SeedRandom),
    C_GenerateRandom: Some(crypto::C_GenerateRandom),
    C_GetFunctionStatus: Some(unsupported::C_GetFunctionStatus),
    C_CancelFunction: Some(unsupported::C_CancelFunction),
    C_WaitForSlotEvent: Some(unsupported::C_WaitForSlotEvent),
};

/// `C_GetFunctionList`: the entry point programs look up after loading the module.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard("C_GetFunctionList", || {
        let table = std::ptr::addr_of!(FUNCTION_LIST).cast_mut();
        // SAFETY: `list` is checked for null; PKCS#11 makes it point to a writable pointer. The
        // table is never written through the pointer handed out (callers treat it as const).
        unsafe { ptr::write(list, table) }
    })
}
