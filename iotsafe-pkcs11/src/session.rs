//! A session's state: its token, whether it may write, and the operations in progress.

use crate::objects::KeyOnCard;
use crate::token::Token;
use cryptoki_sys::{CK_OBJECT_HANDLE, CK_SLOT_ID};
use iotsafe_core::EcPoint;
use sha2::Sha256;
use std::sync::Arc;
use zeroize::Zeroizing;

/// One open session.
#[derive(Debug)]
pub struct Session {
    /// Its slot.
    pub slot: CK_SLOT_ID,
    /// The token it works on.
    pub token: Arc<Token>,
    /// Opened with `CKF_RW_SESSION`.
    pub read_write: bool,
    /// A `C_FindObjects` search in progress.
    pub find: Option<Search>,
    /// A signature in progress.
    pub sign: Option<Signing>,
    /// A verification in progress.
    pub verify: Option<Verifying>,
}

impl Session {
    /// A fresh session with nothing in progress.
    pub fn new(slot: CK_SLOT_ID, token: Arc<Token>, read_write: bool) -> Session {
        Session {
            slot,
            token,
            read_write,
            find: None,
            sign: None,
            verify: None,
        }
    }
}

/// The handles a search found, and how many were handed out.
#[derive(Debug, Default)]
pub struct Search {
    /// Matching objects, in table order.
    pub found: Vec<CK_OBJECT_HANDLE>,
    /// How many went out already.
    pub given: usize,
}

/// A signature operation between `C_SignInit` and the call that ends it (its mechanism is in
/// how its input is kept: a digest, or a message hashed as it comes).
#[derive(Debug, Clone)]
pub struct Signing {
    /// The key.
    pub key: KeyOnCard,
    /// What `C_SignUpdate` fed in so far.
    pub input: SignInput,
    /// Whether `C_SignUpdate` was called (then only `C_SignFinal` may end it).
    pub multi_part: bool,
}

/// A verification between `C_VerifyInit` and the call that ends it.
#[derive(Debug, Clone)]
pub struct Verifying {
    /// The public key's point.
    pub point: EcPoint,
    /// What `C_VerifyUpdate` fed in so far.
    pub input: SignInput,
    /// Whether `C_VerifyUpdate` was called (then only `C_VerifyFinal` may end it).
    pub multi_part: bool,
}

/// The data of a signature as it comes in.
#[derive(Debug, Clone)]
pub enum SignInput {
    /// `CKM_ECDSA`: the caller's digest, kept as given.
    Digest(Zeroizing<Vec<u8>>),
    /// `CKM_ECDSA_SHA256`: the message, hashed as it comes.
    Message(Sha256),
}
