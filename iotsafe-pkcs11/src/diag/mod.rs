//! Diagnostics for whoever sets up the module: why a card did not open, why an object was left
//! out, why a call failed, and what the card session and its transport did (`iotsafe-core`'s
//! events). All of it is `tracing` events; a PKCS#11 module has no channel of its own to its user,
//! so with `IOTSAFE_PKCS11_DEBUG=1` `C_Initialize` installs a subscriber that writes the events of
//! the iotsafe crates, from level DEBUG up, to standard error. Without it nothing is printed (a
//! program loading the module must not find its output changed), except a configuration error,
//! which leaves the module unusable: that one is always shown.
//!
//! The subscriber is this module's own: the `.so` links its own copy of `tracing`, apart from any
//! the host program has, so it never takes the place of the host's. It is installed once per
//! process, and never if a global subscriber is set already (then that one gets the events).

mod stderr;

use crate::config::ConfigError;
use crate::error::Error;
use std::sync::OnceLock;

/// The variable that turns diagnostics on.
const VARIABLE: &str = "IOTSAFE_PKCS11_DEBUG";

/// Whether `IOTSAFE_PKCS11_DEBUG=1` (read once per process, at the first `C_Initialize`).
fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(VARIABLE).is_ok_and(|v| v == "1"))
}

/// A subscriber writing the events of the iotsafe crates (`iotsafe_core`, `iotsafe_select`, this
/// module, …), DEBUG and up, to standard error, one plain line each.
fn to_stderr() -> impl tracing::Subscriber + Send + Sync {
    stderr::Lines::default()
}

/// Installs the subscriber when diagnostics are on (`C_Initialize`, before anything else): once,
/// and only if the process has no global subscriber yet. Never unwinds into the caller: a panic
/// while setting up leaves diagnostics off.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let _ = std::panic::catch_unwind(|| {
        if enabled() {
            ONCE.call_once(|| {
                // Set already (a host sharing this copy of `tracing`): that one stays.
                let _ = tracing::subscriber::set_global_default(to_stderr());
            });
        }
    });
}

/// Says why a C function failed (when diagnostics are on).
pub fn failed(error: &Error) {
    tracing::debug!(rv = %format_args!("{:#x}", error.rv()), "failed: {error}");
}

/// Reports a configuration the module cannot use: always, also without `IOTSAFE_PKCS11_DEBUG`
/// (then through a subscriber of this one event).
pub fn unusable(error: &ConfigError) {
    let report = || tracing::error!("configuration: {error}");
    if enabled() {
        report();
    } else {
        tracing::subscriber::with_default(to_stderr(), report);
    }
}
