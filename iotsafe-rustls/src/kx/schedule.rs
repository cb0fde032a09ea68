//! Who may use a card's ephemeral key slot now: FIFO tickets with a bounded lease, plus the one
//! key made ahead of time.
//!
//! A key exchange takes a [`Turn`] before it generates its key and holds it until it completes
//! or is dropped, so no other exchange on the card replaces its key in between. Turns are granted
//! in ticket order (first come, first served: nobody starves). A holder that keeps the slot longer
//! than the lease (a handshake stuck on a silent peer) is overtaken by the next ticket; the stuck
//! exchange then fails cleanly at its agreement (the card's generation counter has moved on).
//!
//! The queue does no card I/O and never holds its mutex while the caller uses the card: a
//! [`Turn`] is a token, and the mutex only guards the bookkeeping below.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the queue saw since it was made (one queue per card).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Turns granted (key exchanges plus pre-generations).
    pub turns: u64,
    /// Turns that had to wait for another holder.
    pub waited: u64,
    /// The longest wait for a turn.
    pub max_wait: Duration,
    /// Holders overtaken because they kept the slot longer than the lease.
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
    holder: Option<Holder>,
    /// A key generated ahead of time, for the next turn.
    ready: Option<K>,
    stats: QueueStats,
}

#[derive(Clone, Copy)]
struct Holder {
    ticket: u64,
    since: Instant,
    lease: Duration,
    /// A background pre-generation (what `wait_while_pregenerating` waits for).
    pregeneration: bool,
}

impl<K> SlotQueue<K> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(SlotQueue {
            state: Mutex::new(State {
                next_ticket: 0,
                granted: 0,
                holder: None,
                ready: None,
                stats: QueueStats::default(),
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // Counters and an optional key: consistent after a panic elsewhere, so recover the state
        // rather than fail every later handshake.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a ticket and blocks until it is this caller's turn. The turn is held until the
    /// returned [`Turn`] is dropped, or until `lease` has passed and a later ticket overtakes it.
    pub(crate) fn wait_turn(self: &Arc<Self>, lease: Duration) -> Turn<K> {
        let asked = Instant::now();
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let mut waited = false;
        loop {
            if state.granted == ticket {
                match state.holder {
                    None => break,
                    Some(h) => {
                        let left = h.lease.saturating_sub(h.since.elapsed());
                        if left.is_zero() {
                            tracing::warn!(
                                lease = ?h.lease,
                                "a key exchange held the card's ephemeral slot past its lease; the next one goes ahead"
                            );
                            state.stats.overtaken += 1;
                            break;
                        }
                        waited = true;
                        state = self.wait(state, Some(left));
                    }
                }
            } else {
                waited = true;
                state = self.wait(state, None);
            }
        }
        let wait = asked.elapsed();
        state.granted += 1;
        state.holder = Some(Holder {
            ticket,
            since: Instant::now(),
            lease,
            pregeneration: false,
        });
        state.stats.turns += 1;
        if waited {
            state.stats.waited += 1;
        }
        state.stats.max_wait = state.stats.max_wait.max(wait);
        drop(state);
        // The next ticket is now at the head: it starts watching this holder's lease.
        self.changed.notify_all();
        Turn {
            queue: Arc::clone(self),
            ticket,
        }
    }

    /// A turn for a background pre-generation, only if nobody holds or waits for the slot and no
    /// key is ready already (it would only delay them, or replace a key for nothing).
    pub(crate) fn try_pregeneration_turn(self: &Arc<Self>, lease: Duration) -> Option<Turn<K>> {
        let mut state = self.lock();
        if state.holder.is_some() || state.ready.is_some() || state.next_ticket != state.granted {
            return None;
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.granted += 1;
        state.holder = Some(Holder {
            ticket,
            since: Instant::now(),
            lease,
            pregeneration: true,
        });
        state.stats.turns += 1;
        Some(Turn {
            queue: Arc::clone(self),
            ticket,
        })
    }

    /// Waits until no pre-generation holds the slot; false if `timeout` passed first.
    pub(crate) fn wait_while_pregenerating(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.holder.is_some_and(|h| h.pregeneration) {
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
        self.lock().ready.is_some()
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

/// The right to use the slot; released on drop.
pub(crate) struct Turn<K> {
    queue: Arc<SlotQueue<K>>,
    ticket: u64,
}

impl<K> Turn<K> {
    /// Takes the key made ahead of time, if any.
    pub(crate) fn take_ready(&self) -> Option<K> {
        self.queue.lock().ready.take()
    }

    /// Leaves `key` for the next turn.
    pub(crate) fn set_ready(&self, key: K) {
        self.queue.lock().ready = Some(key);
    }
}

impl<K> Drop for Turn<K> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        // An overtaken holder no longer owns the slot: leave the new holder alone.
        if state.holder.is_some_and(|h| h.ticket == self.ticket) {
            state.holder = None;
        }
        drop(state);
        self.queue.changed.notify_all();
    }
}

impl<K> fmt::Debug for Turn<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn")
            .field("ticket", &self.ticket)
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
        let q = SlotQueue::<()>::new();
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
        let q = SlotQueue::<()>::new();
        let stuck = q.wait_turn(Duration::from_millis(50));
        let q2 = Arc::clone(&q);
        let next = std::thread::spawn(move || q2.wait_turn(LONG))
            .join()
            .unwrap();
        assert_eq!(q.stats().overtaken, 1);
        // The stuck one ends late: the slot stays with the newer holder.
        drop(stuck);
        assert!(q.lock().holder.is_some_and(|h| h.ticket == next.ticket));
        drop(next);
        assert!(q.lock().holder.is_none());
    }

    #[test]
    fn pregeneration_only_when_idle_and_no_key_is_ready() {
        let q = SlotQueue::<u32>::new();
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
        let q = SlotQueue::<u32>::new();
        let held = q.wait_turn(LONG);
        let q2 = Arc::clone(&q);
        let waiter = std::thread::spawn(move || drop(q2.wait_turn(LONG)));
        until_waiting(&q, 1);
        // The moment after a release, before the waiter wakes: the slot is free but promised.
        q.lock().holder = None;
        assert!(q.try_pregeneration_turn(LONG).is_none());
        drop(held);
        waiter.join().unwrap();
        assert!(q.try_pregeneration_turn(LONG).is_some(), "idle now");
    }

    #[test]
    fn thirty_two_waiters_all_get_a_turn() {
        let q = SlotQueue::<()>::new();
        let inside = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (q, inside) = (Arc::clone(&q), Arc::clone(&inside));
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let turn = q.wait_turn(LONG);
                        use std::sync::atomic::Ordering::SeqCst;
                        assert_eq!(inside.fetch_add(1, SeqCst), 0, "one holder at a time");
                        std::thread::yield_now();
                        inside.fetch_sub(1, SeqCst);
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
}
