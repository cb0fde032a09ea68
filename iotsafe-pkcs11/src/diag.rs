//! Diagnostics for whoever sets up the module: why a card did not open, why an object was left
//! out. A PKCS#11 module has no channel of its own to its user, so they go to standard error, and
//! only when `IOTSAFE_PKCS11_DEBUG=1` (a program loading the module must not find its output
//! changed). Configuration errors, which leave the module unusable, are always shown.

use std::fmt::Arguments;
use std::sync::OnceLock;

/// Whether `IOTSAFE_PKCS11_DEBUG=1`.
fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("IOTSAFE_PKCS11_DEBUG").is_ok_and(|v| v == "1"))
}

/// Notes something the user may want to know, when debugging is on.
pub fn note(message: Arguments<'_>) {
    if enabled() {
        eprintln!("iotsafe-pkcs11: {message}");
    }
}

/// Reports a problem that makes the module unusable (a bad configuration), always.
pub fn error(message: Arguments<'_>) {
    eprintln!("iotsafe-pkcs11: {message}");
}
