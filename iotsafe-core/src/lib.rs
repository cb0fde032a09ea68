//! # iotsafe-core
//!
//! A host-side client for the GSMA IoT SAFE (IoT.05) applet: APDU encoding and response parsing,
//! a tolerant TLV codec for the forms real cards use, every IoT.05 command, the object model, a
//! thread-safe [`Card`] session with counters, and transports (PC/SC behind the `pcsc`
//! feature, AT modems behind the `at` feature).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "at")]
pub mod at;
pub mod error;
#[cfg(feature = "pcsc")]
pub mod pcsc;
pub mod sw;
pub mod transport;

pub use error::{CommandKind, Error, Result};
pub use sw::{Meaning, StatusWord};
pub use transport::{
    Capabilities, DirectTransaction, Transaction, Transport, TransportChannel, TransportError,
};
pub mod apdu;
pub mod card;
pub mod commands;
pub mod config;
pub mod hexutil;
mod link;
pub mod objects;
pub mod signature_check;
pub mod stats;
pub mod testing;
pub mod tlv;

pub use card::{Card, EphemeralKey, KeyPair};
pub use commands::{CardSignature, HashAlgorithm};
pub use config::CardConfig;
pub use link::{Direction, Secrecy, TraceEvent, TraceSink};
pub use objects::{AppletInfo, EcPoint, ObjectInfo, ObjectKind, ObjectRef};
pub use stats::{CardStats, Operation};
