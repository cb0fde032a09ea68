//! Errors of this crate. Each names the step that failed, so that a log line says whether the
//! card, the certificate on it or the rustls configuration is at fault.

use iotsafe_core::ObjectRef;

/// What went wrong while building card-backed TLS objects (signing key, resolver, configs, CSR).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A card operation failed.
    #[error("{step}: {source}")]
    Card {
        /// What we were doing, e.g. "reading the public key of key ID 01".
        step: String,
        /// The card session's error.
        #[source]
        source: iotsafe_core::Error,
    },
    /// The card's public key is not a valid P-256 point.
    #[error("the public key of {key} is not a valid P-256 point")]
    InvalidPublicKey {
        /// The key.
        key: ObjectRef,
    },
    /// A certificate file could not be found or parsed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The certificate does not certify the card key.
    #[error("certificate in file {file} does not match key {key}")]
    KeyMismatch {
        /// The certificate file.
        file: String,
        /// The key.
        key: String,
    },
    /// The card has no object usable for the requested role.
    #[error("no usable {what} on the card: {why}")]
    MissingObject {
        /// Which object, e.g. "device certificate".
        what: &'static str,
        /// Why none was usable.
        why: String,
    },
    /// rustls refused the configuration.
    #[error("{step}: {source}")]
    Rustls {
        /// What we were doing.
        step: &'static str,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// Building or signing a CSR failed.
    #[error("CSR: {0}")]
    Csr(String),
}

impl Error {
    pub(crate) fn card(step: impl Into<String>, source: iotsafe_core::Error) -> Self {
        Error::Card {
            step: step.into(),
            source,
        }
    }

    pub(crate) fn rustls(step: &'static str, source: rustls::Error) -> Self {
        Error::Rustls { step, source }
    }
}

/// A card failure inside a rustls callback, as the `rustls::Error` rustls expects. The message
/// names the step ("card signature (COMPUTE SIGNATURE on key ID 01)") and the card's reason.
pub(crate) fn card_failure(step: impl std::fmt::Display, e: &iotsafe_core::Error) -> rustls::Error {
    rustls::Error::General(format!("IoT SAFE card, {step}: {e}"))
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
