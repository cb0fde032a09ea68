//! Card entropy mixed into the TLS random numbers (optional).
//!
//! rustls uses its [`SecureRandom`] for protocol randomness (client/server random, session IDs,
//! tickets, padding); key generation for the card group happens on the card anyway. A device
//! whose software RNG is weak at boot may want the SIM's generator in the mix, so
//! [`CardEntropyRng`] returns `software ⊕ SHA-256(seed ‖ counter ‖ block)`: the software RNG's
//! output XORed with a keystream derived from a 32-byte seed read with GET RANDOM. The result is at
//! least as unpredictable as the better of the two sources; a card failure never weakens it below
//! the software RNG.
//!
//! The seed is read once at construction (one GET RANDOM APDU, before any handshake). With
//! [`Reseed::EveryCalls`] the seed is refreshed (hashed with 32 new card bytes) every `n` calls to
//! `fill`; that GET RANDOM then happens inside a handshake and counts against its APDU budget, so
//! the default is [`Reseed::Never`]. A failed reseed is logged and the old seed kept.

use crate::error::{Error, Result};
use crate::static_pool::{PerCard, StaticPool};
use iotsafe_core::Card;
use rustls::crypto::{GetRandomFailed, SecureRandom};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use zeroize::Zeroizing;

/// When the card seed is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reseed {
    /// Seeded once, at construction (default; no APDU during handshakes).
    #[default]
    Never,
    /// Re-seeded from the card every `n` calls to `fill` (one GET RANDOM APDU each time).
    EveryCalls(u64),
}

const DOMAIN: &[u8] = b"iotsafe-rustls card entropy v1";

/// The software RNG with card entropy mixed in. See the module docs.
pub struct CardEntropyRng {
    state: Mutex<MixState>,
}

pub(crate) struct MixState {
    /// Weak: an RNG rustls holds as `'static` must not keep the card (and its logical channel)
    /// alive; once the card is gone, reseeding is skipped and the current seed kept.
    card: Weak<Card>,
    software: &'static dyn SecureRandom,
    reseed: Reseed,
    seed: Zeroizing<[u8; 32]>,
    counter: u64,
    calls_since_seed: u64,
}

/// The RNGs handed to rustls, one per card (and software RNG and reseed policy) alive.
static RNGS: StaticPool<CardEntropyRng> = StaticPool::new();

impl PerCard for CardEntropyRng {
    type Target = MixState;

    fn serves(&self, card: *const Card) -> bool {
        std::ptr::eq(self.lock().card.as_ptr(), card)
    }

    fn card_gone(&self) -> bool {
        self.lock().card.strong_count() == 0
    }

    fn retarget(&self, target: MixState) {
        *self.lock() = target;
    }
}

impl CardEntropyRng {
    /// Reads a 32-byte seed from the card (GET RANDOM) and mixes it into `software`.
    pub fn new(
        card: Arc<Card>,
        software: &'static dyn SecureRandom,
        reseed: Reseed,
    ) -> Result<Self> {
        let card_bytes = seed_bytes(&card)?;
        Ok(CardEntropyRng {
            state: Mutex::new(MixState::new(&card, software, reseed, &card_bytes)),
        })
    }

    /// The RNG for rustls's `&'static dyn SecureRandom`: the one already serving `card` with
    /// `software` and `reseed` if there is one, with 32 fresh card bytes mixed into its seed
    /// (one GET RANDOM APDU, as [`CardEntropyRng::new`] costs), else a new one. Memory is bounded
    /// by the number of cards alive at once, not by the calls; the card itself is not kept alive.
    pub fn for_card(
        card: Arc<Card>,
        software: &'static dyn SecureRandom,
        reseed: Reseed,
    ) -> Result<&'static Self> {
        // Before the pool's lock, which must not wait for a card.
        let card_bytes = seed_bytes(&card)?;
        let same = |rng: &CardEntropyRng| {
            let state = rng.lock();
            std::ptr::addr_eq(state.software, software) && state.reseed == reseed
        };
        let mut fresh = false;
        let target = |_: &[&'static CardEntropyRng]| {
            fresh = true;
            MixState::new(&card, software, reseed, &card_bytes)
        };
        let rng = RNGS.get(&card, same, target, |state| CardEntropyRng {
            state: Mutex::new(state),
        });
        if !fresh {
            let mut state = rng.lock();
            state.seed = derive_seed(&state.seed, &card_bytes);
        }
        Ok(rng)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MixState> {
        // A seed and counters: plain data.
        iotsafe_core::lock::lock(&self.state)
    }

    /// How many RNGs the pool holds (for the tests of its bound).
    #[cfg(test)]
    fn pooled() -> usize {
        RNGS.len()
    }
}

/// 32 bytes of GET RANDOM for a seed.
fn seed_bytes(card: &Card) -> Result<Zeroizing<Vec<u8>>> {
    card.get_random(32)
        .map_err(|e| Error::card("GET RANDOM for the entropy seed", e))
}

impl MixState {
    fn new(
        card: &Arc<Card>,
        software: &'static dyn SecureRandom,
        reseed: Reseed,
        card_bytes: &[u8],
    ) -> MixState {
        MixState {
            card: Arc::downgrade(card),
            software,
            reseed,
            seed: derive_seed(&[0u8; 32], card_bytes),
            counter: 0,
            calls_since_seed: 0,
        }
    }

    /// With [`Reseed::EveryCalls`], mixes 32 new card bytes into the seed when due.
    fn reseed_if_due(&mut self) {
        let Reseed::EveryCalls(n) = self.reseed else {
            return;
        };
        if n == 0 || self.calls_since_seed < n {
            return;
        }
        self.calls_since_seed = 0;
        let Some(card) = self.card.upgrade() else {
            return;
        };
        match card.get_random(32) {
            Ok(bytes) => self.seed = derive_seed(&self.seed, &bytes),
            Err(e) => {
                tracing::warn!(error = %e, "card GET RANDOM failed; keeping the previous entropy seed");
            }
        }
    }
}

fn derive_seed(old: &[u8; 32], card_bytes: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(b"seed");
    h.update(old);
    h.update(card_bytes);
    Zeroizing::new(h.finalize().into())
}

impl SecureRandom for CardEntropyRng {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        let software = self.lock().software;
        software.fill(buf)?;
        let mut state = self.lock();
        state.calls_since_seed += 1;
        state.reseed_if_due();
        state.counter = state.counter.wrapping_add(1);
        for (block, chunk) in buf.chunks_mut(32).enumerate() {
            let mut h = Sha256::new();
            h.update(DOMAIN);
            h.update(b"stream");
            h.update(&state.seed[..]);
            h.update(state.counter.to_be_bytes());
            h.update((block as u64).to_be_bytes());
            let pad = Zeroizing::new(<[u8; 32]>::from(h.finalize()));
            for (b, p) in chunk.iter_mut().zip(pad.iter()) {
                *b ^= p;
            }
        }
        Ok(())
    }

    fn fips(&self) -> bool {
        false
    }
}

impl fmt::Debug for CardEntropyRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("CardEntropyRng")
            .field("software", &state.software)
            .field("reseed", &state.reseed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotsafe_core::CardConfig;
    use iotsafe_vcard::{CardOptions, InProcessTransport, VirtualCard};

    fn card() -> Arc<Card> {
        let vcard = VirtualCard::with_default_layout(CardOptions::default());
        Arc::new(Card::open(InProcessTransport::new(vcard), CardConfig::default()).unwrap())
    }

    #[test]
    fn one_rng_per_live_card_each_call_mixing_in_fresh_card_bytes() {
        let software = crate::provider::software_provider().secure_random;
        let a = card();
        let first = CardEntropyRng::for_card(a.clone(), software, Reseed::Never).unwrap();
        let seed = *first.lock().seed;
        let before = CardEntropyRng::pooled();
        let apdus = a.stats().apdus;
        for _ in 0..1_000 {
            let again = CardEntropyRng::for_card(a.clone(), software, Reseed::Never).unwrap();
            assert!(std::ptr::eq(again, first));
        }
        assert_eq!(a.stats().apdus - apdus, 1_000, "one GET RANDOM per call");
        assert_ne!(*first.lock().seed, seed, "the new bytes went into the seed");
        // Cards dropped one after another: their RNG is handed on, not leaked anew.
        for _ in 0..100 {
            let b = card();
            let rng = CardEntropyRng::for_card(b.clone(), software, Reseed::Never).unwrap();
            assert!(!std::ptr::eq(rng, first));
            assert!(rng.serves(Arc::as_ptr(&b)));
        }
        assert!(CardEntropyRng::pooled() <= before + 1);
        let mut out = [0u8; 48];
        first.fill(&mut out).unwrap();
        assert_ne!(out, [0u8; 48]);
    }
}
