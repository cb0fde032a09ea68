//! What one modem keeps across its AT connections (several TCP hosts at once, a pty re-created
//! after a hang-up): the SIM's power and the functionality level (`AT+CFUN`), the logical-channel
//! sessions a dropped connection left behind, the count of card commands that decides when the
//! modem drops a connection ([`DropPlan`]), the modem's restarts (each connection's settings go
//! back to the start values) and the AT+CCHO commands since the SIM's last reset (the first may
//! find it busy).

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::channel::Session;

/// When the modem drops the host's connection on purpose, as a USB modem that re-enumerates: every
/// `every`-th card command (`AT+CSIM`, `AT+CCHO`, `AT+CGLA`, `AT+CCHC`, counted 1-based over all
/// connections of the modem). The SIM keeps its state: logical channels stay open, keys stay, and
/// the `AT+CCHO` sessions of the dropped connection pass to the next connection with the same ids.
///
/// TCP closes the socket and accepts the next connection with the same card; a pty hangs up (the
/// host's reads fail) and is re-created, at the same symlink path when the pty has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropPlan {
    /// Drop after every this many card commands (0 never drops).
    pub every: u64,
    /// Whether the host gets the answer to the command before the drop.
    pub when: DropWhen,
}

/// Whether the answer of the card command that triggers a drop reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropWhen {
    /// The command runs on the card, its answer is written, then the connection goes.
    #[default]
    AfterAnswer,
    /// The command runs on the card, but the connection goes before its answer is written (the host
    /// never learns the outcome).
    BeforeAnswer,
}

impl DropPlan {
    /// Whether the `count`-th card command drops the connection.
    pub fn fires(&self, count: u64) -> bool {
        self.every > 0 && count > 0 && count.is_multiple_of(self.every)
    }
}

impl FromStr for DropPlan {
    type Err = String;
    /// `N`, `N:after` or `N:before`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (every, when) = match s.split_once(':') {
            None => (s, DropWhen::AfterAnswer),
            Some((every, "after")) => (every, DropWhen::AfterAnswer),
            Some((every, "before")) => (every, DropWhen::BeforeAnswer),
            Some((_, other)) => {
                return Err(format!(
                    "unknown drop point {other:?} (expected after or before)"
                ))
            }
        };
        let every: u64 = every
            .trim()
            .parse()
            .map_err(|e| format!("{every:?} is not a command count: {e}"))?;
        if every == 0 {
            return Err("the command count must be at least 1".to_owned());
        }
        Ok(DropPlan { every, when })
    }
}

/// The state one modem shares between its connections; clone it to attach another
/// [`super::AtModem`] to the same modem.
#[derive(Debug, Clone, Default)]
pub struct SharedModem(Arc<Mutex<ModemState>>);

#[derive(Debug)]
pub(crate) struct ModemState {
    /// `AT+CFUN` level: 0 (SIM off), 1 (full) or 4 (radio off, SIM on).
    pub fun: u8,
    /// Whether the modem has powered the SIM on.
    pub powered: bool,
    /// Bumped whenever the SIM loses its channels (reset, power off, lost): every connection then
    /// forgets its sessions.
    pub epoch: u64,
    /// Sessions of a connection the modem dropped, for the next connection to take over.
    pub orphans: Vec<Session>,
    /// Card commands over all connections.
    pub card_commands: u64,
    /// Modem restarts (`AT+CFUN=1,1`): every connection's settings go back to the start values.
    pub restarts: u64,
    /// `AT+CCHO` commands since the SIM last lost its channels; `None` before the first reset.
    pub cchos_since_reset: Option<u64>,
}

impl Default for ModemState {
    fn default() -> Self {
        Self {
            fun: 1,
            powered: false,
            epoch: 0,
            orphans: Vec::new(),
            card_commands: 0,
            restarts: 0,
            cchos_since_reset: None,
        }
    }
}

impl SharedModem {
    /// A fresh modem: SIM not yet powered, functionality level 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// The functionality level `AT+CFUN?` reports.
    pub fn functionality(&self) -> u8 {
        self.lock().fun
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ModemState> {
        iotsafe_core::lock::lock(&self.0)
    }
}

impl ModemState {
    /// The SIM lost its channels: sessions everywhere are void.
    pub fn channels_lost(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.orphans.clear();
        self.cchos_since_reset = Some(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_plans() {
        let plan: DropPlan = "3".parse().unwrap();
        assert_eq!(plan.when, DropWhen::AfterAnswer);
        let fired: Vec<u64> = (0..=9).filter(|&n| plan.fires(n)).collect();
        assert_eq!(fired, [3, 6, 9]);
        assert_eq!(
            "2:before".parse::<DropPlan>().unwrap().when,
            DropWhen::BeforeAnswer
        );
        assert_eq!("2:after".parse::<DropPlan>().unwrap().every, 2);
        assert!("0".parse::<DropPlan>().is_err());
        assert!("x".parse::<DropPlan>().is_err());
        assert!("2:during".parse::<DropPlan>().is_err());
    }
}
