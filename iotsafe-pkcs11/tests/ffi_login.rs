//! Login through the raw function list, as PKCS#11 v2.40 defines it (§6.7, §5.6) on a token that
//! needs no PIN: session states, one login for all of the application's sessions on the token,
//! the return values of every wrong order of calls, and the logout when the last session closes.
#![allow(unsafe_code)]
// `call!` wraps each raw call, and its pointer arguments, in `unsafe`: the point of these tests.
#![allow(clippy::macro_metavars_in_unsafe)]

mod support;

use cryptoki_sys::*;
use support::raw::{fixture, nil, Raw};

/// A session on slot 0: read/write or read-only; the `CKR_*` when it cannot be opened.
fn open(raw: &Raw, read_write: bool) -> Result<CK_SESSION_HANDLE, CK_RV> {
    let flags = CKF_SERIAL_SESSION | if read_write { CKF_RW_SESSION } else { 0 };
    let mut h = 0;
    match call!(raw, C_OpenSession(0, flags, nil(), None, &mut h)) {
        CKR_OK => Ok(h),
        rv => Err(rv),
    }
}

/// The session's state (`CKS_*`).
fn state(raw: &Raw, s: CK_SESSION_HANDLE) -> CK_STATE {
    let mut info: CK_SESSION_INFO = unsafe { std::mem::zeroed() };
    assert_eq!(call!(raw, C_GetSessionInfo(s, &mut info)), CKR_OK);
    info.state
}

/// `C_Login` with a PIN.
fn login(raw: &Raw, s: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> CK_RV {
    let mut pin = pin.as_bytes().to_vec();
    let len = pin.len() as CK_ULONG;
    call!(raw, C_Login(s, user, pin.as_mut_ptr(), len))
}

#[test]
fn user_login_is_shared_by_every_session_of_the_token() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let ro = open(raw, false).unwrap();
    let rw = open(raw, true).unwrap();
    assert_eq!(state(raw, ro), CKS_RO_PUBLIC_SESSION);
    assert_eq!(state(raw, rw), CKS_RW_PUBLIC_SESSION);
    assert_eq!(call!(raw, C_Logout(ro)), CKR_USER_NOT_LOGGED_IN);

    assert_eq!(login(raw, ro, 7, "1234"), CKR_USER_TYPE_INVALID);
    assert_eq!(
        call!(raw, C_Login(ro, CKU_USER, nil(), 4)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(login(raw, ro, CKU_USER, "any PIN"), CKR_OK);
    assert_eq!(state(raw, ro), CKS_RO_USER_FUNCTIONS);
    assert_eq!(
        state(raw, rw),
        CKS_RW_USER_FUNCTIONS,
        "the other session too"
    );
    let later = open(raw, false).unwrap();
    assert_eq!(
        state(raw, later),
        CKS_RO_USER_FUNCTIONS,
        "a session opened since"
    );
    assert_eq!(login(raw, rw, CKU_USER, ""), CKR_USER_ALREADY_LOGGED_IN);
    assert_eq!(
        login(raw, rw, CKU_SO, ""),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    );

    // Logged out through another session than the one that logged in.
    assert_eq!(call!(raw, C_Logout(rw)), CKR_OK);
    for s in [ro, later] {
        assert_eq!(state(raw, s), CKS_RO_PUBLIC_SESSION);
    }
    assert_eq!(state(raw, rw), CKS_RW_PUBLIC_SESSION);
    assert_eq!(call!(raw, C_Logout(ro)), CKR_USER_NOT_LOGGED_IN);
    // No PIN at all (a null pointer of length 0) is a login too.
    assert_eq!(call!(raw, C_Login(ro, CKU_USER, nil(), 0)), CKR_OK);
    assert_eq!(state(raw, rw), CKS_RW_USER_FUNCTIONS);

    // Closing some sessions keeps the login; closing the last one ends it.
    assert_eq!(call!(raw, C_CloseSession(ro)), CKR_OK);
    assert_eq!(call!(raw, C_CloseSession(later)), CKR_OK);
    assert_eq!(state(raw, rw), CKS_RW_USER_FUNCTIONS);
    assert_eq!(call!(raw, C_CloseSession(rw)), CKR_OK);
    let fresh = open(raw, false).unwrap();
    assert_eq!(
        state(raw, fresh),
        CKS_RO_PUBLIC_SESSION,
        "logged out with the last session"
    );
    assert_eq!(login(raw, fresh, CKU_USER, "1234"), CKR_OK);
    assert_eq!(call!(raw, C_CloseAllSessions(0)), CKR_OK);
    let fresh = open(raw, true).unwrap();
    assert_eq!(
        state(raw, fresh),
        CKS_RW_PUBLIC_SESSION,
        "C_CloseAllSessions logged out"
    );

    // A new initialization starts logged out.
    assert_eq!(login(raw, fresh, CKU_USER, "1234"), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(raw.initialize(), CKR_OK);
    let s = open(raw, true).unwrap();
    assert_eq!(state(raw, s), CKS_RW_PUBLIC_SESSION);
    assert_eq!(raw.finalize(), CKR_OK);
}

#[test]
fn security_officer_needs_read_write_sessions_only() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let rw = open(raw, true).unwrap();
    let ro = open(raw, false).unwrap();
    assert_eq!(login(raw, rw, CKU_SO, "so"), CKR_SESSION_READ_ONLY_EXISTS);
    assert_eq!(
        state(raw, rw),
        CKS_RW_PUBLIC_SESSION,
        "the refused login changed nothing"
    );
    assert_eq!(call!(raw, C_CloseSession(ro)), CKR_OK);

    assert_eq!(login(raw, rw, CKU_SO, "so"), CKR_OK);
    assert_eq!(state(raw, rw), CKS_RW_SO_FUNCTIONS);
    assert_eq!(open(raw, false), Err(CKR_SESSION_READ_WRITE_SO_EXISTS));
    let second = open(raw, true).unwrap();
    assert_eq!(state(raw, second), CKS_RW_SO_FUNCTIONS);
    assert_eq!(login(raw, second, CKU_SO, ""), CKR_USER_ALREADY_LOGGED_IN);
    assert_eq!(
        login(raw, second, CKU_USER, ""),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    );

    assert_eq!(call!(raw, C_Logout(second)), CKR_OK);
    assert_eq!(state(raw, rw), CKS_RW_PUBLIC_SESSION);
    assert_eq!(call!(raw, C_Logout(rw)), CKR_USER_NOT_LOGGED_IN);
    let ro = open(raw, false).expect("read-only sessions again once the SO left");
    assert_eq!(state(raw, ro), CKS_RO_PUBLIC_SESSION);
    assert_eq!(raw.finalize(), CKR_OK);
}

#[test]
fn context_specific_login_needs_an_operation() {
    let (f, _lock) = fixture();
    let raw = &f.raw;
    assert_eq!(raw.initialize(), CKR_OK);
    let s = raw.session();
    assert_eq!(
        login(raw, s, CKU_CONTEXT_SPECIFIC, ""),
        CKR_OPERATION_NOT_INITIALIZED
    );
    let key = raw.object(s, CKO_PRIVATE_KEY, "device");
    let mut m = CK_MECHANISM {
        mechanism: CKM_ECDSA_SHA256,
        pParameter: nil(),
        ulParameterLen: 0,
    };
    assert_eq!(call!(raw, C_SignInit(s, &mut m, key)), CKR_OK);
    assert_eq!(login(raw, s, CKU_CONTEXT_SPECIFIC, "1234"), CKR_OK);
    assert_eq!(
        state(raw, s),
        CKS_RW_PUBLIC_SESSION,
        "no login state of its own"
    );
    let mut data = *b"after a context-specific login";
    let (mut sig, mut len) = ([0u8; 64], 64 as CK_ULONG);
    let n = data.len() as CK_ULONG;
    assert_eq!(
        call!(
            raw,
            C_Sign(s, data.as_mut_ptr(), n, sig.as_mut_ptr(), &mut len)
        ),
        CKR_OK
    );
    assert_eq!(
        call!(raw, C_Login(999_999, CKU_USER, nil(), 0)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(call!(raw, C_Logout(999_999)), CKR_SESSION_HANDLE_INVALID);
    assert_eq!(raw.finalize(), CKR_OK);
}
