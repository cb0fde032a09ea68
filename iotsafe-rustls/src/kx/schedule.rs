//! Who may use a card's ephemeral key slots now: FIFO tickets with a bounded lease, plus the key
//! made ahead of time.
//!
//! A key exchange takes a [`Turn`] on one of the card's ephemeral slots before it generates its
//! key and holds it until it completes or is dropped, so no other exchange replaces its key in
//! between. Turns are granted in ticket order (first come, first served: nobody starves), each
//! on whichever slot is free. When every slot is held, a holder that has kept its slot longer
//! than the lease (a handshake stuck on a silent peer) is overtaken by the next ticket; the stuck
//! exchange then fails cleanly at its agreement (its slot's key was replaced).
//!
//! The queue does no card I/O and never holds its mutex while the caller uses the card: a
//! [`Turn`] is a token, and the mutex only guards the bookkeeping below.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the queue saw since it was made (one queue per card and set of slots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ephemeral slots the turns are spread over.
    pub slots: usize,
    /// Turns granted (key exchanges plus pre-generations).
    pub turns: u64,
    /// Turns that had to wait for another holder.
    pub waited: u64,
    /// The longest wait for a turn.
    pub max_wait: Duration,
    /// Holders overtaken because they kept their slot longer than the lease.
    pub overtaken: u64,
}

/// The slot queue of one card; `K` is the ready key (generic so that the scheduling is tested
/// without a card).
pub(crate) struct SlotQueue<K> {
    state: Mutex<State<K>>,
    changed: Condvar,
}

struct State<K> {
    /// The ticket the next caller gets.
    next_ticket: u64,
    /// Tickets below this one have had their turn.
    granted: u64,
    slots: Vec<Slot<K>>,
    stats: QueueStats,
}

struct Slot<K> {
    holder: Option<Holder>,
    /// A key generated ahead of time in this slot, for the next turn on it.
    ready: Option<K>,
}

#[derive(Clone, Copy)]
struct Holder {
    ticket: u64,
    since: Instant,
    lease: Duration,
    /// A background pre-generation (what `wait_while_pregenerating` waits for).
    pregeneration: bool,
}

impl Holder {
    fn lease_left(&self) -> Duration {
        self.lease.saturating_sub(self.since.elapsed())
    }
}

impl<K> State<K> {
    /// A free slot for the head of the queue, preferring one with a key made ahead of time.
    fn free_slot(&self) -> Option<usize> {
        let free = |s: &Slot<K>| s.holder.is_none();
        let slots = &self.slots;
        (slots.iter().position(|s| free(s) && s.ready.is_some()))
            .or_else(|| slots.iter().position(free))
    }

    /// The held slot whose lease runs out first, and how long it has left.
    fn first_lease_to_end(&self) -> Option<(usize, Duration)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.holder.map(|h| (i, h.lease_left())))
            .min_by_key(|(_, left)| *left)
    }

    fn hold(&mut self, slot: usize, holder: Holder) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.holder = Some(holder);
        }
        self.granted += 1;
        self.stats.turns += 1;
    }
}

impl<K> SlotQueue<K> {
    /// A queue over `slots` ephemeral slots (at least one).
    pub(crate) fn new(slots: usize) -> Arc<Self> {
        let slots = slots.max(1);
        Arc::new(SlotQueue {
            state: Mutex::new(State {
                next_ticket: 0,
                granted: 0,
                slots: (0..slots)
                    .map(|_| Slot {
                        holder: None,
                        ready: None,
                    })
                    .collect(),
                stats: QueueStats {
                    slots,
                    ..QueueStats::default()
                },
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // Counters and optional keys: consistent after a panic elsewhere, so recover the state
        // rather than fail every later handshake.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a ticket and blocks until it is this caller's turn on a slot. The turn is held until
    /// the returned [`Turn`] is dropped, or until `lease` has passed and, with every slot held, a
    /// later ticket overtakes it.
    pub(crate) fn wait_turn(self: &Arc<Self>, lease: Duration) -> Turn<K> {
        let asked = Instant::now();
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let mut waited = false;
        let slot = loop {
            if state.granted != ticket {
                waited = true;
                state = self.wait(state, None);
                continue;
            }
            if let Some(free) = state.free_slot() {
                break free;
            }
            match state.first_lease_to_end() {
                Some((slot, left)) if left.is_zero() => {
                    tracing::warn!(
                        ?lease,
                        slot,
                        "a key exchange held a card's ephemeral slot past its lease; the next one goes ahead"
                    );
                    state.stats.overtaken += 1;
                    break slot;
                }
                left => {
                    waited = true;
                    state = self.wait(state, left.map(|(_, left)| left));
                }
            }
        };
        let wait = asked.elapsed();
        state.hold(
            slot,
            Holder {
                ticket,
                since: Instant::now(),
                lease,
                pregeneration: false,
            },
        );
        if waited {
            state.stats.waited += 1;
        }
        state.stats.max_wait = state.stats.max_wait.max(wait);
        drop(state);
        // The next ticket is now at the head: it looks for a free slot, or watches the leases.
        self.changed.notify_all();
        Turn {
            queue: Arc::clone(self),
            ticket,
            slot,
        }
    }

    /// A turn for a background pre-generation, only when the card's slots are idle (nobody holds
    /// or waits for one) and no key is ready already: otherwise it would only delay a handshake,
    /// or replace a key for nothing.
    pub(crate) fn try_pregeneration_turn(self: &Arc<Self>, lease: Duration) -> Option<Turn<K>> {
        let mut state = self.lock();
        let busy = state
            .slots
            .iter()
            .any(|s| s.holder.is_some() || s.ready.is_some());
        if busy || state.next_ticket != state.granted {
            return None;
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let holder = Holder {
            ticket,
            since: Instant::now(),
            lease,
            pregeneration: true,
        };
        state.hold(0, holder);
        Some(Turn {
            queue: Arc::clone(self),
            ticket,
            slot: 0,
        })
    }

    /// Waits until no pre-generation holds a slot; false if `timeout` passed first.
    pub(crate) fn wait_while_pregenerating(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let pregenerating = |s: &State<K>| {
            s.slots
                .iter()
                .any(|s| s.holder.is_some_and(|h| h.pregeneration))
        };
        while pregenerating(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.wait(state, Some(left));
        }
        true
    }

    /// Whether a key made ahead of time is waiting.
    pub(crate) fn has_ready(&self) -> bool {
        self.lock().slots.iter().any(|s| s.ready.is_some())
    }

    pub(crate) fn stats(&self) -> QueueStats {
        self.lock().stats
    }

    fn wait<'a>(
        &'a self,
        state: MutexGuard<'a, State<K>>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State<K>> {
        match timeout {
            Some(t) => match self.changed.wait_timeout(state, t) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            },
            None => self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// The right to use one slot; released on drop.
pub(crate) struct Turn<K> {
    queue: Arc<SlotQueue<K>>,
    ticket: u64,
    slot: usize,
}

impl<K> Turn<K> {
    /// Which of the queue's slots this turn is on.
    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    /// Takes the key made ahead of time in this turn's slot, if any.
    pub(crate) fn take_ready(&self) -> Option<K> {
        self.queue
            .lock()
            .slots
            .get_mut(self.slot)
            .and_then(|s| s.ready.take())
    }

    /// Leaves `key` in this turn's slot for the next turn on it.
    pub(crate) fn set_ready(&self, key: K) {
        if let Some(s) = self.queue.lock().slots.get_mut(self.slot) {
            s.ready = Some(key);
        }
    }
}

impl<K> Drop for Turn<K> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        if let Some(s) = state.slots.get_mut(self.slot) {
            // An overtaken holder no longer owns the slot: leave the new holder alone.
            if s.holder.is_some_and(|h| h.ticket == self.ticket) {
                s.holder = None;
            }
        }
        drop(state);
        self.queue.changed.notify_all();
    }
}

impl<K> fmt::Debug for Turn<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn")
            .field("ticket", &self.ticket)
            .field("slot", &self.slot)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const LONG: Duration = Duration::from_secs(60);

    /// Blocks until `n` callers wait for a turn (tickets taken, not granted).
    fn until_waiting<K>(q: &SlotQueue<K>, n: u64) {
        loop {
            let s = q.lock();
            if s.next_ticket - s.granted == n {
                return;
            }
            drop(s);
            std::thread::yield_now();
        }
    }

    #[test]
    fn turns_are_granted_in_ticket_order() {
        let q = SlotQueue::<()>::new(1);
        let first = q.wait_turn(LONG);
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for i in 0..8u32 {
            // Each waiter takes its ticket before the next thread starts.
            let (q2, tx) = (Arc::clone(&q), tx.clone());
            threads.push(std::thread::spawn(move || {
                let turn = q2.wait_turn(LONG);
                tx.send(i).unwrap();
                drop(turn);
            }));
            until_waiting(&q, u64::from(i) + 1);
        }
        drop(first);
        for t in threads {
            t.join().unwrap();
        }
        let order: Vec<u32> = rx.try_iter().collect();
        assert_eq!(order, (0..8).collect::<Vec<_>>());
        let stats = q.stats();
        assert_eq!((stats.turns, stats.waited, stats.overtaken), (9, 8, 0));
    }

    #[test]
    fn a_holder_past_its_lease_is_overtaken_and_its_release_is_ignored() {
        let q = SlotQueue::<()>::new(1);
        let stuck = q.wait_turn(Duration::from_millis(50));
        let q2 = Arc::clone(&q);
        let next = std::thread::spawn(move || q2.wait_turn(LONG))
            .join()
            .unwrap();
        assert_eq!(q.stats().overtaken, 1);
        // The stuck one ends late: the slot stays with the newer holder.
        drop(stuck);
        assert!(q.lock().slots[0]
            .holder
            .is_some_and(|h| h.ticket == next.ticket));
        drop(next);
        assert!(q.lock().slots[0].holder.is_none());
    }

    #[test]
    fn pregeneration_only_when_idle_and_no_key_is_ready() {
        let q = SlotQueue::<u32>::new(1);
        let held = q.wait_turn(LONG);
        assert!(q.try_pregeneration_turn(LONG).is_none(), "slot held");
        drop(held);
        let pregen = q.try_pregeneration_turn(LONG).expect("idle");
        assert!(!q.wait_while_pregenerating(Duration::from_millis(10)));
        pregen.set_ready(7);
        drop(pregen);
        assert!(q.wait_while_pregenerating(Duration::ZERO));
        assert!(q.has_ready());
        assert!(q.try_pregeneration_turn(LONG).is_none(), "a key is ready");
        let turn = q.wait_turn(LONG);
        assert_eq!(turn.take_ready(), Some(7));
        assert!(!q.has_ready());
    }

    #[test]
    fn no_pregeneration_while_someone_waits() {
        let q = SlotQueue::<u32>::new(1);
        let held = q.wait_turn(LONG);
        let q2 = Arc::clone(&q);
        let waiter = std::thread::spawn(move || drop(q2.wait_turn(LONG)));
        until_waiting(&q, 1);
        // The moment after a release, before the waiter wakes: the slot is free but promised.
        q.lock().slots[0].holder = None;
        assert!(q.try_pregeneration_turn(LONG).is_none());
        drop(held);
        waiter.join().unwrap();
        assert!(q.try_pregeneration_turn(LONG).is_some(), "idle now");
    }

    #[test]
    fn two_slots_hold_two_exchanges_at_once_and_the_third_waits_its_turn() {
        let q = SlotQueue::<()>::new(2);
        let a = q.wait_turn(LONG);
        let b = q.wait_turn(LONG);
        assert_ne!(a.slot(), b.slot());
        assert_eq!(q.stats().waited, 0, "a free slot means no wait");
        let q2 = Arc::clone(&q);
        let c = std::thread::spawn(move || q2.wait_turn(LONG).slot());
        until_waiting(&q, 1);
        let freed = b.slot();
        drop(b);
        assert_eq!(c.join().unwrap(), freed, "the third takes the slot freed");
        let stats = q.stats();
        assert_eq!((stats.slots, stats.turns, stats.waited), (2, 3, 1));
        drop(a);
    }

    #[test]
    fn nobody_is_overtaken_while_a_slot_is_free() {
        let q = SlotQueue::<()>::new(2);
        let stuck = q.wait_turn(Duration::ZERO);
        let next = q.wait_turn(LONG);
        assert_ne!(stuck.slot(), next.slot());
        assert_eq!(q.stats().overtaken, 0);
        // Now both are held: the expired one is overtaken, the other left alone.
        let third = q.wait_turn(LONG);
        assert_eq!(third.slot(), stuck.slot());
        assert_eq!(q.stats().overtaken, 1);
    }

    #[test]
    fn a_free_slot_with_a_key_made_ahead_is_taken_first() {
        let q = SlotQueue::<u32>::new(3);
        let pregen = q.try_pregeneration_turn(LONG).expect("idle");
        pregen.set_ready(9);
        let slot = pregen.slot();
        drop(pregen);
        let turn = q.wait_turn(LONG);
        assert_eq!(turn.slot(), slot);
        assert_eq!(turn.take_ready(), Some(9));
    }

    /// 32 threads taking 10 turns each on `slots` slots: every turn granted, none overtaken,
    /// never two holders on one slot.
    fn thirty_two_waiters_on(slots: usize) {
        let q = SlotQueue::<()>::new(slots);
        let holders: Arc<Vec<std::sync::atomic::AtomicU32>> = Arc::new(
            (0..slots)
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
        );
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (q, holders) = (Arc::clone(&q), Arc::clone(&holders));
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let turn = q.wait_turn(LONG);
                        use std::sync::atomic::Ordering::SeqCst;
                        let on = &holders[turn.slot()];
                        assert_eq!(on.fetch_add(1, SeqCst), 0, "one holder per slot");
                        std::thread::yield_now();
                        on.fetch_sub(1, SeqCst);
                        drop(turn);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = q.stats();
        assert_eq!((stats.turns, stats.overtaken), (320, 0));
    }

    #[test]
    fn thirty_two_waiters_on_one_slot_all_get_a_turn() {
        thirty_two_waiters_on(1);
    }

    #[test]
    fn thirty_two_waiters_on_four_slots_never_share_a_slot() {
        thirty_two_waiters_on(4);
    }
}
