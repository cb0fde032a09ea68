//! # iotsafe-rustls
//!
//! rustls 0.23 integration for IoT SAFE cards.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
