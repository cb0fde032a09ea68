//! Status words (SW1 SW2) and what IoT SAFE applets mean by them (`docs/protocol.md#status-words`).

use core::fmt;

/// The two trailing status bytes of a response APDU.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

/// What a status word means, as far as an IoT SAFE host cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Meaning {
    /// `9000`: success.
    Success,
    /// `91xx`: success, and a proactive command is pending (UICC); treated as success.
    SuccessProactivePending,
    /// `61xx`: response bytes are waiting; fetch them with GET RESPONSE.
    ResponseAvailable(u8),
    /// `9Fxx`: response bytes are waiting (older SIM convention); fetch with GET RESPONSE.
    ResponseAvailableSim(u8),
    /// `6Cxx`: wrong Le; re-send with this Le.
    WrongLe(u8),
    /// `6300`: more data available (GET DATA object list continuation with P2=01).
    MoreData,
    /// `63CF`: success, but a remote administration session has completed.
    RemoteAdminCompleted,
    /// `63C0`..`63CE`: ISO 7816-4 warning with a counter (the low digit); not a success.
    WarningCounter(u8),
    /// `6400`: integrity issue in the applet store.
    IntegrityError,
    /// `6700`: wrong length.
    WrongLength,
    /// `6881`: logical channel not supported.
    ChannelNotSupported,
    /// `6981`: command incompatible with file structure (Read File offset out of bounds).
    IncompatibleFileStructure,
    /// `6984`: referenced data invalidated (remote administration of that object in progress).
    ReferencedDataInvalidated,
    /// `6985`: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// `6989`: remote administration completed and command failed, or capacity reached.
    RemoteAdminFailed,
    /// `6A80`: incorrect data.
    IncorrectData,
    /// `6A82`: file, object or applet not found.
    NotFound,
    /// `6A84`: insufficient memory.
    InsufficientMemory,
    /// `6A86`: incorrect P1/P2 (also Read File past the end).
    IncorrectP1P2,
    /// `6D00`: instruction not supported.
    InvalidInstruction,
    /// `6D01`: the provided signature does not match (Verify Update).
    SignatureMismatch,
    /// `6E00`: class not supported.
    InvalidClass,
    /// `6F00`: unknown error.
    UnknownError,
    /// Anything else.
    Other,
}

impl StatusWord {
    /// `9000`.
    pub const SUCCESS: StatusWord = StatusWord(0x9000);

    /// Builds a status word from SW1 and SW2.
    pub fn new(sw1: u8, sw2: u8) -> Self {
        StatusWord(u16::from_be_bytes([sw1, sw2]))
    }
    /// SW1.
    pub fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// SW2.
    pub fn sw2(self) -> u8 {
        self.0 as u8
    }
    /// The meaning of this status word.
    pub fn meaning(self) -> Meaning {
        match (self.sw1(), self.sw2()) {
            (0x90, 0x00) => Meaning::Success,
            (0x91, _) => Meaning::SuccessProactivePending,
            (0x61, n) => Meaning::ResponseAvailable(n),
            (0x9F, n) => Meaning::ResponseAvailableSim(n),
            (0x6C, n) => Meaning::WrongLe(n),
            (0x63, 0x00) => Meaning::MoreData,
            (0x63, 0xCF) => Meaning::RemoteAdminCompleted,
            (0x63, n) if n & 0xF0 == 0xC0 => Meaning::WarningCounter(n & 0x0F),
            (0x64, 0x00) => Meaning::IntegrityError,
            (0x67, 0x00) => Meaning::WrongLength,
            (0x68, 0x81) => Meaning::ChannelNotSupported,
            (0x69, 0x81) => Meaning::IncompatibleFileStructure,
            (0x69, 0x84) => Meaning::ReferencedDataInvalidated,
            (0x69, 0x85) => Meaning::ConditionsNotSatisfied,
            (0x69, 0x89) => Meaning::RemoteAdminFailed,
            (0x6A, 0x80) => Meaning::IncorrectData,
            (0x6A, 0x82) => Meaning::NotFound,
            (0x6A, 0x84) => Meaning::InsufficientMemory,
            (0x6A, 0x86) => Meaning::IncorrectP1P2,
            (0x6D, 0x00) => Meaning::InvalidInstruction,
            (0x6D, 0x01) => Meaning::SignatureMismatch,
            (0x6E, 0x00) => Meaning::InvalidClass,
            (0x6F, 0x00) => Meaning::UnknownError,
            _ => Meaning::Other,
        }
    }
    /// True for `9000`, `91xx` and `63CF` (success with a side note).
    ///
    /// `63CF` is a warning in ISO 7816-4 terms (`63CX`, counter F) that IoT SAFE applets use for
    /// "done, and a remote administration session has completed". Over T=0 a warning to a command
    /// that returns data comes without the data (ISO 7816-3, case 4 with a warning): the link
    /// fetches it with GET RESPONSE and keeps the warning as the status word, so by the time this
    /// is asked, a `63CF` answer carries its data. Other `63Cx` are not successes.
    pub fn is_success(self) -> bool {
        matches!(
            self.meaning(),
            Meaning::Success | Meaning::SuccessProactivePending | Meaning::RemoteAdminCompleted
        )
    }
    /// True for the ISO 7816-4 warnings, `62xx` and `63xx` (state of non-volatile memory unchanged
    /// / changed): the command was processed, with something to report.
    pub fn is_warning(self) -> bool {
        matches!(self.sw1(), 0x62 | 0x63)
    }
    /// A short English description for error messages.
    pub fn describe(self) -> &'static str {
        match self.meaning() {
            Meaning::Success => "success",
            Meaning::SuccessProactivePending => "success (proactive command pending)",
            Meaning::ResponseAvailable(_) | Meaning::ResponseAvailableSim(_) => {
                "response bytes available"
            }
            Meaning::WrongLe(_) => "wrong Le",
            Meaning::MoreData => "more data available",
            Meaning::RemoteAdminCompleted => "success, remote administration completed",
            Meaning::WarningCounter(_) => "warning with a counter (e.g. tries left)",
            Meaning::IntegrityError => "integrity issue in the applet store",
            Meaning::WrongLength => "wrong length",
            Meaning::ChannelNotSupported => "logical channel not supported",
            Meaning::IncompatibleFileStructure => "offset out of bounds / incompatible file",
            Meaning::ReferencedDataInvalidated => "referenced data invalidated",
            Meaning::ConditionsNotSatisfied => "conditions of use not satisfied",
            Meaning::RemoteAdminFailed => "remote administration failed or capacity reached",
            Meaning::IncorrectData => "incorrect data",
            Meaning::NotFound => "object, file or applet not found",
            Meaning::InsufficientMemory => "insufficient memory",
            Meaning::IncorrectP1P2 => "incorrect P1/P2",
            Meaning::InvalidInstruction => {
                "instruction not supported (is this an IoT SAFE applet?)"
            }
            Meaning::SignatureMismatch => "signature does not match",
            Meaning::InvalidClass => "class not supported",
            Meaning::UnknownError => "unknown error",
            Meaning::Other => "unrecognised status word",
        }
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X}", self.0)
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X} ({})", self.0, self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[test]
    fn table_of_section_3_13() {
        let table = [
            (0x9000, Meaning::Success),
            (0x6300, Meaning::MoreData),
            (0x63CF, Meaning::RemoteAdminCompleted),
            (0x6400, Meaning::IntegrityError),
            (0x6700, Meaning::WrongLength),
            (0x6981, Meaning::IncompatibleFileStructure),
            (0x6984, Meaning::ReferencedDataInvalidated),
            (0x6985, Meaning::ConditionsNotSatisfied),
            (0x6989, Meaning::RemoteAdminFailed),
            (0x6A80, Meaning::IncorrectData),
            (0x6A82, Meaning::NotFound),
            (0x6A84, Meaning::InsufficientMemory),
            (0x6A86, Meaning::IncorrectP1P2),
            (0x6D00, Meaning::InvalidInstruction),
            (0x6D01, Meaning::SignatureMismatch),
            (0x6E00, Meaning::InvalidClass),
            (0x6F00, Meaning::UnknownError),
            (0x6142, Meaning::ResponseAvailable(0x42)),
            (0x6C30, Meaning::WrongLe(0x30)),
            (0x9F10, Meaning::ResponseAvailableSim(0x10)),
            (0x9110, Meaning::SuccessProactivePending),
            (0x63C2, Meaning::WarningCounter(2)),
            (0x63C0, Meaning::WarningCounter(0)),
            (0x6381, Meaning::Other),
        ];
        for (sw, meaning) in table {
            assert_eq!(StatusWord(sw).meaning(), meaning, "{sw:04X}");
        }
        assert!(StatusWord(0x9112).is_success());
        assert!(!StatusWord(0x6A82).is_success());
        // 63CX: only the IoT SAFE 63CF is a success; the others are warnings with a counter.
        assert!(StatusWord(0x63CF).is_success());
        for sw in [0x63C0, 0x63C3, 0x63CE, 0x6300, 0x6283] {
            assert!(!StatusWord(sw).is_success(), "{sw:04X}");
            assert!(StatusWord(sw).is_warning(), "{sw:04X}");
        }
        assert!(!StatusWord(0x9000).is_warning() && !StatusWord(0x6A82).is_warning());
        assert_eq!(
            StatusWord::new(0x6A, 0x82).to_string(),
            "6A82 (object, file or applet not found)"
        );
    }
}
