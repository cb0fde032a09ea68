//! ECDHE on the card: a rustls [`SupportedKxGroup`] for secp256r1 whose ephemeral key pair lives in
//! the card's volatile key slot and whose shared secret is computed by the card.
//!
//! Per TLS 1.3 handshake (client side): [`SupportedKxGroup::start`] runs inside
//! `ClientConnection::new` and makes the key pair (GENERATE KEY PAIR, one APDU) unless a key was
//! generated ahead of time; [`ActiveKeyExchange::complete`] validates the server's point, then
//! PUT PUBLIC KEY (Init, Update, close) and COMPUTE DH (one APDU) run under one card lock.
//!
//! # One slot, many handshakes
//! The card has a single ephemeral slot. Every key generation bumps the slot's generation
//! counter in the card session; a `complete()` whose key was replaced in the meantime (two
//! handshakes interleaved on the same card) fails cleanly with an error naming both generations
//! instead of computing a secret with another handshake's key. Within one [`CardKxGroup`],
//! generations never race: starts and background pre-generation are serialized by the group.
//! With [`KxOptions::queue_for_slot`], handshakes sharing the card take turns on the slot
//! instead: a `start()` waits (bounded) until the exchanges in flight have completed, so
//! concurrent connections all succeed.
//!
//! # Pre-generation
//! With [`KxOptions::pregenerate`], the group generates the next key in a background
//! `std::thread` at construction and after each key exchange ends (when no other exchange of
//! this group is in flight), so the next `start()` returns without touching the card. A
//! pre-generated key is used only if its generation is still the slot's current one; otherwise a
//! fresh key is generated. Used through [`crate::IotSafeTls`], the background generation starts
//! only after the handshake's CertificateVerify was signed
//! ([`CardKxGroup::defer_pregeneration_to_signature`]): started right after the DH it would hold
//! the card while the signature waits (measured: no gain at all, `docs/performance.md`). So the
//! slowest card operation comes off the next handshake's critical path.
//!
//! # `'static`
//! rustls wants `&'static dyn SupportedKxGroup`. [`CardKxGroup::leak`] boxes and leaks the group:
//! call it once per card at start-up (a few hundred bytes, never freed), not per connection.

use crate::error::{card_failure, Error};
use iotsafe_core::objects::functions;
use iotsafe_core::{Card, EcPoint, EphemeralKey, ObjectKind, ObjectRef};
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::{NamedGroup, PeerMisbehaved};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where the key exchange keeps its keys on the card, and whether keys are made ahead of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KxOptions {
    /// Generate the next ephemeral key in a background thread (see the module docs). Off by default.
    pub pregenerate: bool,
    /// The volatile key pair slot (default ID `04`, label `ecdhe`).
    pub ephemeral_slot: ObjectRef,
    /// The public key slot the peer's point is written to (default ID `05`, label `peer`).
    pub peer_slot: ObjectRef,
    /// How long a `start()` waits for this group's key exchanges already in flight to end
    /// before it generates a key into the (single) ephemeral slot. `None`, the default: never
    /// wait, and a handshake whose key another handshake replaced fails cleanly (see the module
    /// docs). `Some(limit)`: concurrent handshakes on one card take turns, so that they all
    /// succeed; past `limit` the waiting one goes ahead anyway, so that a handshake stuck on a
    /// silent peer cannot hold up the others for longer (the stuck one then fails cleanly).
    ///
    /// Waiting blocks the thread calling `ClientConnection::new`. Use it when connections run on
    /// their own OS threads or on a multi-thread tokio runtime. On a single thread that drives
    /// several connections (a `current_thread` runtime), the waiting `start()` would keep the
    /// first handshake from progressing until `limit` passes: leave it `None` there.
    pub queue_for_slot: Option<Duration>,
}

impl Default for KxOptions {
    fn default() -> Self {
        KxOptions {
            pregenerate: false,
            ephemeral_slot: ObjectRef::id([0x04]),
            peer_slot: ObjectRef::id([0x05]),
            queue_for_slot: None,
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

    /// These options, with concurrent handshakes taking turns on the ephemeral slot for at most
    /// `limit` each (see [`KxOptions::queue_for_slot`]).
    pub fn queued(self, limit: Duration) -> Self {
        KxOptions {
            queue_for_slot: Some(limit),
            ..self
        }
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
    Ok(())
}

/// secp256r1 key exchange on an IoT SAFE card. See the module docs.
pub struct CardKxGroup {
    shared: Arc<Shared>,
}

struct Shared {
    card: Arc<Card>,
    options: KxOptions,
    /// Pre-generation waits for the handshake's signature (see [`CardKxGroup::after_signature`]).
    defer_to_signature: std::sync::atomic::AtomicBool,
    state: Mutex<SlotState>,
    changed: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// A key generated ahead of time, not yet handed out.
    ready: Option<EphemeralKey>,
    /// A background generation is running.
    generating: bool,
    /// Key exchanges started and not yet completed or dropped.
    in_flight: usize,
    /// A pre-generation is due once the current handshake's signature is done.
    deferred: bool,
}

impl CardKxGroup {
    /// A key exchange group on `card`. With `options.pregenerate`, the first key is generated in
    /// the background right away.
    pub fn new(card: Arc<Card>, options: KxOptions) -> Self {
        let group = CardKxGroup {
            shared: Arc::new(Shared {
                card,
                options,
                defer_to_signature: std::sync::atomic::AtomicBool::new(false),
                state: Mutex::new(SlotState::default()),
                changed: Condvar::new(),
            }),
        };
        if group.shared.options.pregenerate {
            Shared::pregenerate_in_background(&group.shared);
        }
        group
    }

    /// Makes background pre-generation wait for the handshake's CertificateVerify signature
    /// instead of starting right after the DH.
    ///
    /// Why: rustls runs the DH at ServerHello and asks for the client signature about a
    /// millisecond later. A key generation started in between holds the card (≈250 ms on a SIM)
    /// while the signature waits behind it, so the handshake gains nothing. Deferred, the next key
    /// is made while the device is idle. [`crate::IotSafeTls`] wires this to its card signer;
    /// a handshake that signs nothing (no CertificateRequest, resumption) leaves the next one to
    /// generate its own key, as without pre-generation.
    pub fn defer_pregeneration_to_signature(&self) {
        self.shared
            .defer_to_signature
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The handshake's signature is done and the card is free: start a deferred pre-generation.
    pub fn after_signature(&self) {
        let due = {
            let mut state = self.shared.lock();
            std::mem::take(&mut state.deferred)
        };
        if due {
            Shared::pregenerate_in_background(&self.shared);
        }
    }

    /// [`CardKxGroup::new`], boxed and leaked for rustls's `&'static dyn SupportedKxGroup`. Call
    /// once per card and keep the reference; every call leaks one group.
    pub fn leak(card: Arc<Card>, options: KxOptions) -> &'static CardKxGroup {
        Box::leak(Box::new(CardKxGroup::new(card, options)))
    }

    /// The options.
    pub fn options(&self) -> &KxOptions {
        &self.shared.options
    }

    /// The card session.
    pub fn card(&self) -> &Arc<Card> {
        &self.shared.card
    }

    /// Whether a pre-generated key is waiting for the next `start()`.
    pub fn has_pregenerated_key(&self) -> bool {
        self.shared.lock().ready.is_some()
    }

    /// Generates the next key now, on this thread (e.g. at start-up, before the first connect),
    /// unless one is ready or a key exchange is in flight.
    pub fn pregenerate_now(&self) -> Result<(), rustls::Error> {
        self.shared.pregenerate()
    }

    /// Waits until no background generation is running (for tests and orderly shutdown).
    /// Returns false on timeout.
    pub fn wait_for_background(&self, timeout: Duration) -> bool {
        let state = self.shared.lock();
        self.shared.wait_while(state, timeout, |s| s.generating).1
    }
}

impl fmt::Debug for CardKxGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardKxGroup")
            .field("group", &NamedGroup::secp256r1)
            .field("ephemeral_slot", &self.shared.options.ephemeral_slot)
            .field("peer_slot", &self.shared.options.peer_slot)
            .field("pregenerate", &self.shared.options.pregenerate)
            .field("queue_for_slot", &self.shared.options.queue_for_slot)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // The state is a few counters and an optional public key: still consistent after a
        // panic elsewhere, so recover it rather than failing every later handshake.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn generate(&self) -> Result<EphemeralKey, rustls::Error> {
        let slot = &self.options.ephemeral_slot;
        let key = self
            .card
            .generate_ephemeral(slot)
            .map_err(|e| card_failure(format_args!("GENERATE KEY PAIR in {slot}"), &e))?;
        // A card answering a point off the curve would only fail later, at the peer.
        if p256::PublicKey::from_sec1_bytes(key.key_pair.point.as_bytes()).is_err() {
            return Err(rustls::Error::General(format!(
                "IoT SAFE card, GENERATE KEY PAIR in {slot}: the card returned a point not on P-256"
            )));
        }
        Ok(key)
    }

    /// Hands out a key for a new exchange: the pre-generated one if still current, else a fresh one.
    fn begin(&self) -> Result<EphemeralKey, rustls::Error> {
        let mut state = self.lock();
        if let Some(limit) = self.options.queue_for_slot {
            state = self.wait_for_turn(state, limit);
        }
        // A new handshake replaces any pre-generation still waiting for the previous signature.
        state.deferred = false;
        while state.generating {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(key) = state.ready.take() {
            if key.generation == self.card.ephemeral_generation() {
                state.in_flight += 1;
                return Ok(key);
            }
            tracing::debug!(
                generation = key.generation,
                "pre-generated ephemeral key was replaced on the card; generating a fresh one"
            );
        }
        // Generating while holding the state lock keeps a background generation from replacing
        // this key between here and complete().
        let key = self.generate()?;
        state.in_flight += 1;
        Ok(key)
    }

    /// Waits on `changed` while `busy` holds, for at most `limit`. Returns the state and whether
    /// `busy` ended (`false`: the limit passed first).
    fn wait_while<'a>(
        &'a self,
        mut state: MutexGuard<'a, SlotState>,
        limit: Duration,
        busy: impl Fn(&SlotState) -> bool,
    ) -> (MutexGuard<'a, SlotState>, bool) {
        let deadline = Instant::now() + limit;
        while busy(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (state, false);
            }
            state = match self.changed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        (state, true)
    }

    /// Waits until no exchange of this group is in flight, or `limit` passed since the wait
    /// began (then goes ahead: the exchange in flight is taken to be stuck).
    fn wait_for_turn<'a>(
        &'a self,
        state: MutexGuard<'a, SlotState>,
        limit: Duration,
    ) -> MutexGuard<'a, SlotState> {
        let (state, turn) = self.wait_while(state, limit, |s| s.in_flight > 0);
        if !turn {
            tracing::warn!(
                in_flight = state.in_flight,
                ?limit,
                "a key exchange held the ephemeral slot too long; generating anyway"
            );
        }
        state
    }

    /// An exchange completed or was dropped.
    fn end(self: &Arc<Self>) {
        {
            let mut state = self.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        // Wake a start() queued for the slot.
        self.changed.notify_all();
        if self.options.pregenerate {
            if self
                .defer_to_signature
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                self.lock().deferred = true;
            } else {
                Shared::pregenerate_in_background(self);
            }
        }
    }

    /// Claims the right to generate ahead of time: only when no exchange is in flight (its key
    /// would be replaced), no key is waiting and no generation is running. Marking `generating`
    /// before any thread starts lets `begin()` and `wait_for_background` see it at once.
    fn claim_pregeneration(&self) -> bool {
        let mut state = self.lock();
        if state.in_flight > 0 || state.ready.is_some() || state.generating {
            return false;
        }
        state.generating = true;
        true
    }

    fn pregenerate_in_background(shared: &Arc<Self>) {
        if !shared.claim_pregeneration() {
            return;
        }
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("iotsafe-ecdhe-pregen".into())
            .spawn(move || {
                if let Err(e) = worker.finish_pregeneration() {
                    tracing::warn!(error = %e, "background ephemeral key generation failed; the next handshake generates its own");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the ephemeral key pre-generation thread");
            shared.lock().generating = false;
            shared.changed.notify_all();
        }
    }

    fn pregenerate(&self) -> Result<(), rustls::Error> {
        if !self.claim_pregeneration() {
            return Ok(());
        }
        self.finish_pregeneration()
    }

    /// Generates the claimed key and publishes it.
    fn finish_pregeneration(&self) -> Result<(), rustls::Error> {
        let result = self.generate();
        let mut state = self.lock();
        state.generating = false;
        let outcome = match result {
            Ok(key) => {
                state.ready = Some(key);
                Ok(())
            }
            Err(e) => Err(e),
        };
        drop(state);
        self.changed.notify_all();
        outcome
    }
}

impl SupportedKxGroup for CardKxGroup {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let key = self.shared.begin()?;
        Ok(Box::new(CardKeyExchange {
            shared: Arc::clone(&self.shared),
            pub_key: key.key_pair.point.as_bytes().to_vec(),
            key,
        }))
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// One key exchange in progress: the card's ephemeral key of one generation.
pub struct CardKeyExchange {
    shared: Arc<Shared>,
    key: EphemeralKey,
    pub_key: Vec<u8>,
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
            .finish_non_exhaustive()
    }
}

impl Drop for CardKeyExchange {
    fn drop(&mut self) {
        // Completed, failed, or abandoned after a HelloRetryRequest: the slot is free again.
        self.shared.end();
    }
}

impl ActiveKeyExchange for CardKeyExchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer = validate_peer_point(peer_pub_key)?;
        let secret = self
            .shared
            .card
            .ephemeral_agreement(&self.key, &self.shared.options.peer_slot, &peer)
            .map_err(|e| {
                card_failure(
                    format_args!(
                        "ECDHE (PUT PUBLIC KEY into {} + COMPUTE DH)",
                        self.shared.options.peer_slot
                    ),
                    &e,
                )
            })?;
        if secret.len() != 32 {
            return Err(rustls::Error::General(format!(
                "IoT SAFE card, COMPUTE DH: expected a 32-byte shared secret, got {} bytes",
                secret.len()
            )));
        }
        // `secret` is Zeroizing and SharedSecret zeroizes its own copy on drop.
        Ok(SharedSecret::from(&secret[..]))
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
