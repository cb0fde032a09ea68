//! The card's key-exchange group with the OS (feature `std`): one `'static` group per card from
//! the pool, its options, the slots it takes turns on, and `start()` wherever rustls calls it
//! (see the module docs of [`crate::kx`]).

use super::{pool, turns, CardKeyExchange};
use crate::error::{card_failure, Error, KxError};
use iotsafe_core::objects::{functions, key_type};
use iotsafe_core::slots::{SlotStats, SlotTurn};
use iotsafe_core::{Card, ObjectKind, ObjectRef};
use rustls::crypto::{ActiveKeyExchange, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::NamedGroup;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long one key exchange may hold an ephemeral slot while others wait, by default: far
/// longer than a handshake's card work (about 0.6 s on a typical SIM) plus a slow cellular round
/// trip, short enough that a handshake stuck on a silent peer does not hold the others for long.
pub const DEFAULT_SLOT_LEASE: Duration = iotsafe_core::slots::DEFAULT_LEASE;

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
    /// docs). `None`: nobody waits, and a handshake whose slot another handshake took fails with
    /// [`KxError::TakenOver`].
    pub queue_for_slot: Option<Duration>,
    /// On a thread that must not wait for a slot (a `current_thread` tokio runtime driving
    /// rustls directly, see [`crate::runtime`]), a handshake that finds every ephemeral slot in
    /// use makes its ECDHE key pair on the host, for that handshake only (the signature stays on
    /// the card; the shared secret reaches the host either way). On by default, so that every
    /// connection succeeds; off, such a handshake fails with [`KxError::SlotBusy`]. Never used
    /// by [`crate::CardConnector`], which waits without blocking.
    pub host_ecdhe_when_busy: bool,
}

impl Default for KxOptions {
    fn default() -> Self {
        KxOptions {
            pregenerate: false,
            ephemeral_slot: ObjectRef::id([0x04]),
            every_ephemeral_slot: true,
            peer_slot: ObjectRef::id([0x05]),
            queue_for_slot: Some(DEFAULT_SLOT_LEASE),
            host_ecdhe_when_busy: true,
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

    /// These options without the slot queue: concurrent handshakes on one card take each other's
    /// slot and fail with [`KxError::TakenOver`] (see [`KxOptions::queue_for_slot`]).
    pub fn unqueued(self) -> Self {
        KxOptions {
            queue_for_slot: None,
            ..self
        }
    }

    /// How long a turn lasts before the next in line may overtake it. Without the queue a turn
    /// covers only a key generation, so the default lease is plenty.
    fn lease(&self) -> Duration {
        self.queue_for_slot.unwrap_or(DEFAULT_SLOT_LEASE)
    }
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
/// list order. Each is named as the card lists it (its ID when it has one), so that every user of
/// the card names a slot the same in the card's queue. Costs no APDU when the object list is
/// already cached.
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
    let mut slots = vec![ephemeral.reference().unwrap_or_else(|| slot.clone())];
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

/// What a card's key exchanges saw in this process: the card's slot queue (shared by every group
/// on the card), and this group's handshakes that made their key on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ephemeral slots the turns are spread over.
    pub slots: usize,
    /// Turns granted to this process (key exchanges plus pre-generations).
    pub turns: u64,
    /// Turns that had to wait.
    pub waited: u64,
    /// The longest wait for a turn.
    pub max_wait: Duration,
    /// Holders overtaken because they kept their slot longer than the lease.
    pub overtaken: u64,
    /// Handshakes of this group that made their ECDHE key on the host because every slot was in
    /// use where waiting was not possible ([`KxOptions::host_ecdhe_when_busy`]).
    pub host_ecdhe: u64,
}

/// secp256r1 key exchange on an IoT SAFE card, one per card. See the module docs.
pub struct CardKxGroup {
    pub(super) target: Mutex<Target>,
}

/// The card a group serves, its slots, and this group's own counters.
#[derive(Clone)]
pub(crate) struct Target {
    pub(super) card: Weak<Card>,
    pub(super) options: KxOptions,
    /// The ephemeral slots, in order of preference.
    pub(super) slots: Arc<[ObjectRef]>,
    /// Handshakes that made their key on the host.
    pub(super) host_ecdhe: Arc<AtomicU64>,
    /// Background generations running, for [`CardKxGroup::wait_for_background`].
    pub(super) background: Arc<(Mutex<usize>, Condvar)>,
}

impl Target {
    pub(crate) fn new(card: &Arc<Card>, options: KxOptions, slots: Arc<[ObjectRef]>) -> Target {
        Target {
            card: Arc::downgrade(card),
            options,
            slots,
            host_ecdhe: Arc::default(),
            background: Arc::default(),
        }
    }
}

/// The group's target and counters are plain data (see `iotsafe_core::lock`).
pub(crate) use iotsafe_core::lock::lock;

impl CardKxGroup {
    /// The key exchange group of `card` with `options`, for rustls's `&'static dyn
    /// SupportedKxGroup`: the pool's group for this card and these options if there is one,
    /// else a group whose card was dropped, re-targeted, else a new one (leaked, a few hundred
    /// bytes). Memory is bounded by the number of cards alive at once, not by the calls. Every
    /// group on a card shares the card's slot queue, whatever its options.
    ///
    /// The group holds only a `Weak<Card>`: keep the card alive as long as a config uses the
    /// group ([`crate::IotSafeTls`] configs do, through the card signer). A start() after the
    /// card was dropped fails with [`KxError::CardGone`].
    pub fn for_card(card: &Arc<Card>, options: KxOptions) -> &'static CardKxGroup {
        pool::group_for(card, options)
    }

    /// The card key exchange group among a configuration's groups, if it has one.
    pub fn of_config(config: &rustls::ClientConfig) -> Option<&'static CardKxGroup> {
        config
            .crypto_provider()
            .kx_groups
            .iter()
            .find_map(|g| pool::find(*g))
    }

    fn target(&self) -> Target {
        lock(&self.target).clone()
    }

    /// The options.
    pub fn options(&self) -> KxOptions {
        lock(&self.target).options.clone()
    }

    /// The card session, while it is alive.
    pub fn card(&self) -> Option<Arc<Card>> {
        lock(&self.target).card.upgrade()
    }

    /// The card's ephemeral slots this group spreads key exchanges over (see
    /// [`KxOptions::every_ephemeral_slot`]).
    pub fn slots(&self) -> Vec<ObjectRef> {
        lock(&self.target).slots.to_vec()
    }

    /// Whether a key made ahead of time (by any group on this card, in this process) waits for
    /// the next `start()`.
    pub fn has_pregenerated_key(&self) -> bool {
        self.card().is_some_and(|c| c.slots().has_ready_key())
    }

    /// What the card's slot queue saw in this process, and this group's host-side keys.
    pub fn queue_stats(&self) -> QueueStats {
        let t = self.target();
        let SlotStats {
            turns,
            waited,
            max_wait,
            overtaken,
            ..
        } = t
            .card
            .upgrade()
            .map(|c| c.slots().stats())
            .unwrap_or_default();
        QueueStats {
            slots: t.slots.len(),
            turns,
            waited,
            max_wait,
            overtaken,
            host_ecdhe: t.host_ecdhe.load(Ordering::Relaxed),
        }
    }

    /// Waits (without blocking a thread) for a turn on one of this group's slots, for the async
    /// connector: the card, and the turn, or `None` with the card's error.
    #[cfg(feature = "tokio")]
    pub(crate) async fn turn_async(&self) -> Result<(Arc<Card>, SlotTurn), rustls::Error> {
        let t = self.target();
        let card = t.card.upgrade().ok_or(KxError::CardGone)?;
        let step = "waiting for a turn on the ephemeral key slots";
        let lease = t.options.lease();
        let mut waiting = card
            .slots()
            .request(&t.slots, lease)
            .map_err(|e| card_failure(step, e))?;
        loop {
            if let Some(turn) = waiting.try_take().map_err(|e| card_failure(step, e))? {
                return Ok((card, turn));
            }
            match waiting.recheck_in() {
                Some(d) => drop(tokio::time::timeout(d, waiting.changed()).await),
                None => waiting.changed().await,
            }
        }
    }

    /// Generates the next key now, on this thread (e.g. at start-up, before the first connect),
    /// unless one is ready or the slots are in use or waited for.
    pub fn pregenerate_now(&self) -> Result<(), rustls::Error> {
        let t = self.target();
        let card = t.card.upgrade().ok_or(KxError::CardGone)?;
        let idle = card.slots().idle_turn(&t.slots, t.options.lease());
        let step = "taking a turn on the ephemeral key slots";
        if let Some(turn) = idle.map_err(|e| card_failure(step, e))? {
            make_ahead(&card, turn)?;
        }
        Ok(())
    }

    /// With [`KxOptions::pregenerate`]: generates the next key in a background thread if the
    /// slots are idle and no key is ready (see the module docs). Call it when the card is free,
    /// e.g. after a signature; [`crate::IotSafeTls`] does.
    pub fn pregenerate_in_background(&self) {
        let t = self.target();
        if !t.options.pregenerate {
            return;
        }
        let Some(card) = t.card.upgrade() else {
            return;
        };
        let turn = match card.slots().idle_turn(&t.slots, t.options.lease()) {
            Ok(Some(turn)) => turn,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "no turn for a background ephemeral key generation");
                return;
            }
        };
        let background = Arc::clone(&t.background);
        *lock(&background.0) += 1;
        // The thread owns the turn: when it ends, however it ends, the slot is released.
        let spawned = std::thread::Builder::new()
            .name("iotsafe-ecdhe-pregen".into())
            .spawn({
                let background = Arc::clone(&background);
                move || {
                    if let Err(e) = make_ahead(&card, turn) {
                        tracing::warn!(error = %e, "background ephemeral key generation failed; the next handshake generates its own");
                    }
                    // The card first: whoever waits for the background work to end (before
                    // dropping the last config and card, say) must not find it still held here.
                    drop(card);
                    *lock(&background.0) -= 1;
                    background.1.notify_all();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the ephemeral key pre-generation thread");
            *lock(&background.0) -= 1;
        }
    }

    /// Waits until no background generation of this group is running (for tests and orderly
    /// shutdown). Returns false on timeout.
    pub fn wait_for_background(&self, timeout: Duration) -> bool {
        let background = Arc::clone(&self.target().background);
        let deadline = Instant::now() + timeout;
        let mut running = lock(&background.0);
        while *running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            running = iotsafe_core::lock::wait_timeout(&background.1, running, left);
        }
        true
    }
}

/// Generates a key in `turn` and leaves it for the next turn on its slot.
fn make_ahead(card: &Card, turn: SlotTurn) -> Result<(), rustls::Error> {
    let key = card
        .generate_ephemeral_in(&turn)
        .map_err(|e| card_failure(format_args!("GENERATE KEY PAIR in {}", turn.slot()), e))?;
    turn.keep_ready(key);
    Ok(())
}

impl fmt::Debug for CardKxGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = lock(&self.target);
        f.debug_struct("CardKxGroup")
            .field("group", &NamedGroup::secp256r1)
            .field("card_alive", &(t.card.strong_count() > 0))
            .field("options", &t.options)
            .finish_non_exhaustive()
    }
}

impl SupportedKxGroup for CardKxGroup {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let t = self.target();
        let card = t.card.upgrade().ok_or(KxError::CardGone)?;
        let step = "taking a turn on the ephemeral key slots";
        let taken = turns::for_start(self, &card, &t.slots, &t.options)
            .map_err(|e| card_failure(step, e))?;
        let mut turn = match taken {
            Some(turn) => turn,
            None if t.options.host_ecdhe_when_busy => {
                t.host_ecdhe.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("every ephemeral slot is in use and this thread must not wait; this handshake's ECDHE is on the host");
                return crate::provider::host_secp256r1().start();
            }
            None => return Err(KxError::SlotBusy.into()),
        };
        let key = crate::runtime::card_work(|| turns::key_for(&card, &mut turn))?;
        // Without the queue the turn only covered the generation: the agreement then checks that
        // nobody took the slot since.
        let turn = t.options.queue_for_slot.is_some().then_some(turn);
        Ok(Box::new(CardKeyExchange::new(
            card,
            t.options.peer_slot.clone(),
            key,
            turn,
        )))
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}
