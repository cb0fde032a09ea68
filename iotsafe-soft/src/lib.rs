//! The software half of a rustls 0.23 [`CryptoProvider`] for devices without `std`: everything
//! in a TLS 1.3 client handshake that the IoT SAFE SIM does not do.
//!
//! On a device whose SIM holds the client key (GSMA IoT SAFE), the SIM signs the client's
//! CertificateVerify and computes the ECDHE (in `iotsafe-rustls`). The rest of the handshake and
//! the record layer run on the microcontroller, and this crate supplies them without an
//! operating system (`no_std` + `alloc`; checked on `thumbv7em-none-eabihf` and
//! `thumbv7m-none-eabi`, the Cortex-M4 and M3 of `docs/mcu.md`):
//!
//! | module | what |
//! | --- | --- |
//! | [`hash`] | SHA-256, the transcript hash |
//! | [`hmac`] | HMAC-SHA256, and HKDF-SHA256 through rustls's `HkdfUsingHmac` (the key schedule) |
//! | [`aead`] | AES-128-GCM and ChaCha20-Poly1305 record protection, and the two cipher suites |
//! | [`verify`] | ECDSA P-256 for the server's chain (SHA-256; SHA-384 on request) and CertificateVerify |
//! | [`rng`] | a ChaCha20 DRBG the firmware seeds with 32 bytes from the SIM's GET RANDOM |
//! | [`keys`] | a `KeyProvider` that refuses every private key: the client key stays on the SIM |
//!
//! [`provider`] puts them together with the caller's key exchange groups (the SIM's card group).
//! All software is RustCrypto of one generation (that of `p256` 0.13), constant-time where it
//! handles secrets.
//!
//! # What it deliberately lacks
//!
//! - **No server side.** Nothing here signs: a server needs a private key in software.
//! - **No TLS 1.2.** Only TLS 1.3 suites; a TLS 1.2-only server fails the handshake.
//! - **No RSA, no P-384, no Ed25519** verification: the server's certificate chain and its
//!   CertificateVerify must be ECDSA with P-256 keys. A P-384 or RSA CA anywhere in the chain
//!   fails verification.
//! - **No AES-256-GCM / SHA-384 suite**, no QUIC, no key exchange of its own: the groups come
//!   from the caller (on the device, the SIM's P-256 group).
//!
//! # Use in firmware
//!
//! ```no_run
//! # extern crate alloc;
//! use alloc::sync::Arc;
//! use rustls::client::{ClientConfig, UnbufferedClientConnection};
//! # use rustls::crypto::{ActiveKeyExchange, SupportedKxGroup};
//! # use rustls::pki_types::UnixTime;
//! # #[derive(Debug)] struct Card;
//! # impl SupportedKxGroup for Card {
//! #     fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> { unimplemented!() }
//! #     fn name(&self) -> rustls::NamedGroup { rustls::NamedGroup::secp256r1 }
//! # }
//! # #[derive(Debug)] struct Clock;
//! # impl rustls::time_provider::TimeProvider for Clock {
//! #     fn current_time(&self) -> Option<UnixTime> { None }
//! # }
//! # #[derive(Debug)] struct CardResolver;
//! # impl rustls::client::ResolvesClientCert for CardResolver {
//! #     fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme])
//! #         -> Option<Arc<rustls::sign::CertifiedKey>> { None }
//! #     fn has_certs(&self) -> bool { true }
//! # }
//! # fn main() -> Result<(), rustls::Error> {
//! # let (seed, card_kx_group, clock, roots, card_resolver) =
//! #     ([7; 32], &Card, Clock, rustls::RootCertStore::empty(), CardResolver);
//! # let server_name = rustls::pki_types::ServerName::try_from("broker.example").unwrap();
//! // 32 bytes from the SIM (GET RANDOM), fresh on every boot; the card's P-256 group.
//! let provider = iotsafe_soft::provider(seed, vec![card_kx_group]);
//! // no_std rustls has no clock: the firmware's TimeProvider (certificate validity needs it).
//! let config = ClientConfig::builder_with_details(Arc::new(provider), Arc::new(clock))
//!     .with_protocol_versions(&[&rustls::version::TLS13])?
//!     .with_root_certificates(roots)
//!     .with_client_cert_resolver(Arc::new(card_resolver)); // signs with the SIM
//! // Builds the ClientHello at once: the card group's start() (the SIM's key generation) runs here.
//! let conn = UnbufferedClientConnection::new(Arc::new(config), server_name)?;
//! # drop(conn);
//! # Ok(())
//! # }
//! ```
//!
//! The crate's tests run full handshakes of such a client, on the buffered and the unbuffered
//! API, against a rustls server on the ring provider.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::vec::Vec;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::SupportedCipherSuite;

pub mod aead;
pub mod hash;
pub mod hmac;
pub mod keys;
pub mod rng;
pub mod verify;

pub use aead::{TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256};
pub use keys::NO_PRIVATE_KEYS;
pub use rng::{ChaChaDrbg, DRBG};
pub use verify::SUPPORTED_SIG_ALGS;

/// The cipher suites, in the client's order of preference. ChaCha20-Poly1305 first: a Cortex-M3
/// or M4 has no AES instructions, and ChaCha20-Poly1305 is plain 32-bit additions, rotations and
/// multiplications, where AES-GCM needs bitsliced AES and a software GHASH to stay constant-time.
pub static CIPHER_SUITES: &[SupportedCipherSuite] =
    &[TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_128_GCM_SHA256];

/// A TLS 1.3 client provider: [`CIPHER_SUITES`], the caller's `kx_groups` (the SIM's card group),
/// [`SUPPORTED_SIG_ALGS`], the [`DRBG`] seeded with `seed`, and [`NO_PRIVATE_KEYS`].
///
/// `seed` must be 32 secret bytes, fresh on every boot: on the device, the SIM's GET RANDOM.
/// It seeds the crate-wide [`DRBG`] (rustls takes a `&'static` generator); calling this again
/// mixes the new seed into the generator rather than restarting it (see [`ChaChaDrbg::seed`]).
///
/// For another combination (one suite only, another generator), build the [`CryptoProvider`]
/// from the same pieces: its fields are public.
pub fn provider(seed: [u8; 32], kx_groups: Vec<&'static dyn SupportedKxGroup>) -> CryptoProvider {
    DRBG.seed(seed);
    CryptoProvider {
        cipher_suites: CIPHER_SUITES.to_vec(),
        kx_groups,
        signature_verification_algorithms: SUPPORTED_SIG_ALGS,
        secure_random: &DRBG,
        key_provider: NO_PRIVATE_KEYS,
    }
}
