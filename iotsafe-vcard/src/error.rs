//! Errors of the virtual card's own operations (state file, provisioning). APDU errors are status
//! words, never Rust errors.

use std::path::PathBuf;

/// Why a virtual card operation outside the APDU path failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VcardError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the card was doing ("reading", "writing", ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not a state file this version understands.
    #[error("state file {path} is invalid: {reason}")]
    InvalidState {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong (never contains key material).
        reason: String,
    },
    /// The card has no state file to save to.
    #[error("this card has no state file")]
    NoStateFile,
    /// The store lacks an object the operation needs.
    #[error("the card has no {0}")]
    MissingObject(&'static str),
    /// Making certificates or keys failed.
    #[error("certificate generation failed: {0}")]
    Certificate(String),
    /// The store cannot hold as many objects of a type as asked.
    #[error("the card holds at most {max} {what}; {asked} asked")]
    TooManyObjects {
        /// Which objects ("private keys", ...).
        what: &'static str,
        /// How many there would have been.
        asked: usize,
        /// How many the card holds.
        max: usize,
    },
}

impl VcardError {
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
        source: std::io::Error,
    ) -> VcardError {
        VcardError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
