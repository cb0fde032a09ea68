//! Raw APDUs from the caller, on the session's channel and lock.

use crate::apdu::Command;
use crate::card::Card;
use crate::error::{CommandKind, Error};
use crate::link::Secrecy;
use crate::prelude::*;
use crate::stats::Operation;

impl Card {
    /// Sends one raw APDU on the session's channel lock (procedure bytes resolved) and returns
    /// the response APDU (data then SW1 SW2). The class byte is sent as given.
    pub fn transmit_raw(&self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
        // Parsed before the lock: a malformed APDU never reaches the card.
        let cmd = Command::parse(apdu)?;
        self.lock().run(Operation::Raw, |op| {
            let r = op.exchange(&cmd, CommandKind::Raw, Secrecy::Public)?;
            let mut out = r.data.to_vec();
            out.extend_from_slice(&r.sw.0.to_be_bytes());
            Ok(out)
        })
    }
}
