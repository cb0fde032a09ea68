//! The mutual-TLS MQTT demo of iotsafe-rs, as a library so that tests can run it against any
//! broker with any card.
//!
//! - [`broker`]: an embedded rumqttd that requires client certificates from the test CA.
//! - [`client`]: [`run_mqtt_client`]: a verification handshake, then rumqttc over TLS 1.3 with
//!   signature and ECDHE on the card: connect, subscribe, publish, receive its own messages,
//!   disconnect; reconnects with back-off.
//! - [`report`]: what happened, as text and JSON.
//! - [`card_summary`]: the card's AID, applet information and the objects the demo uses.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod bridge;
pub mod broker;
pub mod card_summary;
pub mod client;
pub mod report;
pub mod stall;

pub use backoff::Backoff;
pub use broker::{free_local_port, EmbeddedBroker};
pub use client::{run_mqtt_client, BrokerTarget, ClientOptions, DemoError};
pub use report::{MessageStats, Report};
