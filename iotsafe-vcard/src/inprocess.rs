//! [`InProcessTransport`]: plugs a [`VirtualCard`] straight into the client's [`Transport`] seam.

use std::sync::{Arc, Mutex, MutexGuard};

use iotsafe_core::{Transaction, Transport, TransportError};

use crate::serial::{csim_answer_len, csim_command_len};
use crate::{CardHandler, Reply, VirtualCard};

/// A transport whose card lives in the same process. Faults act out as on a real link:
/// [`Reply::Disconnect`] becomes [`TransportError::Disconnected`], a stall sleeps before answering.
///
/// Serial time: there is no AT text in process, so when the card's latency model has a serial
/// link ([`crate::Latency::serial`], e.g. the `modem` preset) each APDU is charged the UART time
/// of the `AT+CSIM` lines a modem with echo off would carry for it: the command line
/// `AT+CSIM=<2n>,"<HEX>"\r` before the card sees the APDU, and the answer
/// `\r\n+CSIM: <2m>,"<HEX>"\r\n\r\nOK\r\n` after it answered (10 bits a byte, the hex doubling
/// the APDU). A T=0 card's GET RESPONSE is an `AT+CSIM` of its own; a lost card charges the
/// command line only. The card's own latency comes on top, inside the card.
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
        let (reply, latency) = {
            let mut card = self.lock();
            let latency = card.options().latency;
            // The modem hands the APDU to the card once the command line is in; the UART is busy
            // with it, so the card is held meanwhile, as the modem holds it.
            sleep(latency.serial_time(csim_command_len(command.len())));
            (card.handle(command), latency)
        };
        let response = match reply {
            Reply::Answer(response) => response,
            Reply::Disconnect => return Err(TransportError::Disconnected),
            Reply::Stall(delay, response) => {
                std::thread::sleep(delay);
                response
            }
        };
        sleep(latency.serial_time(csim_answer_len(response.len())));
        Ok(response)
    }
}

/// Sleeps unless `duration` is zero.
fn sleep(duration: std::time::Duration) {
    if !duration.is_zero() {
        std::thread::sleep(duration);
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
