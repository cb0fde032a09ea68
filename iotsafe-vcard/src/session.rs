//! Per-channel state: open/selected flags, the answer waiting for GET RESPONSE, the object-list cursor,
//! and the multi-APDU sessions (sign, verify, put public key) keyed by P2.

use zeroize::Zeroizing;

use crate::sw;

/// Logical channels 0..=19 (ETSI TS 102 221 §10.1.1).
pub(crate) const CHANNELS: usize = 20;

/// Largest message a full-text (mode 01) session buffers.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// What a session does; sessions of different kinds may share a P2 number (wolfSSL uses sign/verify
/// session 01 and put session 02, Thales uses 00 for everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionKind {
    Sign,
    Verify,
    PutKey,
}

/// The hash a sign/verify session uses (`91`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn from_bitmask(value: u16) -> Option<HashAlg> {
        match value {
            0x0001 => Some(HashAlg::Sha256),
            0x0002 => Some(HashAlg::Sha384),
            0x0004 => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    pub fn bitmask(self) -> u16 {
        match self {
            HashAlg::Sha256 => 0x0001,
            HashAlg::Sha384 => 0x0002,
            HashAlg::Sha512 => 0x0004,
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// Mode of operation `A1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `01`: the card hashes the full message sent in `9B` chunks.
    FullText,
    /// `02`: the host hashed all but the last block (`9A`, `9C`, `9D`).
    LastBlock,
    /// `03`: the host sends the final hash in `9E`.
    FinalHash,
}

impl Mode {
    pub fn from_byte(b: u8) -> Option<Mode> {
        match b {
            0x01 => Some(Mode::FullText),
            0x02 => Some(Mode::LastBlock),
            0x03 => Some(Mode::FinalHash),
            _ => None,
        }
    }
}

/// One open session.
#[derive(Debug)]
pub(crate) struct Session {
    pub kind: SessionKind,
    pub number: u8,
    /// ID of the key the session works on (private key for sign, public key for verify and put).
    pub key_id: Vec<u8>,
    pub mode: Mode,
    pub hash: HashAlg,
    /// Message (mode 01) or key bytes (put) gathered from Update chunks; wiped on drop.
    pub buffer: Zeroizing<Vec<u8>>,
    /// The last Update ran; further Updates need a new Init.
    pub finished: bool,
    /// Mode 03: the final hash from `9E`.
    pub final_hash: Zeroizing<Vec<u8>>,
    /// Verify: the signature from `33`.
    pub signature: Vec<u8>,
    /// Mode 02: the last block and where the host's hashing stopped.
    pub last_block: Option<LastBlock>,
}

/// Mode 02 input: the host hashed `hashed_len` bytes into `intermediate`; `block` is what is left.
#[derive(Debug, Clone)]
pub(crate) struct LastBlock {
    pub block: Zeroizing<Vec<u8>>,
    pub intermediate: Vec<u8>,
    pub hashed_len: u64,
}

impl Session {
    pub fn new(
        kind: SessionKind,
        number: u8,
        key_id: Vec<u8>,
        mode: Mode,
        hash: HashAlg,
    ) -> Session {
        Session {
            kind,
            number,
            key_id,
            mode,
            hash,
            buffer: Zeroizing::new(Vec::new()),
            finished: false,
            final_hash: Zeroizing::new(Vec::new()),
            signature: Vec::new(),
            last_block: None,
        }
    }
}

/// The state of one logical channel.
#[derive(Debug, Default)]
pub(crate) struct Channel {
    pub open: bool,
    pub selected: bool,
    /// Response data waiting for GET RESPONSE (T=0).
    pub pending: Zeroizing<Vec<u8>>,
    /// Where the next GET DATA object-list part starts (P2=01).
    pub list_cursor: usize,
    pub sessions: Vec<Session>,
    /// Sessions the card ended itself after their last Update (`Quirks::close_after_final_update`),
    /// so the host's close of them gets the configured status word.
    pub closed_by_card: Vec<(SessionKind, u8)>,
}

impl Channel {
    /// Drops sessions and pending answers (SELECT, close, reset).
    pub fn clear(&mut self) {
        self.selected = false;
        self.pending = Zeroizing::new(Vec::new());
        self.list_cursor = 0;
        self.sessions.clear();
        self.closed_by_card.clear();
    }

    /// Ends every session whose last Update ran, remembering that the card closed it.
    pub fn end_finished_sessions(&mut self) {
        let (done, open): (Vec<Session>, Vec<Session>) = std::mem::take(&mut self.sessions)
            .into_iter()
            .partition(|s| s.finished);
        self.sessions = open;
        self.closed_by_card
            .extend(done.iter().map(|s| (s.kind, s.number)));
    }

    pub fn session_mut(&mut self, kind: SessionKind, number: u8) -> Option<&mut Session> {
        self.sessions
            .iter_mut()
            .find(|s| s.kind == kind && s.number == number)
    }

    /// Opens `session`, replacing one of the same kind and number (hosts re-open without closing).
    pub fn open_session(&mut self, session: Session, max: u8) -> Result<(), u16> {
        self.close_session(session.kind, session.number);
        if self.sessions.len() >= usize::from(max) {
            return Err(sw::NOT_ENOUGH_MEMORY);
        }
        self.sessions.push(session);
        Ok(())
    }

    /// Closes a session; closing one that is not open is fine (Thales closes 0..5 at start-up).
    /// Returns true when the card had already ended this session itself after its last Update.
    pub fn close_session(&mut self, kind: SessionKind, number: u8) -> bool {
        self.sessions
            .retain(|s| !(s.kind == kind && s.number == number));
        let before = self.closed_by_card.len();
        self.closed_by_card
            .retain(|&(k, n)| !(k == kind && n == number));
        self.closed_by_card.len() != before
    }
}

/// Channel number encoded in a class byte, and whether the class is the proprietary (`8X`/`CX`) one.
/// `None` for a class the card does not accept (`6E00`).
pub(crate) fn decode_cla(cla: u8) -> Option<(usize, bool)> {
    let proprietary = cla & 0x80 != 0;
    if cla & 0x40 == 0 {
        // First interindustry form: b6..b3 (secure messaging, chaining, bit 0x20) must be zero.
        (cla & 0x3C == 0).then_some((usize::from(cla & 0x03), proprietary))
    } else {
        // Further interindustry form: b6 (chaining) must be zero; channel = 4 + low nibble.
        (cla & 0x30 == 0).then_some((4 + usize::from(cla & 0x0F), proprietary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_bytes() {
        assert_eq!(decode_cla(0x00), Some((0, false)));
        assert_eq!(decode_cla(0x03), Some((3, false)));
        assert_eq!(decode_cla(0x81), Some((1, true)));
        assert_eq!(decode_cla(0x40), Some((4, false)));
        assert_eq!(decode_cla(0xCF), Some((19, true)));
        assert_eq!(decode_cla(0xA0), None);
        assert_eq!(decode_cla(0x10), None);
        assert_eq!(decode_cla(0x0C), None);
        assert_eq!(decode_cla(0x60), None);
        assert_eq!(decode_cla(0xFF), None);
    }
}
