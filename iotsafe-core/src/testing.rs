//! A scripted transport for unit tests: it expects exact command bytes and plays back canned
//! answers, so a test pins what the client sends byte for byte.

use crate::hexutil;
use crate::prelude::*;
use crate::transport::{
    Capabilities, LogicalChannels, Transaction, Transport, TransportChannel, TransportError,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Step {
    /// Expect this command APDU and answer with this response APDU.
    Apdu {
        /// Expected command bytes.
        command: Vec<u8>,
        /// Response bytes (data then SW1 SW2).
        response: Vec<u8>,
    },
    /// Expect this command APDU and fail with the transport error made by the function.
    Fail {
        /// Expected command bytes.
        command: Vec<u8>,
        /// The error to return.
        error: fn() -> TransportError,
    },
    /// Expect `open_channel(aid)` (a transport that opens and selects, like AT+CCHO).
    OpenChannel {
        /// Expected AID.
        aid: Vec<u8>,
        /// Whether opening succeeds.
        ok: bool,
    },
    /// Expect `close_channel()`.
    CloseChannel,
    /// Expect `reconnect()`.
    Reconnect,
    /// Refuse the next transaction before any APDU, with this error: the connection was
    /// found dead when the operation began (PC/SC `SCardBeginTransaction` after pcscd restarted).
    Refuse {
        /// The error to return.
        error: fn() -> TransportError,
    },
}

impl Step {
    /// `Apdu` from hex strings (white space allowed). Panics on bad hex: test input only.
    pub fn apdu(command: &str, response: &str) -> Step {
        Step::Apdu {
            command: hexutil::decode(command).expect("test command hex"),
            response: hexutil::decode(response).expect("test response hex"),
        }
    }
}

#[derive(Debug, Default)]
struct Script {
    steps: VecDeque<Step>,
    sent: Vec<Vec<u8>>,
    mismatch: Option<String>,
}

/// What a test keeps to inspect the transport after handing it to a `Card`.
#[derive(Debug, Clone, Default)]
pub struct ScriptLog(Arc<Mutex<Script>>);

impl ScriptLog {
    /// Every command sent so far.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.0.lock().map(|s| s.sent.clone()).unwrap_or_default()
    }
    /// Steps not yet played.
    pub fn remaining(&self) -> usize {
        self.0.lock().map(|s| s.steps.len()).unwrap_or(0)
    }
    /// The first mismatch between what was expected and what came, if any.
    pub fn mismatch(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.mismatch.clone())
    }
    /// Asserts the script ran to its end with no mismatch.
    pub fn assert_done(&self) {
        assert_eq!(self.mismatch(), None, "script mismatch");
        assert_eq!(self.remaining(), 0, "script steps left unplayed");
    }
}

/// A transport that plays a script.
#[derive(Debug)]
pub struct ScriptedTransport {
    script: ScriptLog,
    capabilities: Capabilities,
    /// Opens logical channels itself ([`ScriptedTransport::managing_channels`]).
    manages_channels: bool,
}

impl ScriptedTransport {
    /// A transport playing `steps`, and the log to inspect it with.
    pub fn new(steps: Vec<Step>) -> (ScriptedTransport, ScriptLog) {
        let log = ScriptLog(Arc::new(Mutex::new(Script {
            steps: steps.into(),
            ..Default::default()
        })));
        (
            ScriptedTransport {
                script: log.clone(),
                capabilities: Capabilities::default(),
                manages_channels: false,
            },
            log,
        )
    }
    /// Overrides the capabilities.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// A transport that opens logical channels itself (like AT+CCHO): the script's
    /// [`Step::OpenChannel`] and [`Step::CloseChannel`] steps answer the session.
    pub fn managing_channels(mut self) -> Self {
        self.manages_channels = true;
        self
    }

    fn next(&self, what: String) -> Result<Step, TransportError> {
        let mut s = self
            .script
            .0
            .lock()
            .map_err(|_| TransportError::Protocol(String::from("script poisoned")))?;
        match s.steps.pop_front() {
            Some(step) => Ok(step),
            None => {
                let msg = format!("unexpected {what} after the end of the script");
                s.mismatch.get_or_insert(msg.clone());
                Err(TransportError::Protocol(msg))
            }
        }
    }

    fn mismatch(&self, msg: String) -> TransportError {
        if let Ok(mut s) = self.script.0.lock() {
            s.mismatch.get_or_insert(msg.clone());
        }
        TransportError::Protocol(msg)
    }
}

impl Transaction for ScriptedTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if let Ok(mut s) = self.script.0.lock() {
            s.sent.push(command.to_vec());
        }
        let got = hexutil::encode(command);
        match self.next(format!("APDU {got}"))? {
            Step::Apdu {
                command: want,
                response,
            } if want == command => Ok(response),
            Step::Fail {
                command: want,
                error,
            } if want == command => Err(error()),
            other => Err(self.mismatch(format!("expected {other:?}, got APDU {got}"))),
        }
    }
}

/// Plays [`Step::OpenChannel`] and [`Step::CloseChannel`], for a script made
/// [`ScriptedTransport::managing_channels`].
impl LogicalChannels for ScriptedTransport {
    fn open_channel(&mut self, aid: &[u8]) -> Result<Option<TransportChannel>, TransportError> {
        match self.next(format!("open_channel({})", hexutil::encode(aid)))? {
            Step::OpenChannel {
                aid: want,
                ok: true,
            } if want == aid => Ok(Some(TransportChannel { number: Some(1) })),
            Step::OpenChannel {
                aid: want,
                ok: false,
            } if want == aid => Err(TransportError::Modem {
                command: format!("AT+CCHO=\"{}\"", hexutil::encode(aid)),
                answer: String::from("+CME ERROR: 3"),
            }),
            other => Err(self.mismatch(format!("expected {other:?}, got open_channel"))),
        }
    }
    fn close_channel(&mut self) -> Result<(), TransportError> {
        match self.next(String::from("close_channel"))? {
            Step::CloseChannel => Ok(()),
            other => Err(self.mismatch(format!("expected {other:?}, got close_channel"))),
        }
    }
}

impl Transport for ScriptedTransport {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
    fn logical_channels(&mut self) -> Option<&mut dyn LogicalChannels> {
        if self.manages_channels {
            Some(self)
        } else {
            None
        }
    }
    /// Plays a [`Step::Refuse`] at the head of the script: the transaction cannot begin.
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        let refused = self.script.0.lock().ok().and_then(|mut s| {
            if let Some(Step::Refuse { error }) = s.steps.front() {
                let error = *error;
                s.steps.pop_front();
                Some(error())
            } else {
                None
            }
        });
        match refused {
            Some(error) => Err(error),
            None => Ok(Box::new(self)),
        }
    }
    fn reconnect(&mut self) -> Result<(), TransportError> {
        match self.next(String::from("reconnect"))? {
            Step::Reconnect => Ok(()),
            other => Err(self.mismatch(format!("expected {other:?}, got reconnect"))),
        }
    }
    fn describe(&self) -> String {
        String::from("scripted transport")
    }
}
