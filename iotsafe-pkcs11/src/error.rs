//! What goes wrong in a PKCS#11 call, and the `CKR_*` each failure answers.
//!
//! The module's code fails with an [`Error`] that says what went wrong (with the card's
//! [`iotsafe_core::Error`] kept as its source when the card failed); [`Error::rv`] is the one
//! place a failure becomes a `CK_RV`, called by the C ABI as each function returns (`ffi/mod.rs`).

use crate::config::ConfigError;
use cryptoki_sys::*;
use iotsafe_core::{Meaning, ObjectRef, StatusWord, TransportError};
use iotsafe_select::SelectError;
use std::fmt;

/// A PKCS#11 result: the value, or what went wrong.
pub type P11Result<T> = Result<T, Error>;

/// ISO 7816-4 `6581`, "memory failure": the card could not write its memory. `iotsafe_core::sw`
/// has no [`Meaning`] for it (IoT SAFE does not list it), yet cards answer it to a write that
/// failed: the same trouble for the caller as `6A84`, insufficient memory.
pub const MEMORY_FAILURE: StatusWord = StatusWord(0x6581);

/// An operation a session runs over several calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `C_FindObjectsInit` … `C_FindObjectsFinal`.
    Search,
    /// `C_SignInit` … `C_Sign` / `C_SignFinal`.
    Signature,
    /// `C_VerifyInit` … `C_Verify` / `C_VerifyFinal`.
    Verification,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Search => "search",
            Operation::Signature => "signature",
            Operation::Verification => "verification",
        })
    }
}

/// Why a PKCS#11 call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The library and the call's arguments.
    /// `C_Initialize` was not called (or `C_Finalize` was, or this is a forked child).
    #[error("the library is not initialized")]
    NotInitialized,
    /// `C_Initialize` twice.
    #[error("the library is initialized already")]
    AlreadyInitialized,
    /// The configuration (variables or `IOTSAFE_PKCS11_CONF`) cannot be used.
    #[error("configuration: {0}")]
    Configuration(ConfigError),
    /// An argument the module cannot use as given.
    #[error("bad arguments: {0}")]
    BadArguments(&'static str),
    /// Only the application's own mutex functions were offered.
    #[error("the application's mutex functions without CKF_OS_LOCKING_OK: this module locks with the operating system's only")]
    CantLock,
    /// A panic inside the module, caught at the C ABI.
    #[error("a panic inside the module")]
    Panicked,
    /// A function this token does not offer.
    #[error("not offered by this token")]
    NotOffered,
    /// `C_GetFunctionStatus`, `C_CancelFunction`: legacy functions PKCS#11 answers so.
    #[error("no function runs in parallel")]
    NotParallel,
    /// `C_SeedRandom`.
    #[error("the card's generator takes no seed")]
    SeedNotTaken,

    // Slots, sessions and logins.
    /// No slot with this ID.
    #[error("no slot {0}")]
    NoSlot(CK_SLOT_ID),
    /// The card of a slot did not open.
    #[error("slot {slot}: no token: {source}")]
    NoToken {
        /// The slot.
        slot: CK_SLOT_ID,
        /// Why its card did not open.
        source: SelectError,
    },
    /// `C_OpenSession` without `CKF_SERIAL_SESSION`.
    #[error("a session must be opened with CKF_SERIAL_SESSION")]
    ParallelSession,
    /// A read-only session asked for while the SO is logged in.
    #[error("the SO is logged in: no read-only session may open")]
    SoLoggedIn,
    /// A session handle that is not open.
    #[error("no session {0}")]
    NoSession(CK_SESSION_HANDLE),
    /// A read-only session asked to write.
    #[error("the session is read-only")]
    ReadOnlySession,
    /// A user type PKCS#11 does not define.
    #[error("user type {0} is none of CKU_SO, CKU_USER, CKU_CONTEXT_SPECIFIC")]
    UserType(CK_USER_TYPE),
    /// `C_Login` as the user type already logged in.
    #[error("already logged in")]
    AlreadyLoggedIn,
    /// `C_Login` while the other user type is logged in.
    #[error("the other user type is logged in")]
    OtherLoggedIn,
    /// `C_Login` as SO while a read-only session is open.
    #[error("the SO cannot log in while a read-only session is open")]
    ReadOnlySessionOpen,
    /// `C_Logout` with nobody logged in.
    #[error("nobody is logged in")]
    NotLoggedIn,

    // Operations and mechanisms.
    /// An operation started while one of its kind is in progress in the session.
    #[error("a {0} is in progress already")]
    Busy(Operation),
    /// `C_Sign` or `C_Verify` after the update call that made the operation multi-part.
    #[error("a multi-part {0} ends with its final call only")]
    MultiPart(Operation),
    /// A call inside an operation that is not in progress.
    #[error("no {0} in progress")]
    Idle(Operation),
    /// A mechanism the token does not offer (for this operation).
    #[error("mechanism {0:#x} is not offered")]
    Mechanism(CK_MECHANISM_TYPE),
    /// Mechanism parameters the module cannot use.
    #[error("mechanism parameters: {0}")]
    MechanismParams(&'static str),

    // Objects and keys.
    /// An object handle the session does not reach.
    #[error("no object {0}")]
    NoObject(CK_OBJECT_HANDLE),
    /// A key handle the session does not reach.
    #[error("no key {0}")]
    NoKey(CK_OBJECT_HANDLE),
    /// A key of the card's volatile slot that this module never generated (nor anyone it knows).
    #[error("no key was generated in {0}")]
    NotGenerated(ObjectRef),
    /// The key of a volatile slot was replaced since it was generated: the handle's key is gone.
    #[error("the generated key is gone: {0}")]
    KeyReplaced(#[source] iotsafe_core::Error),
    /// A key of the wrong class or type for the operation.
    #[error("wrong key: {0}")]
    KeyType(&'static str),
    /// A key whose functions (IoT SAFE usage) forbid the operation.
    #[error("the key may not {0}")]
    KeyFunction(&'static str),
    /// An object the module may not destroy (the card's own).
    #[error("object {0} is the card's: it cannot be destroyed")]
    NotDestroyable(CK_OBJECT_HANDLE),

    // Templates and attributes.
    /// A template without an attribute the call needs.
    #[error("incomplete template: {0}")]
    TemplateIncomplete(&'static str),
    /// A template that asks for something the token cannot be or do.
    #[error("inconsistent template: {0}")]
    TemplateInconsistent(&'static str),
    /// A template attribute whose value differs from the object's.
    #[error("inconsistent template: attribute {0:#x} has another value here")]
    AttributeMismatch(CK_ATTRIBUTE_TYPE),
    /// An attribute value of the wrong size for its type, or out of range.
    #[error("attribute {0:#x}: invalid value")]
    AttributeValue(CK_ATTRIBUTE_TYPE),
    /// An attribute the object (or template) does not have.
    #[error("attribute {0:#x} is not one of this object's")]
    AttributeType(CK_ATTRIBUTE_TYPE),
    /// An attribute only the card sets.
    #[error("attribute {0:#x} is read-only")]
    AttributeReadOnly(CK_ATTRIBUTE_TYPE),
    /// An attribute whose value never leaves the token.
    #[error("attribute {0:#x} is sensitive")]
    AttributeSensitive(CK_ATTRIBUTE_TYPE),
    /// A curve other than P-256.
    #[error("only P-256 is offered")]
    Curve,

    // Data.
    /// Data to sign (or verify) of a length no digest has.
    #[error("a digest of {0} bytes (1 to 64 taken)")]
    DigestLength(usize),
    /// A signature of the wrong length.
    #[error("a signature of {0} bytes (r‖s is 64)")]
    SignatureLength(usize),
    /// A signature that does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// An output buffer too small for the answer.
    #[error("the buffer is too small: {needed} bytes needed")]
    BufferTooSmall {
        /// The length the answer needs (elements of the buffer's type).
        needed: usize,
    },

    // The card.
    /// A card operation failed.
    #[error("the card: {0}")]
    Card(#[source] iotsafe_core::Error),
    /// GET RANDOM answered fewer bytes than asked.
    #[error("the card gave {got} random bytes of {asked}")]
    ShortRandom {
        /// Bytes asked.
        asked: usize,
        /// Bytes given.
        got: usize,
    },
    /// A signature from the card that is neither DER nor `r‖s` of P-256.
    #[error("the card's signature cannot be read")]
    UnreadableSignature,
}

impl From<iotsafe_core::Error> for Error {
    fn from(error: iotsafe_core::Error) -> Error {
        Error::Card(error)
    }
}

impl Error {
    /// The `CKR_*` the call answers: the one place a failure becomes a return value.
    pub fn rv(&self) -> CK_RV {
        match self {
            Error::NotInitialized => CKR_CRYPTOKI_NOT_INITIALIZED,
            Error::AlreadyInitialized => CKR_CRYPTOKI_ALREADY_INITIALIZED,
            Error::Configuration(_) => CKR_FUNCTION_FAILED,
            Error::BadArguments(_) => CKR_ARGUMENTS_BAD,
            Error::CantLock => CKR_CANT_LOCK,
            Error::Panicked => CKR_GENERAL_ERROR,
            Error::NotOffered => CKR_FUNCTION_NOT_SUPPORTED,
            Error::NotParallel => CKR_FUNCTION_NOT_PARALLEL,
            Error::SeedNotTaken => CKR_RANDOM_SEED_NOT_SUPPORTED,
            Error::NoSlot(_) => CKR_SLOT_ID_INVALID,
            Error::NoToken { .. } => CKR_TOKEN_NOT_PRESENT,
            Error::ParallelSession => CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            Error::SoLoggedIn => CKR_SESSION_READ_WRITE_SO_EXISTS,
            Error::NoSession(_) => CKR_SESSION_HANDLE_INVALID,
            Error::ReadOnlySession => CKR_SESSION_READ_ONLY,
            Error::UserType(_) => CKR_USER_TYPE_INVALID,
            Error::AlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            Error::OtherLoggedIn => CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
            Error::ReadOnlySessionOpen => CKR_SESSION_READ_ONLY_EXISTS,
            Error::NotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            Error::Busy(_) | Error::MultiPart(_) => CKR_OPERATION_ACTIVE,
            Error::Idle(_) => CKR_OPERATION_NOT_INITIALIZED,
            Error::Mechanism(_) => CKR_MECHANISM_INVALID,
            Error::MechanismParams(_) => CKR_MECHANISM_PARAM_INVALID,
            Error::NoObject(_) => CKR_OBJECT_HANDLE_INVALID,
            Error::NoKey(_) | Error::NotGenerated(_) | Error::KeyReplaced(_) => {
                CKR_KEY_HANDLE_INVALID
            }
            Error::KeyType(_) => CKR_KEY_TYPE_INCONSISTENT,
            Error::KeyFunction(_) => CKR_KEY_FUNCTION_NOT_PERMITTED,
            Error::NotDestroyable(_) => CKR_ACTION_PROHIBITED,
            Error::TemplateIncomplete(_) => CKR_TEMPLATE_INCOMPLETE,
            Error::TemplateInconsistent(_) | Error::AttributeMismatch(_) => {
                CKR_TEMPLATE_INCONSISTENT
            }
            Error::AttributeValue(_) => CKR_ATTRIBUTE_VALUE_INVALID,
            Error::AttributeType(_) => CKR_ATTRIBUTE_TYPE_INVALID,
            Error::AttributeReadOnly(_) => CKR_ATTRIBUTE_READ_ONLY,
            Error::AttributeSensitive(_) => CKR_ATTRIBUTE_SENSITIVE,
            Error::Curve => CKR_CURVE_NOT_SUPPORTED,
            Error::DigestLength(_) => CKR_DATA_LEN_RANGE,
            Error::SignatureLength(_) => CKR_SIGNATURE_LEN_RANGE,
            Error::BadSignature => CKR_SIGNATURE_INVALID,
            Error::BufferTooSmall { .. } => CKR_BUFFER_TOO_SMALL,
            Error::Card(e) => card_rv(e),
            Error::ShortRandom { .. } | Error::UnreadableSignature => CKR_DEVICE_ERROR,
        }
    }
}

/// The `CKR_*` for a failed card operation.
///
/// - The card gone (removed, reset, reader emptied, exchange cut): `CKR_DEVICE_REMOVED`. The
///   session reconnects on the next operation, which works once the card is back.
/// - The link failed otherwise (pcscd gone, modem silent or garbling, I/O): `CKR_DEVICE_ERROR`.
/// - The card answered with an error status: `CKR_DEVICE_MEMORY` for its memory errors,
///   `CKR_FUNCTION_FAILED` for the rest (a refused command is the card's decision, not a fault).
/// - An answer the client could not read, or a signature that does not verify against the key:
///   `CKR_DEVICE_ERROR` (the device misbehaved; nothing it sent is passed on).
fn card_rv(error: &iotsafe_core::Error) -> CK_RV {
    use iotsafe_core::Error as Card;
    match error {
        Card::Transport { source, .. } => match source {
            TransportError::RemovedCard
            | TransportError::ResetCard
            | TransportError::NoCard(_)
            | TransportError::NotTransacted => CKR_DEVICE_REMOVED,
            _ => CKR_DEVICE_ERROR,
        },
        Card::Status { sw, .. } => match sw.meaning() {
            Meaning::InsufficientMemory => CKR_DEVICE_MEMORY,
            _ if *sw == MEMORY_FAILURE => CKR_DEVICE_MEMORY,
            _ => CKR_FUNCTION_FAILED,
        },
        Card::Malformed { .. } | Card::Runaway { .. } | Card::SignatureCheck { .. } => {
            CKR_DEVICE_ERROR
        }
        Card::AppletNotFound { .. } | Card::NoLogicalChannel { .. } => CKR_DEVICE_ERROR,
        _ => CKR_FUNCTION_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotsafe_core::CommandKind;

    fn card_error(error: iotsafe_core::Error) -> CK_RV {
        Error::from(error).rv()
    }

    #[test]
    fn mapping() {
        let transport = |source| iotsafe_core::Error::Transport {
            command: CommandKind::ComputeSignature,
            source,
        };
        assert_eq!(
            card_error(transport(TransportError::RemovedCard)),
            CKR_DEVICE_REMOVED
        );
        assert_eq!(
            card_error(transport(TransportError::NotTransacted)),
            CKR_DEVICE_REMOVED
        );
        assert_eq!(
            card_error(transport(TransportError::NoService)),
            CKR_DEVICE_ERROR
        );
        let status = |sw| iotsafe_core::Error::Status {
            command: CommandKind::ComputeSignature,
            sw: StatusWord(sw),
        };
        assert_eq!(card_error(status(0x6985)), CKR_FUNCTION_FAILED);
        assert_eq!(card_error(status(0x6A84)), CKR_DEVICE_MEMORY);
        assert_eq!(card_error(status(0x6581)), CKR_DEVICE_MEMORY);
    }
}
