//! The environment variables that name a card, read by the `iotsafe` CLI (as defaults for its
//! flags) and by the PKCS#11 module ([`crate::config::cards`]).

/// A PC/SC reader, by name or unique substring (`--reader`).
pub const READER: &str = "IOTSAFE_READER";
/// A modem reached with AT commands: a serial device path or `tcp://HOST:PORT` (`--modem`).
pub const MODEM: &str = "IOTSAFE_MODEM";
/// A virtual card's state file, run in process (`--vcard`).
pub const VCARD: &str = "IOTSAFE_VCARD";
/// The AID of the IoT SAFE applet, in hex (`--aid`).
pub const AID: &str = "IOTSAFE_AID";
/// The PKCS#11 module's configuration file: one `[card]` section per slot.
pub const PKCS11_CONF: &str = "IOTSAFE_PKCS11_CONF";
/// The PKCS#11 token label, instead of the one made from the card.
pub const TOKEN_LABEL: &str = "IOTSAFE_TOKEN_LABEL";
