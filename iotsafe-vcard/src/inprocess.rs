//! [`InProcessTransport`]: plugs a [`VirtualCard`] straight into the client's [`Transport`] seam.

use std::sync::{Arc, Mutex, MutexGuard};

use iotsafe_core::{Transaction, Transport, TransportError};

use crate::{CardHandler, Reply, VirtualCard};

/// A transport whose card lives in the same process. Faults act out as on a real link:
/// [`Reply::Disconnect`] becomes [`TransportError::Disconnected`], a stall sleeps before answering.
#[derive(Debug, Clone)]
pub struct InProcessTransport {
    card: Arc<Mutex<VirtualCard>>,
}

impl InProcessTransport {
    /// Takes ownership of `card`.
    pub fn new(card: VirtualCard) -> InProcessTransport {
        InProcessTransport::shared(Arc::new(Mutex::new(card)))
    }

    /// Shares `card` with the test that made it (to read counters or change faults while a client runs).
    pub fn shared(card: Arc<Mutex<VirtualCard>>) -> InProcessTransport {
        InProcessTransport { card }
    }

    /// The shared card.
    pub fn card(&self) -> Arc<Mutex<VirtualCard>> {
        Arc::clone(&self.card)
    }

    fn lock(&self) -> MutexGuard<'_, VirtualCard> {
        // A panic elsewhere while holding the lock leaves the card usable: it never panics itself.
        iotsafe_core::lock::lock(&self.card)
    }
}

impl Transaction for InProcessTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let reply = self.lock().handle(command);
        match reply {
            Reply::Answer(response) => Ok(response),
            Reply::Disconnect => Err(TransportError::Disconnected),
            Reply::Stall(delay, response) => {
                std::thread::sleep(delay);
                Ok(response)
            }
        }
    }
}

impl Transport for InProcessTransport {
    /// The card is in this process; nothing else reaches it.
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        Ok(Box::new(self))
    }

    /// Clears a disconnect fault and power-cycles the card: channels and sessions are gone, as after
    /// [`TransportError::ResetCard`].
    fn reconnect(&mut self) -> Result<(), TransportError> {
        let mut card = self.lock();
        let mut faults = card.faults().clone();
        faults.disconnect_after = None;
        card.set_faults(faults);
        card.power_off();
        card.power_on();
        Ok(())
    }

    fn describe(&self) -> String {
        String::from("virtual card (in-process)")
    }
}
