//! The process-wide pool of `'static` key exchange groups, one per card (and options) alive
//! (`crate::static_pool`).

use super::{ephemeral_slots, lock, CardKxGroup, KxOptions, Target};
use crate::static_pool::{PerCard, StaticPool};
use iotsafe_core::{Card, ObjectRef};
use std::sync::Arc;

static GROUPS: StaticPool<CardKxGroup> = StaticPool::new();

impl PerCard for CardKxGroup {
    type Target = Target;

    fn serves(&self, card: *const Card) -> bool {
        std::ptr::eq(lock(&self.target).card.as_ptr(), card)
    }

    fn card_gone(&self) -> bool {
        lock(&self.target).card.strong_count() == 0
    }

    fn retarget(&self, target: Target) {
        *lock(&self.target) = target;
    }
}

/// See [`CardKxGroup::for_card`].
pub(super) fn group_for(card: &Arc<Card>, options: KxOptions) -> &'static CardKxGroup {
    // Before the pool's lock: reading the object list may take the card. A card whose list cannot
    // be read gets the configured slot alone (its key exchanges then report the card's error).
    let slots: Arc<[ObjectRef]> = ephemeral_slots(card, &options)
        .unwrap_or_else(|_| vec![options.ephemeral_slot.clone()])
        .into();
    let same = |g: &CardKxGroup| lock(&g.target).options == options;
    // The slot queue is the card's own: groups with other options on this card share it.
    let target = |_: &[&'static CardKxGroup]| Target::new(card, options.clone(), slots);
    GROUPS.get(card, same, target, |target| CardKxGroup {
        target: std::sync::Mutex::new(target),
    })
}

/// The pooled group at the address of `group`, if it is one of ours.
pub(super) fn find(
    group: &'static dyn rustls::crypto::SupportedKxGroup,
) -> Option<&'static CardKxGroup> {
    let address = std::ptr::from_ref(group).cast::<()>();
    GROUPS.find(|g| std::ptr::eq(std::ptr::from_ref(g).cast::<()>(), address))
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
        let _serial = lock(&SERIAL);
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
        let _serial = lock(&SERIAL);
        let options = KxOptions::pregenerating(true);
        let a = card();
        let g = group_for(&a, options.clone());
        g.pregenerate_now().unwrap();
        assert!(g.has_pregenerated_key());
        drop(a);
        let b = card();
        let g2 = group_for(&b, options);
        assert!(!g2.has_pregenerated_key(), "a's key is not b's");
        assert_eq!(g2.queue_stats().turns, 0);
    }

    #[test]
    fn other_options_on_the_same_card_share_its_queue() {
        let _serial = lock(&SERIAL);
        let a = card();
        let plain = group_for(&a, KxOptions::default());
        let pregen = group_for(&a, KxOptions::pregenerating(true));
        let one_slot = KxOptions {
            every_ephemeral_slot: false,
            ..KxOptions::default()
        };
        let single = group_for(&a, one_slot);
        assert!(!std::ptr::eq(plain, pregen));
        pregen.pregenerate_now().unwrap();
        // The key made ahead by one group is seen (and would be taken) by the others.
        assert!(plain.has_pregenerated_key() && single.has_pregenerated_key());
        assert_eq!(plain.queue_stats().turns, 1);
    }

    #[test]
    fn a_config_s_card_group_is_found_by_address() {
        let _serial = lock(&SERIAL);
        let a = card();
        let g = group_for(&a, KxOptions::default());
        assert!(find(g).is_some_and(|f| std::ptr::eq(f, g)));
        let host = crate::provider::host_kx_groups()[0];
        assert!(find(host).is_none());
    }
}
