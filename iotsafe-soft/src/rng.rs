//! The random numbers rustls asks for: a ChaCha20 DRBG seeded by the caller.
//!
//! A microcontroller has no operating system to ask for entropy. The firmware takes 32 bytes
//! from the SIM (IoT.05 GET RANDOM) at boot and seeds this generator with them; from then on it
//! is ChaCha20's keystream under that seed (`rand_chacha`). After every request the generator
//! draws a new key from its own output and forgets the old one ("fast key erasure"), so what a
//! later memory dump shows says nothing about numbers already handed out.
//!
//! In a TLS 1.3 client whose ECDHE and signature are on the SIM, rustls draws from here mostly
//! public values (the ClientHello random, the legacy session id). The seed must still be secret
//! and fresh on every boot: a repeated seed repeats every number, and a known one predicts them.
//!
//! The state sits behind a spin lock (no OS, no threads needed). Do not use it from an interrupt
//! handler that may preempt a holder of the lock: on one core that spins forever.

use core::fmt;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rustls::crypto::{GetRandomFailed, SecureRandom};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// The generator [`crate::provider`] seeds and hands to rustls.
pub static DRBG: ChaChaDrbg = ChaChaDrbg::unseeded();

/// A ChaCha20 DRBG behind a spin lock. Unseeded, it refuses every request.
pub struct ChaChaDrbg {
    state: spin::Mutex<Option<ChaCha20Rng>>,
}

impl ChaChaDrbg {
    /// A generator that fails ([`GetRandomFailed`]) until [`ChaChaDrbg::seed`] is called.
    /// `const`, so that it can be a `static` (rustls takes a `&'static dyn SecureRandom`).
    pub const fn unseeded() -> Self {
        Self {
            state: spin::Mutex::new(None),
        }
    }

    /// Seeds the generator with 32 secret bytes, fresh on every boot (the SIM's GET RANDOM).
    ///
    /// The first seed becomes the ChaCha20 key. A later one is mixed in rather than replacing
    /// the state: the new key is SHA-256 of 32 bytes of the current stream and the new seed, so
    /// seeding twice with the same bytes never replays an earlier stream. The caller's copy of
    /// `seed` is its own to wipe; this function wipes the copies it makes.
    pub fn seed(&self, mut seed: [u8; 32]) {
        let mut state = self.state.lock();
        let mut key = match state.as_mut() {
            None => seed,
            Some(rng) => {
                let mut current = [0u8; 32];
                rng.fill_bytes(&mut current);
                let mixed: [u8; 32] = Sha256::new()
                    .chain_update(current)
                    .chain_update(seed)
                    .finalize()
                    .into();
                current.zeroize();
                mixed
            }
        };
        *state = Some(ChaCha20Rng::from_seed(key));
        key.zeroize();
        seed.zeroize();
    }

    /// Whether [`ChaChaDrbg::seed`] has been called.
    pub fn is_seeded(&self) -> bool {
        self.state.lock().is_some()
    }
}

impl SecureRandom for ChaChaDrbg {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        let mut state = self.state.lock();
        let rng = state.as_mut().ok_or(GetRandomFailed)?;
        rng.fill_bytes(buf);
        // Fast key erasure: the next key comes from the stream, the current one is dropped.
        let mut next = [0u8; 32];
        rng.fill_bytes(&mut next);
        *rng = ChaCha20Rng::from_seed(next);
        next.zeroize();
        Ok(())
    }
}

impl fmt::Debug for ChaChaDrbg {
    /// Shows no state (and takes no lock).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaChaDrbg").finish_non_exhaustive()
    }
}
