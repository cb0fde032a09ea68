//! Errors of this crate. Each names the step that failed, so that a log line says whether the
//! card, the certificate on it or the rustls configuration is at fault.

use alloc::string::{String, ToString};
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
    /// rustls refused the configuration (the configs builder, `std`).
    #[cfg(feature = "std")]
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

    #[cfg(feature = "std")]
    pub(crate) fn rustls(step: &'static str, source: rustls::Error) -> Self {
        Error::Rustls { step, source }
    }
}

/// Why a key exchange on the card failed inside rustls. rustls carries it as
/// [`rustls::Error::Other`]; get it back with [`KxError::from_rustls`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KxError {
    /// The card's ephemeral slot holds another key than the one this handshake started with.
    #[error(
        "IoT SAFE card, ECDHE: the ephemeral key of generation {started} was replaced (now generation {current}) {}",
        if *.queued {
            "after this key exchange held the slot past its lease (KxOptions::queue_for_slot), or by a card reset"
        } else {
            "by another handshake on this card (the slot queue is off: KxOptions::queue_for_slot is None), or by a card reset"
        }
    )]
    Replaced {
        /// The slot generation this handshake's key belongs to.
        started: u64,
        /// The slot's generation now.
        current: u64,
        /// Whether the key exchange queued for the slot.
        queued: bool,
    },
    /// Another key exchange (of this program or another) was granted the ephemeral slot since
    /// this handshake's key was made, so the slot may hold its key now. Nothing was sent.
    #[error(
        "IoT SAFE card, ECDHE: the ephemeral slot {slot} was given to another key exchange since this key was made {}",
        if *.queued {
            "after this key exchange held it past its lease (KxOptions::queue_for_slot)"
        } else {
            "(the slot queue is off: KxOptions::queue_for_slot is None)"
        }
    )]
    TakenOver {
        /// The slot, as the card's queue names it.
        slot: String,
        /// Whether the key exchange queued for the slot.
        queued: bool,
    },
    /// Every ephemeral slot of the card was in use, this thread must not wait for one (a
    /// `current_thread` tokio runtime driving rustls directly), and
    /// [`crate::KxOptions::host_ecdhe_when_busy`] is off.
    #[error("IoT SAFE card, ECDHE: every ephemeral slot is in use and this thread must not wait for one; connect with iotsafe_rustls::CardConnector, or allow KxOptions::host_ecdhe_when_busy")]
    SlotBusy,
    /// Every `Arc<Card>` of the card this group served was dropped.
    #[error("IoT SAFE card, ECDHE: the card session was dropped; build the TLS configuration again with a live card")]
    CardGone,
}

#[cfg(feature = "std")]
impl KxError {
    /// The [`KxError`] inside a rustls error, if that is what it carries.
    pub fn from_rustls(e: &rustls::Error) -> Option<&KxError> {
        match e {
            rustls::Error::Other(other) => other.0.downcast_ref::<KxError>(),
            _ => None,
        }
    }
}

impl From<KxError> for rustls::Error {
    fn from(e: KxError) -> Self {
        carry(e)
    }
}

/// A card operation that failed inside a rustls callback (key generation, DH, signature).
///
/// rustls carries it as [`rustls::Error::Other`], so the card session's typed error survives the
/// trip through rustls: get it back with [`CardFailure::from_rustls`] and inspect
/// [`CardFailure::source`] (a status word, a lost transport, ...).
#[derive(Debug, thiserror::Error)]
#[error("IoT SAFE card, {step}: {source}")]
pub struct CardFailure {
    /// What was being done, e.g. "COMPUTE SIGNATURE with key ID 01".
    pub step: String,
    /// The card session's error.
    #[source]
    pub source: iotsafe_core::Error,
}

#[cfg(feature = "std")]
impl CardFailure {
    /// The [`CardFailure`] inside a rustls error, if that is what it carries.
    pub fn from_rustls(e: &rustls::Error) -> Option<&CardFailure> {
        match e {
            rustls::Error::Other(other) => other.0.downcast_ref::<CardFailure>(),
            _ => None,
        }
    }
}

impl From<CardFailure> for rustls::Error {
    fn from(e: CardFailure) -> Self {
        carry(e)
    }
}

/// `e` through rustls: typed, as [`rustls::Error::Other`], with `std`; without it rustls's
/// `Other` carries nothing, so the message travels as [`rustls::Error::General`].
fn carry(e: impl core::error::Error + Send + Sync + 'static) -> rustls::Error {
    #[cfg(feature = "std")]
    {
        rustls::Error::Other(rustls::OtherError(alloc::sync::Arc::new(e)))
    }
    #[cfg(not(feature = "std"))]
    {
        rustls::Error::General(e.to_string())
    }
}

/// A card failure inside a rustls callback, as the `rustls::Error` rustls expects: a
/// [`CardFailure`] naming the step and keeping the card's typed error.
pub(crate) fn card_failure(step: impl core::fmt::Display, e: iotsafe_core::Error) -> rustls::Error {
    CardFailure {
        step: step.to_string(),
        source: e,
    }
    .into()
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use iotsafe_core::{CommandKind, StatusWord};

    #[test]
    fn card_failures_keep_their_typed_cause_through_rustls() {
        let sw = StatusWord(0x6985);
        let e = card_failure(
            "COMPUTE DH",
            iotsafe_core::Error::Status {
                command: CommandKind::ComputeDh,
                sw,
            },
        );
        assert!(e.to_string().contains("IoT SAFE card, COMPUTE DH"), "{e}");
        let failure = CardFailure::from_rustls(&e).expect("a CardFailure");
        assert_eq!(failure.step, "COMPUTE DH");
        assert!(matches!(
            failure.source,
            iotsafe_core::Error::Status { sw: got, .. } if got == sw
        ));
        assert!(KxError::from_rustls(&e).is_none());
        assert!(CardFailure::from_rustls(&rustls::Error::DecryptError).is_none());
    }
}
