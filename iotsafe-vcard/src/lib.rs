//! # iotsafe-vcard
//!
//! A faithful software emulation of the IoT SAFE applet, reachable in-process, behind pcscd through
//! the vpcd driver, and as an AT modem on a pty or TCP.
//!
//! The applet parses raw APDU bytes with its own code (it shares nothing with `iotsafe-core` but the
//! [`iotsafe_core::Transport`] seam), so both sides are pinned to the reference bytes of
//! the published traces independently (`docs/protocol.md#traces`).
//!
//! - [`VirtualCard`]: the card; implements [`CardHandler`] for the front ends.
//! - [`CardOptions`]: T=0/T=1 ([`TransportMode`]), [`Quirks`] of real applets, a [`Latency`] model and a
//!   [`FaultPlan`].
//! - [`store`]: the object store and the default layout (`docs/architecture.md#default-layout`); [`state`]: the state file.
//! - [`InProcessTransport`]: the card as an [`iotsafe_core::Transport`] in the same process.
//! - [`serial`]: the UART between host and modem that the latency model may hold
//!   ([`Latency::serial`], [`Latency::modem`]), charged by the front ends that stand for a modem.
//! - [`provision()`]: a test PKI whose device key is generated inside the card.
//!
//! ```
//! use iotsafe_core::Transaction;
//! use iotsafe_vcard::{CardOptions, InProcessTransport, VirtualCard};
//!
//! let card = VirtualCard::with_default_layout(CardOptions::default());
//! let mut transport = InProcessTransport::new(card);
//! // wolfSSL's SELECT: CLA 01 opens channel 1 implicitly.
//! let select = [0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10];
//! assert_eq!(transport.transmit(&select).unwrap(), [0x90, 0x00]);
//! // READ PUBLIC KEY of the device key 01: `34 45 49 43 86 41 04‖X‖Y` then 9000.
//! let answer = transport.transmit(&[0x81, 0xCD, 0x00, 0x00, 0x03, 0x85, 0x01, 0x01]).unwrap();
//! assert_eq!(&answer[..7], &[0x34, 0x45, 0x49, 0x43, 0x86, 0x41, 0x04]);
//! assert_eq!(&answer[71..], &[0x90, 0x00]);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Never panic on card input: the compiler holds the applet to it (tests may unwrap).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod apdu;
mod card;
mod commands;
mod dispatch;
mod ephemeral_slots;
pub mod error;
pub mod faults;
pub mod frontend;
pub mod hex;
pub mod inprocess;
pub mod profile;
pub mod provision;
pub mod quirks;
pub mod serial;
mod session;
mod sha1;
mod signer;
pub mod state;
pub mod store;
pub mod sw;
pub mod tlv;

use std::time::Duration;

pub use card::VirtualCard;
pub use error::VcardError;
pub use faults::FaultPlan;
pub use inprocess::InProcessTransport;
pub use profile::{CardOptions, CardProfile, Latency, TransportMode};
pub use provision::{foreign_client_pki, provision, ForeignPki, ProvisionReport};
pub use quirks::{
    ClaPolicy, DhOutput, InfoFieldOrder, ObjectListLayout, Quirks, SignatureFormat,
    SignaturePrefix, StatusWord, TlvLengths,
};
pub use serial::SerialLink;
pub use store::ObjectStore;

/// What a front end does with one command APDU: answer it, or act out an injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send this response APDU (data then SW1 SW2).
    Answer(Vec<u8>),
    /// Drop the connection without answering, as a card pulled from its reader.
    Disconnect,
    /// Wait this long, then send the response (a card stalled past the host's deadline).
    Stall(Duration, Vec<u8>),
}

/// What every front end (in-process, vpcd, AT modem) needs from a card: power, ATR and APDUs.
///
/// The front ends speak only this trait, so they can be tested with any card, and the applet knows
/// nothing about how its bytes travel.
pub trait CardHandler: Send {
    /// The answer to reset the card presents after power-on or reset.
    fn atr(&self) -> Vec<u8>;
    /// Power on (cold reset): channels and sessions start clean.
    fn power_on(&mut self);
    /// Power off.
    fn power_off(&mut self);
    /// Warm reset: channels and sessions start clean.
    fn reset(&mut self);
    /// Processes one command APDU and returns the response APDU (data then SW1 SW2).
    /// Never panics on any input.
    fn process(&mut self, apdu: &[u8]) -> Vec<u8>;
    /// How many logical channels besides the basic one the card has open, if it keeps count (the
    /// AT modem reports it for `AT#CHANNELS?`). `None` by default.
    fn open_channel_count(&self) -> Option<usize> {
        None
    }
    /// The serial link between host and modem in the card's latency model
    /// ([`Latency::serial`]), for the AT front ends to charge; they read it when a connection
    /// starts. `None` by default.
    fn serial_link(&self) -> Option<SerialLink> {
        None
    }
    /// Like [`CardHandler::process`], but may act out an injected fault. Front ends call this one.
    fn handle(&mut self, apdu: &[u8]) -> Reply {
        Reply::Answer(self.process(apdu))
    }
}
