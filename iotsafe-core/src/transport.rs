//! The seam between the card session and whatever moves bytes to the card.
//!
//! A [`Transport`] hands out one [`Transaction`] per operation, and a transaction moves one command
//! APDU to the card and brings back the response APDU (data followed by SW1 SW2): the one narrow
//! thing every transport does. It knows nothing about IoT SAFE: GET RESPONSE, `6Cxx` re-sends,
//! channel classes and status words are handled once, in [`crate::card`]. A PC/SC transaction is
//! one of pcscd's, so no other application interleaves; most transports are their own
//! transaction. Opening logical channels is offered only by the transports that do it themselves
//! ([`LogicalChannels`]: AT+CCHO opens a channel *and* selects the applet in one command).
//!
//! The transport layer reports its own [`TransportError`]; the session adds which command failed.

use crate::prelude::*;
use core::time::Duration;

/// What a transport can carry, so that the session shapes its commands to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The transport (and the card behind it) accepts extended-length APDUs (Lc up to 65535).
    pub extended_length: bool,
    /// Largest command data field the session may put in one APDU.
    pub max_command_data: usize,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            extended_length: false,
            max_command_data: 255,
        }
    }
}

/// Why a transport could not deliver an APDU or its answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The PC/SC service (pcscd) is not running, not reachable, or closed the connection (it
    /// died, or its access policy refused this client).
    #[error(
        "the PC/SC service is not available or dropped the connection \
         (is pcscd running, and may this user use it?)"
    )]
    NoService,
    /// No reader matched the requested name.
    #[error("no reader matches {wanted:?}; readers present: {available:?}")]
    NoReader {
        /// The name or substring asked for.
        wanted: String,
        /// The readers the service listed.
        available: Vec<String>,
    },
    /// The reader is there but holds no card.
    #[error("no card in reader {0:?}")]
    NoCard(String),
    /// The card was removed (or the virtual card's process went away).
    #[error("the card was removed")]
    RemovedCard,
    /// The card was reset (by another application, the reader or the modem); state on it is lost.
    #[error("the card was reset; channels and sessions on it are gone")]
    ResetCard,
    /// The exchange was cut while in flight (PC/SC `NotTransacted`): the card or reader went away.
    #[error("the exchange was interrupted before the card answered")]
    NotTransacted,
    /// Nothing, or no complete answer, came within the deadline.
    #[error("no complete answer to {command} within {waited:?}")]
    Timeout {
        /// How long the transport waited.
        waited: Duration,
        /// What it was waiting on: the AT command line (APDU payload redacted where it carries
        /// secrets), or the step, e.g. "ATE0/AT (modem readiness)".
        command: String,
    },
    /// A modem refused or garbled an AT command.
    #[error("the modem answered {answer:?} to {command}")]
    Modem {
        /// The AT command that failed (APDU payload redacted where it carries secrets).
        command: String,
        /// What the modem said.
        answer: String,
    },
    /// The answer did not have the shape the transport protocol requires.
    #[error("transport protocol error: {0}")]
    Protocol(String),
    /// The connection to the card or modem is closed.
    #[error("the connection to the card is closed")]
    Disconnected,
    /// An operating-system I/O error.
    #[cfg(feature = "std")]
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The byte stream to the modem failed (a UART error, without the OS's I/O errors).
    #[error("port error: {0}")]
    Port(String),
    /// A wait on the modem could not be given a deadline, so it did not start and nothing was
    /// sent: built without `std`, the firmware has not called `iotsafe_core::clock::set` yet.
    #[error(transparent)]
    NoClock(#[from] crate::clock::NoClock),
}

impl TransportError {
    /// True when the card session should reconnect (and re-select) before the next operation.
    pub fn needs_reconnect(&self) -> bool {
        match self {
            TransportError::RemovedCard
            | TransportError::ResetCard
            | TransportError::NotTransacted
            | TransportError::NoService
            | TransportError::NoCard(_)
            | TransportError::Disconnected
            | TransportError::Timeout { .. }
            | TransportError::Port(_) => true,
            #[cfg(feature = "std")]
            TransportError::Io(_) => true,
            _ => false,
        }
    }
}

/// A logical channel opened by the transport itself (AT+CCHO), with the applet already selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportChannel {
    /// Channel number as the card sees it (0..=19), when the transport knows it.
    pub number: Option<u8>,
}

/// Bytes a transport moved on its own link, below the APDUs (a modem's AT text on the serial
/// port: hex doubling, command names, `OK`, echo and unsolicited lines included), counted since
/// the transport was opened. What a UART at a given baud rate has to carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireBytes {
    /// Bytes written to the link.
    pub sent: u64,
    /// Bytes read from the link.
    pub received: u64,
}

impl WireBytes {
    /// The difference `self - earlier` (what one exchange moved).
    pub fn since(self, earlier: WireBytes) -> WireBytes {
        WireBytes {
            sent: self.sent.saturating_sub(earlier.sent),
            received: self.received.saturating_sub(earlier.received),
        }
    }
}

/// One operation's exchange with the card, from [`Transport::transaction`] until dropped.
pub trait Transaction {
    /// Sends one command APDU and returns the response APDU: data followed by SW1 SW2.
    ///
    /// Procedure bytes such as `61xx` and `6Cxx` are returned as they came; the session handles them.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;

    /// The link's byte counters ([`WireBytes`]) when the transport has a link of its own below
    /// the APDUs (an AT modem's serial port); `None` (the default) for a PC/SC reader or an
    /// in-process card, whose link the host does not see.
    fn wire_bytes(&self) -> Option<WireBytes> {
        None
    }
}

/// A transport that is its own transaction (nothing to begin or end: a modem's port, an in-process
/// card) returns `Box::new(self)` from [`Transport::transaction`].
impl<T: Transaction + ?Sized> Transaction for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
    fn wire_bytes(&self) -> Option<WireBytes> {
        (**self).wire_bytes()
    }
}

/// Logical channels a transport opens itself, selecting the applet in the same step (AT+CCHO and
/// AT+CCHC): the session then writes class bytes for channel 0 and the transport routes each
/// APDU to its channel.
pub trait LogicalChannels {
    /// Opens a logical channel and selects `aid` on it. `Ok(None)`: the transport has found it
    /// cannot (a modem without the command) and gives its channels up for good; the session opens
    /// one with MANAGE CHANNEL and SELECT instead.
    fn open_channel(&mut self, aid: &[u8]) -> Result<Option<TransportChannel>, TransportError>;

    /// Closes the channel [`LogicalChannels::open_channel`] opened.
    fn close_channel(&mut self) -> Result<(), TransportError>;
}

/// Moves APDUs to a card. Implemented by PC/SC, AT modems, the in-process virtual card and test scripts.
pub trait Transport {
    /// Begins one operation's exchange: APDUs sent through the returned [`Transaction`] are not
    /// interleaved with other applications' (a PC/SC transaction), and the transaction ends when it
    /// is dropped. An error here means the transport was found unusable before any APDU went out.
    /// A transport no other application shares is its own transaction: `Ok(Box::new(self))`.
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError>;

    /// What this transport can carry.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The logical channels this transport opens itself, if it does (AT+CCHO); `None` (the
    /// default): the session opens its channel with MANAGE CHANNEL and SELECT.
    fn logical_channels(&mut self) -> Option<&mut dyn LogicalChannels> {
        None
    }

    /// Re-establishes the connection after the card was removed or reset, or the service restarted.
    /// The session re-opens its channel and re-selects the applet afterwards.
    fn reconnect(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// A short human-readable description (reader name, modem path, "virtual card").
    fn describe(&self) -> String {
        String::from("transport")
    }

    /// Where other programs on this host may reach the same card: a stable name (the PC/SC reader,
    /// the modem's port), the same in every process. `None`: only this process reaches it (an
    /// in-process virtual card, a test script). Programs that reach the card by the same route
    /// share the queue of its volatile key slots (`iotsafe_core::slots`).
    fn route(&self) -> Option<String> {
        None
    }

    /// The link's byte counters since the transport was opened, every AT command included
    /// (see [`Transaction::wire_bytes`]); `None` (the default) where the host does not see them.
    fn wire_bytes(&self) -> Option<WireBytes> {
        None
    }

    /// What opening this transport found out about its link that the next program opening the
    /// same port may skip asking (an AT modem's quirks and command families:
    /// `iotsafe_core::at::Learned`), as one line; `None` (the default) when there is nothing.
    fn learned(&self) -> Option<String> {
        None
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        (**self).transaction()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn logical_channels(&mut self) -> Option<&mut dyn LogicalChannels> {
        (**self).logical_channels()
    }
    fn reconnect(&mut self) -> Result<(), TransportError> {
        (**self).reconnect()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn route(&self) -> Option<String> {
        (**self).route()
    }
    fn wire_bytes(&self) -> Option<WireBytes> {
        (**self).wire_bytes()
    }
    fn learned(&self) -> Option<String> {
        (**self).learned()
    }
}
