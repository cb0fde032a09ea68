//! Public card data a session has read, which a host may keep between runs ([`crate::cache`]):
//! the object list as the card answered it, the public keys of persistent key pairs, and whole
//! files. Once handed back to a session ([`Card::preload_public_data`]) they are answered from
//! memory instead of the card.
//!
//! Nothing secret is here, and nothing volatile: the public halves of volatile key pairs (the
//! ephemeral slots) change at every key generation and are always read from the card.

use super::Card;
use crate::error::Error;
use crate::objects::{key_type, EcPoint, ObjectInfo, ObjectKind, ObjectRef};
use crate::prelude::*;

/// What a session read of the card's public data, by the reference it was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicData {
    /// The object list as the card answered GET DATA P1=01 (continuations joined).
    pub object_list: Option<Vec<u8>>,
    /// Public points of persistent key pairs (READ PUBLIC KEY).
    pub public_keys: Vec<(ObjectRef, EcPoint)>,
    /// Whole files (READ FILE to the end).
    pub files: Vec<(ObjectRef, Vec<u8>)>,
}

impl PublicData {
    /// Nothing read yet.
    pub fn is_empty(&self) -> bool {
        self.object_list.is_none() && self.public_keys.is_empty() && self.files.is_empty()
    }

    /// The point of `key`, if it was read.
    pub fn public_key(&self, key: &ObjectRef) -> Option<&EcPoint> {
        self.public_keys
            .iter()
            .find(|(r, _)| r == key)
            .map(|(_, p)| p)
    }

    /// The content of `file`, if it was read whole.
    pub fn file(&self, file: &ObjectRef) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(r, _)| r == file)
            .map(|(_, f)| f.as_slice())
    }

    pub(super) fn remember_key(&mut self, key: &ObjectRef, point: &EcPoint) {
        if self.public_key(key).is_none() {
            self.public_keys.push((key.clone(), *point));
        }
    }

    pub(super) fn remember_file(&mut self, file: &ObjectRef, content: &[u8]) {
        if self.file(file).is_none() {
            self.files.push((file.clone(), content.to_vec()));
        }
    }
}

/// Whether `key` is a persistent key pair by the object list (`4B` of its private or public
/// structure): only those public points may be kept. Unknown without a list: not kept.
pub(super) fn is_persistent_key(objects: Option<&[ObjectInfo]>, key: &ObjectRef) -> bool {
    let Some(list) = objects else {
        return false;
    };
    let mut kinds = list.iter().filter(|o| {
        matches!(o.kind, Some(ObjectKind::PrivateKey | ObjectKind::PublicKey)) && key.matches(o)
    });
    let persistent = |t: Option<u8>| {
        matches!(
            t,
            Some(key_type::P256_PERSISTENT | key_type::BRAINPOOL_P256_PERSISTENT)
        )
    };
    let first = kinds.next();
    first.is_some_and(|o| persistent(o.key_type)) && kinds.all(|o| persistent(o.key_type))
}

impl Card {
    /// The public data this session has read from the card (or was given): what
    /// [`crate::cache`] keeps for the next run.
    pub fn public_data(&self) -> PublicData {
        self.lock().public.clone()
    }

    /// Answers the object list, the persistent public keys and the files in `data` from memory
    /// from now on (what the session reads itself is read from the card each time). Only for
    /// data checked to be this card's (see [`crate::cache`]). A list that does not parse is
    /// refused and nothing is changed.
    pub fn preload_public_data(&self, data: PublicData) -> Result<(), Error> {
        let list = match &data.object_list {
            Some(raw) => Some(crate::objects::parse_object_list(raw)?),
            None => None,
        };
        let mut s = self.lock();
        if list.is_some() {
            s.objects = list;
        }
        s.public = data.clone();
        s.preloaded = data;
        Ok(())
    }
}
