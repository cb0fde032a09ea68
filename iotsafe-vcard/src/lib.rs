//! # iotsafe-vcard
//!
//! A faithful software emulation of the IoT SAFE applet.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
