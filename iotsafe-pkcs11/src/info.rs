//! The descriptions `C_GetInfo`, `C_GetSlotInfo` and `C_GetTokenInfo` return, as plain values;
//! the FFI layer copies them into the C structures.

use cryptoki_sys::{CK_FLAGS, CK_ULONG};

/// Blank-padded text of exactly `N` bytes, cut on a character boundary, as PKCS#11's fixed
/// `CK_UTF8CHAR` fields want it.
pub fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let cut = crate::load::truncate_utf8(text, N);
    out[..cut.len()].copy_from_slice(cut.as_bytes());
    out
}

/// A `CK_VERSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
}

/// `C_GetInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryInfo {
    /// The PKCS#11 version implemented.
    pub cryptoki: Version,
    /// `manufacturerID`.
    pub manufacturer: String,
    /// `libraryDescription`.
    pub description: String,
    /// `libraryVersion`.
    pub version: Version,
}

/// The library's own description.
pub fn library() -> LibraryInfo {
    let number = |s: &str| s.parse::<u8>().unwrap_or(0);
    LibraryInfo {
        cryptoki: Version {
            major: 2,
            minor: 40,
        },
        manufacturer: String::from("iotsafe-rs"),
        description: String::from("IoT SAFE PKCS#11 module"),
        version: Version {
            major: number(env!("CARGO_PKG_VERSION_MAJOR")),
            minor: number(env!("CARGO_PKG_VERSION_MINOR")),
        },
    }
}

/// `C_GetSlotInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// `slotDescription`: how the card is reached.
    pub description: String,
    /// `manufacturerID`.
    pub manufacturer: String,
    /// `CKF_TOKEN_PRESENT`, `CKF_REMOVABLE_DEVICE`, `CKF_HW_SLOT`.
    pub flags: CK_FLAGS,
}

/// `C_GetTokenInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// `label`.
    pub label: String,
    /// `manufacturerID`.
    pub manufacturer: String,
    /// `model`.
    pub model: String,
    /// `serialNumber`.
    pub serial: String,
    /// `CKF_*`.
    pub flags: CK_FLAGS,
    /// Open sessions on this token.
    pub sessions: CK_ULONG,
    /// Open read/write sessions on this token.
    pub rw_sessions: CK_ULONG,
    /// The applet's version.
    pub hardware: Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding() {
        assert_eq!(&padded::<4>("ab"), b"ab  ");
        assert_eq!(&padded::<4>("abcdef"), b"abcd");
        // "é" is two bytes: never cut in half.
        assert_eq!(&padded::<4>("abcé"), b"abc ");
    }
}
