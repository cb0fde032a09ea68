//! Status words the card answers (`docs/protocol.md#status-words`), named for the reason the card gives them.

/// Success.
pub const OK: u16 = 0x9000;
/// GET DATA object list: more parts follow (ask again with P2=01).
pub const MORE_DATA: u16 = 0x6300;
/// Writing the state file failed.
pub const MEMORY_FAILURE: u16 = 0x6581;
/// Wrong length: Lc does not match the data, a TLV runs past the end, or a short APDU.
pub const WRONG_LENGTH: u16 = 0x6700;
/// The logical channel is not open (or cannot be opened implicitly).
pub const CHANNEL_NOT_SUPPORTED: u16 = 0x6881;
/// Conditions of use not satisfied: wrong key function, access, empty key, no open session.
pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
/// Incorrect data: bad TLV values, a point off the curve, unsupported algorithm.
pub const INCORRECT_DATA: u16 = 0x6A80;
/// Function not supported: no free logical channel.
pub const NO_FREE_CHANNEL: u16 = 0x6A81;
/// Object (or applet) not found.
pub const NOT_FOUND: u16 = 0x6A82;
/// Not enough memory: too many open sessions, or a message too long to buffer.
pub const NOT_ENOUGH_MEMORY: u16 = 0x6A84;
/// Incorrect P1/P2.
pub const WRONG_P1P2: u16 = 0x6A86;
/// Unknown instruction (or no applet selected on the channel to understand it).
pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
/// VERIFY SIGNATURE: the signature does not match.
pub const SIGNATURE_MISMATCH: u16 = 0x6D01;
/// Class byte not supported.
pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
/// No precise diagnosis (a signature prefix the card could not reach).
pub const UNKNOWN_ERROR: u16 = 0x6F00;

/// `61 xx`: `xx` bytes wait for GET RESPONSE (`00` = 256).
pub fn bytes_available(n: usize) -> u16 {
    0x6100 | low_byte(n)
}

/// `6C xx`: resend with Le = `xx` (`00` = 256).
pub fn wrong_le(n: usize) -> u16 {
    0x6C00 | low_byte(n)
}

fn low_byte(n: usize) -> u16 {
    u16::try_from(n & 0xFF).unwrap_or(0)
}
