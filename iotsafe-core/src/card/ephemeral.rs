//! Which ephemeral key each volatile key slot holds now.
//!
//! A key exchange generates a key pair in a volatile slot, and later (after a network round trip)
//! runs the agreement with it. In between, anything that replaces the slot's key (another key
//! generation in the same slot, a card reset, a lost connection after which the card may have
//! been reset) must make the agreement fail cleanly instead of computing a DH with a key the
//! handshake never sent. Every key generation gets a generation number, unique on this session;
//! each slot remembers the number of the key it holds; a loss forgets them all.
//!
//! Slots are independent: a card with several volatile key pairs can run one key exchange in
//! each at the same time.

use crate::card::EphemeralKey;
use crate::error::Error;
use crate::objects::ObjectRef;
use crate::prelude::*;

/// The generation of the key in each slot that had one generated on this session.
#[derive(Debug, Default)]
pub(super) struct EphemeralSlots {
    /// Moves on at every key generation and every loss, so no number is ever handed out twice.
    counter: u64,
    /// The generation each slot's current key has, by the private key's reference as the card
    /// reported it (or as asked, when it reported none).
    current: Vec<(ObjectRef, u64)>,
}

impl EphemeralSlots {
    /// A key pair was generated in `slot`: the key it held before is retired. Returns the new
    /// key's generation.
    pub(super) fn generated(&mut self, slot: &ObjectRef) -> u64 {
        self.counter += 1;
        let generation = self.counter;
        match self.current.iter_mut().find(|(s, _)| s == slot) {
            Some(entry) => entry.1 = generation,
            None => self.current.push((slot.clone(), generation)),
        }
        generation
    }

    /// A key generation in `slot` is about to go out: whatever the slot held is unknown from now
    /// on, even if the answer never comes back.
    pub(super) fn retire(&mut self, slot: &ObjectRef) {
        self.current.retain(|(s, _)| s != slot);
    }

    /// The card may have lost every volatile key (reset, lost connection, interrupted operation).
    pub(super) fn retire_all(&mut self) {
        self.counter += 1;
        self.current.clear();
    }

    /// The last generation number handed out or retired.
    pub(super) fn counter(&self) -> u64 {
        self.counter
    }

    /// Fails with [`Error::StaleEphemeral`] unless `key` is still the key of its slot.
    pub(super) fn check(&self, key: &EphemeralKey) -> Result<(), Error> {
        match self.generation_of(&key.key_pair.private) {
            Some(current) if current == key.generation => Ok(()),
            current => Err(Error::StaleEphemeral {
                started: key.generation,
                current: current.unwrap_or(self.counter),
            }),
        }
    }

    fn generation_of(&self, slot: &ObjectRef) -> Option<u64> {
        self.current
            .iter()
            .find(|(s, _)| s == slot)
            .map(|(_, generation)| *generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::KeyPair;
    use crate::objects::EcPoint;

    fn key(slots: &mut EphemeralSlots, id: u8) -> EphemeralKey {
        let slot = ObjectRef::id([id]);
        let generation = slots.generated(&slot);
        let mut point = [0u8; 65];
        point[0] = 4;
        EphemeralKey {
            generation,
            key_pair: KeyPair {
                private: slot.clone(),
                public: slot,
                point: EcPoint::from_slice(&point).unwrap(),
            },
            #[cfg(feature = "std")]
            claim: None,
        }
    }

    #[test]
    fn a_key_stays_current_until_its_own_slot_is_regenerated() {
        let mut slots = EphemeralSlots::default();
        let a = key(&mut slots, 4);
        let b = key(&mut slots, 6);
        assert!(
            slots.check(&a).is_ok(),
            "another slot's key leaves it alone"
        );
        assert!(slots.check(&b).is_ok());
        let a2 = key(&mut slots, 4);
        assert!(matches!(
            slots.check(&a),
            Err(Error::StaleEphemeral { started, current }) if started == a.generation && current == a2.generation
        ));
        assert!(slots.check(&a2).is_ok());
        assert!(slots.check(&b).is_ok());
    }

    #[test]
    fn a_loss_retires_every_slot_and_numbers_are_never_reused() {
        let mut slots = EphemeralSlots::default();
        let a = key(&mut slots, 4);
        let b = key(&mut slots, 6);
        slots.retire_all();
        assert!(slots.check(&a).is_err());
        assert!(slots.check(&b).is_err());
        let c = key(&mut slots, 4);
        assert!(
            c.generation > b.generation + 1,
            "the loss took a number too"
        );
        assert!(slots.check(&c).is_ok());
    }
}
