//! Errors of the APDU client: what was sent, what came back, what it means.

use crate::hexutil;
use crate::prelude::*;
use crate::sw::StatusWord;
use crate::transport::TransportError;
use core::fmt;

/// The IoT SAFE (or ISO 7816) command an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandKind {
    /// SELECT by AID.
    Select,
    /// MANAGE CHANNEL open.
    OpenChannel,
    /// MANAGE CHANNEL close.
    CloseChannel,
    /// GET RESPONSE.
    GetResponse,
    /// GET DATA (applet information, object list or one object).
    GetData,
    /// READ FILE.
    ReadFile,
    /// GET RANDOM.
    GetRandom,
    /// GENERATE KEY PAIR.
    GenerateKeyPair,
    /// READ PUBLIC KEY.
    ReadPublicKey,
    /// PUT PUBLIC KEY Init / Update / close.
    PutPublicKey,
    /// COMPUTE SIGNATURE Init / Update / close.
    ComputeSignature,
    /// VERIFY SIGNATURE Init / Update / close.
    VerifySignature,
    /// COMPUTE DH.
    ComputeDh,
    /// COMPUTE HKDF.
    ComputeHkdf,
    /// COMPUTE PRF.
    ComputePrf,
    /// A raw command sent by the user.
    Raw,
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            CommandKind::Select => "SELECT",
            CommandKind::OpenChannel => "MANAGE CHANNEL (open)",
            CommandKind::CloseChannel => "MANAGE CHANNEL (close)",
            CommandKind::GetResponse => "GET RESPONSE",
            CommandKind::GetData => "GET DATA",
            CommandKind::ReadFile => "READ FILE",
            CommandKind::GetRandom => "GET RANDOM",
            CommandKind::GenerateKeyPair => "GENERATE KEY PAIR",
            CommandKind::ReadPublicKey => "READ PUBLIC KEY",
            CommandKind::PutPublicKey => "PUT PUBLIC KEY",
            CommandKind::ComputeSignature => "COMPUTE SIGNATURE",
            CommandKind::VerifySignature => "VERIFY SIGNATURE",
            CommandKind::ComputeDh => "COMPUTE DH",
            CommandKind::ComputeHkdf => "COMPUTE HKDF",
            CommandKind::ComputePrf => "COMPUTE PRF",
            CommandKind::Raw => "raw APDU",
        };
        f.write_str(name)
    }
}

/// Everything that can go wrong talking to an IoT SAFE applet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport could not deliver the command or its answer.
    #[error("{command}: {source}")]
    Transport {
        /// The command in flight.
        command: CommandKind,
        /// What the transport reported.
        #[source]
        source: TransportError,
    },
    /// The card refused the command.
    #[error("{command}: the card answered {sw}")]
    Status {
        /// The command refused.
        command: CommandKind,
        /// The status word.
        sw: StatusWord,
    },
    /// The answer was not shaped as expected.
    #[error("{command}: expected {expected}, got {got}")]
    Malformed {
        /// The command whose answer is malformed.
        command: CommandKind,
        /// What was expected.
        expected: &'static str,
        /// What came (hex, possibly abbreviated; secrets are never put here).
        got: String,
    },
    /// A request the client refuses to encode (too long, empty reference, bad length).
    #[error("{command}: invalid request: {reason}")]
    InvalidRequest {
        /// The command.
        command: CommandKind,
        /// Why.
        reason: String,
    },
    /// The card kept asking for more (GET RESPONSE, 6Cxx, continuation) past the bound.
    #[error("{command}: the card did not finish its answer after {rounds} rounds")]
    Runaway {
        /// The command.
        command: CommandKind,
        /// How many rounds were tried.
        rounds: usize,
    },
    /// No IoT SAFE applet answered SELECT on any of the AIDs tried.
    #[error("no IoT SAFE applet found (tried {tried})")]
    AppletNotFound {
        /// The AIDs tried, in hex.
        tried: String,
    },
    /// An object named by the caller is not on the card.
    #[error("object {0} is not on the card")]
    UnknownObject(String),
    /// The ephemeral key slot was regenerated since this key exchange started, or the card was
    /// reset (or the connection lost) since, which retires the key.
    #[error("the ephemeral key of generation {started} was replaced or lost to a card reset (now generation {current}); restart the key exchange")]
    StaleEphemeral {
        /// Generation that was started.
        started: u64,
        /// Current generation.
        current: u64,
    },
    /// Another user of the card (a thread, an async task, another program) was granted the
    /// volatile key slot since this key was made, so the slot may hold another key now. Nothing
    /// was sent to the card.
    #[error(
        "the volatile key slot {slot} was granted to another key exchange since this key was \
         made (its turn outlived its lease, or it took none); nothing was sent: restart the key \
         exchange"
    )]
    SlotTakenOver {
        /// The slot, as the shared record names it (`i` + hex ID, or `l` + hex label).
        slot: String,
    },
    /// The record of the card's volatile key slots that every program using the card shares
    /// cannot be read or written (`iotsafe_core::slots`).
    #[error(
        "the shared record of the card's volatile key slots ({path}) cannot be used: {reason}; \
         set IOTSAFE_LOCK_DIR to a folder every program using the card may write"
    )]
    SlotRecord {
        /// The folder.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// MANAGE CHANNEL opened no logical channel (the card has none left, or none at all), and the
    /// configuration does not allow the basic channel
    /// ([`CardConfig::allow_basic_channel`](crate::CardConfig::allow_basic_channel)).
    #[error(
        "the card opened no logical channel (MANAGE CHANNEL answered {sw}); the basic channel \
         is not allowed by the configuration"
    )]
    NoLogicalChannel {
        /// The card's answer to MANAGE CHANNEL open.
        sw: StatusWord,
    },
    /// The card's signature does not verify against the key's public point: the answer was
    /// misread or the card signed with another key. It was not passed on.
    #[error("the card's signature ({form}) does not verify against the public key of {key}")]
    SignatureCheck {
        /// The key that was asked to sign.
        key: String,
        /// The wire form the card's answer was read as.
        form: String,
    },
}

impl Error {
    /// The status word, when the card refused the command.
    pub fn status(&self) -> Option<StatusWord> {
        match self {
            Error::Status { sw, .. } => Some(*sw),
            _ => None,
        }
    }
    /// The transport error, when the transport failed.
    pub fn transport(&self) -> Option<&TransportError> {
        match self {
            Error::Transport { source, .. } => Some(source),
            _ => None,
        }
    }
    pub(crate) fn malformed(command: CommandKind, expected: &'static str, got: &[u8]) -> Self {
        let shown = if got.len() > 48 {
            format!("{}… ({} bytes)", hexutil::encode(&got[..48]), got.len())
        } else if got.is_empty() {
            String::from("nothing")
        } else {
            hexutil::encode(got)
        };
        Error::Malformed {
            command,
            expected,
            got: shown,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
