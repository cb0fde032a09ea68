//! Counters of what a session asked of the card: APDUs, bytes and time, per operation.
//! They feed the benchmarks, the demo report and the APDU-budget tests.

use alloc::collections::BTreeMap;
use core::time::Duration;

/// The card operations a session performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Opening the channel and selecting the applet.
    Select,
    /// GET DATA applet information.
    AppletInfo,
    /// GET DATA object list or one object.
    ObjectInfo,
    /// READ FILE (a whole file).
    ReadFile,
    /// GET RANDOM.
    Random,
    /// GENERATE KEY PAIR (with READ PUBLIC KEY fallback).
    GenerateKeyPair,
    /// READ PUBLIC KEY.
    ReadPublicKey,
    /// PUT PUBLIC KEY.
    PutPublicKey,
    /// COMPUTE SIGNATURE.
    Sign,
    /// VERIFY SIGNATURE.
    Verify,
    /// COMPUTE DH.
    Dh,
    /// COMPUTE HKDF.
    Hkdf,
    /// COMPUTE PRF.
    Prf,
    /// MANAGE CHANNEL close.
    Close,
    /// A raw APDU.
    Raw,
}

/// Counters of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationStats {
    /// How many times the operation ran (successfully or not).
    pub count: u64,
    /// How many failed.
    pub failures: u64,
    /// APDUs it sent, GET RESPONSEs and re-sends included.
    pub apdus: u64,
    /// Time spent waiting for the card (transport included).
    pub time: Duration,
}

/// Counters of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardStats {
    /// APDUs sent.
    pub apdus: u64,
    /// Bytes sent (command APDUs).
    pub bytes_sent: u64,
    /// Bytes received (response APDUs, status words included).
    pub bytes_received: u64,
    /// Bytes the APDUs took on the transport's own link, where the host sees it (a modem's AT
    /// text: hex doubling and framing; zero for PC/SC and in-process cards).
    pub wire_bytes_sent: u64,
    /// Bytes read on the transport's own link for the APDUs' answers (see `wire_bytes_sent`).
    pub wire_bytes_received: u64,
    /// Time spent in `transmit` (card and transport).
    pub time_in_card: Duration,
    /// Reconnections after a removal, reset or service restart.
    pub reconnects: u64,
    /// Card resets the session saw or inferred (a reset reported by the transport, or the card no
    /// longer knowing the session's channel). Each retires the volatile keys made before it.
    pub card_resets: u64,
    /// Explicit session closes (`P1=01`) the card refused after the operation itself had succeeded
    /// (some cards close the session themselves after the final Update). The result was kept.
    pub close_failures: u64,
    /// Inits the card refused while sessions the host had left open were still open (see
    /// [`SessionClosing::UnlessRefused`](crate::SessionClosing::UnlessRefused)); each was
    /// answered by closing them and sending the Init again.
    pub reopen_refusals: u64,
    /// Signatures from the card that did not verify against the key's public point (never passed on).
    pub bad_signatures: u64,
    /// Per operation.
    pub operations: BTreeMap<Operation, OperationStats>,
}

impl CardStats {
    /// Counters of one operation (zero when it never ran).
    pub fn of(&self, op: Operation) -> OperationStats {
        self.operations.get(&op).copied().unwrap_or_default()
    }
    /// How many times `op` ran.
    pub fn count(&self, op: Operation) -> u64 {
        self.of(op).count
    }
    /// The difference `self - earlier`, for measuring one piece of work.
    pub fn since(&self, earlier: &CardStats) -> CardStats {
        let mut operations = BTreeMap::new();
        for (op, now) in &self.operations {
            let before = earlier.of(*op);
            let d = OperationStats {
                count: now.count - before.count.min(now.count),
                failures: now.failures - before.failures.min(now.failures),
                apdus: now.apdus - before.apdus.min(now.apdus),
                time: now.time.saturating_sub(before.time),
            };
            if d != OperationStats::default() {
                operations.insert(*op, d);
            }
        }
        CardStats {
            apdus: self.apdus - earlier.apdus.min(self.apdus),
            bytes_sent: self.bytes_sent - earlier.bytes_sent.min(self.bytes_sent),
            bytes_received: self.bytes_received - earlier.bytes_received.min(self.bytes_received),
            wire_bytes_sent: self.wire_bytes_sent.saturating_sub(earlier.wire_bytes_sent),
            wire_bytes_received: self
                .wire_bytes_received
                .saturating_sub(earlier.wire_bytes_received),
            time_in_card: self.time_in_card.saturating_sub(earlier.time_in_card),
            reconnects: self.reconnects - earlier.reconnects.min(self.reconnects),
            card_resets: self.card_resets - earlier.card_resets.min(self.card_resets),
            close_failures: self.close_failures - earlier.close_failures.min(self.close_failures),
            reopen_refusals: self.reopen_refusals.saturating_sub(earlier.reopen_refusals),
            bad_signatures: self.bad_signatures - earlier.bad_signatures.min(self.bad_signatures),
            operations,
        }
    }
}
