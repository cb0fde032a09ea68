//! Who may use a card's volatile key slots now: one queue for every thread, async task and
//! process on the host that uses the card.
//!
//! A key exchange generates a key pair in a volatile slot and, a network round trip later, runs
//! the agreement with it. Anything that generates in the same slot in between (another
//! handshake, another program, the PKCS#11 module) replaces the key, and the agreement would
//! compute a secret with a key the handshake never sent. So a key exchange first takes a
//! [`SlotTurn`]: the right to one of the card's slots until it is released (or its lease runs
//! out and the next in line overtakes it).
//!
//! Every user of the card takes turns through one record (`slots/record.rs`): in this process's memory
//! for a card only this process reaches, else in a folder all processes share (`slots/store.rs`),
//! named by the card's identity (its transport's route, or [`CardConfig::card_identity`]).
//! Turns are granted first come, first served across all of them; a process that dies holds
//! nothing (its entries are dropped at the next look); and every grant moves the slot's epoch
//! on, so a key is used only while nobody else was granted its slot since it was made
//! ([`SlotClaim`], checked by [`Card::ephemeral_agreement`] under the operation lock, in the
//! same step as the card work).
//!
//! Waiting comes in two forms over the same queue: [`SlotWait::wait`] blocks the thread (a
//! condition variable, woken by this process's releases, and a short poll while another process
//! holds things up), and [`SlotWait::try_take`] + [`SlotWait::changed`] + [`SlotWait::recheck_in`]
//! let an async runtime wait without blocking a thread (see iotsafe-rustls's async connector).
//!
//! [`CardConfig::card_identity`]: crate::CardConfig::card_identity
//! [`Card::ephemeral_agreement`]: crate::Card::ephemeral_agreement

mod party;
pub(crate) mod record;
pub(crate) mod store;

use crate::card::EphemeralKey;
use crate::error::Error;
use crate::lock::lock;
use crate::objects::ObjectRef;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use party::Party;
use record::{Grant, Look, SlotKey};
use std::string::{String, ToString};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use std::vec::Vec;
use store::Store;

/// How long a turn lasts while others wait, unless the caller says otherwise: far longer than a
/// handshake's card work (about 0.6 s on a typical SIM) plus a slow cellular round trip, short
/// enough that a holder stuck on a silent peer does not hold the others for long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// How often a waiter held up by another process looks again (another process's release wakes
/// nobody here).
const FOREIGN_POLL: Duration = Duration::from_millis(5);

/// How soon a look that found the record's lock held looks again.
const BUSY_RECORD: Duration = Duration::from_millis(1);

/// What one card's slot book saw in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// Turns granted to this process.
    pub turns: u64,
    /// Turns that had to wait.
    pub waited: u64,
    /// The longest wait for a turn.
    pub max_wait: Duration,
    /// Holders this process overtook because they kept their slot past the lease.
    pub overtaken: u64,
    /// Turns that found a key this process made ahead of time, untouched, in their slot.
    pub ready_keys: u64,
}

/// The turn a key was made in: the slot, who had it, and the slot's epoch then. The key may be
/// used while nobody else was granted the slot since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotClaim {
    slot: SlotKey,
    party: Party,
    ticket: u64,
    epoch: u64,
}

impl SlotClaim {
    /// The slot's epoch when the key was made (it moves on at every grant of the slot).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// The queue of one card's volatile key slots, for this process (see the module docs). A
/// [`Card`](crate::Card) has one ([`Card::slots`](crate::Card::slots)); clones share it.
#[derive(Clone)]
pub struct SlotBook {
    inner: Arc<BookInner>,
}

struct BookInner {
    /// The record, or why it cannot be used.
    store: Result<Store, (String, String)>,
    book: u64,
    identity: Option<String>,
    notify: Notify,
    /// Keys made ahead of time by this process: slot, the epoch of the turn they were made in.
    ready: Mutex<Vec<(SlotKey, u64, EphemeralKey)>>,
    stats: Mutex<SlotStats>,
}

/// Milliseconds on the clock every process shares.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A public point's name in the record: FNV-1a of its bytes (the card's own answer is compared
/// in full before the key is used).
fn point_hash(point: &crate::objects::EcPoint) -> u64 {
    store::fnv1a(point.as_bytes())
}

/// A slot's name in the record.
fn key_of(slot: &ObjectRef) -> SlotKey {
    let (prefix, bytes) = match slot {
        ObjectRef::Id(id) => ('i', id),
        ObjectRef::Label(label) => ('l', label),
    };
    let mut key = String::from(prefix);
    key.push_str(&crate::hexutil::encode(bytes));
    key
}

impl core::fmt::Debug for SlotBook {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlotBook")
            .field("identity", &self.inner.identity)
            .field("book", &self.inner.book)
            .finish_non_exhaustive()
    }
}

impl SlotBook {
    /// The book of a card named `identity` on the host (shared by every process that names it
    /// the same), or, with `None`, a card only this process reaches.
    pub fn new(identity: Option<&str>) -> SlotBook {
        SlotBook::in_folder(&store::default_base(), identity)
    }

    /// [`SlotBook::new`] with the shared records in `base` instead of the default folder.
    pub fn in_folder(base: &std::path::Path, identity: Option<&str>) -> SlotBook {
        let store = match identity {
            None => Ok(Store::memory()),
            Some(id) => Store::folder(base, id).map_err(|e| {
                tracing::warn!(folder = %base.display(), error = %e, "the shared record of the card's key slots cannot be used");
                (base.display().to_string(), e.to_string())
            }),
        };
        SlotBook {
            inner: Arc::new(BookInner {
                store,
                book: party::new_book(),
                identity: identity.map(str::to_string),
                notify: Notify::default(),
                ready: Mutex::new(Vec::new()),
                stats: Mutex::new(SlotStats::default()),
            }),
        }
    }

    /// The card identity the queue is shared under, or `None` for a card only this process
    /// reaches.
    pub fn identity(&self) -> Option<&str> {
        self.inner.identity.as_deref()
    }

    /// The folder of the shared record, when there is one.
    pub fn location(&self) -> Option<std::path::PathBuf> {
        match &self.inner.store {
            Ok(store) => store.location().map(|p| p.to_path_buf()),
            Err(_) => None,
        }
    }

    /// What this process saw.
    pub fn stats(&self) -> SlotStats {
        *lock(&self.inner.stats)
    }

    /// Whether this process has a key made ahead of time waiting in one of the slots.
    pub fn has_ready_key(&self) -> bool {
        !lock(&self.inner.ready).is_empty()
    }

    fn party(&self) -> Party {
        Party::current(self.inner.book)
    }

    /// The record names of `slots`; at least one slot must be named.
    fn keys(slots: &[ObjectRef]) -> Result<Vec<SlotKey>, Error> {
        if slots.is_empty() {
            return Err(no_slot_named());
        }
        Ok(slots.iter().map(key_of).collect())
    }

    fn update<R>(&self, f: impl FnOnce(&mut record::Record) -> R) -> Result<R, Error> {
        let store = self.inner.store.as_ref().map_err(store_error)?;
        store.update(f).map_err(|e| record_error(store, e))
    }

    /// [`SlotBook::update`] without waiting for the record's lock: `None` when it is busy.
    fn try_update<R>(&self, f: impl FnOnce(&mut record::Record) -> R) -> Result<Option<R>, Error> {
        let store = self.inner.store.as_ref().map_err(store_error)?;
        store
            .update_if(false, f)
            .map_err(|e| record_error(store, e))
    }

    /// Joins the queue for any of `slots` (at least one), each turn held for at most `lease`
    /// while others wait. Dropping the [`SlotWait`] leaves the queue. Never waits for the record's
    /// lock: when another thread or process holds it, the place is taken at the first
    /// [`SlotWait::try_take`] that finds it free.
    pub fn request(&self, slots: &[ObjectRef], lease: Duration) -> Result<SlotWait, Error> {
        self.join(slots, lease, false)
    }

    /// Waits (blocking this thread) for a turn on any of `slots`.
    pub fn wait(&self, slots: &[ObjectRef], lease: Duration) -> Result<SlotTurn, Error> {
        self.join(slots, lease, true)?.wait()
    }

    /// A place in the queue; `wait`: taken now, waiting for the record's lock if need be.
    fn join(&self, slots: &[ObjectRef], lease: Duration, wait: bool) -> Result<SlotWait, Error> {
        let keys = SlotBook::keys(slots)?;
        let party = self.party();
        let enqueue = |r: &mut record::Record| r.enqueue(party, &keys);
        let ticket = if wait {
            Some(self.update(enqueue)?)
        } else {
            self.try_update(enqueue)?
        };
        Ok(SlotWait {
            book: self.clone(),
            slots: slots.to_vec(),
            keys,
            party,
            ticket,
            lease,
            asked: Instant::now(),
            seen: self.inner.notify.counter(),
            recheck: None,
            waited: false,
            done: false,
        })
    }

    /// A turn for a key made ahead of time, only when the slots are idle (nobody holds or waits
    /// for one, in any process) and this process has no such key waiting already.
    pub fn idle_turn(
        &self,
        slots: &[ObjectRef],
        lease: Duration,
    ) -> Result<Option<SlotTurn>, Error> {
        let keys = SlotBook::keys(slots)?;
        let party = self.party();
        let grant = self.update(|r| r.idle_grant(party, &keys, now_ms(), millis(lease)))?;
        Ok(grant.map(|g| self.granted(slots, &keys, party, g, false)))
    }

    /// A turn at once, never waiting: a free slot, else the one held longest is taken over (its
    /// holder's agreement then fails cleanly with [`Error::SlotTakenOver`]).
    pub fn take_now(&self, slots: &[ObjectRef], lease: Duration) -> Result<SlotTurn, Error> {
        let keys = SlotBook::keys(slots)?;
        let party = self.party();
        let grant = self.update(|r| r.immediate_grant(party, &keys, now_ms(), millis(lease)))?;
        // Some: `keys` is not empty.
        let grant = grant.ok_or_else(no_slot_named)?;
        Ok(self.granted(slots, &keys, party, grant, false))
    }

    /// Whether anyone, in any process, waits for one of `slots`.
    pub fn anyone_waits(&self, slots: &[ObjectRef]) -> Result<bool, Error> {
        let keys = SlotBook::keys(slots)?;
        self.update(|r| r.anyone_waits(&keys))
    }

    /// Fails with [`Error::SlotTakenOver`] unless a key made in `claim`'s turn is still its
    /// slot's key as far as every user of this record knows.
    pub(crate) fn check(&self, claim: &SlotClaim) -> Result<(), Error> {
        let current =
            self.update(|r| r.still_current(claim.party, &claim.slot, claim.ticket, claim.epoch))?;
        if current {
            Ok(())
        } else {
            Err(Error::SlotTakenOver {
                slot: claim.slot.clone(),
            })
        }
    }

    /// Publishes the key made in `claim`'s turn, with public point `point`, for every program
    /// on the host: [`Card::published_agreement`](crate::Card::published_agreement) may use it
    /// while nobody is granted the slot. False when the slot was granted to another since.
    pub fn publish(
        &self,
        claim: &SlotClaim,
        point: &crate::objects::EcPoint,
    ) -> Result<bool, Error> {
        let hash = point_hash(point);
        self.update(|r| r.publish(claim.party, &claim.slot, claim.ticket, claim.epoch, hash))
    }

    /// Fails with [`Error::SlotTakenOver`] unless the key with `point` was published on `slot`
    /// and nobody was granted the slot since.
    pub(crate) fn check_published(
        &self,
        slot: &ObjectRef,
        point: &crate::objects::EcPoint,
    ) -> Result<(), Error> {
        let key = key_of(slot);
        if self.update(|r| r.published_current(&key, point_hash(point)))? {
            Ok(())
        } else {
            Err(Error::SlotTakenOver { slot: key })
        }
    }

    /// The operation lock: held while a slot is used on the card (see [`store`]).
    pub(crate) fn op_lock(&self) -> Result<store::OpGuard<'_>, Error> {
        let store = self.inner.store.as_ref().map_err(store_error)?;
        store.op_lock().map_err(|e| Error::SlotRecord {
            path: store
                .location()
                .map_or_else(String::new, |p| p.display().to_string()),
            reason: e.to_string(),
        })
    }

    /// Books a grant: stats, the key made ahead of time if it is still good, the turn.
    fn granted(
        &self,
        slots: &[ObjectRef],
        keys: &[SlotKey],
        party: Party,
        grant: Grant,
        waited: bool,
    ) -> SlotTurn {
        let at = keys.iter().position(|k| *k == grant.slot).unwrap_or(0);
        // `slots` and `keys` are parallel and not empty.
        let slot = slots.get(at).or(slots.first()).cloned();
        let slot = slot.unwrap_or_else(|| ObjectRef::Id(Vec::new()));
        let claim = SlotClaim {
            slot: grant.slot.clone(),
            party,
            ticket: grant.ticket,
            epoch: grant.epoch,
        };
        let ready = {
            let mut ready = lock(&self.inner.ready);
            let found = ready.iter().position(|(s, e, _)| {
                *s == grant.slot && grant.ready_mine && *e + 1 == grant.epoch
            });
            let key = found.map(|i| ready.remove(i).2);
            // Whatever else this process left in the slot is gone now.
            ready.retain(|(s, _, _)| *s != grant.slot);
            key
        };
        {
            let mut stats = lock(&self.inner.stats);
            stats.turns += 1;
            stats.waited += u64::from(waited);
            stats.overtaken += u64::from(grant.overtook);
            stats.ready_keys += u64::from(ready.is_some());
        }
        if grant.overtook {
            tracing::warn!(slot = %slot, "a key exchange held the card's volatile key slot past its lease; the next one goes ahead");
        }
        // The next in line may be at the head now.
        self.inner.notify.notify();
        SlotTurn {
            book: self.clone(),
            slot,
            claim,
            ready: ready.map(|mut key| {
                key.claim = None;
                key
            }),
            released: false,
        }
    }
}

fn record_error(store: &Store, e: std::io::Error) -> Error {
    Error::SlotRecord {
        path: store
            .location()
            .map_or_else(String::new, |p| p.display().to_string()),
        reason: e.to_string(),
    }
}

fn no_slot_named() -> Error {
    Error::InvalidRequest {
        command: crate::CommandKind::GenerateKeyPair,
        reason: "a turn needs at least one volatile key slot".to_string(),
    }
}

fn store_error((path, reason): &(String, String)) -> Error {
    Error::SlotRecord {
        path: path.clone(),
        reason: reason.clone(),
    }
}

/// A place in a card's slot queue. Dropped before its turn came, it leaves the queue.
pub struct SlotWait {
    book: SlotBook,
    slots: Vec<ObjectRef>,
    keys: Vec<SlotKey>,
    party: Party,
    /// The place in the queue, once taken.
    ticket: Option<u64>,
    lease: Duration,
    asked: Instant,
    /// The notification counter at the last look.
    seen: u64,
    recheck: Option<Duration>,
    waited: bool,
    done: bool,
}

impl core::fmt::Debug for SlotWait {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlotWait")
            .field("ticket", &self.ticket)
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl SlotWait {
    /// Looks at the queue: the turn, if it has come. Never waits, not even for the record's lock
    /// (then it looks again after a millisecond, see [`SlotWait::recheck_in`]).
    pub fn try_take(&mut self) -> Result<Option<SlotTurn>, Error> {
        self.look(false)
    }

    /// One look at the queue, waiting for the record's lock or not.
    fn look(&mut self, wait: bool) -> Result<Option<SlotTurn>, Error> {
        self.seen = self.book.inner.notify.counter();
        let (party, lease) = (self.party, millis(self.lease));
        let (keys, ticket) = (&self.keys, self.ticket);
        let look = |r: &mut record::Record| {
            let ticket = ticket.unwrap_or_else(|| r.enqueue(party, keys));
            match r.look(party, ticket, now_ms(), lease) {
                // Dropped from the queue (the record was damaged or reset): join it again.
                Look::Gone => (r.enqueue(party, keys), None),
                look => (ticket, Some(look)),
            }
        };
        let looked = if wait {
            Some(self.book.update(look)?)
        } else {
            self.book.try_update(look)?
        };
        let Some((ticket, look)) = looked else {
            // The record's lock is busy: a moment later.
            self.recheck = Some(BUSY_RECORD);
            return Ok(None);
        };
        self.ticket = Some(ticket);
        match look {
            Some(Look::Granted(grant)) => {
                self.done = true;
                let wait = self.asked.elapsed();
                let turn = self
                    .book
                    .granted(&self.slots, &self.keys, party, grant, self.waited);
                let mut stats = lock(&self.book.inner.stats);
                stats.max_wait = stats.max_wait.max(wait);
                Ok(Some(turn))
            }
            Some(Look::Wait { until, poll }) => {
                self.waited = true;
                let lease_end =
                    until.map(|u| Duration::from_millis(u.saturating_sub(now_ms()).max(1)));
                let poll = poll.then_some(FOREIGN_POLL);
                self.recheck = match (lease_end, poll) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Ok(None)
            }
            Some(Look::Gone) | None => {
                self.recheck = Some(Duration::ZERO);
                Ok(None)
            }
        }
    }

    /// After a [`SlotWait::try_take`] that found no turn: when to look again even if nothing in
    /// this process changed (a lease that runs out, another process holding things up). `None`:
    /// only a change in this process ([`SlotWait::changed`]) can bring the turn.
    pub fn recheck_in(&self) -> Option<Duration> {
        self.recheck
    }

    /// Resolves when this process changed the queue since the last [`SlotWait::try_take`] (a
    /// release, a grant, someone leaving it).
    pub fn changed(&self) -> Changed<'_> {
        Changed {
            notify: &self.book.inner.notify,
            seen: self.seen,
        }
    }

    /// Blocks this thread until the turn comes.
    pub fn wait(mut self) -> Result<SlotTurn, Error> {
        loop {
            if let Some(turn) = self.look(true)? {
                return Ok(turn);
            }
            self.book.inner.notify.wait(self.seen, self.recheck);
        }
    }
}

impl Drop for SlotWait {
    fn drop(&mut self) {
        if self.done || !self.party.is_this_process() {
            return;
        }
        let (party, Some(ticket)) = (self.party, self.ticket) else {
            return;
        };
        if let Err(e) = self.book.update(|r| r.cancel(party, ticket)) {
            tracing::warn!(error = %e, "leaving the card's slot queue failed");
        }
        self.book.inner.notify.notify();
    }
}

/// The right to use one of a card's volatile key slots; released when dropped.
pub struct SlotTurn {
    book: SlotBook,
    slot: ObjectRef,
    claim: SlotClaim,
    ready: Option<EphemeralKey>,
    released: bool,
}

impl core::fmt::Debug for SlotTurn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlotTurn")
            .field("slot", &self.slot)
            .field("epoch", &self.claim.epoch)
            .field("ready", &self.ready.is_some())
            .finish_non_exhaustive()
    }
}

impl SlotTurn {
    /// The slot.
    pub fn slot(&self) -> &ObjectRef {
        &self.slot
    }

    /// The claim a key made in this turn carries.
    pub fn claim(&self) -> &SlotClaim {
        &self.claim
    }

    /// The book this turn is in.
    pub fn book(&self) -> &SlotBook {
        &self.book
    }

    /// The key this process made ahead of time in this slot, if the slot was not granted to
    /// anyone since (it may still have been lost to a card reset: confirm it with
    /// [`Card::confirm_ephemeral`](crate::Card::confirm_ephemeral)). It now belongs to this turn.
    pub fn take_ready(&mut self) -> Option<EphemeralKey> {
        let mut key = self.ready.take()?;
        key.claim = Some(self.claim.clone());
        Some(key)
    }

    /// Ends the turn, leaving `key` (made in it) for this process's next turn on the slot.
    pub fn keep_ready(mut self, key: EphemeralKey) {
        lock(&self.book.inner.ready).push((self.claim.slot.clone(), self.claim.epoch, key));
        self.release(true);
    }

    fn release(&mut self, ready: bool) {
        if std::mem::replace(&mut self.released, true) || !self.claim.party.is_this_process() {
            return;
        }
        let claim = &self.claim;
        let released = self
            .book
            .update(|r| r.release(claim.party, &claim.slot, claim.ticket, ready));
        if ready && !matches!(released, Ok(true)) {
            // Overtaken meanwhile: the key is not the slot's any more.
            lock(&self.book.inner.ready)
                .retain(|(s, e, _)| !(*s == claim.slot && *e == claim.epoch));
        }
        if let Err(e) = released {
            tracing::warn!(error = %e, "releasing a card's volatile key slot failed; its lease will end it");
        }
        self.book.inner.notify.notify();
    }
}

impl Drop for SlotTurn {
    fn drop(&mut self) {
        self.release(false);
    }
}

/// This process's changes to a book's queue, for waiters to wake on.
#[derive(Default)]
struct Notify {
    state: Mutex<NotifyState>,
    changed: Condvar,
}

#[derive(Default)]
struct NotifyState {
    counter: u64,
    wakers: Vec<Waker>,
}

impl Notify {
    fn counter(&self) -> u64 {
        lock(&self.state).counter
    }

    fn notify(&self) {
        let wakers = {
            let mut state = lock(&self.state);
            state.counter += 1;
            std::mem::take(&mut state.wakers)
        };
        self.changed.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Blocks until the counter moved past `seen`, or `timeout` passed.
    fn wait(&self, seen: u64, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = lock(&self.state);
        while state.counter == seen {
            state = match deadline {
                None => crate::lock::wait(&self.changed, state),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    crate::lock::wait_timeout(&self.changed, state, left)
                }
            };
        }
    }
}

/// The future of [`SlotWait::changed`].
pub struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl core::fmt::Debug for Changed<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Changed").field("seen", &self.seen).finish()
    }
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.notify.state);
        if state.counter != self.seen {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
