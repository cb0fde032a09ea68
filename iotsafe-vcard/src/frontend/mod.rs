//! Front ends: how the bytes of a [`CardHandler`] reach a host.
//!
//! - [`vpcd`]: a client of pcscd's vpcd driver, so the card becomes a real PC/SC reader
//!   (`Virtual PCD 00 00`) that any PC/SC application can use.
//! - [`at`]: a cellular modem emulation speaking `AT+CSIM` and `AT+CCHO`/`AT+CGLA`/`AT+CCHC`, over
//!   any byte stream; [`pty`] puts it on a pseudo-terminal (a real `/dev/pts/N` device node) and
//!   [`tcp`] on a loopback TCP port.
//!
//! Every front end speaks only [`CardHandler::handle`] and acts out the [`Reply`] it gets, so the
//! same injected fault (a stall, a card pulled) looks right on every path.
//!
//! From a program:
//!
//! ```no_run
//! use iotsafe_vcard::frontend::{at::AtOptions, pty::PtyModem, share, vpcd};
//! use iotsafe_vcard::{CardOptions, VirtualCard};
//!
//! let card = share(VirtualCard::with_default_layout(CardOptions::default()));
//! // A PC/SC reader "Virtual PCD 00 00" behind pcscd:
//! let reader = vpcd::spawn_vpcd(
//!     card.clone(),
//!     vpcd::DEFAULT_VPCD_ADDR.parse().unwrap(),
//!     vpcd::VpcdOptions::default(),
//! )?;
//! // And a modem on a pty, for hosts that speak AT:
//! let pty = PtyModem::open()?;
//! println!("modem on {}", pty.path().display());
//! let modem = pty.spawn(card, AtOptions::default())?;
//! // ...
//! modem.stop()?;
//! reader.stop()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! From a shell: `iotsafe-vcard provision --state card.json --pki-out pki/`, then
//! `iotsafe-vcard serve --state card.json` (vpcd) or `… serve --state card.json --at-pty`
//! (prints `pty: /dev/pts/N`).

pub mod at;
pub mod pty;
pub mod tcp;
pub mod vpcd;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{CardHandler, Reply};

/// A card shared between a front end's thread and whoever else holds it (tests, other front ends).
pub type SharedCard = Arc<Mutex<dyn CardHandler>>;

/// Wraps a card so front ends can share it.
pub fn share<C: CardHandler + 'static>(card: C) -> SharedCard {
    Arc::new(Mutex::new(card))
}

/// Locks the card. A panic in another holder must not take every front end down with it, so a
/// poisoned lock is taken over as it is: the card's own invariants are its business.
pub(crate) fn lock(card: &SharedCard) -> MutexGuard<'_, dyn CardHandler + 'static> {
    iotsafe_core::lock::lock(card)
}

/// What a front end does after giving the card one command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// Send this response APDU.
    Answer(Vec<u8>),
    /// The card is gone: act out a card removal.
    Disconnect,
}

/// Sends one APDU through [`CardHandler::handle`] and acts out a [`Reply::Stall`] by sleeping
/// (outside the lock, so other users of the card are not stalled too). The sleep ends early when
/// `stop` is raised, so a stalled front end can still be shut down.
pub(crate) fn exchange(card: &SharedCard, apdu: &[u8], stop: &AtomicBool) -> Exchange {
    let reply = lock(card).handle(apdu);
    match reply {
        Reply::Answer(response) => Exchange::Answer(response),
        Reply::Disconnect => Exchange::Disconnect,
        Reply::Stall(delay, response) => {
            sleep_unless_stopped(delay, stop);
            Exchange::Answer(response)
        }
    }
}

/// Sleeps for `duration`, waking every few milliseconds to see whether `stop` was raised.
/// Returns `false` when it was.
pub(crate) fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + duration;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// Whether a failed read only means "nothing yet": it timed out (`WouldBlock`, `TimedOut`, the
/// way a front end's read wakes up to look at its stop flag) or a signal interrupted it. Any other
/// error ends the front end.
pub(crate) fn read_wakes_up(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Refuses a non-loopback address unless `allow_remote`: a virtual card holds a private key, and
/// anyone who reaches its front end can sign with it.
pub fn ensure_loopback(addr: SocketAddr, allow_remote: bool) -> io::Result<()> {
    if allow_remote || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{addr} is not a loopback address (allowing it needs an explicit opt-in)"),
        ))
    }
}

/// A front end running on its own thread; [`FrontendHandle::stop`] ends it.
#[derive(Debug)]
pub struct FrontendHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl FrontendHandle {
    /// Starts `run` on a named thread with a fresh stop flag.
    pub(crate) fn spawn<F>(name: &str, run: F) -> io::Result<Self>
    where
        F: FnOnce(Arc<AtomicBool>) -> io::Result<()> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(flag))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// The flag the front end polls; raising it asks the front end to stop.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Whether the front end's thread has ended (stopped, or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the front end to stop, waits for its thread, and returns how it ended.
    pub fn stop(self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits for the front end's thread without asking it to stop.
    pub fn join(mut self) -> io::Result<()> {
        self.join_inner()
    }

    fn join_inner(&mut self) -> io::Result<()> {
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("front end thread panicked"))),
        }
    }
}

impl Drop for FrontendHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.join_inner();
    }
}
