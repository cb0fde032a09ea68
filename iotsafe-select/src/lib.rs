//! # iotsafe-select
//!
//! Which IoT SAFE card to talk to, and opening it: a card in a PC/SC reader (feature `pcsc`), a
//! card behind a cellular modem reached with AT commands (feature `at`), or the virtual card of
//! `iotsafe-vcard` run in this process (always). Shared by the `iotsafe` CLI, which fills a
//! [`CardSelection`] from its flags, and the PKCS#11 module, which fills one per slot from the
//! environment or a configuration file ([`config`]).
//!
//! ```no_run
//! use iotsafe_select::CardSelection;
//!
//! let opened = CardSelection::virtual_card("card.json").open()?;
//! println!("{}: {:?}", opened.description, opened.card.applet_info()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate has no command-line parser and no async runtime: what a selection needs is
//! `iotsafe-core` (and its transports) and `iotsafe-vcard`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod env;
mod error;
mod open;
mod selection;
pub mod vcard;

pub use error::SelectError;
pub use selection::{CardSelection, LatencyProfile, OpenedCard};
pub use vcard::{pki_dir_of, test_pki_in, TestPki};
