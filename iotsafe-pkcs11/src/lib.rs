//! # iotsafe-pkcs11
//!
//! A PKCS#11 v2.40 module, `libiotsafe_pkcs11.so`, that shows the keys, certificates and files of
//! IoT SAFE cards to any program speaking PKCS#11: OpenSSL's `pkcs11` engine (and through it curl
//! and `mosquitto_pub`), GnuTLS, OpenSC's `pkcs11-tool`. Signatures, key agreement, key pair
//! generation and random numbers run on the card through `iotsafe-core`.
//!
//! Cards are chosen as the `iotsafe` CLI chooses them, by the crate both use, `iotsafe-select`
//! ([`config`]): `IOTSAFE_READER`, `IOTSAFE_MODEM`, `IOTSAFE_VCARD`, `IOTSAFE_AID`, or a file
//! named by `IOTSAFE_PKCS11_CONF` with one slot per card. `docs/pkcs11.md` describes the objects, mechanisms, error mapping and
//! threading; `README.md` of this crate has the commands for OpenSSL, curl, mosquitto_pub and
//! pkcs11-tool.
//!
//! The C ABI lives in one private module, `ffi`, the only one with `unsafe` code. Everything else
//! is safe Rust with plain types, and [`module::Module`] is the whole module's logic, usable
//! (and tested) without the C ABI.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod attributes;
pub mod cert;
pub mod config;
pub mod der;
pub mod derive;
pub mod diag;
pub mod error;
pub mod info;
pub mod keygen;
mod lifecycle;
pub mod load;
pub mod login;
pub mod mechanisms;
pub mod module;
pub mod objects;
pub mod search;
pub mod session;
pub mod sign;
pub mod token;
pub mod verify;

#[allow(unsafe_code)]
mod ffi;
