//! Where a card's slot record lives: in this process's memory (a card only this process can reach,
//! such as an in-process virtual card), or in a folder every process on the host shares, behind
//! advisory locks the system lets go of when a process dies.
//!
//! The folder, one per card identity: `state` (the record, in the text form of
//! [`super::record::text`], replaced atomically), `state.lock` (held for each read-modify-write of
//! the record: microseconds), `op.lock` (held while a key is generated in a slot or an agreement
//! runs, so that checking a turn and using the card are one step for every process), and
//! `identity` (the card's name, for whoever looks).
//!
//! The folder is `$IOTSAFE_LOCK_DIR`, else `/run/lock/iotsafe`, else `iotsafe-locks` in the
//! temporary folder; files are readable and writable by every user, since several users' programs
//! may share one SIM.

use super::party::Party;
use super::record::{text, Record};
use crate::lock::lock;
use crate::prelude::*;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::string::String;
use std::sync::{Mutex, MutexGuard};

/// A card's record and its operation lock.
pub(crate) enum Store {
    /// Only this process reaches the card: the record, and the operation lock.
    Memory(Mutex<Record>, Mutex<()>),
    /// Every process on the host shares the folder.
    Folder(PathBuf),
}

/// Held while a slot is used on the card; released when dropped.
pub(crate) enum OpGuard<'a> {
    Memory(#[allow(dead_code)] MutexGuard<'a, ()>),
    Folder(#[allow(dead_code)] Locked),
}

/// An advisory lock on a whole file, released when dropped.
pub(crate) struct Locked(File);

impl Locked {
    fn take(path: &Path) -> io::Result<Locked> {
        let file = open_shared(path)?;
        file.lock()?;
        Ok(Locked(file))
    }

    /// The lock if it is free now, `None` if someone holds it.
    fn try_take(path: &Path) -> io::Result<Option<Locked>> {
        let file = open_shared(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Locked(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // Explicitly, not by closing: a child forked meanwhile holds a copy of the descriptor,
        // and closing ours would leave the lock with it.
        let _ = self.0.unlock();
    }
}

impl Store {
    /// A record in this process's memory.
    pub(crate) fn memory() -> Store {
        Store::Memory(Mutex::new(Record::default()), Mutex::new(()))
    }

    /// The shared record of the card named `identity`, in `base` (see the module docs for the
    /// default); the folder is made if missing.
    pub(crate) fn folder(base: &Path, identity: &str) -> io::Result<Store> {
        let dir = base.join(format!("card-{:016x}", fnv1a(identity.as_bytes())));
        if let Some(parent) = base.parent() {
            fs::create_dir_all(parent)?;
        }
        make_shared_dir(base)?;
        if make_shared_dir(&dir)? {
            let mut f = open_shared(&dir.join("identity"))?;
            f.write_all(identity.as_bytes())?;
            f.write_all(b"\n")?;
        }
        Ok(Store::Folder(dir))
    }

    /// The folder, for a shared record.
    pub(crate) fn location(&self) -> Option<&Path> {
        match self {
            Store::Memory(..) => None,
            Store::Folder(dir) => Some(dir),
        }
    }

    /// Reads the record, forgets what dead parties left, lets `f` change it, and writes it back
    /// (atomically, and only when it changed), all under the record's lock.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Record) -> R) -> io::Result<R> {
        // Waiting for the lock, it always comes back with the result.
        self.update_if(true, f)?
            .ok_or_else(|| io::Error::other("the slot record's lock was not taken"))
    }

    /// [`Store::update`], or, when `wait` is false and another thread or process holds the
    /// record's lock, `None` at once: an async runtime's thread must not wait for a lock whose
    /// holder the system may have descheduled.
    pub(crate) fn update_if<R>(
        &self,
        wait: bool,
        f: impl FnOnce(&mut Record) -> R,
    ) -> io::Result<Option<R>> {
        match self {
            Store::Memory(record, _) => {
                let mut guard = match record.try_lock() {
                    Ok(guard) => guard,
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) if !wait => return Ok(None),
                    Err(std::sync::TryLockError::WouldBlock) => lock(record),
                };
                Ok(Some(f(&mut guard)))
            }
            Store::Folder(dir) => {
                let path = dir.join("state.lock");
                let _lock = if wait {
                    Locked::take(&path)?
                } else {
                    match Locked::try_take(&path)? {
                        Some(locked) => locked,
                        None => return Ok(None),
                    }
                };
                let path = dir.join("state");
                let before = match fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
                    Err(e) => return Err(e),
                };
                let (mut record, damaged) = text::read(&before);
                if damaged > 0 {
                    tracing::warn!(path = %path.display(), damaged, "lines of the slot record could not be read and were dropped");
                }
                let mut seen: HashMap<Party, bool> = HashMap::new();
                record.prune(&mut |p| *seen.entry(*p).or_insert_with(|| p.may_be_alive()));
                let result = f(&mut record);
                let after = text::write(&record);
                if after != before {
                    let temp = dir.join("state.tmp");
                    let mut out = open_shared(&temp)?;
                    out.set_len(0)?;
                    out.write_all(after.as_bytes())?;
                    drop(out);
                    fs::rename(&temp, &path)?;
                }
                Ok(Some(result))
            }
        }
    }

    /// Takes the operation lock: held while a slot is used on the card, from checking a turn to
    /// the card's answer.
    pub(crate) fn op_lock(&self) -> io::Result<OpGuard<'_>> {
        match self {
            Store::Memory(_, op) => Ok(OpGuard::Memory(lock(op))),
            Store::Folder(dir) => Ok(OpGuard::Folder(Locked::take(&dir.join("op.lock"))?)),
        }
    }
}

/// The folder the shared records live in (see the module docs).
pub(crate) fn default_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("IOTSAFE_LOCK_DIR") {
        return PathBuf::from(dir);
    }
    let run = Path::new("/run/lock");
    if run.is_dir() && make_shared_dir(&run.join("iotsafe")).is_ok() {
        return run.join("iotsafe");
    }
    std::env::temp_dir().join("iotsafe-locks")
}

/// Makes `dir` readable and writable by every user; true if this call made it.
fn make_shared_dir(dir: &Path) -> io::Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => {
            set_mode(dir, 0o777);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens (making it if missing) a file every user may read and write.
fn open_shared(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    set_mode(path, 0o666);
    Ok(file)
}

/// Best effort: the umask narrowed what was made, and only the owner may widen it.
fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o777 != mode {
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// FNV-1a, 64 bits: a stable short name for a card identity (a clash only makes two cards share
/// one queue).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_record_is_shared_by_two_stores_and_survives_them() {
        let base = std::env::temp_dir().join(format!("iotsafe-store-test-{}", std::process::id()));
        let a = Store::folder(&base, "tcp://127.0.0.1:1").unwrap();
        let b = Store::folder(&base, "tcp://127.0.0.1:1").unwrap();
        let other = Store::folder(&base, "tcp://127.0.0.1:2").unwrap();
        assert_eq!(a.location(), b.location());
        assert_ne!(a.location(), other.location());
        let me = Party::current(9);
        let ticket = a.update(|r| r.enqueue(me, &["i04".to_string()])).unwrap();
        let seen = b.update(|r| r.waiters.clone()).unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].ticket, ticket);
        assert!(other.update(|r| r.waiters.is_empty()).unwrap());
        let identity = fs::read_to_string(a.location().unwrap().join("identity")).unwrap();
        assert_eq!(identity, "tcp://127.0.0.1:1\n");
        // A dead party's entry is gone at the next look.
        let dead = Party {
            pid: u32::MAX - 1,
            ..me
        };
        a.update(|r| r.enqueue(dead, &["i04".to_string()])).unwrap();
        assert_eq!(b.update(|r| r.waiters.len()).unwrap(), 1);
        let _op = a.op_lock().unwrap();
        fs::remove_dir_all(&base).unwrap();
    }
}
