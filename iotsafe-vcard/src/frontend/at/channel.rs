//! What a modem keeps for `AT+CCHO`/`AT+CGLA`/`AT+CCHC`: which session id is which logical
//! channel, and how the channel number goes into the class byte.

/// The highest logical channel number (ETSI TS 102 221: channels 0 to 19).
pub const MAX_CHANNEL: u8 = 19;

/// Puts `channel` into a class byte the host wrote, as a modem does for `AT+CGLA`.
///
/// ETSI TS 102 221 §10.1.1 (and osmocom/pysim): channels 0-3 use the first interindustry form
/// `x000 c0cc` (`00`..`03`), channels 4-19 the further form `x1c0 nnnn` (`40`..`4F`, n = ch-4).
/// The proprietary class bit b8 (`0x80`, IoT SAFE's `8X` commands) and the command chaining bit
/// b5 (`0x10`) are kept; the old channel and secure-messaging bits are replaced. `None` for a
/// channel above 19.
pub fn cla_for_channel(cla: u8, channel: u8) -> Option<u8> {
    let kept = cla & 0x90;
    match channel {
        0..=3 => Some(kept | channel),
        4..=MAX_CHANNEL => Some(kept | 0x40 | (channel - 4)),
        _ => None,
    }
}

/// One `AT+CCHO` session: the id the host was given and the channel the card opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The id the host passes to `AT+CGLA`/`AT+CCHC`.
    pub id: u32,
    /// The logical channel the card assigned.
    pub channel: u8,
}

/// The open sessions. Ids come from a counter, so an id is not the channel number: a host that
/// mixes the two up is caught as soon as a channel is reused.
#[derive(Debug, Default, Clone)]
pub struct Sessions {
    open: Vec<Session>,
    last_id: u32,
}

impl Sessions {
    /// Records a freshly opened channel and returns its new session id.
    pub fn add(&mut self, channel: u8) -> u32 {
        self.last_id = self.last_id.wrapping_add(1).max(1);
        self.open.push(Session {
            id: self.last_id,
            channel,
        });
        self.last_id
    }

    /// The channel of session `id`.
    pub fn channel(&self, id: u32) -> Option<u8> {
        self.open.iter().find(|s| s.id == id).map(|s| s.channel)
    }

    /// Forgets session `id` and returns its channel.
    pub fn remove(&mut self, id: u32) -> Option<u8> {
        let index = self.open.iter().position(|s| s.id == id)?;
        Some(self.open.remove(index).channel)
    }

    /// Takes over sessions another connection of the same modem left behind; their ids stay valid
    /// and are never handed out again.
    pub fn adopt(&mut self, sessions: Vec<Session>) {
        for session in sessions {
            self.last_id = self.last_id.max(session.id);
            self.open.push(session);
        }
    }

    /// Forgets every session (the SIM was lost or reset) and returns them.
    pub fn take_all(&mut self) -> Vec<Session> {
        std::mem::take(&mut self.open)
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interindustry_class() {
        assert_eq!(cla_for_channel(0x00, 0), Some(0x00));
        assert_eq!(cla_for_channel(0x00, 1), Some(0x01));
        assert_eq!(cla_for_channel(0x00, 3), Some(0x03));
        assert_eq!(cla_for_channel(0x02, 1), Some(0x01));
        assert_eq!(cla_for_channel(0x00, 4), Some(0x40));
        assert_eq!(cla_for_channel(0x00, 19), Some(0x4F));
        assert_eq!(cla_for_channel(0x4F, 2), Some(0x02));
        assert_eq!(cla_for_channel(0x00, 20), None);
    }

    #[test]
    fn proprietary_class_bit_is_kept() {
        assert_eq!(cla_for_channel(0x80, 1), Some(0x81));
        assert_eq!(cla_for_channel(0x81, 2), Some(0x82));
        assert_eq!(cla_for_channel(0x80, 5), Some(0xC1));
        assert_eq!(cla_for_channel(0xC3, 0), Some(0x80));
    }

    #[test]
    fn chaining_bit_is_kept() {
        assert_eq!(cla_for_channel(0x10, 2), Some(0x12));
        assert_eq!(cla_for_channel(0x90, 6), Some(0xD2));
    }

    #[test]
    fn every_class_and_channel_is_total() {
        for cla in 0..=u8::MAX {
            for channel in 0..=MAX_CHANNEL {
                let out = cla_for_channel(cla, channel).unwrap();
                assert_eq!(out & 0x80, cla & 0x80);
                let decoded = if out & 0x40 == 0 {
                    out & 0x03
                } else {
                    4 + (out & 0x0F)
                };
                assert_eq!(decoded, channel);
            }
        }
    }

    #[test]
    fn session_ids_are_not_channel_numbers() {
        let mut sessions = Sessions::default();
        let a = sessions.add(1);
        let b = sessions.add(2);
        assert_eq!((a, b), (1, 2));
        assert_eq!(sessions.remove(a), Some(1));
        let c = sessions.add(1);
        assert_eq!(c, 3);
        assert_eq!(sessions.channel(c), Some(1));
        assert_eq!(sessions.channel(a), None);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions.take_all().len(), 2);
        assert!(sessions.is_empty());
    }
}
