//! The shared record of one card's volatile key slots: who holds each slot and until when, who
//! waits for one (in arrival order, across every thread, task and process), and which process
//! left a key made ahead of time in a slot.
//!
//! Pure bookkeeping, the same for every store ([`super::store`]): no I/O, no clock, no card. The
//! callers pass the time (milliseconds on a clock every process shares) and a liveness test for
//! other parties.
//!
//! The rules, in one place:
//! - **First come, first served.** A waiter may take a free slot only when no earlier waiter
//!   wants that slot. Among the slots it may take it prefers one holding a key its own party made
//!   ahead of time, then an empty one, then one holding another party's key.
//! - **Leases.** A turn is held until released or until its lease runs out; a holder past its
//!   lease is overtaken only by the head of the queue, and only when every slot it wants is held.
//! - **Epochs.** Every grant moves the slot's epoch on. A key made in a turn of epoch `e` may be
//!   used (agreement) only while the slot's epoch is still `e`: nobody was granted the slot
//!   since, whatever became of the turn itself.
//! - **The dead hold nothing.** Waiters, holders and ready keys of a party that no longer
//!   exists are forgotten at the next look.

use super::party::Party;
use crate::prelude::*;
use std::fmt::Write as _;
use std::string::{String, ToString};
use std::vec::Vec;

/// A slot's name in the record: `i` + hex ID, or `l` + hex label.
pub(crate) type SlotKey = String;

/// The whole record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Record {
    /// The ticket the next waiter or grant gets.
    pub(crate) next_ticket: u64,
    pub(crate) slots: Vec<SlotState>,
    /// In ticket order.
    pub(crate) waiters: Vec<Waiter>,
}

/// One slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotState {
    pub(crate) slot: SlotKey,
    /// Moves on at every grant.
    pub(crate) epoch: u64,
    pub(crate) owner: Option<Owner>,
    /// A key made ahead of time in the turn of this epoch, left for its party's next turn.
    pub(crate) ready: Option<Ready>,
    /// A key any program may use while the epoch stays (a PKCS#11 token object: another process
    /// of the same application derives with it), named by a hash of its public point.
    pub(crate) published: Option<Published>,
}

/// A key published for every program: the epoch of the turn it was made in, its point's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) epoch: u64,
    pub(crate) point: u64,
}

/// The holder of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) party: Party,
    pub(crate) ticket: u64,
    /// When the lease runs out (ms).
    pub(crate) until: u64,
}

/// A key made ahead of time: whose, and in the turn of which epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) party: Party,
    pub(crate) epoch: u64,
}

/// A waiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) party: Party,
    pub(crate) ticket: u64,
    /// The slots it would take, any of them.
    pub(crate) slots: Vec<SlotKey>,
}

/// A turn granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) slot: SlotKey,
    pub(crate) ticket: u64,
    pub(crate) epoch: u64,
    /// The slot holds a key this party made ahead of time, untouched since.
    pub(crate) ready_mine: bool,
    /// Its holder was overtaken (past its lease).
    pub(crate) overtook: bool,
}

/// What a waiter's look at the record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Look {
    Granted(Grant),
    /// Not yet. `until`: when a holder's lease runs out that this waiter could then overtake.
    /// `poll`: what holds it up belongs to another party, so only a look later (not a
    /// notification from its own party) will see it move; set for the first waiter of a party
    /// only, the others are woken by their own party when that one moves.
    Wait {
        until: Option<u64>,
        poll: bool,
    },
    /// The ticket is not in the queue (it was cancelled, or its party was found dead).
    Gone,
}

impl Record {
    /// Forgets what belongs to parties `alive` says are gone.
    pub(crate) fn prune(&mut self, alive: &mut dyn FnMut(&Party) -> bool) {
        self.waiters.retain(|w| alive(&w.party));
        for s in &mut self.slots {
            if s.owner.is_some_and(|o| !alive(&o.party)) {
                s.owner = None;
            }
            if s.ready.is_some_and(|r| !alive(&r.party)) {
                s.ready = None;
            }
        }
    }

    fn take_ticket(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        ticket
    }

    /// Joins the queue for any of `slots`; returns the ticket.
    pub(crate) fn enqueue(&mut self, party: Party, slots: &[SlotKey]) -> u64 {
        let ticket = self.take_ticket();
        self.waiters.push(Waiter {
            party,
            ticket,
            slots: slots.to_vec(),
        });
        ticket
    }

    /// Leaves the queue.
    pub(crate) fn cancel(&mut self, party: Party, ticket: u64) {
        self.waiters
            .retain(|w| !(w.party == party && w.ticket == ticket));
    }

    fn state(&mut self, slot: &str) -> &mut SlotState {
        let at = match self.slots.iter().position(|s| s.slot == slot) {
            Some(at) => at,
            None => {
                self.slots.push(SlotState {
                    slot: slot.to_string(),
                    epoch: 0,
                    owner: None,
                    ready: None,
                    published: None,
                });
                self.slots.len() - 1
            }
        };
        &mut self.slots[at]
    }

    fn get(&self, slot: &str) -> Option<&SlotState> {
        self.slots.iter().find(|s| s.slot == slot)
    }

    fn is_free(&self, slot: &str) -> bool {
        self.get(slot).is_none_or(|s| s.owner.is_none())
    }

    /// How much `party` wants `slot` when it is free: its own key made ahead of time first, then
    /// an empty slot, then one holding another party's key (taking it throws that key away).
    fn preference(&self, slot: &str, party: Party) -> u8 {
        match self.get(slot).and_then(|s| s.ready) {
            Some(r) if r.party == party => 0,
            None => 1,
            Some(_) => 2,
        }
    }

    /// Hands `slot` to `party` with `ticket`.
    fn grant(&mut self, slot: &str, party: Party, ticket: u64, lease_end: u64) -> Grant {
        let state = self.state(slot);
        let overtook = state.owner.is_some();
        let ready_mine = state
            .ready
            .is_some_and(|r| r.party == party && r.epoch == state.epoch);
        state.epoch += 1;
        state.ready = None;
        state.published = None;
        state.owner = Some(Owner {
            party,
            ticket,
            until: lease_end,
        });
        Grant {
            slot: slot.to_string(),
            ticket,
            epoch: state.epoch,
            ready_mine,
            overtook,
        }
    }

    /// The waiter with `ticket` looks at the record at time `now`: it gets a slot (held until
    /// `now + lease`) if the rules allow, else learns what it waits for.
    pub(crate) fn look(&mut self, party: Party, ticket: u64, now: u64, lease: u64) -> Look {
        let Some(at) = self
            .waiters
            .iter()
            .position(|w| w.party == party && w.ticket == ticket)
        else {
            return Look::Gone;
        };
        let wanted = self.waiters[at].slots.clone();
        let earlier = &self.waiters[..at];
        let claimed_earlier = |slot: &SlotKey| earlier.iter().any(|w| w.slots.contains(slot));
        let free = wanted
            .iter()
            .filter(|s| self.is_free(s) && !claimed_earlier(s))
            .min_by_key(|s| self.preference(s, party));
        if let Some(slot) = free.cloned() {
            self.waiters.remove(at);
            return Look::Granted(self.grant(&slot, party, ticket, now.saturating_add(lease)));
        }
        let head = !wanted.iter().any(claimed_earlier);
        let overlaps = |w: &&Waiter| w.slots.iter().any(|s| wanted.contains(s));
        let foreign_ahead = earlier.iter().filter(overlaps).any(|w| w.party != party);
        let own_ahead = earlier.iter().filter(overlaps).any(|w| w.party == party);
        let holders: Vec<Owner> = wanted
            .iter()
            .filter_map(|s| self.get(s).and_then(|s| s.owner))
            .collect();
        let foreign_holder = holders.iter().any(|o| o.party != party);
        let poll = (foreign_holder || foreign_ahead) && !own_ahead;
        if head && holders.len() == wanted.len() {
            // Every slot it wants is held: the holder whose lease ended first may be overtaken.
            let first = wanted
                .iter()
                .filter_map(|s| self.get(s).and_then(|st| st.owner.map(|o| (s, o.until))))
                .min_by_key(|(_, until)| *until);
            if let Some((slot, until)) = first {
                if until <= now {
                    let slot = slot.clone();
                    self.waiters.remove(at);
                    return Look::Granted(self.grant(
                        &slot,
                        party,
                        ticket,
                        now.saturating_add(lease),
                    ));
                }
                return Look::Wait {
                    until: Some(until),
                    poll,
                };
            }
        }
        Look::Wait { until: None, poll }
    }

    /// A turn for a key made ahead of time, only when the slots are idle: nobody holds one or
    /// waits for one, and `party` has no key waiting in any of them already. Otherwise it would
    /// only delay a handshake, or replace a key for nothing.
    pub(crate) fn idle_grant(
        &mut self,
        party: Party,
        slots: &[SlotKey],
        now: u64,
        lease: u64,
    ) -> Option<Grant> {
        let busy = slots.iter().any(|s| {
            self.get(s)
                .is_some_and(|st| st.owner.is_some() || st.ready.is_some_and(|r| r.party == party))
        });
        let waited_for = self
            .waiters
            .iter()
            .any(|w| w.slots.iter().any(|s| slots.contains(s)));
        if busy || waited_for {
            return None;
        }
        let slot = slots
            .iter()
            .min_by_key(|s| self.preference(s, party))?
            .clone();
        let ticket = self.take_ticket();
        Some(self.grant(&slot, party, ticket, now.saturating_add(lease)))
    }

    /// A turn at once, without queueing: a free slot if there is one, else the slot held
    /// longest, overtaken. For callers that never wait (their key exchanges then fail cleanly when
    /// another takes their slot).
    pub(crate) fn immediate_grant(
        &mut self,
        party: Party,
        slots: &[SlotKey],
        now: u64,
        lease: u64,
    ) -> Option<Grant> {
        let free = slots
            .iter()
            .filter(|s| self.is_free(s))
            .min_by_key(|s| self.preference(s, party))
            .cloned();
        let slot = free.or_else(|| {
            slots
                .iter()
                .min_by_key(|s| self.get(s).and_then(|st| st.owner).map_or(0, |o| o.until))
                .cloned()
        })?;
        let ticket = self.take_ticket();
        Some(self.grant(&slot, party, ticket, now.saturating_add(lease)))
    }

    /// Ends the turn `ticket` of `party` on `slot`, leaving a key made in it for the party's next
    /// turn when `ready`. A turn that was overtaken no longer owns the slot: nothing changes.
    pub(crate) fn release(&mut self, party: Party, slot: &str, ticket: u64, ready: bool) -> bool {
        let Some(state) = self.slots.iter_mut().find(|s| s.slot == slot) else {
            return false;
        };
        if !state
            .owner
            .is_some_and(|o| o.party == party && o.ticket == ticket)
        {
            return false;
        }
        state.owner = None;
        if ready {
            state.ready = Some(Ready {
                party,
                epoch: state.epoch,
            });
        }
        true
    }

    /// Whether a key made in the turn of `epoch` on `slot` is still the slot's key: nobody was
    /// granted the slot since, and the slot is free or held by that same turn.
    pub(crate) fn still_current(&self, party: Party, slot: &str, ticket: u64, epoch: u64) -> bool {
        self.get(slot).is_some_and(|s| {
            s.epoch == epoch
                && s.owner
                    .is_none_or(|o| o.party == party && o.ticket == ticket)
        })
    }

    /// Publishes the key made in the turn (`party`, `ticket`, `epoch`) for every program, if it
    /// is still the slot's key.
    pub(crate) fn publish(
        &mut self,
        party: Party,
        slot: &str,
        ticket: u64,
        epoch: u64,
        point: u64,
    ) -> bool {
        if !self.still_current(party, slot, ticket, epoch) {
            return false;
        }
        self.state(slot).published = Some(Published { epoch, point });
        true
    }

    /// Whether the key with point hash `point` was published on `slot` and nobody was granted the
    /// slot since (it may be held by nobody, or by a party that is gone).
    pub(crate) fn published_current(&self, slot: &str, point: u64) -> bool {
        self.get(slot).is_some_and(|s| {
            s.owner.is_none()
                && s.published
                    .is_some_and(|p| p.epoch == s.epoch && p.point == point)
        })
    }

    /// Whether anyone (any party) waits for one of `slots`.
    pub(crate) fn anyone_waits(&self, slots: &[SlotKey]) -> bool {
        self.waiters
            .iter()
            .any(|w| w.slots.iter().any(|s| slots.contains(s)))
    }
}

/// The text form kept in the record file: one line per fact, readable with `cat` when a slot
/// seems stuck.
///
/// ```text
/// iotsafe-slots 2
/// next 42
/// slot i04 17 1234.998877.4026531836.77/41/1765130000123 - -
/// slot i06 3 - 1234.998877.4026531836.77/3 -
/// slot i07 5 - - 5/9c1185a5c5e9fc54
/// wait 1240.998990.4026531836.91 42 i04,i06
/// ```
pub(crate) mod text {
    use super::*;

    const HEADER: &str = "iotsafe-slots 2";

    /// The record as text.
    pub(crate) fn write(record: &Record) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{HEADER}");
        let _ = writeln!(out, "next {}", record.next_ticket);
        for s in &record.slots {
            let owner = s.owner.map_or_else(
                || "-".to_string(),
                |o| format!("{}/{}/{}", o.party, o.ticket, o.until),
            );
            let ready = s
                .ready
                .map_or_else(|| "-".to_string(), |r| format!("{}/{}", r.party, r.epoch));
            let published = s.published.map_or_else(
                || "-".to_string(),
                |p| format!("{}/{:016x}", p.epoch, p.point),
            );
            let _ = writeln!(
                out,
                "slot {} {} {owner} {ready} {published}",
                s.slot, s.epoch
            );
        }
        for w in &record.waiters {
            let _ = writeln!(out, "wait {} {} {}", w.party, w.ticket, w.slots.join(","));
        }
        out
    }

    /// Reads the text form. A file that is not a record (empty, foreign) is an empty record; a
    /// line that does not parse is dropped (returned in the count) and the rest kept.
    pub(crate) fn read(text: &str) -> (Record, usize) {
        let mut record = Record::default();
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return (record, usize::from(!text.is_empty()));
        }
        let mut bad = 0;
        for line in lines {
            if line_into(&mut record, line).is_none() {
                bad += 1;
            }
        }
        // Tickets never go back, whatever a damaged line hid.
        let highest = (record
            .slots
            .iter()
            .filter_map(|s| s.owner.map(|o| o.ticket)))
        .chain(record.waiters.iter().map(|w| w.ticket))
        .max();
        if let Some(t) = highest {
            record.next_ticket = record.next_ticket.max(t + 1);
        }
        (record, bad)
    }

    fn line_into(record: &mut Record, line: &str) -> Option<()> {
        let mut words = line.split(' ');
        match words.next()? {
            "next" => record.next_ticket = words.next()?.parse().ok()?,
            "slot" => {
                let slot = slot_key(words.next()?)?;
                let epoch = words.next()?.parse().ok()?;
                let owner = optional(words.next()?, |o| {
                    let mut parts = o.split('/');
                    Some(Owner {
                        party: parts.next()?.parse().ok()?,
                        ticket: parts.next()?.parse().ok()?,
                        until: parts.next()?.parse().ok()?,
                    })
                })?;
                let ready = optional(words.next()?, |r| {
                    let (party, epoch) = r.split_once('/')?;
                    Some(Ready {
                        party: party.parse().ok()?,
                        epoch: epoch.parse().ok()?,
                    })
                })?;
                let published = optional(words.next()?, |p| {
                    let (epoch, point) = p.split_once('/')?;
                    Some(Published {
                        epoch: epoch.parse().ok()?,
                        point: u64::from_str_radix(point, 16).ok()?,
                    })
                })?;
                if record.slots.iter().any(|s| s.slot == slot) {
                    return None;
                }
                record.slots.push(SlotState {
                    slot,
                    epoch,
                    owner,
                    ready,
                    published,
                });
            }
            "wait" => {
                let party = words.next()?.parse().ok()?;
                let ticket = words.next()?.parse().ok()?;
                let slots = words
                    .next()?
                    .split(',')
                    .map(slot_key)
                    .collect::<Option<Vec<_>>>()?;
                record.waiters.push(Waiter {
                    party,
                    ticket,
                    slots,
                });
            }
            _ => return None,
        }
        if words.next().is_some() {
            return None;
        }
        Some(())
    }

    /// `-`, or a value: `Some(None)` / `Some(Some(v))`; `None` when the value does not parse.
    fn optional<T>(word: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<Option<T>> {
        if word == "-" {
            Some(None)
        } else {
            parse(word).map(Some)
        }
    }

    fn slot_key(word: &str) -> Option<SlotKey> {
        let valid = word.len() > 1
            && word.len() % 2 == 1
            && (word.starts_with('i') || word.starts_with('l'))
            && word[1..].bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| word.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(book: u64) -> Party {
        Party {
            pid: 100 + book as u32,
            start: 7,
            ns: 1,
            book,
        }
    }

    const A: u64 = 1;
    const B: u64 = 2;
    const LEASE: u64 = 10_000;

    fn slots(names: &[&str]) -> Vec<SlotKey> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn granted(look: Look) -> Grant {
        match look {
            Look::Granted(g) => g,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn first_come_first_served_across_parties() {
        let mut r = Record::default();
        let one = slots(&["i04"]);
        let a1 = r.enqueue(party(A), &one);
        let b1 = r.enqueue(party(B), &one);
        let a2 = r.enqueue(party(A), &one);
        let g = granted(r.look(party(A), a1, 0, LEASE));
        assert_eq!((g.slot.as_str(), g.epoch), ("i04", 1));
        // A's second waiter may not jump B's earlier one, even though A just released.
        assert!(r.release(party(A), "i04", a1, false));
        assert!(matches!(
            r.look(party(A), a2, 1, LEASE),
            Look::Wait { poll: true, .. }
        ));
        let g = granted(r.look(party(B), b1, 1, LEASE));
        assert_eq!(g.epoch, 2);
        assert!(matches!(
            r.look(party(A), a2, 2, LEASE),
            Look::Wait {
                until: Some(_),
                poll: true
            }
        ));
        r.release(party(B), "i04", b1, false);
        assert_eq!(granted(r.look(party(A), a2, 3, LEASE)).epoch, 3);
    }

    #[test]
    fn a_holder_past_its_lease_is_overtaken_by_the_head_only() {
        let mut r = Record::default();
        let one = slots(&["i04"]);
        let t = r.enqueue(party(A), &one);
        granted(r.look(party(A), t, 0, 100));
        let b = r.enqueue(party(B), &one);
        let a = r.enqueue(party(A), &one);
        assert_eq!(
            r.look(party(B), b, 50, LEASE),
            Look::Wait {
                until: Some(100),
                poll: true
            }
        );
        assert_eq!(
            r.look(party(A), a, 150, LEASE),
            Look::Wait {
                until: None,
                poll: true
            },
            "not the head"
        );
        let g = granted(r.look(party(B), b, 150, LEASE));
        assert!(g.overtook);
        // The overtaken turn's release changes nothing, and its key is no longer current.
        assert!(!r.release(party(A), "i04", t, false));
        assert!(!r.still_current(party(A), "i04", t, 1));
        assert!(r.still_current(party(B), "i04", b, g.epoch));
    }

    #[test]
    fn several_slots_and_overlapping_wishes() {
        let mut r = Record::default();
        let a = r.enqueue(party(A), &slots(&["i04"]));
        let b = r.enqueue(party(B), &slots(&["i04", "i06"]));
        // B may take i06 at once: nobody earlier wants it.
        assert_eq!(granted(r.look(party(B), b, 0, LEASE)).slot, "i06");
        assert_eq!(granted(r.look(party(A), a, 0, LEASE)).slot, "i04");
        let c = r.enqueue(party(B), &slots(&["i04", "i06"]));
        assert!(matches!(r.look(party(B), c, 1, LEASE), Look::Wait { .. }));
        r.release(party(A), "i04", a, false);
        assert_eq!(granted(r.look(party(B), c, 2, LEASE)).slot, "i04");
    }

    #[test]
    fn a_key_made_ahead_is_its_partys_and_any_grant_spends_it() {
        let mut r = Record::default();
        let both = slots(&["i04", "i06"]);
        let g = r.idle_grant(party(A), &both, 0, LEASE).expect("idle");
        assert!(
            r.idle_grant(party(B), &both, 0, LEASE).is_none(),
            "a slot is held"
        );
        r.release(party(A), &g.slot, g.ticket, true);
        assert!(
            r.idle_grant(party(A), &both, 0, LEASE).is_none(),
            "A has a key waiting"
        );
        // A's next turn prefers the slot with its key, and finds it untouched.
        let t = r.enqueue(party(A), &both);
        let mine = granted(r.look(party(A), t, 1, LEASE));
        assert_eq!(mine.slot, g.slot);
        assert!(mine.ready_mine);
        r.release(party(A), &mine.slot, t, true);
        // B prefers the other slot; when it must take A's, A's key is spent.
        let t = r.enqueue(party(B), &slots(&["i04"]));
        let theirs = granted(r.look(party(B), t, 2, LEASE));
        assert!(!theirs.ready_mine);
        r.release(party(B), "i04", t, false);
        let t = r.enqueue(party(A), &slots(&["i04"]));
        assert!(!granted(r.look(party(A), t, 3, LEASE)).ready_mine);
    }

    #[test]
    fn still_current_after_release_until_someone_else_is_granted() {
        let mut r = Record::default();
        let g = r
            .immediate_grant(party(A), &slots(&["i04"]), 0, LEASE)
            .unwrap();
        r.release(party(A), "i04", g.ticket, false);
        assert!(r.still_current(party(A), "i04", g.ticket, g.epoch));
        let h = r
            .immediate_grant(party(B), &slots(&["i04"]), 1, LEASE)
            .unwrap();
        assert!(!r.still_current(party(A), "i04", g.ticket, g.epoch));
        // Held, not free: an immediate grant overtakes it at once.
        let i = r
            .immediate_grant(party(A), &slots(&["i04"]), 2, LEASE)
            .unwrap();
        assert!(i.overtook);
        assert!(!r.still_current(party(B), "i04", h.ticket, h.epoch));
    }

    #[test]
    fn a_published_key_stays_usable_by_anyone_until_the_next_grant() {
        let mut r = Record::default();
        let one = slots(&["i04"]);
        let g = r.immediate_grant(party(A), &one, 0, LEASE).unwrap();
        assert!(r.publish(party(A), "i04", g.ticket, g.epoch, 77));
        assert!(!r.published_current("i04", 77), "still held");
        r.release(party(A), "i04", g.ticket, false);
        assert!(r.published_current("i04", 77));
        assert!(!r.published_current("i04", 78), "another point");
        let h = r.immediate_grant(party(B), &one, 1, LEASE).unwrap();
        r.release(party(B), "i04", h.ticket, false);
        assert!(!r.published_current("i04", 77), "granted since");
        assert!(
            !r.publish(party(A), "i04", g.ticket, g.epoch, 77),
            "too late"
        );
    }

    #[test]
    fn the_dead_hold_nothing() {
        let mut r = Record::default();
        let one = slots(&["i04"]);
        let a = r.enqueue(party(A), &one);
        granted(r.look(party(A), a, 0, LEASE));
        let b = r.enqueue(party(B), &one);
        r.enqueue(party(A), &one);
        r.prune(&mut |p| p.book != A);
        assert!(r.waiters.iter().all(|w| w.party == party(B)));
        assert_eq!(granted(r.look(party(B), b, 1, LEASE)).epoch, 2);
    }

    #[test]
    fn cancelled_and_unknown_tickets() {
        let mut r = Record::default();
        let one = slots(&["i04"]);
        let a = r.enqueue(party(A), &one);
        let b = r.enqueue(party(B), &one);
        r.cancel(party(A), a);
        assert_eq!(r.look(party(A), a, 0, LEASE), Look::Gone);
        assert!(matches!(r.look(party(B), b, 0, LEASE), Look::Granted(_)));
    }

    #[test]
    fn text_round_trip_and_damage() {
        let mut r = Record::default();
        let g = r
            .immediate_grant(party(A), &slots(&["i04"]), 5, LEASE)
            .unwrap();
        r.enqueue(party(B), &slots(&["i04", "l6563"]));
        let h = r.idle_grant(party(B), &slots(&["i06"]), 5, LEASE).unwrap();
        r.release(party(B), "i06", h.ticket, true);
        let p = r
            .immediate_grant(party(A), &slots(&["i07"]), 5, LEASE)
            .unwrap();
        assert!(r.publish(party(A), "i07", p.ticket, p.epoch, 0x9c11_85a5_c5e9_fc54));
        r.release(party(A), "i07", p.ticket, false);
        let written = text::write(&r);
        assert_eq!(text::read(&written), (r.clone(), 0));
        // A torn last line is dropped, the rest kept, tickets never reused.
        let torn = &written[..written.len() - 4];
        let (back, bad) = text::read(torn);
        assert_eq!(bad, 1);
        assert!(back.waiters.is_empty());
        assert_eq!(back.slots, r.slots);
        assert!(back.next_ticket > g.ticket);
        assert_eq!(text::read(""), (Record::default(), 0));
        assert_eq!(text::read("garbage\n").1, 1);
        let doubled = format!("{written}slot i04 1 - - -\n");
        assert_eq!(text::read(&doubled).1, 1, "a slot listed twice");
    }
}
