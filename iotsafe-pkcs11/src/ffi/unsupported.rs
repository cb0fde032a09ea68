//! The functions this token does not offer: PIN management (there is no PIN), creating or
//! changing objects (the card's objects are provisioned, not written through PKCS#11),
//! encryption, digests, signature recovery, key wrapping, operation state, slot events. Each answers
//! `CKR_FUNCTION_NOT_SUPPORTED` and reads none of its arguments; the two legacy parallel-function
//! calls answer `CKR_FUNCTION_NOT_PARALLEL`, as PKCS#11 says they must. Before `C_Initialize`
//! (or after `C_Finalize`) they answer `CKR_CRYPTOKI_NOT_INITIALIZED`, as every function does.

use super::with_module;
use crate::error::Error;
use cryptoki_sys::*;
use std::ffi::c_void;

/// Defines each function with its PKCS#11 signature, failing with `$rv`.
macro_rules! answer {
    ($rv:expr => $($name:ident($($ty:ty),*);)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: not offered by this token.")]
            #[no_mangle]
            pub unsafe extern "C" fn $name($(_: $ty),*) -> CK_RV {
                with_module(stringify!($name), |_| Err($rv))
            }
        )*
    };
}

type Session = CK_SESSION_HANDLE;
type Bytes = *mut CK_BYTE;
type Len = CK_ULONG;
type LenOut = *mut CK_ULONG;
type Mech = *mut CK_MECHANISM;
type Object = CK_OBJECT_HANDLE;
type Template = *mut CK_ATTRIBUTE;

answer! { Error::NotOffered =>
    C_InitToken(CK_SLOT_ID, *mut CK_UTF8CHAR, Len, *mut CK_UTF8CHAR);
    C_InitPIN(Session, *mut CK_UTF8CHAR, Len);
    C_SetPIN(Session, *mut CK_UTF8CHAR, Len, *mut CK_UTF8CHAR, Len);
    C_GetOperationState(Session, Bytes, LenOut);
    C_SetOperationState(Session, Bytes, Len, Object, Object);
    C_CreateObject(Session, Template, Len, *mut CK_OBJECT_HANDLE);
    C_CopyObject(Session, Object, Template, Len, *mut CK_OBJECT_HANDLE);
    C_SetAttributeValue(Session, Object, Template, Len);
    C_EncryptInit(Session, Mech, Object);
    C_Encrypt(Session, Bytes, Len, Bytes, LenOut);
    C_EncryptUpdate(Session, Bytes, Len, Bytes, LenOut);
    C_EncryptFinal(Session, Bytes, LenOut);
    C_DecryptInit(Session, Mech, Object);
    C_Decrypt(Session, Bytes, Len, Bytes, LenOut);
    C_DecryptUpdate(Session, Bytes, Len, Bytes, LenOut);
    C_DecryptFinal(Session, Bytes, LenOut);
    C_DigestInit(Session, Mech);
    C_Digest(Session, Bytes, Len, Bytes, LenOut);
    C_DigestUpdate(Session, Bytes, Len);
    C_DigestKey(Session, Object);
    C_DigestFinal(Session, Bytes, LenOut);
    C_SignRecoverInit(Session, Mech, Object);
    C_SignRecover(Session, Bytes, Len, Bytes, LenOut);
    C_VerifyRecoverInit(Session, Mech, Object);
    C_VerifyRecover(Session, Bytes, Len, Bytes, LenOut);
    C_DigestEncryptUpdate(Session, Bytes, Len, Bytes, LenOut);
    C_DecryptDigestUpdate(Session, Bytes, Len, Bytes, LenOut);
    C_SignEncryptUpdate(Session, Bytes, Len, Bytes, LenOut);
    C_DecryptVerifyUpdate(Session, Bytes, Len, Bytes, LenOut);
    C_GenerateKey(Session, Mech, Template, Len, *mut CK_OBJECT_HANDLE);
    C_WrapKey(Session, Mech, Object, Object, Bytes, LenOut);
    C_UnwrapKey(Session, Mech, Object, Bytes, Len, Template, Len, *mut CK_OBJECT_HANDLE);
    C_WaitForSlotEvent(CK_FLAGS, *mut CK_SLOT_ID, *mut c_void);
}

answer! { Error::NotParallel =>
    C_GetFunctionStatus(Session);
    C_CancelFunction(Session);
}
