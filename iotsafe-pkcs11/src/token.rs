//! A token: the card behind a slot, what it says about itself, and its objects (the card's, and
//! the session objects made from it).

use crate::error::{Error, P11Result};
use crate::load::TokenFacts;
use crate::objects::{Backing, Object};
use cryptoki_sys::{CK_OBJECT_HANDLE, CK_SESSION_HANDLE};
use iotsafe_core::slots::SlotTurn;
use iotsafe_core::{Card, EphemeralKey, ObjectRef};
use std::sync::{Arc, Mutex, MutexGuard};

/// A card's token.
#[derive(Debug)]
pub struct Token {
    /// The card session every operation goes through.
    pub card: Arc<Card>,
    /// Label, serial, version, the peer key slot.
    pub facts: TokenFacts,
    objects: Mutex<Vec<Object>>,
    /// Held from a key generation on the card to the object table's update, so that the table
    /// always shows the key the card made last.
    generation: Mutex<()>,
    /// The keys this module generated in volatile slots (see [`Generated`]).
    generated: Mutex<Vec<Generated>>,
}

/// A key this module generated in a volatile slot, which every other user of the card (rustls
/// handshakes, other programs) also generates in. The derivation uses it only while nobody else
/// was granted the slot since (the card's slot queue, `iotsafe_core::slots`), never a key it did
/// not make.
#[derive(Debug)]
pub struct Generated {
    /// The key and its claim on the slot.
    pub key: EphemeralKey,
    /// The turn on the slot, held from the generation to the first derivation with the key (or
    /// until its lease runs out and someone else takes the slot over), so that a generation and
    /// the derivation that follows it are not torn apart by the next handshake.
    pub turn: Option<SlotTurn>,
}

impl Token {
    /// A token over `card` with the objects loaded from it.
    pub fn new(card: Arc<Card>, facts: TokenFacts, objects: Vec<Object>) -> Token {
        Token {
            card,
            facts,
            objects: Mutex::new(objects),
            generation: Mutex::new(()),
            generated: Mutex::new(Vec::new()),
        }
    }

    /// The object table, for one short step (no card I/O while it is held).
    pub fn objects(&self) -> MutexGuard<'_, Vec<Object>> {
        // The table is consistent between two statements: a panic elsewhere leaves it usable.
        iotsafe_core::lock::lock(&self.objects)
    }

    /// A copy of one object callers see ([`Object::shown`]).
    pub fn object(&self, handle: CK_OBJECT_HANDLE) -> P11Result<Object> {
        self.objects()
            .iter()
            .find(|o| o.handle == handle && o.shown())
            .cloned()
            .ok_or(Error::NoObject(handle))
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

    /// The generation lock (see the field): taken after the turn on the slot, never before.
    pub fn generation(&self) -> MutexGuard<'_, ()> {
        iotsafe_core::lock::lock(&self.generation)
    }

    /// The keys this module generated (a list of plain values, consistent after a panic).
    pub fn generated(&self) -> MutexGuard<'_, Vec<Generated>> {
        iotsafe_core::lock::lock(&self.generated)
    }

    /// Gives back every turn the generated keys hold (the keys stay usable until their slots are
    /// granted to someone else).
    pub fn end_turns(&self) {
        for g in self.generated().iter_mut() {
            g.turn = None;
        }
    }

    /// Forgets the key generated in `slot`, giving its turn back.
    pub fn forget_generated(&self, slot: &ObjectRef) -> Option<Generated> {
        let mut generated = self.generated();
        let at = generated
            .iter()
            .position(|g| g.key.key_pair.private == *slot)?;
        Some(generated.remove(at))
    }
}
