//! The rustls [`CryptoProvider`] with the card inside: the card key-exchange group, plus the
//! software backend (ring by default, aws-lc-rs by feature) for AEAD, HKDF, hashing, signature
//! verification and the RNG.
//!
//! # Backend choice
//! Feature `ring` (default) uses ring; feature `aws-lc-rs` uses aws-lc-rs. When **both** are on
//! (feature unification, `cargo test --all-features`), aws-lc-rs is used: the choice is made at
//! compile time by this crate, never by rustls's process-wide default, so nothing panics. Configs
//! are always made with `builder_with_provider`, never `ClientConfig::builder()`.
//!
//! # Cipher suites and versions
//! TLS 1.3: `TLS13_AES_128_GCM_SHA256`, `TLS13_AES_256_GCM_SHA384`, `TLS13_CHACHA20_POLY1305_SHA256`.
//! With feature `tls12`, the ECDHE-ECDSA suites of TLS 1.2 follow (AES-128-GCM, AES-256-GCM,
//! ChaCha20-Poly1305).
//!
//! # Where ECDHE happens
//! [`EcdheOn::Card`] (default): the only key-exchange group is the card's secp256r1 group.
//! [`EcdheOn::Host`]: for cards with no usable ephemeral slot (no volatile P-256 key with key
//! generation and key agreement), the software backend's X25519 and secp256r1 do the key exchange;
//! the card still signs. Forward secrecy is then as strong as the host's RNG and memory, which is
//! the usual trade-off of software TLS.

use crate::kx::CardKxGroup;
use rustls::crypto::{CryptoProvider, SecureRandom, SupportedKxGroup};
use rustls::SupportedCipherSuite;

#[cfg(feature = "aws-lc-rs")]
use rustls::crypto::aws_lc_rs as backend;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use rustls::crypto::ring as backend;

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("iotsafe-rustls needs feature `ring` (default) or `aws-lc-rs`");

/// Which software backend this build uses: `"aws-lc-rs"` or `"ring"`.
pub const BACKEND: &str = if cfg!(feature = "aws-lc-rs") {
    "aws-lc-rs"
} else {
    "ring"
};

/// Where the ephemeral key exchange runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EcdheOn {
    /// On the card: key generation and DH in the card's ephemeral slot (default).
    #[default]
    Card,
    /// On the host, with the software backend (cards without a usable ephemeral slot).
    Host,
}

/// The software backend's provider, unchanged (ring or aws-lc-rs, see the module docs).
pub fn software_provider() -> CryptoProvider {
    backend::default_provider()
}

/// The cipher suites of the card provider, TLS 1.3 first.
pub fn cipher_suites() -> Vec<SupportedCipherSuite> {
    #[allow(unused_mut)]
    let mut suites = vec![
        backend::cipher_suite::TLS13_AES_128_GCM_SHA256,
        backend::cipher_suite::TLS13_AES_256_GCM_SHA384,
        backend::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    #[cfg(feature = "tls12")]
    suites.extend([
        backend::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        backend::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        backend::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]);
    suites
}

/// The host's own secp256r1 group (for a handshake that cannot use the card's slots, see
/// [`crate::KxOptions::host_ecdhe_when_busy`]).
pub(crate) fn host_secp256r1() -> &'static dyn SupportedKxGroup {
    backend::kx_group::SECP256R1
}

/// The software key-exchange groups used with [`EcdheOn::Host`]: X25519, then secp256r1.
pub fn host_kx_groups() -> Vec<&'static dyn SupportedKxGroup> {
    vec![backend::kx_group::X25519, backend::kx_group::SECP256R1]
}

/// A provider whose only key-exchange group is the card's: [`CardProvider::card_ecdhe`]`(kx).build()`.
///
/// Lower level: [`IotSafeTls`](crate::IotSafeTls) makes this provider (and the configs around it)
/// for you; use this only to assemble a rustls configuration by hand.
pub fn card_crypto_provider(kx: &'static CardKxGroup) -> CryptoProvider {
    CardProvider::card_ecdhe(kx).build()
}

/// Assembles a [`CryptoProvider`] around the card.
///
/// Lower level: [`IotSafeTls`](crate::IotSafeTls) builds one with the right groups for its
/// [`EcdheOn`] choice; use this to change the cipher suites, the groups or the RNG of a
/// configuration you assemble yourself.
#[derive(Debug, Clone)]
pub struct CardProvider {
    kx_groups: Vec<&'static dyn SupportedKxGroup>,
    cipher_suites: Vec<SupportedCipherSuite>,
    secure_random: Option<&'static dyn SecureRandom>,
}

impl CardProvider {
    /// ECDHE on the card: `kx` is the only group (add more with [`Self::append_kx_group`]).
    pub fn card_ecdhe(kx: &'static CardKxGroup) -> Self {
        CardProvider {
            kx_groups: vec![kx],
            cipher_suites: cipher_suites(),
            secure_random: None,
        }
    }

    /// ECDHE on the host ([`EcdheOn::Host`]): the software groups of [`host_kx_groups`].
    pub fn host_ecdhe() -> Self {
        CardProvider {
            kx_groups: host_kx_groups(),
            cipher_suites: cipher_suites(),
            secure_random: None,
        }
    }

    /// Puts `group` first: it becomes the key share of the ClientHello.
    pub fn prepend_kx_group(mut self, group: &'static dyn SupportedKxGroup) -> Self {
        self.kx_groups.insert(0, group);
        self
    }

    /// Adds `group` last: offered, used if the server asks for it (HelloRetryRequest).
    pub fn append_kx_group(mut self, group: &'static dyn SupportedKxGroup) -> Self {
        self.kx_groups.push(group);
        self
    }

    /// Replaces the cipher suites.
    pub fn cipher_suites(mut self, suites: Vec<SupportedCipherSuite>) -> Self {
        self.cipher_suites = suites;
        self
    }

    /// Replaces the RNG (e.g. a [`crate::rng::CardEntropyRng`]).
    pub fn secure_random(mut self, rng: &'static dyn SecureRandom) -> Self {
        self.secure_random = Some(rng);
        self
    }

    /// The provider. Signature verification, the key provider and (unless replaced) the RNG come
    /// from the software backend.
    pub fn build(self) -> CryptoProvider {
        let base = software_provider();
        CryptoProvider {
            cipher_suites: self.cipher_suites,
            kx_groups: self.kx_groups,
            secure_random: self.secure_random.unwrap_or(base.secure_random),
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_deterministically() {
        if cfg!(feature = "aws-lc-rs") {
            assert_eq!(BACKEND, "aws-lc-rs");
        } else {
            assert_eq!(BACKEND, "ring");
        }
    }

    #[test]
    fn tls13_suites_come_first_and_sha256_leads() {
        let suites = cipher_suites();
        assert_eq!(
            suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert!(suites[..3].iter().all(|s| s.tls13().is_some()));
        assert_eq!(suites.len(), if cfg!(feature = "tls12") { 6 } else { 3 });
    }

    #[test]
    fn host_ecdhe_provider_uses_software_groups() {
        let p = CardProvider::host_ecdhe().build();
        let names: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            vec![rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1]
        );
    }
}
