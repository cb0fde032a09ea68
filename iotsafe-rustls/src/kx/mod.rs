//! ECDHE on the card: a rustls [`SupportedKxGroup`] for secp256r1 whose ephemeral key pair lives in
//! the card's volatile key slot and whose shared secret is computed by the card.
//!
//! Three small parts:
//! * the key exchange itself (`exchange.rs`): [`SupportedKxGroup::start`] makes the key pair
//!   (GENERATE KEY PAIR, one APDU, inside `ClientConnection::new`), [`ActiveKeyExchange::complete`]
//!   validates the server's point, then PUT PUBLIC KEY (Init, Update, close) and COMPUTE DH run
//!   under one card lock;
//! * the scheduling (`schedule.rs`): who may use which of the card's ephemeral slots now, and the key
//!   made ahead of time;
//! * the pool (`pool.rs`): one `'static` group per card, reused across `build()` calls.
//!
//! # Slots, many handshakes
//! A card has one ephemeral key slot, or a few, and every key generation in a slot replaces its
//! key. By default ([`KxOptions::queue_for_slot`] = `Some(`[`DEFAULT_SLOT_LEASE`]`)`), a key
//! exchange holds a slot from `start()` until it completes or is dropped, and a `start()` that
//! finds every slot held waits its turn: first come, first served, so every concurrent handshake
//! succeeds and none starves. A holder that keeps its slot past the lease (a handshake stuck on a
//! silent peer) is overtaken by the next in line, so the wait is bounded; the stuck handshake then
//! fails with [`KxError::Replaced`].
//!
//! A slot is held across the network round trip between the ClientHello and the server's answer.
//! With one slot, that round trip idles the card for every handshake waiting behind it; with
//! several ([`KxOptions::every_ephemeral_slot`], on by default, takes every volatile key pair the
//! card lists for key generation and key agreement) the card generates the next handshake's key
//! meanwhile (`docs/performance.md`, row 4s).
//!
//! Waiting blocks the thread that calls `ClientConnection::new` (that is where rustls calls
//! `start()`). On OS threads or a multi-thread tokio runtime that is what serializes the card
//! anyway. On a single thread that drives several connections (a `current_thread` runtime), a
//! waiting `start()` keeps the handshake in flight from progressing, so the second connection
//! waits out the whole lease and the first then fails: there, connect one at a time, or run the
//! connects in `spawn_blocking`. With `queue_for_slot: None` ([`KxOptions::unqueued`]) nothing
//! waits, and a handshake whose key another one replaced fails with [`KxError::Replaced`].
//!
//! The card session's generations back all this up: any key generation in a slot, reset or lost
//! connection retires that slot's key (all of them, for a reset or loss), and an agreement with a
//! retired key is refused before anything is sent ([`iotsafe_core::Error::StaleEphemeral`],
//! [`Card::ephemeral_is_current`]).
//!
//! # Pre-generation
//! With [`KxOptions::pregenerate`], the next key is generated in a background thread when the
//! card is idle: when the group is set up, and after each handshake's CertificateVerify was
//! signed ([`CardKxGroup::pregenerate_in_background`], wired by [`crate::IotSafeTls`] to its card
//! signer). Started right after the DH instead, it would hold the card while the signature waits
//! (`docs/performance.md`, row 2c). The background generation takes a turn like a key exchange,
//! but only when nobody holds or waits for a slot; a ready key is handed out only if it is still
//! its slot's current key. A handshake that signs nothing (no
//! CertificateRequest, resumption) leaves the next one to generate its own key.
//!
//! # `'static` without a leak per config
//! rustls wants `&'static dyn SupportedKxGroup`. [`CardKxGroup::for_card`] returns the group of a
//! card from a process-wide pool: the same group for every `build()` on the same `Arc<Card>`, a
//! group whose card was dropped is re-targeted (with fresh scheduling state) to the next card,
//! and only otherwise is a new one leaked. A group holds only a `Weak<Card>`, so it never keeps
//! a card (and its logical channel) alive; the configs do, through the card signer.

mod exchange;
mod pool;
mod schedule;

pub use schedule::QueueStats;

use crate::error::{Error, KxError};
use iotsafe_core::objects::{functions, key_type};
use iotsafe_core::{Card, EcPoint, EphemeralKey, ObjectKind, ObjectRef};
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::{NamedGroup, PeerMisbehaved};
use schedule::{SlotQueue, Turn};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// How long one key exchange may hold the ephemeral slot while others wait, by default: far
/// longer than a handshake's card work (about 0.6 s on a typical SIM) plus a slow cellular round
/// trip, short enough that a handshake stuck on a silent peer does not hold the others for long.
pub const DEFAULT_SLOT_LEASE: Duration = Duration::from_secs(10);

/// Where the key exchange keeps its keys on the card, and whether keys are made ahead of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KxOptions {
    /// Generate the next ephemeral key in a background thread (see the module docs). Off by default.
    pub pregenerate: bool,
    /// The volatile key pair slot (default ID `04`, label `ecdhe`).
    pub ephemeral_slot: ObjectRef,
    /// Besides [`KxOptions::ephemeral_slot`], use every other key pair the card lists as a
    /// volatile P-256 key (key type `14`) allowing key generation and key agreement: each slot
    /// holds one key exchange between its key generation and its agreement, so with several
    /// slots a handshake waiting for its server's answer does not hold up the next one (see the
    /// module docs). On by default; keys whose type or functions the card does not list are
    /// never taken.
    pub every_ephemeral_slot: bool,
    /// The public key slot the peer's point is written to (default ID `05`, label `peer`).
    pub peer_slot: ObjectRef,
    /// Concurrent key exchanges on one card take turns on the ephemeral slots, each holding one
    /// for at most this lease while others wait (default [`DEFAULT_SLOT_LEASE`]; see the module
    /// docs, also for what waiting means on a `current_thread` runtime). `None`: nobody waits,
    /// and a handshake whose key another handshake replaced fails with [`KxError::Replaced`].
    pub queue_for_slot: Option<Duration>,
}

impl Default for KxOptions {
    fn default() -> Self {
        KxOptions {
            pregenerate: false,
            ephemeral_slot: ObjectRef::id([0x04]),
            every_ephemeral_slot: true,
            peer_slot: ObjectRef::id([0x05]),
            queue_for_slot: Some(DEFAULT_SLOT_LEASE),
        }
    }
}

impl KxOptions {
    /// Default slots, with pre-generation on or off.
    pub fn pregenerating(pregenerate: bool) -> Self {
        KxOptions {
            pregenerate,
            ..KxOptions::default()
        }
    }

    /// These options, with each key exchange holding the ephemeral slot for at most `limit` while
    /// others wait (see [`KxOptions::queue_for_slot`]).
    pub fn queued(self, limit: Duration) -> Self {
        KxOptions {
            queue_for_slot: Some(limit),
            ..self
        }
    }

    /// These options without the slot queue: concurrent handshakes on one card replace each
    /// other's key and fail with [`KxError::Replaced`] (see [`KxOptions::queue_for_slot`]).
    pub fn unqueued(self) -> Self {
        KxOptions {
            queue_for_slot: None,
            ..self
        }
    }

    /// How long a turn on the slot lasts before the next in line may overtake it. Without the
    /// queue a turn covers only a key generation, so the default lease is plenty.
    fn lease(&self) -> Duration {
        self.queue_for_slot.unwrap_or(DEFAULT_SLOT_LEASE)
    }
}

/// Checks a peer's secp256r1 key share: exactly 65 bytes, uncompressed (`04`), on the curve.
/// Anything else is [`PeerMisbehaved::InvalidKeyShare`] (rustls answers `illegal_parameter`), and
/// nothing is sent to the card.
pub fn validate_peer_point(peer: &[u8]) -> Result<EcPoint, rustls::Error> {
    let point = EcPoint::from_slice(peer).ok_or(PeerMisbehaved::InvalidKeyShare)?;
    p256::PublicKey::from_sec1_bytes(point.as_bytes())
        .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
    Ok(point)
}

/// Checks, against the card's object list, that the slots of `options` can do ECDHE: the
/// ephemeral private key exists and (when the card lists its functions) allows key generation and
/// key agreement, and the peer public key slot exists. The error says which slot is missing and
/// suggests [`crate::EcdheOn::Host`]. Costs no APDU when the list is already cached.
pub fn check_slots(card: &Card, options: &KxOptions) -> Result<(), Error> {
    ephemeral_slots(card, options).map(drop)
}

/// The ephemeral slots a key exchange on `card` with `options` uses: [`KxOptions::ephemeral_slot`]
/// first, checked as [`check_slots`] says, then (with [`KxOptions::every_ephemeral_slot`]) every
/// other private key the card lists as volatile P-256 with key generation and key agreement, in
/// list order. Costs no APDU when the object list is already cached.
pub fn ephemeral_slots(card: &Card, options: &KxOptions) -> Result<Vec<ObjectRef>, Error> {
    let objects = card
        .objects()
        .map_err(|e| Error::card("reading the object list", e))?;
    let find = |kind: ObjectKind, r: &ObjectRef| {
        objects
            .iter()
            .find(|o| o.kind == Some(kind) && r.matches(o))
    };
    let slot = &options.ephemeral_slot;
    let Some(ephemeral) = find(ObjectKind::PrivateKey, slot) else {
        return Err(Error::MissingObject {
            what: "ephemeral key slot",
            why: format!("the card lists no private key {slot}; use EcdheOn::Host for this card"),
        });
    };
    let needed = functions::KEY_GENERATION | functions::KEY_AGREEMENT;
    if let Some(f) = ephemeral.functions {
        if f & needed != needed {
            return Err(Error::MissingObject {
                what: "ephemeral key slot",
                why: format!(
                    "private key {slot} allows functions {f:02X}, not key generation + key agreement ({needed:02X}); use EcdheOn::Host for this card"
                ),
            });
        }
    }
    let peer = &options.peer_slot;
    if find(ObjectKind::PublicKey, peer).is_none() {
        return Err(Error::MissingObject {
            what: "peer public key slot",
            why: format!("the card lists no public key {peer} to put the server's share in"),
        });
    }
    let mut slots = vec![slot.clone()];
    if options.every_ephemeral_slot {
        let more = objects.iter().filter(|o| {
            o.kind == Some(ObjectKind::PrivateKey)
                && o.key_type == Some(key_type::P256_VOLATILE)
                && o.functions.is_some_and(|f| f & needed == needed)
                && !slot.matches(o)
        });
        slots.extend(more.filter_map(|o| o.reference()));
    }
    Ok(slots)
}

/// secp256r1 key exchange on an IoT SAFE card, one per card. See the module docs.
pub struct CardKxGroup {
    target: Mutex<Target>,
}

/// The card a group serves and that card's scheduling state.
#[derive(Clone)]
pub(crate) struct Target {
    card: Weak<Card>,
    options: KxOptions,
    /// The ephemeral slots, in the queue's order.
    slots: Arc<[ObjectRef]>,
    queue: Arc<SlotQueue<Ready>>,
}

impl Target {
    /// The slot a turn is on.
    fn slot(&self, turn: &Turn<Ready>) -> ObjectRef {
        // The queue was made with one entry per slot: the index is always in range.
        self.slots
            .get(turn.slot())
            .unwrap_or(&self.options.ephemeral_slot)
            .clone()
    }
}

/// A key made ahead of time, with the slot it was made in.
type Ready = (ObjectRef, EphemeralKey);

impl CardKxGroup {
    /// The key exchange group of `card` with `options`, for rustls's `&'static dyn
    /// SupportedKxGroup`: the pool's group for this card and these options if there is one,
    /// else a group whose card was dropped, re-targeted, else a new one (leaked, a few hundred
    /// bytes). Memory is bounded by the number of cards alive at once, not by the calls. Groups
    /// on the same card with different options share the card's slot queue.
    ///
    /// The group holds only a `Weak<Card>`: keep the card alive as long as a config uses the
    /// group ([`crate::IotSafeTls`] configs do, through the card signer). A start() after the
    /// card was dropped fails with [`KxError::CardGone`].
    pub fn for_card(card: &Arc<Card>, options: KxOptions) -> &'static CardKxGroup {
        pool::group_for(card, options)
    }

    fn target(&self) -> Target {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Target> {
        // Plain data, consistent after a panic elsewhere.
        self.target.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The options.
    pub fn options(&self) -> KxOptions {
        self.lock().options.clone()
    }

    /// The card session, while it is alive.
    pub fn card(&self) -> Option<Arc<Card>> {
        self.lock().card.upgrade()
    }

    /// The card's ephemeral slots this group spreads key exchanges over (see
    /// [`KxOptions::every_ephemeral_slot`]).
    pub fn slots(&self) -> Vec<ObjectRef> {
        self.lock().slots.to_vec()
    }

    /// Whether a pre-generated key is waiting for the next `start()`.
    pub fn has_pregenerated_key(&self) -> bool {
        self.lock().queue.has_ready()
    }

    /// What the card's slot queue saw: turns, waits, the longest wait, overtaken holders.
    pub fn queue_stats(&self) -> QueueStats {
        self.lock().queue.stats()
    }

    /// Generates the next key now, on this thread (e.g. at start-up, before the first connect),
    /// unless one is ready or the slot is in use or waited for.
    pub fn pregenerate_now(&self) -> Result<(), rustls::Error> {
        let t = self.target();
        let card = t.card.upgrade().ok_or(KxError::CardGone)?;
        let Some(turn) = t.queue.try_pregeneration_turn(t.options.lease()) else {
            return Ok(());
        };
        let slot = t.slot(&turn);
        let key = exchange::generate(&card, &slot)?;
        turn.set_ready((slot, key));
        Ok(())
    }

    /// With [`KxOptions::pregenerate`]: generates the next key in a background thread if the
    /// slot is idle and no key is ready (see the module docs). Call it when the card is free,
    /// e.g. after a signature; [`crate::IotSafeTls`] does.
    pub fn pregenerate_in_background(&self) {
        let t = self.target();
        if !t.options.pregenerate {
            return;
        }
        let Some(card) = t.card.upgrade() else {
            return;
        };
        let Some(turn) = t.queue.try_pregeneration_turn(t.options.lease()) else {
            return;
        };
        let slot = t.slot(&turn);
        // The thread owns the turn: when it ends, however it ends, the slot is released.
        let spawned = std::thread::Builder::new()
            .name("iotsafe-ecdhe-pregen".into())
            .spawn(move || {
                let generated = exchange::generate(&card, &slot);
                // The card first: whoever waits for the background work to end (before dropping
                // the last config and card, say) must not find the card still held here.
                drop(card);
                match generated {
                    Ok(key) => turn.set_ready((slot, key)),
                    Err(e) => tracing::warn!(error = %e, "background ephemeral key generation failed; the next handshake generates its own"),
                }
                drop(turn);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the ephemeral key pre-generation thread");
        }
    }

    /// Waits until no background generation is running (for tests and orderly shutdown).
    /// Returns false on timeout.
    pub fn wait_for_background(&self, timeout: Duration) -> bool {
        self.lock().queue.wait_while_pregenerating(timeout)
    }
}

impl fmt::Debug for CardKxGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.lock();
        f.debug_struct("CardKxGroup")
            .field("group", &NamedGroup::secp256r1)
            .field("card_alive", &(t.card.strong_count() > 0))
            .field("options", &t.options)
            .finish_non_exhaustive()
    }
}

impl SupportedKxGroup for CardKxGroup {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let target = self.target();
        let card = target.card.upgrade().ok_or(KxError::CardGone)?;
        let options = &target.options;
        let turn = target.queue.wait_turn(options.lease());
        let slot = target.slot(&turn);
        let key = match turn.take_ready() {
            // The check that a reset or another generation in the slot has not retired it.
            Some((s, key)) if s == slot && card.ephemeral_is_current(&key) => key,
            ready => {
                if ready.is_some() {
                    tracing::debug!(
                        "pre-generated ephemeral key was retired; generating a fresh one"
                    );
                }
                exchange::generate(&card, &slot)?
            }
        };
        // Without the queue, the turn only kept this generation from racing a pre-generation.
        let turn = if options.queue_for_slot.is_some() {
            Some(turn)
        } else {
            None
        };
        Ok(Box::new(CardKeyExchange {
            pub_key: key.key_pair.point.as_bytes().to_vec(),
            card,
            peer_slot: options.peer_slot.clone(),
            key,
            turn,
        }))
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// One key exchange in progress: the card's ephemeral key of one generation, and (queued) the
/// turn on the slot, released when the exchange completes or is dropped.
pub struct CardKeyExchange {
    card: Arc<Card>,
    peer_slot: ObjectRef,
    key: EphemeralKey,
    pub_key: Vec<u8>,
    turn: Option<Turn<Ready>>,
}

impl CardKeyExchange {
    /// The slot generation this exchange's key belongs to.
    pub fn generation(&self) -> u64 {
        self.key.generation
    }
}

impl fmt::Debug for CardKeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardKeyExchange")
            .field("generation", &self.key.generation)
            .field("slot", &self.key.key_pair.private)
            .field("queued", &self.turn.is_some())
            .finish_non_exhaustive()
    }
}

impl ActiveKeyExchange for CardKeyExchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let queued = self.turn.is_some();
        exchange::agree(&self.card, &self.key, &self.peer_slot, peer_pub_key, queued)
        // Dropping `self` here releases the turn: the next handshake may generate its key.
    }

    fn pub_key(&self) -> &[u8] {
        &self.pub_key
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator_point() -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        p256::AffinePoint::GENERATOR
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    fn is_invalid_share(r: Result<EcPoint, rustls::Error>) -> bool {
        matches!(
            r,
            Err(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::InvalidKeyShare
            ))
        )
    }

    #[test]
    fn accepts_an_uncompressed_point_on_the_curve() {
        let g = generator_point();
        assert_eq!(g.len(), 65);
        assert_eq!(validate_peer_point(&g).unwrap().as_bytes()[..], g[..]);
    }

    #[test]
    fn refuses_wrong_length_compressed_and_off_curve_points() {
        let g = generator_point();
        assert!(is_invalid_share(validate_peer_point(&g[..64])));
        let mut long = g.clone();
        long.push(0);
        assert!(is_invalid_share(validate_peer_point(&long)));
        assert!(is_invalid_share(validate_peer_point(&[])));
        // Compressed form of G (33 bytes) is legal SEC1 but not a TLS 1.3 secp256r1 share.
        let mut compressed = vec![0x02 | (g[64] & 1)];
        compressed.extend_from_slice(&g[1..33]);
        assert!(p256::PublicKey::from_sec1_bytes(&compressed).is_ok());
        assert!(is_invalid_share(validate_peer_point(&compressed)));
        // Hybrid prefix 06/07 and a wrong prefix.
        let mut hybrid = g.clone();
        hybrid[0] = 0x06 | (g[64] & 1);
        assert!(is_invalid_share(validate_peer_point(&hybrid)));
        // Off the curve: flip one bit of Y.
        let mut off = g.clone();
        off[64] ^= 1;
        assert!(is_invalid_share(validate_peer_point(&off)));
        // All-zero X and Y.
        let mut zero = vec![0u8; 65];
        zero[0] = 4;
        assert!(is_invalid_share(validate_peer_point(&zero)));
    }
}
