//! The card session: one channel, the selected applet, cached object list and applet information,
//! one lock around every multi-APDU operation, reconnection after a reset, and counters.
//!
//! [`Card`] is the public face. The session state, reconnection and the retry rule are in
//! `session.rs`; the operations, one module per command family, in `ops/`.

mod ephemeral;
mod ops;
mod public;
mod session;

pub use public::PublicData;

use crate::config::CardConfig;
use crate::error::Error;
use crate::link::TraceSink;
use crate::lock::{Guard, Lock};
use crate::objects::{EcPoint, ObjectRef};
use crate::prelude::*;
use crate::stats::CardStats;
use crate::transport::Transport;
use core::fmt;
use session::Session;

/// A key pair the card generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The private key, by the ID the card reported (or the reference asked, if it reported none).
    pub private: ObjectRef,
    /// The public key.
    pub public: ObjectRef,
    /// The public point.
    pub point: EcPoint,
}

/// An ephemeral key generated for one key exchange. Its generation number ties it to the slot's
/// content on this session, and (with `std`) its claim to the turn it was made in on the queue
/// every user of the card shares: if the slot is regenerated, or granted to anyone else, before
/// the agreement, the agreement fails cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralKey {
    /// Generation of the ephemeral slot this key belongs to.
    pub generation: u64,
    /// The key pair.
    pub key_pair: KeyPair,
    /// The turn the key was made in (none for a key made outside the queue, without `std`).
    #[cfg(feature = "std")]
    pub(crate) claim: Option<crate::slots::SlotClaim>,
}

impl EphemeralKey {
    /// The turn on the card's slot queue this key was made in.
    #[cfg(feature = "std")]
    pub fn claim(&self) -> Option<&crate::slots::SlotClaim> {
        self.claim.as_ref()
    }
}

/// A session with an IoT SAFE applet. `Send + Sync`: share it with an `Arc`; operations are
/// serialized behind one lock, so a multi-APDU operation is never interleaved with another.
///
/// # Recovery
/// When an operation fails because the connection was lost (card removed or reset, reader or
/// modem gone, pcscd restarted, timeout), the error goes to the caller and the next operation
/// reconnects first. Three cases are retried at once instead, because the card cannot have acted
/// on the command: the connection was found dead before the operation's first APDU went out, the
/// card reported a reset, or it answered `6881` on the session's own channel (a reset the
/// transport never saw: the modem restarted the SIM, a SIM REFRESH, a brown-out). Nothing else is
/// ever re-sent.
///
/// # Channels
/// The session's logical channel is never leaked: after a loss that need not have reset the card
/// (a modem port that dropped, a timeout) the next operation selects the applet again on the same
/// channel, and opens a new one only when the card refuses it. After a reset (reported, or seen as
/// `6881`) a new channel is opened. Dropping a `Card` closes its channel as [`Card::close`] does.
/// When the card opens no channel, the session fails with [`Error::NoLogicalChannel`] rather
/// than take the basic channel, unless [`CardConfig::allow_basic_channel`] says so.
///
/// # Volatile state
/// Any reset or lost connection retires the ephemeral key: the slot's generation moves on, so a
/// key generated before it fails cleanly ([`Error::StaleEphemeral`]) instead of reaching COMPUTE
/// DH on a card that has wiped it.
pub struct Card {
    session: Lock<Session>,
    /// The counters as the last operation left them: read without waiting for an operation in
    /// flight (a background key generation holds the session for a quarter of a second).
    counters: Lock<CardStats>,
    /// Who may use the volatile key slots now, shared with every user of the card.
    #[cfg(feature = "std")]
    slots: crate::slots::SlotBook,
    /// The card's name on this host: [`CardConfig::card_identity`], else the transport's route.
    identity: Option<String>,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card")
            .field("transport", &self.describe())
            .finish_non_exhaustive()
    }
}

/// A session dropped without [`Card::close`] still gives its channel back: a card has few
/// logical channels (often three besides the basic one), and one leaked per process start would
/// exhaust them. Best effort: errors are logged, never raised.
impl Drop for Card {
    fn drop(&mut self) {
        let session = self.session.get_mut(Session::interrupted);
        if let Err(e) = session.disconnect() {
            tracing::debug!(error = %e, "closing the card channel on drop failed");
        }
    }
}

/// The session, for one call; when the call ends, its counters are published for
/// [`Card::stats`].
struct SessionGuard<'a> {
    session: Guard<'a, Session>,
    counters: &'a Lock<CardStats>,
}

impl core::ops::Deref for SessionGuard<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl core::ops::DerefMut for SessionGuard<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        // Plain counters: a panic elsewhere leaves them usable.
        *self.counters.lock(|_| ()) = self.session.stats.clone();
    }
}

impl Card {
    /// Opens a session: opens a channel (per the configuration), selects the applet (trying each
    /// configured AID), and returns the session. No other APDU is sent.
    pub fn open(
        transport: impl Transport + Send + 'static,
        config: CardConfig,
    ) -> Result<Card, Error> {
        Card::open_traced(transport, config, None)
    }

    /// [`Card::open`] with a trace sink that already sees the MANAGE CHANNEL and SELECT of the
    /// opening (secrets redacted, as every trace).
    pub fn open_traced(
        transport: impl Transport + Send + 'static,
        config: CardConfig,
        trace: Option<TraceSink>,
    ) -> Result<Card, Error> {
        let identity = config.card_identity.clone().or_else(|| transport.route());
        #[cfg(feature = "std")]
        let slots = crate::slots::SlotBook::new(identity.as_deref());
        let mut session = Session::new(Box::new(transport), config, trace);
        session.connect()?;
        Ok(Card {
            counters: Lock::new(session.stats.clone()),
            session: Lock::new(session),
            #[cfg(feature = "std")]
            slots,
            identity,
        })
    }

    /// The card's name on this host, the same in every program that reaches it the same way:
    /// [`CardConfig::card_identity`], else the transport's route (reader name, modem port).
    /// `None` for a card only this process reaches (an in-process virtual card).
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The queue of this card's volatile key slots, shared with every thread, task and program
    /// that uses the card (see [`crate::slots`]).
    #[cfg(feature = "std")]
    pub fn slots(&self) -> &crate::slots::SlotBook {
        &self.slots
    }

    /// The session, for one call.
    ///
    /// One rule for a poisoned lock, in every method: take the session over and go on, never fail
    /// and never answer a default. The only code that can panic while holding the lock is the
    /// caller's trace sink, and the session's own state stays consistent between two APDUs; what
    /// the panic can leave behind is a card session half done, so the session is marked
    /// [interrupted](Session::interrupted) and selects the applet again before its next operation.
    /// Failing instead would make one panicking trace call end the session for good (the card's
    /// channel with it), and the accessors that cannot fail (`stats`, `describe`) would have to
    /// make up an answer.
    fn lock(&self) -> SessionGuard<'_> {
        SessionGuard {
            session: self.session.lock(Session::interrupted),
            counters: &self.counters,
        }
    }

    /// Sets a sink that receives every APDU (secrets redacted); `None` removes it.
    pub fn set_trace(&self, sink: Option<TraceSink>) {
        self.lock().trace = sink;
    }

    /// The transport's description.
    pub fn describe(&self) -> String {
        self.lock().describe()
    }

    /// What opening the transport found out about its link that the next program on the same
    /// port may skip asking ([`Transport::learned`]).
    pub fn transport_learned(&self) -> Option<String> {
        self.lock().transport_learned()
    }

    /// The AID that answered SELECT, and the channel in use.
    pub fn selection(&self) -> Option<(Vec<u8>, u8)> {
        let s = self.lock();
        s.selected.as_ref().map(|x| (x.aid.clone(), x.channel))
    }

    /// Whether this card has refused to open a session the host had left open, so that its
    /// sessions are now closed after every operation ([`crate::SessionClosing::UnlessRefused`]).
    /// Worth remembering per card between runs: see [`Card::assume_sessions_need_closing`].
    pub fn sessions_need_closing(&self) -> bool {
        self.lock().sessions.card_wants_closes()
    }

    /// Closes this card's sessions after every operation from now on, as if it had refused an
    /// Init already (an earlier run found out; saves its refused Init and closes once).
    pub fn assume_sessions_need_closing(&self) {
        self.lock().sessions.assume_card_wants_closes();
    }

    /// The session configuration.
    pub fn config(&self) -> Result<CardConfig, Error> {
        Ok(self.lock().config.clone())
    }

    /// A snapshot of the counters, as the last finished operation left them: it never waits for
    /// an operation in flight.
    pub fn stats(&self) -> CardStats {
        self.counters.lock(|_| ()).clone()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.lock().stats = CardStats::default();
    }

    /// Closes the channel the session opened. The session re-opens it on the next operation.
    pub fn close(&self) -> Result<(), Error> {
        self.lock().disconnect()
    }
}
