//! The module as C programs see it, called wrongly: through `dlopen` and the raw function list,
//! with null pointers, stale handles, wrong mechanisms and short buffers. Each call must answer
//! the `CKR_*` PKCS#11 names for the mistake, never crash, and leave the module working.
//!
//! The card is a provisioned virtual card the module opens in-process (`IOTSAFE_VCARD`), so these
//! tests need no service.
#![allow(unsafe_code)]
// `call!` wraps each raw call, and its pointer arguments, in `unsafe`: the point of these tests.
#![allow(clippy::macro_metavars_in_unsafe)]

mod support;

use cryptoki_sys::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};
use std::ptr::null_mut;
use support::raw::{fixture, init_args, nil, Raw};

#[test]
fn initialize_and_finalize_rules() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(
        unsafe { get_function_list_via(raw, nil()) },
        CKR_ARGUMENTS_BAD
    );
    let mut info: CK_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(
        call!(raw, C_GetInfo(&mut info)),
        CKR_CRYPTOKI_NOT_INITIALIZED
    );
    assert_eq!(raw.finalize(), CKR_CRYPTOKI_NOT_INITIALIZED);
    let mut count = 0;
    assert_eq!(
        call!(raw, C_GetSlotList(CK_FALSE, nil(), &mut count)),
        CKR_CRYPTOKI_NOT_INITIALIZED
    );
    // Functions the token does not offer say so only once the library is initialized.
    let mut m = CK_MECHANISM {
        mechanism: CKM_AES_ECB,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    for (name, rv) in [
        ("C_EncryptInit", call!(raw, C_EncryptInit(1, &mut m, 1))),
        (
            "C_CreateObject",
            call!(raw, C_CreateObject(1, nil(), 0, nil())),
        ),
        ("C_InitToken", call!(raw, C_InitToken(0, nil(), 0, nil()))),
        ("C_InitPIN", call!(raw, C_InitPIN(1, nil(), 0))),
        ("C_SetPIN", call!(raw, C_SetPIN(1, nil(), 0, nil(), 0))),
        (
            "C_WaitForSlotEvent",
            call!(raw, C_WaitForSlotEvent(CKF_DONT_BLOCK, nil(), nil())),
        ),
        ("C_GetFunctionStatus", call!(raw, C_GetFunctionStatus(1))),
        (
            "C_GetObjectSize",
            call!(raw, C_GetObjectSize(1, 1, &mut count)),
        ),
        ("C_Login", call!(raw, C_Login(1, CKU_USER, nil(), 0))),
        ("C_Logout", call!(raw, C_Logout(1))),
    ] {
        assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED, "{name}");
    }

    let mut args = init_args(CKF_OS_LOCKING_OK, std::ptr::dangling_mut());
    let init = |a: &mut CK_C_INITIALIZE_ARGS| {
        call!(raw, C_Initialize((a as *mut CK_C_INITIALIZE_ARGS).cast()))
    };
    assert_eq!(init(&mut args), CKR_ARGUMENTS_BAD, "pReserved set");
    args.pReserved = null_mut();
    unsafe extern "C" fn create(_: *mut *mut std::ffi::c_void) -> CK_RV {
        CKR_OK
    }
    unsafe extern "C" fn other(_: *mut std::ffi::c_void) -> CK_RV {
        CKR_OK
    }
    args.CreateMutex = Some(create);
    assert_eq!(
        init(&mut args),
        CKR_ARGUMENTS_BAD,
        "some mutex functions only"
    );
    args.DestroyMutex = Some(other);
    args.LockMutex = Some(other);
    args.UnlockMutex = Some(other);
    args.flags = 0;
    assert_eq!(
        init(&mut args),
        CKR_CANT_LOCK,
        "the application's mutexes only"
    );
    args.flags = CKF_OS_LOCKING_OK;
    assert_eq!(init(&mut args), CKR_OK, "mutexes given, OS locking allowed");
    assert_eq!(raw.initialize(), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    assert_eq!(
        call!(raw, C_Finalize(std::ptr::dangling_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(raw.finalize(), CKR_OK);

    // Initialize, use, finalize, again and again; a null argument is a plain initialization.
    let mut previous: Option<CK_SESSION_HANDLE> = None;
    for round in 0..3 {
        let rv = if round == 0 {
            call!(raw, C_Initialize(null_mut()))
        } else {
            raw.initialize()
        };
        assert_eq!(rv, CKR_OK, "round {round}");
        assert_eq!(call!(raw, C_GetInfo(&mut info)), CKR_OK);
        assert_eq!(
            (info.cryptokiVersion.major, info.cryptokiVersion.minor),
            (2, 40)
        );
        let s = raw.session();
        if let Some(old) = previous.replace(s) {
            assert_ne!(
                old, s,
                "a handle of the last initialization is never reused"
            );
            let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
            assert_eq!(
                call!(raw, C_GetSessionInfo(old, &mut info)),
                CKR_SESSION_HANDLE_INVALID
            );
        }
        let key = raw.object(s, CKO_PRIVATE_KEY, "device");
        let sig = raw.sign(s, CKM_ECDSA_SHA256, key, b"round").unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        f.device_key()
            .verify_prehash(&Sha256::digest(b"round"), &sig)
            .unwrap();
        assert_eq!(raw.finalize(), CKR_OK);
        assert_eq!(
            call!(raw, C_CloseSession(s)),
            CKR_CRYPTOKI_NOT_INITIALIZED,
            "no session outlives C_Finalize"
        );
    }
}

/// `C_GetFunctionList` itself, called through the list.
unsafe fn get_function_list_via(raw: &Raw, out: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    unsafe { (raw.functions().C_GetFunctionList.unwrap())(out) }
}

#[test]
fn slots_tokens_and_mechanisms() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let mut count: CK_ULONG = 0;
    assert_eq!(
        call!(raw, C_GetSlotList(CK_TRUE, nil(), nil())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_GetSlotList(CK_TRUE, nil(), &mut count)),
        CKR_OK
    );
    assert_eq!(count, 1);
    let mut slots = [99 as CK_SLOT_ID; 2];
    count = 0;
    assert_eq!(
        call!(raw, C_GetSlotList(CK_FALSE, slots.as_mut_ptr(), &mut count)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(
        (count, slots[0]),
        (1, 99),
        "the count needed, nothing written"
    );
    count = 2;
    assert_eq!(
        call!(raw, C_GetSlotList(CK_FALSE, slots.as_mut_ptr(), &mut count)),
        CKR_OK
    );
    assert_eq!((count, slots[0]), (1, 0));

    let mut slot_info: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(
        call!(raw, C_GetSlotInfo(7, &mut slot_info)),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(call!(raw, C_GetSlotInfo(0, nil())), CKR_ARGUMENTS_BAD);
    assert_eq!(call!(raw, C_GetSlotInfo(0, &mut slot_info)), CKR_OK);
    assert_ne!(slot_info.flags & CKF_TOKEN_PRESENT, 0);
    let mut token: CK_TOKEN_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(
        call!(raw, C_GetTokenInfo(7, &mut token)),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(call!(raw, C_GetTokenInfo(0, nil())), CKR_ARGUMENTS_BAD);
    assert_eq!(call!(raw, C_GetTokenInfo(0, &mut token)), CKR_OK);
    assert_eq!(&token.label[..20], b"IoT SAFE device-0001");
    assert_eq!(token.flags & CKF_LOGIN_REQUIRED, 0, "no PIN");
    assert_ne!(token.flags & CKF_RNG, 0);

    count = 0;
    assert_eq!(call!(raw, C_GetMechanismList(0, nil(), &mut count)), CKR_OK);
    assert_eq!(count, 4);
    let mut mechanisms = [0 as CK_MECHANISM_TYPE; 4];
    count = 1;
    assert_eq!(
        call!(
            raw,
            C_GetMechanismList(0, mechanisms.as_mut_ptr(), &mut count)
        ),
        CKR_BUFFER_TOO_SMALL
    );
    count = 4;
    assert_eq!(
        call!(
            raw,
            C_GetMechanismList(0, mechanisms.as_mut_ptr(), &mut count)
        ),
        CKR_OK
    );
    assert_eq!(
        mechanisms,
        [
            CKM_ECDSA,
            CKM_ECDSA_SHA256,
            CKM_ECDH1_DERIVE,
            CKM_EC_KEY_PAIR_GEN
        ]
    );
    assert_eq!(
        call!(
            raw,
            C_GetMechanismList(3, mechanisms.as_mut_ptr(), &mut count)
        ),
        CKR_SLOT_ID_INVALID
    );
    let mut info: CK_MECHANISM_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(
        call!(raw, C_GetMechanismInfo(0, CKM_RSA_PKCS, &mut info)),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(
        call!(raw, C_GetMechanismInfo(0, CKM_ECDSA, nil())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_GetMechanismInfo(0, CKM_ECDSA, &mut info)),
        CKR_OK
    );
    assert_eq!((info.ulMinKeySize, info.ulMaxKeySize), (256, 256));
    assert_ne!(info.flags & CKF_SIGN, 0);
    assert_ne!(info.flags & CKF_HW, 0);
    assert_eq!(raw.finalize(), CKR_OK);
}

#[test]
fn sessions_handles_and_unsupported_functions() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let mut h = 0;
    assert_eq!(
        call!(raw, C_OpenSession(0, 0, nil(), None, &mut h)),
        CKR_SESSION_PARALLEL_NOT_SUPPORTED
    );
    assert_eq!(
        call!(
            raw,
            C_OpenSession(0, CKF_SERIAL_SESSION, nil(), None, nil())
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            raw,
            C_OpenSession(5, CKF_SERIAL_SESSION, nil(), None, &mut h)
        ),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(
        call!(
            raw,
            C_OpenSession(0, CKF_SERIAL_SESSION, nil(), None, &mut h)
        ),
        CKR_OK
    );
    let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(call!(raw, C_GetSessionInfo(h, &mut info)), CKR_OK);
    assert_eq!((info.slotID, info.state), (0, CKS_RO_PUBLIC_SESSION));
    assert_eq!(call!(raw, C_GetSessionInfo(h, nil())), CKR_ARGUMENTS_BAD);

    // Login (the states and return values are in ffi_login.rs).
    let mut pin = *b"1234";
    assert_eq!(
        call!(raw, C_Login(h, 7, pin.as_mut_ptr(), 4)),
        CKR_USER_TYPE_INVALID
    );
    assert_eq!(
        call!(raw, C_Login(h, CKU_USER, nil(), 4)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_Login(h, CKU_USER, pin.as_mut_ptr(), 4)),
        CKR_OK
    );
    assert_eq!(call!(raw, C_Logout(h)), CKR_OK);

    // Searches.
    let mut found = 0;
    let mut handles = [0; 4];
    assert_eq!(
        call!(raw, C_FindObjects(h, handles.as_mut_ptr(), 4, &mut found)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        call!(raw, C_FindObjectsFinal(h)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let mut broken = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: nil(),
        ulValueLen: 5,
    }];
    assert_eq!(
        call!(raw, C_FindObjectsInit(h, broken.as_mut_ptr(), 1)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_FindObjectsInit(h, nil(), 1)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_FindObjectsInit(h, nil(), 0)),
        CKR_OK,
        "an empty template finds all"
    );
    assert_eq!(
        call!(raw, C_FindObjectsInit(h, nil(), 0)),
        CKR_OPERATION_ACTIVE
    );
    assert_eq!(
        call!(raw, C_FindObjects(h, nil(), 4, &mut found)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_FindObjects(h, handles.as_mut_ptr(), 4, nil())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_FindObjects(h, handles.as_mut_ptr(), 4, &mut found)),
        CKR_OK
    );
    assert_eq!(found, 4, "device key, device public key, certificate files");
    assert_eq!(call!(raw, C_FindObjectsFinal(h)), CKR_OK);

    // Objects that are not there.
    let mut label = [0u8; 16];
    let mut a = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: label.as_mut_ptr().cast(),
        ulValueLen: 16,
    }];
    assert_eq!(
        call!(raw, C_GetAttributeValue(h, 0xDEAD, a.as_mut_ptr(), 1)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        call!(raw, C_GetAttributeValue(h, handles[0], nil(), 1)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_DestroyObject(h, 0xDEAD)),
        CKR_OBJECT_HANDLE_INVALID
    );
    let mut size: CK_ULONG = 0;
    assert_eq!(
        call!(raw, C_GetObjectSize(h, 0xDEAD, &mut size)),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert_eq!(
        call!(raw, C_GetObjectSize(h, handles[0], nil())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_DestroyObject(h, handles[0])),
        CKR_ACTION_PROHIBITED,
        "card objects stay"
    );

    // Random bytes.
    let mut bytes = [0u8; 300];
    assert_eq!(call!(raw, C_GenerateRandom(h, nil(), 8)), CKR_ARGUMENTS_BAD);
    assert_eq!(call!(raw, C_GenerateRandom(h, nil(), 0)), CKR_OK);
    assert_eq!(
        call!(raw, C_GenerateRandom(h, bytes.as_mut_ptr(), 300)),
        CKR_OK
    );
    assert!(bytes.iter().any(|b| *b != 0), "300 random bytes");
    assert_eq!(
        call!(raw, C_SeedRandom(h, bytes.as_mut_ptr(), 4)),
        CKR_RANDOM_SEED_NOT_SUPPORTED
    );

    // Functions this token does not offer.
    let mut m = CK_MECHANISM {
        mechanism: CKM_AES_ECB,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    assert_eq!(
        call!(raw, C_EncryptInit(h, &mut m, handles[0])),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        call!(raw, C_DigestInit(h, &mut m)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        call!(raw, C_CreateObject(h, nil(), 0, nil())),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        call!(raw, C_InitToken(0, nil(), 0, nil())),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        call!(raw, C_WaitForSlotEvent(0, nil(), nil())),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        call!(raw, C_GetFunctionStatus(h)),
        CKR_FUNCTION_NOT_PARALLEL
    );
    assert_eq!(call!(raw, C_CancelFunction(h)), CKR_FUNCTION_NOT_PARALLEL);

    // A closed session is a stale handle everywhere.
    assert_eq!(call!(raw, C_CloseSession(h)), CKR_OK);
    assert_eq!(call!(raw, C_CloseSession(h)), CKR_SESSION_HANDLE_INVALID);
    assert_eq!(
        call!(raw, C_GetSessionInfo(h, &mut info)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        call!(raw, C_FindObjectsInit(h, nil(), 0)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        call!(raw, C_GetAttributeValue(h, handles[0], a.as_mut_ptr(), 1)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        call!(raw, C_GenerateRandom(h, bytes.as_mut_ptr(), 8)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        call!(raw, C_Login(h, CKU_USER, pin.as_mut_ptr(), 4)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(
        call!(raw, C_GetObjectSize(h, handles[0], &mut size)),
        CKR_SESSION_HANDLE_INVALID
    );
    let mut ecdsa = CK_MECHANISM {
        mechanism: CKM_ECDSA,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    assert_eq!(
        call!(raw, C_SignInit(h, &mut ecdsa, handles[0])),
        CKR_SESSION_HANDLE_INVALID
    );
    let s2 = raw.session();
    assert_eq!(call!(raw, C_CloseAllSessions(9)), CKR_SLOT_ID_INVALID);
    assert_eq!(call!(raw, C_CloseAllSessions(0)), CKR_OK);
    assert_eq!(call!(raw, C_CloseSession(s2)), CKR_SESSION_HANDLE_INVALID);
    assert_eq!(raw.finalize(), CKR_OK);
}

#[test]
fn object_size_is_the_bytes_of_its_attributes() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let s = raw.session();
    let objects = raw.find(s, &mut []);
    assert!(objects.len() >= 4, "{objects:?}");
    let types: Vec<CK_ATTRIBUTE_TYPE> = (0..0x800)
        .chain([
            CKA_ALLOWED_MECHANISMS,
            CKA_WRAP_TEMPLATE,
            CKA_UNWRAP_TEMPLATE,
            CKA_DERIVE_TEMPLATE,
        ])
        .collect();
    for o in objects {
        // Card objects hold no secret: every byte they hold is an attribute anyone may read (a
        // private key's value stays on the card and counts for nothing).
        let readable: usize = types
            .iter()
            .filter_map(|t| raw.attribute(s, o, *t).ok())
            .map(|v| v.len())
            .sum();
        let mut size: CK_ULONG = 0;
        assert_eq!(call!(raw, C_GetObjectSize(s, o, &mut size)), CKR_OK);
        assert_eq!(size as usize, readable, "object {o}");
    }
    assert_eq!(raw.finalize(), CKR_OK);
}
