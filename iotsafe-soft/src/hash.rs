//! SHA-256 as rustls's [`Hash`]: the transcript hash of both cipher suites.
//!
//! SHA-384 is not offered: no suite here uses it (the SHA-384 suite is AES-256-GCM, which the
//! firmware does not need), and in software it costs about 28 KB of Cortex-M code.
//! [`crate::verify`] can check SHA-384 certificate signatures with `sha2` directly, on request.

use alloc::boxed::Box;

use rustls::crypto::hash::{Context, Hash, HashAlgorithm, Output};
use sha2::{Digest, Sha256};

/// SHA-256 (FIPS 180-4).
pub static SHA256: &dyn Hash = &Sha256Hash;

struct Sha256Hash;

impl Hash for Sha256Hash {
    fn start(&self) -> Box<dyn Context> {
        Box::new(Sha256Context(Sha256::new()))
    }

    fn hash(&self, data: &[u8]) -> Output {
        Output::new(&Sha256::digest(data))
    }

    fn output_len(&self) -> usize {
        32
    }

    fn algorithm(&self) -> HashAlgorithm {
        HashAlgorithm::SHA256
    }
}

struct Sha256Context(Sha256);

impl Context for Sha256Context {
    fn fork_finish(&self) -> Output {
        Output::new(&self.0.clone().finalize())
    }

    fn fork(&self) -> Box<dyn Context> {
        Box::new(Self(self.0.clone()))
    }

    fn finish(self: Box<Self>) -> Output {
        Output::new(&self.0.finalize())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}
