//! More than one volatile key pair for ECDHE: cards differ in how many they offer.
//!
//! The default layout has one ephemeral key pair (`04`, label `ecdhe`). Some applets offer
//! several volatile key pairs with key generation and key agreement, so that several key
//! exchanges can each hold one between GENERATE KEY PAIR and COMPUTE DH.
//! [`ObjectStore::add_ephemeral_slots`] acts that out: each extra pair is a copy of `04`'s
//! attributes (volatile P-256, key generation + key agreement) under the next free ID.

use crate::error::VcardError;
use crate::store::{layout, ObjectRef, ObjectStore, MAX_OBJECTS_PER_TYPE};

impl ObjectStore {
    /// Adds `count` volatile key pairs like the ephemeral pair `04`, with IDs from `06` upwards
    /// (skipping any ID a key already has) and labels `ecdhe-2`, `ecdhe-3`, …. Returns their IDs.
    /// Fails when the store has no pair `04` to copy, or would exceed
    /// [`MAX_OBJECTS_PER_TYPE`] keys of a type.
    pub fn add_ephemeral_slots(&mut self, count: usize) -> Result<Vec<Vec<u8>>, VcardError> {
        let eph = ObjectRef::Id(layout::EPHEMERAL_KEY_ID);
        let (Some(private), Some(public)) = (
            eph.find_in(&self.private_keys).cloned(),
            eph.find_in(&self.public_keys).cloned(),
        ) else {
            return Err(VcardError::MissingObject("ephemeral key pair 04"));
        };
        for (what, have) in [
            ("private keys", self.private_keys.len()),
            ("public keys", self.public_keys.len()),
        ] {
            if have + count > MAX_OBJECTS_PER_TYPE {
                return Err(VcardError::TooManyObjects {
                    what,
                    asked: have + count,
                    max: MAX_OBJECTS_PER_TYPE,
                });
            }
        }
        let mut ids = Vec::with_capacity(count);
        let mut next = 0x06u8;
        for n in 0..count {
            while self.id_in_use(next) {
                next = next.wrapping_add(1);
            }
            let id = vec![next];
            let label = format!("ecdhe-{}", n + 2);
            self.private_keys.push(crate::store::PrivateKeyObject {
                id: id.clone(),
                label: Some(label.clone()),
                public_key_id: Some(id.clone()),
                scalar: None,
                ..private.clone()
            });
            self.public_keys.push(crate::store::PublicKeyObject {
                id: id.clone(),
                label: Some(label),
                point: None,
                ..public.clone()
            });
            ids.push(id);
            next = next.wrapping_add(1);
        }
        Ok(ids)
    }

    fn id_in_use(&self, id: u8) -> bool {
        let id = [id];
        self.private_key_index(ObjectRef::Id(&id)).is_some()
            || self.public_key_index(ObjectRef::Id(&id)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_pairs_copy_the_ephemeral_attributes_under_free_ids() {
        let mut store = ObjectStore::default_layout();
        let ids = store.add_ephemeral_slots(2).unwrap();
        assert_eq!(ids, [vec![0x06], vec![0x07]]);
        let eph = &store.private_keys[store.private_key_index(ObjectRef::Id(&[4])).unwrap()];
        for id in &ids {
            let key = &store.private_keys[store.private_key_index(ObjectRef::Id(id)).unwrap()];
            assert_eq!(key.attributes, eph.attributes);
            assert!(key.attributes.is_volatile());
            assert!(key.scalar.is_none());
            assert!(store.public_key_index(ObjectRef::Id(id)).is_some());
        }
        assert!(store
            .private_key_index(ObjectRef::Label(b"ecdhe-3"))
            .is_some());
    }

    #[test]
    fn too_many_pairs_are_refused_and_nothing_is_added() {
        let mut store = ObjectStore::default_layout();
        let before = store.clone();
        assert!(matches!(
            store.add_ephemeral_slots(MAX_OBJECTS_PER_TYPE),
            Err(VcardError::TooManyObjects { .. })
        ));
        assert_eq!(store, before);
    }
}
