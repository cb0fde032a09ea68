//! Values rustls wants as `&'static` (a key exchange group, a random number generator) that each
//! serve one card: pooled, so that building configs in a loop does not leak one per build.
//!
//! A pooled value names its card with a `Weak<Card>`, so the pool never keeps a card (and its
//! logical channel) alive. A value is found again by its card's address; a value whose card was
//! dropped is handed to the next card that needs one; only otherwise is a new one leaked. The
//! pool therefore holds at most as many values as there were cards (and option sets) alive at
//! once.

use iotsafe_core::Card;
use std::sync::{Arc, Mutex, MutexGuard};

/// A value that serves one card at a time and can be moved to another.
pub(crate) trait PerCard: Sync + 'static {
    /// What [`PerCard::retarget`] moves the value to.
    type Target;

    /// Whether it serves the card at `card` (compared by address, never upgraded: a temporary
    /// strong reference could end up the last one and close the card's channel under the lock).
    fn serves(&self, card: *const Card) -> bool;

    /// Whether its card was dropped.
    fn card_gone(&self) -> bool;

    /// Moves it to `target`, with fresh state.
    fn retarget(&self, target: Self::Target);
}

/// The process-wide pool of one kind of value.
pub(crate) struct StaticPool<T: 'static> {
    items: Mutex<Vec<&'static T>>,
}

impl<T: PerCard> StaticPool<T> {
    pub(crate) const fn new() -> Self {
        StaticPool {
            items: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<&'static T>> {
        // A list of references: plain data.
        iotsafe_core::lock::lock(&self.items)
    }

    /// The pooled value serving `card` for which `same` holds; else a value whose card was
    /// dropped, moved to `target`; else `make(target)`, leaked. `target` sees the pool (to share
    /// state with other values on the same card); it runs under the pool's lock, so it must not
    /// touch a card.
    pub(crate) fn get(
        &self,
        card: &Arc<Card>,
        same: impl Fn(&T) -> bool,
        target: impl FnOnce(&[&'static T]) -> T::Target,
        make: impl FnOnce(T::Target) -> T,
    ) -> &'static T {
        let mut items = self.lock();
        let card = Arc::as_ptr(card);
        if let Some(found) = items.iter().find(|v| v.serves(card) && same(v)) {
            return found;
        }
        let target = target(&items);
        // A card once dropped never comes back, so nothing can use an orphan while it moves.
        if let Some(orphan) = items.iter().find(|v| v.card_gone()) {
            orphan.retarget(target);
            return orphan;
        }
        let value: &'static T = Box::leak(Box::new(make(target)));
        items.push(value);
        value
    }

    /// The pooled value for which `which` holds.
    pub(crate) fn find(&self, which: impl Fn(&T) -> bool) -> Option<&'static T> {
        self.lock().iter().copied().find(|v| which(v))
    }

    /// How many values the pool holds (for the tests of its bound).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
