//! # iotsafe-rustls
//!
//! rustls 0.23 integration for GSMA IoT SAFE cards: the TLS 1.3 CertificateVerify is signed by the
//! card and the ECDHE key pair is made, and the shared secret computed, on the card. The private
//! keys never leave it. Everything else (AEAD, HKDF, certificate verification) comes from ring, or
//! aws-lc-rs with the `aws-lc-rs` feature (see [`provider`]).
//!
//! | piece | rustls trait | module |
//! |---|---|---|
//! | device key on the card | [`rustls::sign::SigningKey`] | [`signer`] ([`CardSigningKey`]) |
//! | ECDHE on the card | [`rustls::crypto::SupportedKxGroup`] | [`kx`] ([`CardKxGroup`]) |
//! | certificate from the card | `ResolvesClientCert`, `ResolvesServerCert` | [`resolver`] ([`CardCertResolver`]) |
//! | configs (**start here**) | `ClientConfig`, `ServerConfig` | [`config`] ([`IotSafeTls`]) |
//! | provider (lower level) | [`rustls::crypto::CryptoProvider`] | [`provider`] ([`provider::CardProvider`]) |
//! | card entropy | [`rustls::crypto::SecureRandom`] | [`rng`] |
//! | CSR signed by the card | rcgen | `csr` (feature `rcgen`) |
//!
//! [`IotSafeTls`] is the one entry point most programs need: it reads the key and certificate
//! from the card once, sets up the card's key-exchange group and signer, and makes the rustls
//! configs. The pieces it assembles ([`CardSigningKey`], [`CardKxGroup`], [`CardCertResolver`],
//! and the providers of [`provider`]) are public for callers who build a rustls configuration
//! by hand, and are the lower level: each does one part of what `IotSafeTls` wires together.
//!
//! A full TLS 1.3 handshake with client authentication costs the card 1 key generation, 1 DH and
//! 1 signature: 8 APDUs with the default card configuration (GENERATE KEY PAIR; PUT PUBLIC KEY
//! Init, Update, close; COMPUTE DH; COMPUTE SIGNATURE Init, Update, close).
//!
//! ## A client
//! ```no_run
//! # fn demo(card: iotsafe_core::Card, roots: rustls::RootCertStore, tcp: std::net::TcpStream)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use iotsafe_rustls::IotSafeTls;
//!
//! let tls = IotSafeTls::builder(Arc::new(card)).build()?; // reads key + certificate once
//! let config = Arc::new(tls.client_config(roots)?);
//! let name = "broker.example".try_into()?;
//! let conn = rustls::ClientConnection::new(config, name)?; // card: GENERATE KEY PAIR
//! let mut stream = rustls::StreamOwned::new(conn, tcp); // card: DH, then signature
//! std::io::Write::write_all(&mut stream, b"hello")?;
//! # Ok(()) }
//! ```
//!
//! ## A server (the device serves TLS with its card key)
//! ```no_run
//! # fn demo(card: iotsafe_core::Card, tcp: std::net::TcpStream)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use iotsafe_rustls::IotSafeTls;
//!
//! let tls = IotSafeTls::builder(Arc::new(card)).build()?;
//! let no_client_auth = Arc::new(rustls::server::NoClientAuth);
//! let config = Arc::new(tls.server_config(no_client_auth)?);
//! let conn = rustls::ServerConnection::new(config)?;
//! let mut stream = rustls::StreamOwned::new(conn, tcp); // card: keygen + DH + signature
//! std::io::Write::write_all(&mut stream, b"hello")?;
//! # Ok(()) }
//! ```
//!
//! ## From async code: the connector
//! ```no_run
//! # async fn demo(tls: iotsafe_rustls::IotSafeTls, roots: rustls::RootCertStore)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! let connector = tls.connector(roots)?; // feature `tokio`, on by default
//! let tcp = tokio::net::TcpStream::connect("broker.example:8883").await?;
//! let stream = connector.connect("broker.example".try_into()?, tcp).await?; // tokio-rustls stream
//! # Ok(()) }
//! ```
//!
//! ## Which path where
//! rustls calls the card synchronously: key generation (and the wait for a turn on the card's
//! ephemeral slot) inside `ClientConnection::new`, the DH and the signature inside
//! `process_new_packets`. Each takes tens to hundreds of milliseconds on a real SIM.
//!
//! | your code | use | what happens |
//! |---|---|---|
//! | tokio, any runtime | [`CardConnector`] (module [`connector`]) | the wait is async, the card work runs in the blocking pool: the runtime never stalls |
//! | tokio-rustls with the config, multi-thread runtime | works | card work and waits in `block_in_place` ([`runtime`]) |
//! | tokio-rustls with the config, `current_thread` runtime | works, but stalls the runtime for the card's time | never waits for a slot: a busy card means that one handshake's ECDHE key is made on the host ([`KxOptions::host_ecdhe_when_busy`]) |
//! | OS threads (`rustls::StreamOwned`, `spawn_blocking`) | the config | blocks the calling thread, as it should |
//!
//! ## Many connections, many programs, one card
//! The card has one ephemeral key slot, or a few. Concurrent handshakes on one card take turns on
//! them from key generation to DH, first come, first served, across every thread, task and
//! program on the host that uses the card (the queue is the card's: [`iotsafe_core::slots`]);
//! each turn is bounded by a lease ([`DEFAULT_SLOT_LEASE`]) so that a handshake stuck on a silent
//! peer is overtaken. Signatures interleave freely, so the card stays busy and every handshake
//! succeeds, and no program ever computes a DH with a key it did not generate.
//! [`KxOptions::unqueued`] turns the queue off (a handshake whose slot another took then fails with
//! [`KxError::TakenOver`]). The key-exchange group of a card is pooled: `build()` again on the
//! same card reuses it, it holds only a `Weak<Card>`, and dropping the last config and the card
//! closes the card's channel. [`KxOptions::pregenerate`] makes the next key in the background, so
//! that a connect costs one APDU (the READ PUBLIC KEY that confirms the card still holds it).
//!
//! Never call `block_on` or `Handle::current()` from card code: it may run on a runtime worker.
//!
//! ## Without `std`
//! With `default-features = false` the crate needs only `alloc` (microcontrollers, `docs/mcu.md`)
//! and offers, for one connection at a time: the card signer ([`CardSigningKey`]), the card key
//! exchange without a queue ([`PlainCardKxGroup`]) and the certificate of a card key
//! ([`CardCertifiedKey`]), each the same signing and ECDHE code as the host's. The rest of
//! rustls's provider (AEAD, HKDF, the server's signature) and its time come from the firmware.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod certified;
#[cfg(feature = "std")]
pub mod config;
#[cfg(feature = "tokio")]
pub mod connector;
#[cfg(feature = "rcgen")]
pub mod csr;
pub mod der;
pub mod error;
pub mod kx;
#[cfg(feature = "std")]
pub mod provider;
#[cfg(feature = "std")]
pub mod resolver;
#[cfg(feature = "std")]
pub mod rng;
#[cfg(feature = "std")]
pub mod runtime;
/// Without an operating system there is no other task to stall: card work runs where rustls
/// calls it.
#[cfg(not(feature = "std"))]
mod runtime {
    pub(crate) fn card_work<T>(f: impl FnOnce() -> T) -> T {
        f()
    }
}
pub mod signer;
#[cfg(feature = "std")]
mod static_pool;

pub use certified::CardCertifiedKey;
#[cfg(feature = "std")]
pub use config::{IotSafeTls, IotSafeTlsBuilder};
#[cfg(feature = "tokio")]
pub use connector::CardConnector;
#[cfg(feature = "rcgen")]
pub use csr::{card_csr, csr_for};
pub use error::{CardFailure, Error, KxError, Result};
#[cfg(feature = "std")]
pub use kx::{
    check_slots, ephemeral_slots, CardKxGroup, KxOptions, QueueStats, DEFAULT_SLOT_LEASE,
};
pub use kx::{validate_peer_point, CardKeyExchange, PlainCardKxGroup};
#[cfg(feature = "std")]
pub use provider::{software_provider, EcdheOn, BACKEND};
#[cfg(feature = "std")]
pub use resolver::{
    read_pem_chain, CardCertResolver, CardCertResolverBuilder, CertificateSource, ChainPolicy,
};
#[cfg(feature = "std")]
pub use rng::{CardEntropyRng, Reseed};
#[cfg(feature = "std")]
pub use runtime::blocking_allowed;
pub use signer::{AfterSign, CardSigner, CardSigningKey};
