//! The seam between the card session and whatever moves bytes to the card.
//!
//! A [`Transport`] moves one command APDU to the card and brings back the response APDU (data followed
//! by SW1 SW2). It knows nothing about IoT SAFE: GET RESPONSE, `6Cxx` re-sends, channel classes and
//! status words are handled once, in [`crate::card`]. Optional primitives cover what some transports do
//! differently: AT+CCHO opens a logical channel *and* selects the applet in one command, and PC/SC
//! wraps a multi-APDU operation in a [`Transaction`] so that no other application interleaves.
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
    /// The transport opens logical channels itself ([`Transport::open_channel`] returns a channel):
    /// the session then writes CLA with channel bits 0 and the transport routes each APDU.
    pub manages_channels: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            extended_length: false,
            max_command_data: 255,
            manages_channels: false,
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

/// One operation's exchange with the card, from [`Transport::transaction`] until dropped.
pub trait Transaction {
    /// Sends one command APDU and returns the response APDU, as [`Transport::transmit`] does.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
}

/// A [`Transaction`] that sends straight through its transport, with nothing to begin or end.
pub struct DirectTransaction<'a, T: Transport + ?Sized>(pub &'a mut T);

impl<T: Transport + ?Sized> Transaction for DirectTransaction<'_, T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.0.transmit(command)
    }
}

/// Moves APDUs to a card. Implemented by PC/SC, AT modems, the in-process virtual card and test scripts.
pub trait Transport {
    /// Sends one command APDU and returns the response APDU: data followed by SW1 SW2.
    ///
    /// Procedure bytes such as `61xx` and `6Cxx` are returned as they came; the session handles them.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;

    /// What this transport can carry.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Opens a logical channel and selects `aid` on it in one step, when the transport has such a
    /// primitive (AT+CCHO). Returns `Ok(None)` when it does not; the session then sends MANAGE CHANNEL
    /// and SELECT itself.
    fn open_channel(&mut self, aid: &[u8]) -> Result<Option<TransportChannel>, TransportError> {
        let _ = aid;
        Ok(None)
    }

    /// Closes a channel opened by [`Transport::open_channel`].
    fn close_channel(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Begins one operation's exchange: APDUs sent through the returned [`Transaction`] are not
    /// interleaved with other applications' (a PC/SC transaction), and the transaction ends when it
    /// is dropped. An error here means the transport was found unusable before any APDU went out.
    ///
    /// The default is the transport itself ([`DirectTransaction`]): right for transports that no
    /// other application shares (a modem's port, an in-process card).
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        Ok(Box::new(DirectTransaction(self)))
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
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn open_channel(&mut self, aid: &[u8]) -> Result<Option<TransportChannel>, TransportError> {
        (**self).open_channel(aid)
    }
    fn close_channel(&mut self) -> Result<(), TransportError> {
        (**self).close_channel()
    }
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        (**self).transaction()
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
}
