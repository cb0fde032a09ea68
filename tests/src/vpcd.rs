//! Plugging a virtual card into pcscd's vpcd slot 1, and waiting until pcscd sees it.

use iotsafe_vcard::frontend::vpcd::{VpcdClient, VpcdHandle, VpcdOptions, VpcdStats};
use iotsafe_vcard::frontend::SharedCard;
use pcsc::{Context, ReaderState, Scope, State};
use std::ffi::CString;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// pcscd notices a vpcd card after 0.3–0.45 s (it polls); allow for a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A card plugged into slot 1; unplugged (and pcscd seen empty again) when dropped.
pub struct Plugged {
    handle: Option<VpcdHandle>,
    stats: Arc<VpcdStats>,
}

impl Plugged {
    /// How many times the card was inserted (connected to vpcd) so far: 1 after plugging, one
    /// more after every re-insertion that follows an injected disconnect.
    pub fn insertions(&self) -> u64 {
        self.stats.connections()
    }
    /// How many command APDUs reached the card through vpcd.
    pub fn apdus(&self) -> u64 {
        self.stats.apdus()
    }

    /// Stops the card's connection, as if it was pulled, and waits for pcscd to see it gone.
    pub fn unplug(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.stop();
            wait_for_reader(false);
        }
    }
}

impl Drop for Plugged {
    fn drop(&mut self) {
        self.unplug();
    }
}

/// Opens a `Card` session (default configuration) on the card in `Virtual PCD 00 01` through
/// PC/SC, as any host application would.
pub fn open_card() -> std::sync::Arc<iotsafe_core::Card> {
    use iotsafe_core::pcsc::{PcscOptions, PcscTransport, ReaderChoice};
    let transport = PcscTransport::connect(
        &ReaderChoice::Exact(crate::READER_SLOT1.into()),
        PcscOptions::default(),
    )
    .expect("connect to the card in Virtual PCD 00 01");
    std::sync::Arc::new(
        iotsafe_core::Card::open(transport, iotsafe_core::CardConfig::default())
            .expect("select the applet"),
    )
}

/// Plugs `card` into vpcd slot 1 and waits until pcscd reports a card in `Virtual PCD 00 01`.
pub fn plug(card: SharedCard) -> Plugged {
    wait_for_reader(false);
    let options = VpcdOptions {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        reinsert_after: Duration::from_millis(800),
        ..VpcdOptions::default()
    };
    let addr = crate::VPCD_SLOT1.parse().expect("slot 1 address");
    let client = VpcdClient::new(card, addr, options);
    let stats = client.stats();
    let handle = client.spawn().expect("start the vpcd client");
    wait_for_reader(true);
    Plugged {
        handle: Some(handle),
        stats,
    }
}

/// Waits until pcscd reports slot 1 with a card (`true`) or empty. A card that leaves and one
/// that arrives within one pcscd poll look like one card that never left, so every test waits
/// for "empty" before plugging and after unplugging.
pub fn wait_for_reader(present: bool) {
    let ctx = Context::establish(Scope::User).expect("PC/SC context (is pcscd running?)");
    let reader = CString::new(crate::READER_SLOT1).expect("reader name");
    let wanted = if present {
        State::PRESENT
    } else {
        State::EMPTY
    };
    let mut states = [ReaderState::new(reader.clone(), State::UNAWARE)];
    let deadline = Instant::now() + DEADLINE;
    loop {
        match ctx.get_status_change(Duration::from_millis(200), &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(err) => panic!("SCardGetStatusChange on {reader:?}: {err}"),
        }
        if states[0].event_state().contains(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pcscd never reported {reader:?} {}; last state {:?}",
            if present { "with a card" } else { "empty" },
            states[0].event_state()
        );
        states[0].sync_current_state();
    }
}
