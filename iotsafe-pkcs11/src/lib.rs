//! # iotsafe-pkcs11
//!
//! A PKCS#11 v2.40 module, `libiotsafe_pkcs11.so`, that shows the keys, certificates and files of
//! IoT SAFE cards to any program speaking PKCS#11: OpenSSL's `pkcs11` engine (and through it curl
//! and `mosquitto_pub`), GnuTLS, OpenSC's `pkcs11-tool`. Signatures, key agreement, key pair
//! generation and random numbers run on the card through `iotsafe-core`.
//!
//! Cards are chosen as the `iotsafe` CLI chooses them, by the crate both use, `iotsafe-select`
//! (`config`): `IOTSAFE_READER`, `IOTSAFE_MODEM`, `IOTSAFE_VCARD`, `IOTSAFE_AID`, or a file
//! named by `IOTSAFE_PKCS11_CONF` with one slot per card. `docs/pkcs11.md` describes the objects,
//! mechanisms, error mapping and threading; `README.md` of this crate has the commands for
//! OpenSSL, curl, mosquitto_pub and pkcs11-tool. `IOTSAFE_PKCS11_DEBUG=1` writes the module's
//! diagnostics, and the card session's, to standard error (`diag`).
//!
//! The crate's interface is the C ABI, and every module is private (the `rlib` next to the
//! `cdylib` has nothing to link: cargo needs it to build the `.so` for the integration tests). The
//! C ABI lives in one module, `ffi`, the only one with `unsafe` code. Everything else is safe Rust
//! with plain types: `module::Module` is the whole module's logic, driven by `ffi` and, without
//! the C ABI, by this crate's own tests (`module/tests.rs`). Failures are `error::Error`, which
//! becomes a `CKR_*` in one place, as each C function returns.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod attributes;
mod cert;
mod config;
mod der;
mod derive;
mod diag;
mod error;
mod info;
mod keygen;
mod lifecycle;
mod load;
mod login;
mod mechanisms;
mod module;
mod objects;
mod search;
mod session;
mod sign;
mod token;
mod verify;

#[allow(unsafe_code)]
mod ffi;
