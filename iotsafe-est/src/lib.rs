//! # iotsafe-est
//!
//! Enrolment over EST (RFC 7030) with the key on an IoT SAFE card: the card signs the
//! certificate signing request and the TLS handshakes, the EST server issues an operational
//! certificate, and the device keeps it on its file system next to the card that holds its key
//! (IoT SAFE has no command to write a file from the host).
//!
//! | module | what |
//! |---|---|
//! | [`url`] | `https://HOST[:PORT][/.well-known/est[/LABEL]]` |
//! | [`client`] | the EST operations: `/cacerts`, `/simpleenroll`, `/simplereenroll`, `/csrattrs` |
//! | [`enroll`](mod@enroll) | a whole enrolment with the card: trust, CSR, request, checks |
//! | [`store`] | the chain written atomically; whether it is due for renewal |
//!
//! The flow, what is stored where and what the card does: `docs/enrolment.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod csrattrs;
pub mod enroll;
pub mod error;
mod http;
mod pkcs7;
pub mod store;
pub mod url;

pub use client::{BasicAuth, EstClient};
pub use enroll::{enroll, fingerprint, Enrolled, Enrollment, Operation, Trust};
pub use error::EstError;
pub use store::{renewal, write_chain, Renewal};
pub use url::EstUrl;
