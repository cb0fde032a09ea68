//! # iotsafe-core
//!
//! A host-side client for the GSMA IoT SAFE (IoT.05) applet: APDU encoding and response parsing,
//! a tolerant TLV codec for the forms real cards use, every IoT.05 command, the object model, a
//! thread-safe [`Card`] session with counters, and transports (PC/SC behind the `pcsc`
//! feature, AT modems behind the `at` feature). A scripted transport for tests is behind the
//! `testing` feature.
//!
//! The session, the transport seam, errors and status words are used through the items
//! re-exported here; the modules that stay public are the lower levels a caller may want on
//! their own (APDUs, commands and their answers, signature conversions, TLV, the object model,
//! configuration, counters, hex).
//!
//! Without the default `std` feature the crate needs only `alloc`: the protocol, the card session
//! (behind a spin lock instead of an OS mutex) and the AT client (`at-core`, with `embedded-io`
//! for a microcontroller's UART) run on a microcontroller; the clock comes from `clock::set`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod answers;
pub mod apdu;
#[cfg(feature = "at-core")]
pub mod at;
#[cfg(feature = "std")]
pub mod cache;
mod card;
pub mod clock;
pub mod commands;
pub mod config;
mod error;
pub mod hexutil;
mod link;
pub mod lock;
pub mod objects;
#[cfg(feature = "pcsc")]
pub mod pcsc;
mod prelude;
pub mod signature;
#[cfg(feature = "std")]
pub mod slots;
pub mod stats;
mod sw;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tlv;
mod transport;

pub use card::{Card, EphemeralKey, KeyPair, PublicData};
pub use commands::{CardSignature, HashAlgorithm};
pub use config::{CardConfig, SessionClosing};
pub use error::{CommandKind, Error, Result};
pub use link::{Direction, Secrecy, TraceEvent, TraceSink};
pub use objects::{AppletInfo, EcPoint, ObjectInfo, ObjectKind, ObjectRef};
pub use signature::verifies_p256;
pub use stats::{CardStats, Operation};
pub use sw::{Meaning, StatusWord};
pub use transport::{
    Capabilities, LogicalChannels, Transaction, Transport, TransportChannel, TransportError,
    WireBytes,
};
