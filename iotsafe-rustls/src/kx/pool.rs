//! The process-wide pool of `'static` key exchange groups, one per card (and options) alive
//! (`crate::static_pool`).

use super::{ephemeral_slots, CardKxGroup, KxOptions, SlotQueue, Target};
use crate::static_pool::{PerCard, StaticPool};
use iotsafe_core::{Card, ObjectRef};
use std::sync::Arc;

static GROUPS: StaticPool<CardKxGroup> = StaticPool::new();

impl PerCard for CardKxGroup {
    type Target = Target;

    fn serves(&self, card: *const Card) -> bool {
        std::ptr::eq(self.lock().card.as_ptr(), card)
    }

    fn card_gone(&self) -> bool {
        self.lock().card.strong_count() == 0
    }

    fn retarget(&self, target: Target) {
        *self.lock() = target;
    }
}

/// See [`CardKxGroup::for_card`].
pub(super) fn group_for(card: &Arc<Card>, options: KxOptions) -> &'static CardKxGroup {
    // Before the pool's lock: reading the object list may take the card. A card whose list cannot
    // be read gets the configured slot alone (its key exchanges then report the card's error).
    let slots: Arc<[ObjectRef]> = ephemeral_slots(card, &options)
        .unwrap_or_else(|_| vec![options.ephemeral_slot.clone()])
        .into();
    let same = |g: &CardKxGroup| g.lock().options == options;
    let target = |groups: &[&'static CardKxGroup]| {
        // One queue per card and set of slots: groups with other options on this card share it.
        let on_card = |g: &CardKxGroup| g.serves(Arc::as_ptr(card)) && g.lock().slots == slots;
        let queue = groups
            .iter()
            .find(|g| on_card(g))
            .map(|g| Arc::clone(&g.lock().queue))
            .unwrap_or_else(|| SlotQueue::new(slots.len()));
        Target {
            card: Arc::downgrade(card),
            options: options.clone(),
            slots: Arc::clone(&slots),
            queue,
        }
    };
    GROUPS.get(card, same, target, |target| CardKxGroup {
        target: std::sync::Mutex::new(target),
    })
}

/// How many groups the pool holds (for the tests of its bound).
#[cfg(test)]
pub(super) fn len() -> usize {
    GROUPS.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotsafe_core::CardConfig;
    use iotsafe_vcard::{CardOptions, InProcessTransport, VirtualCard};
    use std::sync::Mutex;

    fn card() -> Arc<Card> {
        let vcard = VirtualCard::with_default_layout(CardOptions::default());
        Arc::new(Card::open(InProcessTransport::new(vcard), CardConfig::default()).unwrap())
    }

    /// The pool is process-wide: the tests that count its groups run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn one_group_per_live_card_and_dead_cards_groups_are_reused() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let a = card();
        let first = group_for(&a, KxOptions::default());
        let again = group_for(&a, KxOptions::default());
        assert!(std::ptr::eq(first, again), "same card, same group");
        let before = len();
        for _ in 0..100 {
            let b = card();
            let g = group_for(&b, KxOptions::default());
            assert!(!std::ptr::eq(g, first), "another card, another group");
            assert!(Arc::ptr_eq(&g.card().unwrap(), &b));
        }
        // Each card of the loop was dropped before the next asked: one group served them all.
        assert!(len() <= before + 1, "{} groups after 100 cards", len());
        assert!(
            Arc::ptr_eq(&first.card().unwrap(), &a),
            "a's group untouched"
        );
    }

    #[test]
    fn a_retargeted_group_starts_with_fresh_scheduling_state() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let options = KxOptions::pregenerating(true);
        let a = card();
        let g = group_for(&a, options.clone());
        g.pregenerate_now().unwrap();
        assert!(g.has_pregenerated_key());
        let old_queue = Arc::clone(&g.lock().queue);
        drop(a);
        let b = card();
        let g2 = group_for(&b, options);
        if std::ptr::eq(g, g2) {
            assert!(!g2.has_pregenerated_key(), "a's key is not b's");
            assert!(!Arc::ptr_eq(&old_queue, &g2.lock().queue));
        }
        assert!(!g2.has_pregenerated_key());
    }

    #[test]
    fn other_options_on_the_same_card_share_its_queue() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let a = card();
        let plain = group_for(&a, KxOptions::default());
        let pregen = group_for(&a, KxOptions::pregenerating(true));
        assert!(!std::ptr::eq(plain, pregen));
        assert!(Arc::ptr_eq(&plain.lock().queue, &pregen.lock().queue));
    }
}
