//! How a key exchange gets its turn on one of the card's ephemeral slots, wherever rustls calls
//! `start()` from (see [`crate::runtime`]), and the keys made ahead of time. The queue itself is
//! the card's ([`iotsafe_core::slots`]): shared by every group, thread, task and process that
//! uses the card.

use super::exchange::checked_key;
use super::{CardKxGroup, KxOptions};
use crate::error::card_failure;
use crate::runtime::{self, Here};
use iotsafe_core::slots::{SlotTurn, DEFAULT_LEASE};
use iotsafe_core::EphemeralKey;
use iotsafe_core::{Card, ObjectRef};
use std::cell::RefCell;

thread_local! {
    /// A turn the async connector took, waiting for the next `start()` of its group here.
    static PREPARED: RefCell<Option<(usize, SlotTurn)>> = const { RefCell::new(None) };
}

fn address(group: &CardKxGroup) -> usize {
    std::ptr::from_ref(group) as usize
}

#[cfg(feature = "tokio")]
/// Runs `f` (which makes a `ClientConnection`) on this thread with `turn` ready for the `start()`
/// of `group`, as code that may block on the card.
pub(crate) fn with_prepared<T>(group: &CardKxGroup, turn: SlotTurn, f: impl FnOnce() -> T) -> T {
    PREPARED.with(|p| *p.borrow_mut() = Some((address(group), turn)));
    let out = runtime::blocking_allowed(f);
    // Not taken (rustls started another group first): released here.
    PREPARED.with(|p| p.borrow_mut().take());
    out
}

/// The turn for a `start()` of `group` on `card`: the one the async connector prepared, else
/// waited for as this thread allows (see [`crate::runtime`]). `None`: every slot is in use and
/// this thread must not wait.
pub(crate) fn for_start(
    group: &CardKxGroup,
    card: &Card,
    slots: &[ObjectRef],
    options: &KxOptions,
) -> Result<Option<SlotTurn>, iotsafe_core::Error> {
    let prepared = PREPARED.with(|p| {
        let mut p = p.borrow_mut();
        match p.take() {
            Some((g, turn)) if g == address(group) => Some(turn),
            other => {
                *p = other;
                None
            }
        }
    });
    if let Some(turn) = prepared {
        return Ok(Some(turn));
    }
    let book = card.slots();
    let Some(lease) = options.queue_for_slot else {
        return book.take_now(slots, DEFAULT_LEASE).map(Some);
    };
    match runtime::here() {
        Here::MayBlock => book.wait(slots, lease).map(Some),
        Here::InPlace => runtime::card_work(|| book.wait(slots, lease)).map(Some),
        Here::MustNotWait => book.request(slots, lease)?.try_take(),
    }
}

/// The key for this turn: the one made ahead of time if the card still holds it (one READ PUBLIC
/// KEY), else a fresh one.
pub(crate) fn key_for(card: &Card, turn: &mut SlotTurn) -> Result<EphemeralKey, rustls::Error> {
    if let Some(key) = turn.take_ready() {
        let step = "READ PUBLIC KEY (confirming the ephemeral key made ahead of time)";
        if card
            .confirm_ephemeral(&key)
            .map_err(|e| card_failure(step, e))?
        {
            return Ok(key);
        }
        tracing::debug!("the ephemeral key made ahead of time is gone (card reset, or replaced); generating a fresh one");
    }
    let slot = turn.slot().clone();
    let key = card
        .generate_ephemeral_in(turn)
        .map_err(|e| card_failure(format_args!("GENERATE KEY PAIR in {slot}"), e))?;
    checked_key(&slot, key)
}
