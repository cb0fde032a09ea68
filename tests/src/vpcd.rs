//! Plugging a virtual card into a vpcd slot of pcscd, and waiting until pcscd sees it.
//!
//! The shared pcscd the test script started has vpcd slot 1 for these tests ([`Slot::shared`]);
//! a [`crate::private_pcscd::PrivatePcscd`] has slots of its own ([`Slot`] values it hands out).

use iotsafe_vcard::frontend::vpcd::{VpcdClient, VpcdHandle, VpcdOptions, VpcdStats};
use iotsafe_vcard::frontend::SharedCard;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// pcscd notices a vpcd card after 0.3–0.45 s (it polls); allow for a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// One vpcd slot: where the vpcd driver inside pcscd listens for the card, and the PC/SC reader
/// name pcscd gives that slot.
#[derive(Clone, Debug)]
pub struct Slot {
    /// The vpcd driver's listening address for this slot.
    pub vpcd: SocketAddr,
    /// The PC/SC reader name of this slot.
    pub reader: String,
}

impl Slot {
    /// Slot 1 of the shared pcscd (`Virtual PCD 00 01`, port 35964).
    pub fn shared() -> Slot {
        Slot {
            vpcd: crate::VPCD_SLOT1.parse().expect("slot 1 address"),
            reader: crate::READER_SLOT1.to_owned(),
        }
    }
}

/// A card plugged into a slot; unplugged (and pcscd seen empty again) when dropped.
pub struct Plugged {
    handle: Option<VpcdHandle>,
    stats: Arc<VpcdStats>,
    slot: Slot,
}

impl Plugged {
    /// How many times the card was inserted (connected to vpcd) so far: 1 after plugging, one
    /// more after every re-insertion that follows an injected disconnect or a pcscd restart.
    pub fn insertions(&self) -> u64 {
        self.stats.connections()
    }
    /// How many command APDUs reached the card through vpcd.
    pub fn apdus(&self) -> u64 {
        self.stats.apdus()
    }
    /// The vpcd client's live counters, for watching from another thread.
    pub fn stats(&self) -> Arc<VpcdStats> {
        self.stats.clone()
    }

    /// Stops the card's connection, as if it was pulled, and waits for pcscd to see it gone.
    pub fn unplug(&mut self) {
        if let Err(err) = self.pull() {
            panic!("{err}");
        }
    }

    /// [`Plugged::unplug`], saying what went wrong instead of panicking.
    fn pull(&mut self) -> Result<(), String> {
        match self.handle.take() {
            Some(h) => {
                let _ = h.stop();
                reader_reaches(&self.slot, false)
            }
            None => Ok(()),
        }
    }
}

impl Drop for Plugged {
    /// Unplugs; when pcscd is gone (a test that killed it, or one that failed), only stops the
    /// card's connection: a destructor must not panic.
    fn drop(&mut self) {
        if let Err(err) = self.pull() {
            eprintln!("unplugging from {:?}: {err}", self.slot.reader);
        }
    }
}

/// Opens a `Card` session (default configuration) on the card in `Virtual PCD 00 01` through
/// PC/SC, as any host application would.
pub fn open_card() -> Arc<iotsafe_core::Card> {
    open_card_in(&Slot::shared(), iotsafe_core::pcsc::PcscOptions::default())
}

/// Opens a `Card` session (default configuration) on the card in `slot` with `options`.
pub fn open_card_in(
    slot: &Slot,
    options: iotsafe_core::pcsc::PcscOptions,
) -> Arc<iotsafe_core::Card> {
    use iotsafe_core::pcsc::{PcscTransport, ReaderChoice};
    let transport = PcscTransport::connect(&ReaderChoice::Exact(slot.reader.clone()), options)
        .unwrap_or_else(|e| panic!("connect to the card in {:?}: {e}", slot.reader));
    Arc::new(
        iotsafe_core::Card::open(transport, iotsafe_core::CardConfig::default())
            .expect("select the applet"),
    )
}

/// Plugs `card` into vpcd slot 1 and waits until pcscd reports a card in `Virtual PCD 00 01`.
pub fn plug(card: SharedCard) -> Plugged {
    plug_into(&Slot::shared(), card)
}

/// Plugs `card` into `slot` and waits until pcscd reports a card there. The vpcd client
/// re-inserts the card by itself whenever its connection drops (0.8 s later, then with backoff).
pub fn plug_into(slot: &Slot, card: SharedCard) -> Plugged {
    wait_for_reader_in(slot, false);
    let options = VpcdOptions {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        reinsert_after: Duration::from_millis(800),
        ..VpcdOptions::default()
    };
    let client = VpcdClient::new(card, slot.vpcd, options);
    let stats = client.stats();
    let handle = client.spawn().expect("start the vpcd client");
    wait_for_reader_in(slot, true);
    Plugged {
        handle: Some(handle),
        stats,
        slot: slot.clone(),
    }
}

/// Waits until pcscd reports slot 1 with a card (`true`) or empty.
pub fn wait_for_reader(present: bool) {
    wait_for_reader_in(&Slot::shared(), present)
}

/// Waits until pcscd reports `slot` with a card (`true`) or empty. A card that leaves and one
/// that arrives within one pcscd poll look like one card that never left, so every test waits
/// for "empty" before plugging and after unplugging.
pub fn wait_for_reader_in(slot: &Slot, present: bool) {
    if let Err(err) = reader_reaches(slot, present) {
        panic!("{err}");
    }
}

/// [`wait_for_reader_in`], saying what went wrong instead of panicking.
fn reader_reaches(slot: &Slot, present: bool) -> Result<(), String> {
    iotsafe_core::pcsc::wait_for_reader(&slot.reader, present, DEADLINE)
        .map_err(|err| format!("waiting for {:?}: {err}", slot.reader))
}
