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
    /// Weak: a leaked RNG must not keep the card (and its logical channel) alive; once the card
    /// is gone, reseeding is skipped and the current seed kept.
    card: Weak<Card>,
    software: &'static dyn SecureRandom,
    reseed: Reseed,
    state: Mutex<MixState>,
}

struct MixState {
    seed: Zeroizing<[u8; 32]>,
    counter: u64,
    calls_since_seed: u64,
}

impl CardEntropyRng {
    /// Reads a 32-byte seed from the card (GET RANDOM) and mixes it into `software`.
    pub fn new(
        card: Arc<Card>,
        software: &'static dyn SecureRandom,
        reseed: Reseed,
    ) -> Result<Self> {
        let card_bytes = card
            .get_random(32)
            .map_err(|e| Error::card("GET RANDOM for the entropy seed", e))?;
        let seed = derive_seed(&[0u8; 32], &card_bytes);
        Ok(CardEntropyRng {
            card: Arc::downgrade(&card),
            software,
            reseed,
            state: Mutex::new(MixState {
                seed,
                counter: 0,
                calls_since_seed: 0,
            }),
        })
    }

    /// [`CardEntropyRng::new`], leaked for rustls's `&'static dyn SecureRandom` (about a hundred
    /// bytes per call; the card itself is not kept alive).
    pub fn leak(
        card: Arc<Card>,
        software: &'static dyn SecureRandom,
        reseed: Reseed,
    ) -> Result<&'static Self> {
        Ok(Box::leak(Box::new(Self::new(card, software, reseed)?)))
    }

    fn reseed_if_due(&self, state: &mut MixState) {
        let Reseed::EveryCalls(n) = self.reseed else {
            return;
        };
        if n == 0 || state.calls_since_seed < n {
            return;
        }
        let Some(card) = self.card.upgrade() else {
            state.calls_since_seed = 0;
            return;
        };
        match card.get_random(32) {
            Ok(bytes) => {
                state.seed = derive_seed(&state.seed, &bytes);
                state.calls_since_seed = 0;
            }
            Err(e) => {
                tracing::warn!(error = %e, "card GET RANDOM failed; keeping the previous entropy seed");
                state.calls_since_seed = 0;
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
        self.software.fill(buf)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.calls_since_seed += 1;
        self.reseed_if_due(&mut state);
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
        f.debug_struct("CardEntropyRng")
            .field("software", &self.software)
            .field("reseed", &self.reseed)
            .finish_non_exhaustive()
    }
}
