//! [`VirtualCard`]: the applet behind the [`CardHandler`] seam, with its latency model, fault plan and
//! state file.

use std::path::{Path, PathBuf};

use crate::dispatch::Applet;
use crate::error::VcardError;
use crate::faults::{FaultPlan, Verdict};
use crate::profile::{CardOptions, TransportMode};
use crate::store::ObjectStore;
use crate::{state, CardHandler, Reply};

/// A software IoT SAFE applet on a card.
///
/// Front ends drive it through [`CardHandler`]; tests can also reach the store and counters.
#[derive(Debug)]
pub struct VirtualCard {
    applet: Applet,
    options: CardOptions,
    state_path: Option<PathBuf>,
    apdu_count: u64,
}

impl VirtualCard {
    /// A card holding `store`, without a state file.
    pub fn new(store: ObjectStore, options: CardOptions) -> VirtualCard {
        VirtualCard {
            applet: Applet::new(store, options.quirks.clone(), options.transport),
            options,
            state_path: None,
            apdu_count: 0,
        }
    }

    /// A card with the default layout (`docs/architecture.md#default-layout`) and a fresh device key made inside it; no
    /// certificates until provisioned.
    pub fn with_default_layout(options: CardOptions) -> VirtualCard {
        VirtualCard::new(ObjectStore::default_layout(), options)
    }

    /// Loads the card from the state file at `path`; later changes (key generation, put public key,
    /// file writes) are written back to it atomically.
    pub fn open_state(path: &Path, options: CardOptions) -> Result<VirtualCard, VcardError> {
        let store = state::load(path)?;
        let mut card = VirtualCard::new(store, options);
        card.state_path = Some(path.to_path_buf());
        Ok(card)
    }

    /// Creates a card with the default layout, saves it to a new state file at `path` and keeps
    /// writing back to it.
    pub fn create_state(path: &Path, options: CardOptions) -> Result<VirtualCard, VcardError> {
        let mut card = VirtualCard::with_default_layout(options);
        card.state_path = Some(path.to_path_buf());
        card.save()?;
        Ok(card)
    }

    /// Writes the store to the state file (atomically, mode 0600). Volatile keys are not written.
    pub fn save(&self) -> Result<(), VcardError> {
        let path = self.state_path.as_deref().ok_or(VcardError::NoStateFile)?;
        state::save(path, &self.applet.store)
    }

    /// The state file this card writes back to, if any.
    pub fn state_path(&self) -> Option<&Path> {
        self.state_path.as_deref()
    }

    /// The object store (read-only; keys stay inside [`crate::store::SecretBytes`]).
    pub fn store(&self) -> &ObjectStore {
        &self.applet.store
    }

    /// The object store, for provisioning files or keys out of band; call [`VirtualCard::save`] after.
    pub fn store_mut(&mut self) -> &mut ObjectStore {
        &mut self.applet.store
    }

    /// The options the card runs with.
    pub fn options(&self) -> &CardOptions {
        &self.options
    }

    /// Replaces the fault plan.
    pub fn set_faults(&mut self, faults: FaultPlan) {
        self.options.faults = faults;
    }

    /// Replaces the latency model (e.g. to time a benchmark with and without it).
    pub fn set_latency(&mut self, latency: crate::profile::Latency) {
        self.options.latency = latency;
    }

    /// The fault plan in force.
    pub fn faults(&self) -> &FaultPlan {
        &self.options.faults
    }

    /// How many logical channels besides the basic channel are open on the card right now (by
    /// MANAGE CHANNEL, by SELECT on a closed channel, or by a modem's `AT+CCHO`). A reset or power
    /// cycle brings it back to 0; a test reads it to prove no channel leaked.
    pub fn open_channel_count(&self) -> usize {
        self.applet.open_channel_count()
    }

    /// How many APDUs the card has received since it was created (the number of the last one).
    pub fn apdu_count(&self) -> u64 {
        self.apdu_count
    }

    /// Runs one APDU through the applet, sleeps for its latency, and writes the state file if the
    /// command changed persistent objects (a failed write turns the answer into `6581`).
    fn execute(&mut self, apdu: &[u8]) -> Vec<u8> {
        let (mut response, op) = self.applet.process(apdu);
        // Header and status word only: data may carry secrets (DH output, PRF input).
        tracing::trace!(
            header = ?apdu.get(..4),
            sw = ?response.get(response.len().saturating_sub(2)..),
            "virtual card APDU"
        );
        let latency = &self.options.latency;
        let delay = latency.apdu + op.map(|o| latency.of(o)).unwrap_or_default();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if std::mem::take(&mut self.applet.store_changed) && self.state_path.is_some() {
            if let Err(e) = self.save() {
                tracing::error!(error = %e, "virtual card could not write its state file");
                response = crate::sw::MEMORY_FAILURE.to_be_bytes().to_vec();
            }
        }
        response
    }
}

/// ATR of a T=0 card: TS `3B`, T0 with 10 historical bytes, no interface bytes (T=0 implied).
const ATR_T0: &[u8] = &[
    0x3B, 0x0A, 0x80, 0x58, b'I', b'o', b'T', b'S', b'A', b'F', b'E', b'0',
];

/// ATR of a T=1 card: TD1 and TD2 announce T=1, TA3 = IFSC 254, TB3 = BWI/CWI 4/5, then the
/// historical bytes and TCK (XOR of T0..the last historical byte).
fn atr_t1() -> Vec<u8> {
    let mut atr = vec![
        0x3B, 0x8A, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x58, b'I', b'o', b'T', b'S', b'A', b'F', b'E',
        b'1',
    ];
    let tck = atr.iter().skip(1).fold(0u8, |acc, b| acc ^ b);
    atr.push(tck);
    atr
}

impl CardHandler for VirtualCard {
    fn atr(&self) -> Vec<u8> {
        match self.options.transport {
            TransportMode::T0 => ATR_T0.to_vec(),
            TransportMode::T1 => atr_t1(),
        }
    }

    fn power_on(&mut self) {
        self.applet.reset();
    }

    fn power_off(&mut self) {
        self.applet.reset();
    }

    fn reset(&mut self) {
        self.applet.reset();
    }

    fn open_channel_count(&self) -> Option<usize> {
        Some(VirtualCard::open_channel_count(self))
    }

    fn serial_link(&self) -> Option<crate::SerialLink> {
        self.options.latency.serial
    }

    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.apdu_count = self.apdu_count.saturating_add(1);
        self.execute(apdu)
    }

    fn handle(&mut self, apdu: &[u8]) -> Reply {
        self.apdu_count = self.apdu_count.saturating_add(1);
        let n = self.apdu_count;
        match self.options.faults.before(n) {
            Verdict::Disconnect => return Reply::Disconnect,
            Verdict::StatusWord(sw) => return Reply::Answer(sw.to_be_bytes().to_vec()),
            Verdict::Execute => {}
        }
        let mut response = self.execute(apdu);
        self.options.faults.corrupt(n, &mut response);
        match self.options.faults.stall(n) {
            Some(d) => Reply::Stall(d, response),
            None => Reply::Answer(response),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t1_atr_checksum() {
        let atr = atr_t1();
        assert_eq!(atr.iter().skip(1).fold(0u8, |a, b| a ^ b), 0);
    }
}
