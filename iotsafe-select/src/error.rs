//! Why a selection names no usable card, or its card did not open.

use iotsafe_core::{Error as CardError, TransportError};
use iotsafe_vcard::VcardError;
use std::path::PathBuf;

/// Why a [`CardSelection`](crate::CardSelection) names no usable card, or its card did not open.
/// The `iotsafe` CLI turns each into a message in terms of its flags; the PKCS#11 module shows
/// this one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// The AID is not 5 to 16 bytes of hex (with or without a `0x` prefix).
    #[error("the AID {0:?} is not 5 to 16 bytes of hex")]
    BadAid(String),
    /// More than one of a reader, a modem and a virtual card.
    #[error("a reader, a modem and a virtual card exclude each other")]
    SeveralCards,
    /// None of a reader, a modem and a virtual card.
    #[error("no card selected: no reader, modem or virtual card")]
    NoCard,
    /// A latency profile without a virtual card.
    #[error("a latency profile only applies to a virtual card")]
    LatencyWithoutVirtualCard,
    /// The selection names a kind of card this build cannot reach.
    #[error("opening {card}: this build has no {support} support (cargo feature `{feature}`)")]
    NotBuilt {
        /// The card asked for ("PC/SC reader \"Virtual PCD 00 00\"").
        card: String,
        /// What is missing ("PC/SC", "AT modem").
        support: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// The reader or the modem could not be reached.
    #[error("opening {card}: {source}")]
    Transport {
        /// The card asked for.
        card: String,
        /// What the transport said.
        #[source]
        source: TransportError,
    },
    /// The reader or modem answered but no card session came up (no applet, no answer).
    #[error("opening {card}: {source}")]
    Card {
        /// The card asked for.
        card: String,
        /// What the session said.
        #[source]
        source: CardError,
    },
    /// A new virtual card could not be provisioned.
    #[error("provisioning a virtual card in {}: {source}", state.display())]
    Provision {
        /// The state file it was to be written to.
        state: PathBuf,
        /// What went wrong.
        #[source]
        source: VcardError,
    },
    /// A virtual card's state file could not be loaded.
    #[error("opening the virtual card {}: {source}", state.display())]
    VirtualCard {
        /// The state file.
        state: PathBuf,
        /// What is wrong with it.
        #[source]
        source: VcardError,
    },
}
