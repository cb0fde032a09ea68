//! Who takes part in a card's slot record: one slot book of one process, named so that another
//! process can tell whether it still exists.
//!
//! A process is its PID plus the time it started (field 22 of `/proc/<pid>/stat`, in clock ticks
//! since boot), so a PID the system hands out again is not taken for the old process. A process in
//! another PID namespace (another container sharing the lock folder) cannot be looked up by PID:
//! its entries are never judged dead, and only its leases bound them.

use crate::prelude::*;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// One slot book in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Party {
    pub(crate) pid: u32,
    /// The process's start time (0 where the system does not say).
    pub(crate) start: u64,
    /// The process's PID namespace (0 where the system does not say).
    pub(crate) ns: u64,
    /// Which of the process's slot books.
    pub(crate) book: u64,
}

/// The process as the system names it: PID, start time, PID namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Process {
    pid: u32,
    start: u64,
    ns: u64,
}

/// This process. Looked up again when the PID changed: a forked child is another process, and
/// must never act in its parent's name (release its turns, say).
fn this_process() -> Process {
    static CACHED: OnceLock<std::sync::Mutex<Option<Process>>> = OnceLock::new();
    let cache = CACHED.get_or_init(Default::default);
    let mut cached = crate::lock::lock(cache);
    let pid = std::process::id();
    match *cached {
        Some(p) if p.pid == pid => p,
        _ => {
            let p = Process {
                pid,
                start: start_time(pid).unwrap_or(0),
                ns: pid_namespace("self").unwrap_or(0),
            };
            *cached = Some(p);
            p
        }
    }
}

impl Party {
    /// Slot book `book` of this process.
    pub(crate) fn current(book: u64) -> Party {
        let p = this_process();
        Party {
            pid: p.pid,
            start: p.start,
            ns: p.ns,
            book,
        }
    }

    /// Whether this party belongs to the calling process (not, say, to the parent of a forked
    /// child that inherited its memory).
    pub(crate) fn is_this_process(&self) -> bool {
        let p = this_process();
        self.pid == p.pid && self.start == p.start
    }

    /// Whether the process may still exist. True when it cannot be told (another PID namespace,
    /// no `/proc`): leases bound those.
    pub(crate) fn may_be_alive(&self) -> bool {
        let me = this_process();
        if self.ns == 0 || self.ns != me.ns || self.start == 0 || me.start == 0 {
            return true;
        }
        match start_time(self.pid) {
            Some(start) => start == self.start,
            // No such process in our namespace (which has /proc: its own start time was read).
            None => false,
        }
    }
}

/// A new book number, unique in this process (and most likely across processes).
pub(crate) fn new_book() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Field 22 of `/proc/<pid>/stat`: the process's start time.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The inode of `/proc/<who>/ns/pid`.
fn pid_namespace(who: &str) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{who}/ns/pid"))
            .ok()
            .map(|m| m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = who;
        None
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}.{}", self.pid, self.start, self.ns, self.book)
    }
}

impl FromStr for Party {
    type Err = ();

    fn from_str(s: &str) -> Result<Party, ()> {
        let mut parts = s.split('.');
        let mut next = || parts.next().ok_or(());
        let party = Party {
            pid: next()?.parse().map_err(drop)?,
            start: next()?.parse().map_err(drop)?,
            ns: next()?.parse().map_err(drop)?,
            book: next()?.parse().map_err(drop)?,
        };
        match parts.next() {
            None => Ok(party),
            Some(_) => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_one_is_not() {
        let me = Party::current(1);
        assert!(me.is_this_process());
        assert!(me.may_be_alive());
        if me.start != 0 {
            // Same PID, another start time: a PID handed out again.
            let reused = Party {
                start: me.start + 1,
                ..me
            };
            assert!(!reused.may_be_alive());
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            let gone = Party { pid, ..me };
            assert!(!gone.may_be_alive());
        }
        // Another namespace: cannot tell, so alive.
        assert!(Party {
            ns: me.ns + 1,
            ..me
        }
        .may_be_alive());
    }

    #[test]
    fn text_form_round_trips() {
        let p = Party {
            pid: 12,
            start: 34,
            ns: 56,
            book: 78,
        };
        assert_eq!(p.to_string().parse::<Party>(), Ok(p));
        assert!("1.2.3".parse::<Party>().is_err());
        assert!("1.2.3.4.5".parse::<Party>().is_err());
        assert!("a.2.3.4".parse::<Party>().is_err());
    }
}
