//! The card's key exchange for one connection at a time: no queue, no threads, no pool. What a
//! microcontroller with one TLS connection needs (it builds without `std`); on the host,
//! [`crate::CardKxGroup`] is the one to use. `start()` is GENERATE KEY PAIR in the ephemeral slot
//! (one APDU), and the exchange completes exactly as the host's does ([`CardKeyExchange`]).
//!
//! Two handshakes on one slot at once would replace each other's key: the second key generation
//! makes the first exchange's agreement fail with [`crate::KxError::Replaced`] (the session
//! counts the slot's generations), never compute a DH with the wrong key.

use super::exchange::{checked_key, CardKeyExchange};
use crate::error::card_failure;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use iotsafe_core::{Card, ObjectRef};
use rustls::crypto::{ActiveKeyExchange, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::NamedGroup;

/// secp256r1 key exchange on the card's ephemeral slot, for one connection at a time.
pub struct PlainCardKxGroup {
    card: Arc<Card>,
    ephemeral_slot: ObjectRef,
    peer_slot: ObjectRef,
}

impl PlainCardKxGroup {
    /// ECDHE with the key pair slot `ephemeral_slot` (IoT.05's default layout: ID `04`) and the
    /// public key slot `peer_slot` the server's share is written to (ID `05`).
    pub fn new(card: Arc<Card>, ephemeral_slot: ObjectRef, peer_slot: ObjectRef) -> Self {
        PlainCardKxGroup {
            card,
            ephemeral_slot,
            peer_slot,
        }
    }

    /// The group as rustls wants it, `'static`: made once per card and kept for the program's
    /// life (firmware makes one at boot).
    pub fn leak(self) -> &'static PlainCardKxGroup {
        Box::leak(Box::new(self))
    }
}

impl fmt::Debug for PlainCardKxGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCardKxGroup")
            .field("ephemeral_slot", &self.ephemeral_slot)
            .field("peer_slot", &self.peer_slot)
            .finish_non_exhaustive()
    }
}

impl SupportedKxGroup for PlainCardKxGroup {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let slot = &self.ephemeral_slot;
        let key = crate::runtime::card_work(|| self.card.generate_ephemeral(slot))
            .map_err(|e| card_failure(format_args!("GENERATE KEY PAIR in {slot}"), e))?;
        let key = checked_key(slot, key)?;
        Ok(Box::new(CardKeyExchange::new(
            self.card.clone(),
            self.peer_slot.clone(),
            key,
            None,
        )))
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}
