//! The module of this process, from `C_Initialize` to `C_Finalize`, and what a forked child
//! finds: its parent's module, which it must neither use nor drop.
//!
//! A prefork server loads the module, calls `C_Initialize` and forks; PKCS#11 (v2.40 §6.7.7)
//! has the child call `C_Initialize` again. The child shares its parent's connections to the card
//! (a modem's socket, a PC/SC context): talking on them would interleave with the parent's
//! APDUs, and closing them (dropping the module closes each card's logical channel) would close
//! the parent's channel. So in the child the inherited module counts as not initialized, and
//! its `C_Initialize` sets it aside for good (it is leaked, never dropped) and opens the cards
//! afresh. A fork while another thread is inside the module is not supported, as for any library
//! that holds locks.

use crate::error::{Error, P11Result};
use crate::module::Module;
use std::sync::{Arc, RwLock};

/// The module, and the process that initialized it.
struct Initialized {
    pid: u32,
    module: Arc<Module>,
}

static STATE: RwLock<Option<Initialized>> = RwLock::new(None);

/// The module this process initialized.
pub(crate) fn current() -> Option<Arc<Module>> {
    let state = iotsafe_core::lock::read(&STATE);
    state
        .as_ref()
        .filter(|s| s.pid == std::process::id())
        .map(|s| Arc::clone(&s.module))
}

/// `C_Initialize`, its arguments checked: a module made from the configuration
/// (`crate::config`).
pub(crate) fn initialize() -> P11Result<()> {
    let mut state = iotsafe_core::lock::write(&STATE);
    set_aside_the_parents(&mut state);
    if state.is_some() {
        return Err(Error::AlreadyInitialized);
    }
    let cards = crate::config::cards(|name| std::env::var(name).ok()).map_err(|e| {
        crate::diag::unusable(&e);
        Error::Configuration(e)
    })?;
    *state = Some(Initialized {
        pid: std::process::id(),
        module: Arc::new(Module::new(cards)),
    });
    Ok(())
}

/// `C_Finalize`, its argument checked.
pub(crate) fn finalize() -> P11Result<()> {
    let mut state = iotsafe_core::lock::write(&STATE);
    set_aside_the_parents(&mut state);
    state.take().map(drop).ok_or(Error::NotInitialized)
}

/// A module inherited from the parent of a fork: leaked, so that nothing of it runs here.
fn set_aside_the_parents(state: &mut Option<Initialized>) {
    if state.as_ref().is_some_and(|s| s.pid != std::process::id()) {
        tracing::debug!(
            "a forked child: its parent's module is set aside, the cards are opened afresh"
        );
        std::mem::forget(state.take());
    }
}
