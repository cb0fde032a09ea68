//! A token: the card behind a slot, what it says about itself, and its objects (the card's, and
//! the session objects made from it).

use crate::error::P11Result;
use crate::load::TokenFacts;
use crate::objects::{Backing, Object};
use cryptoki_sys::{CKR_OBJECT_HANDLE_INVALID, CK_OBJECT_HANDLE, CK_SESSION_HANDLE};
use iotsafe_core::Card;
use std::sync::{Arc, Mutex, MutexGuard};

/// A card's token.
#[derive(Debug)]
pub struct Token {
    /// The card session every operation goes through.
    pub card: Arc<Card>,
    /// Label, serial, version, the peer key slot.
    pub facts: TokenFacts,
    objects: Mutex<Vec<Object>>,
    /// Held from putting a peer's point into the card's peer slot until the COMPUTE DH that uses
    /// it, so that two derivations never swap their peers.
    pub agreement: Mutex<()>,
}

impl Token {
    /// A token over `card` with the objects loaded from it.
    pub fn new(card: Arc<Card>, facts: TokenFacts, objects: Vec<Object>) -> Token {
        Token {
            card,
            facts,
            objects: Mutex::new(objects),
            agreement: Mutex::new(()),
        }
    }

    /// The object table, for one short step (no card I/O while it is held).
    pub fn objects(&self) -> MutexGuard<'_, Vec<Object>> {
        // The table is consistent between two statements: a panic elsewhere leaves it usable.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of one object callers see ([`Object::shown`]).
    pub fn object(&self, handle: CK_OBJECT_HANDLE) -> P11Result<Object> {
        self.objects()
            .iter()
            .find(|o| o.handle == handle && o.shown())
            .cloned()
            .ok_or(CKR_OBJECT_HANDLE_INVALID)
    }

    /// Adds an object.
    pub fn insert(&self, object: Object) {
        self.objects().push(object);
    }

    /// Removes the session objects `session` made (their secrets are wiped as they drop).
    pub fn drop_session_objects(&self, session: CK_SESSION_HANDLE) {
        self.objects().retain(
            |o| !matches!(o.backing, Backing::SessionSecret { session: s } if s == session),
        );
    }

    /// The agreement lock (a panic while it was held leaves nothing half done on the host).
    pub fn agreement(&self) -> MutexGuard<'_, ()> {
        self.agreement.lock().unwrap_or_else(|p| p.into_inner())
    }
}
