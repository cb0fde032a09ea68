//! # iotsafe-vcard
//!
//! A faithful software emulation of the IoT SAFE applet, reachable in-process, behind pcscd through
//! the vpcd driver, and as an AT modem on a pty or TCP.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod apdu;
mod card;
mod commands;
mod dispatch;
pub mod error;
pub mod faults;
pub mod frontend;
pub mod inprocess;
pub mod profile;
pub mod provision;
mod session;
pub mod state;
pub mod store;
pub mod sw;
pub mod tlv;

use std::time::Duration;

pub use card::VirtualCard;
pub use error::VcardError;
pub use faults::FaultPlan;
pub use inprocess::InProcessTransport;
pub use profile::{CardOptions, ClaPolicy, Latency, Quirks, SignatureFormat, TransportMode};
pub use provision::{foreign_client_pki, provision, ForeignPki, ProvisionReport};
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
    /// Like [`CardHandler::process`], but may act out an injected fault. Front ends call this one.
    fn handle(&mut self, apdu: &[u8]) -> Reply {
        Reply::Answer(self.process(apdu))
    }
}
