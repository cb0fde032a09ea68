//! Shared code of the iotsafe-rs examples.
#![forbid(unsafe_code)]
