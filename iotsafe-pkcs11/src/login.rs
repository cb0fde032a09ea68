//! `C_Login` and `C_Logout` as PKCS#11 v2.40 defines them (§5.6, §6.7), on a token that needs no
//! PIN.
//!
//! Nothing on an IoT SAFE token needs a login (`CKF_LOGIN_REQUIRED` is off, no object is
//! private), but programs that log in anyway get the states and return values the standard
//! gives: the login belongs to the token and is shared by all of the application's sessions on
//! it; `CKU_USER` puts them in the user functions states, `CKU_SO` in `CKS_RW_SO_FUNCTIONS`
//! (which no read-only session may share); `C_Logout` and the close of the token's last session
//! return them to the public states.
//!
//! The PIN: the card has none to check, so there is no wrong one. Any PIN is accepted, of any
//! length, also none (a null pointer of length 0); it is never read. A program that keeps a PIN
//! in its configuration out of habit works as it did.

use crate::error::{Error, Operation, P11Result};
use crate::module::Module;
use cryptoki_sys::*;

/// Who is logged in to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedIn {
    /// The normal user (`CKU_USER`).
    User,
    /// The security officer (`CKU_SO`).
    SecurityOfficer,
}

/// The `CKS_*` state of a session, from whether it may write and who is logged in to its token.
pub fn session_state(read_write: bool, login: Option<LoggedIn>) -> CK_STATE {
    match (login, read_write) {
        (None, false) => CKS_RO_PUBLIC_SESSION,
        (None, true) => CKS_RW_PUBLIC_SESSION,
        (Some(LoggedIn::User), false) => CKS_RO_USER_FUNCTIONS,
        (Some(LoggedIn::User), true) => CKS_RW_USER_FUNCTIONS,
        // Never read-only: the SO cannot log in while a read-only session is open, nor can one
        // open while the SO is logged in.
        (Some(LoggedIn::SecurityOfficer), _) => CKS_RW_SO_FUNCTIONS,
    }
}

impl Module {
    /// `C_Login` (the PIN is not needed: see the module documentation).
    ///
    /// `CKU_CONTEXT_SPECIFIC` is the re-authentication of a signature in progress; no key of this
    /// token asks for it (`CKA_ALWAYS_AUTHENTICATE` is false), so it is accepted while a
    /// signature is in progress, changing nothing, and is `CKR_OPERATION_NOT_INITIALIZED`
    /// otherwise.
    pub fn login(&self, handle: CK_SESSION_HANDLE, user: CK_USER_TYPE) -> P11Result<()> {
        self.with_table(|table| {
            let session = table.open.get(&handle).ok_or(Error::NoSession(handle))?;
            let slot = session.slot;
            let who = match user {
                CKU_USER => LoggedIn::User,
                CKU_SO => LoggedIn::SecurityOfficer,
                CKU_CONTEXT_SPECIFIC if session.sign.is_some() => return Ok(()),
                CKU_CONTEXT_SPECIFIC => return Err(Error::Idle(Operation::Signature)),
                other => return Err(Error::UserType(other)),
            };
            match table.logins.get(&slot) {
                Some(current) if *current == who => return Err(Error::AlreadyLoggedIn),
                Some(_) => return Err(Error::OtherLoggedIn),
                None => {}
            }
            let read_only_open = table.open.values().any(|s| s.slot == slot && !s.read_write);
            if who == LoggedIn::SecurityOfficer && read_only_open {
                return Err(Error::ReadOnlySessionOpen);
            }
            table.logins.insert(slot, who);
            Ok(())
        })
    }

    /// `C_Logout`: every session of the token returns to its public state.
    pub fn logout(&self, handle: CK_SESSION_HANDLE) -> P11Result<()> {
        self.with_table(|table| {
            let slot = table
                .open
                .get(&handle)
                .ok_or(Error::NoSession(handle))?
                .slot;
            table
                .logins
                .remove(&slot)
                .map(|_| ())
                .ok_or(Error::NotLoggedIn)
        })
    }
}
