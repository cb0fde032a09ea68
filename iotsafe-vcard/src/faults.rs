//! Faults the card acts out on purpose, so hosts can be tested against a card that misbehaves.
//!
//! APDUs are numbered from 1 since the card was created, as [`crate::VirtualCard::apdu_count`] reports
//! them: the first APDU handled is number 1. To hit "the 3rd APDU from now", use `apdu_count() + 3`.

use std::time::Duration;

/// Which APDUs fail and how. The default injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// After this many APDUs the card is gone: APDU number `n + 1` and every later one get
    /// [`crate::Reply::Disconnect`] until the plan is cleared (reconnecting the in-process transport
    /// clears it). `Some(0)` disconnects at once.
    pub disconnect_after: Option<u64>,
    /// Answer APDU number `.0` with status word `.1` alone, without executing it.
    pub status_word_at: Option<(u64, u16)>,
    /// Execute APDU number `n`, then damage its response: invert the first data byte, or when the
    /// response is a bare status word, cut it to SW1 only.
    pub corrupt_at: Option<u64>,
    /// Execute APDU number `.0`, then answer it only after `.1` ([`crate::Reply::Stall`]).
    pub stall_at: Option<(u64, Duration)>,
}

/// What the fault plan decides for one APDU before it is executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Execute normally.
    Execute,
    /// Do not execute; disconnect.
    Disconnect,
    /// Do not execute; answer this status word.
    StatusWord(u16),
}

impl FaultPlan {
    /// The decision for APDU number `n`, before it runs.
    pub(crate) fn before(&self, n: u64) -> Verdict {
        if self.disconnect_after.is_some_and(|after| n > after) {
            return Verdict::Disconnect;
        }
        match self.status_word_at {
            Some((at, sw)) if at == n => Verdict::StatusWord(sw),
            _ => Verdict::Execute,
        }
    }

    /// Damages `response` if APDU number `n` is the one to corrupt.
    pub(crate) fn corrupt(&self, n: u64, response: &mut Vec<u8>) {
        if self.corrupt_at != Some(n) {
            return;
        }
        if response.len() > 2 {
            if let Some(first) = response.first_mut() {
                *first = !*first;
            }
        } else {
            response.truncate(1);
        }
    }

    /// How long to stall APDU number `n`, if at all.
    pub(crate) fn stall(&self, n: u64) -> Option<Duration> {
        match self.stall_at {
            Some((at, d)) if at == n => Some(d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_one_based() {
        let plan = FaultPlan {
            disconnect_after: Some(2),
            status_word_at: Some((1, 0x6F00)),
            ..FaultPlan::default()
        };
        assert_eq!(plan.before(1), Verdict::StatusWord(0x6F00));
        assert_eq!(plan.before(2), Verdict::Execute);
        assert_eq!(plan.before(3), Verdict::Disconnect);
        assert_eq!(plan.before(9), Verdict::Disconnect);
    }

    #[test]
    fn corruption() {
        let plan = FaultPlan {
            corrupt_at: Some(1),
            ..FaultPlan::default()
        };
        let mut r = vec![0x01, 0x90, 0x00];
        plan.corrupt(1, &mut r);
        assert_eq!(r, vec![0xFE, 0x90, 0x00]);
        let mut sw = vec![0x90, 0x00];
        plan.corrupt(1, &mut sw);
        assert_eq!(sw, vec![0x90]);
        let mut untouched = vec![0x90, 0x00];
        plan.corrupt(2, &mut untouched);
        assert_eq!(untouched, vec![0x90, 0x00]);
    }
}
