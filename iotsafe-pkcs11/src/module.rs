//! The module between `C_Initialize` and `C_Finalize`, as safe Rust: slots (one per configured
//! card, opened on first use), sessions, random numbers. Login is in `login.rs`; the object,
//! signature and key calls are in `search.rs`, `sign.rs`, `derive.rs` and `keygen.rs`.
//!
//! Locking: the session table (with the login state of each token) and each slot have a lock
//! of their own, each token an object table lock. None is held across card I/O except a slot's,
//! while its card opens and its objects load; a session lock is never taken while a slot lock is
//! held by the same thread.

use crate::config::CardSpec;
use crate::error::{Error, P11Result};
use crate::info::{SlotInfo, TokenInfo, Version};
use crate::login::{self, LoggedIn};
use crate::mechanisms::{self, MechanismInfo};
use crate::session::Session;
use crate::token::Token;
use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// One slot: a configured card.
#[derive(Debug)]
struct Slot {
    spec: CardSpec,
    token: Mutex<Option<Arc<Token>>>,
}

/// The open sessions and who is logged in to each token, under one lock: a login and the
/// sessions it depends on (no read-only session while the SO is logged in) change together.
#[derive(Debug, Default)]
pub(crate) struct SessionTable {
    /// Every open session.
    pub(crate) open: BTreeMap<CK_SESSION_HANDLE, Session>,
    /// The login of each slot's token, shared by all of its sessions (none: public sessions).
    pub(crate) logins: BTreeMap<CK_SLOT_ID, LoggedIn>,
}

impl SessionTable {
    /// Removes a session; the last one of its token logs the token out (PKCS#11 v2.40 §5.6) and
    /// gives back the turns on the card's volatile key slots its key generations held (nobody is
    /// left to derive with those keys; other programs need the slots).
    fn close(&mut self, handle: CK_SESSION_HANDLE) -> Option<Session> {
        let session = self.open.remove(&handle)?;
        if !self.open.values().any(|s| s.slot == session.slot) {
            self.logins.remove(&session.slot);
            session.token.end_turns();
        }
        Some(session)
    }
}

/// The initialized module.
#[derive(Debug)]
pub struct Module {
    slots: Vec<Slot>,
    sessions: Mutex<SessionTable>,
}

/// Session and object handles come from counters of the process, not of one initialization: a
/// handle kept across `C_Finalize` and `C_Initialize` is stale, and is never taken for a new one.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);
/// See [`NEXT_SESSION`].
static NEXT_OBJECT: AtomicU64 = AtomicU64::new(1);

// Every table here is consistent between two statements: a lock a panic poisoned is taken over.
use iotsafe_core::lock::lock;

impl Module {
    /// A module offering `cards`, one slot each (slot IDs 0, 1, …). Nothing is opened yet.
    pub fn new(cards: Vec<CardSpec>) -> Module {
        Module {
            slots: cards
                .into_iter()
                .map(|spec| Slot {
                    spec,
                    token: Mutex::new(None),
                })
                .collect(),
            sessions: Mutex::new(SessionTable::default()),
        }
    }

    /// A fresh object handle (never reused in this process).
    pub(crate) fn object_handle(&self) -> CK_OBJECT_HANDLE {
        NEXT_OBJECT.fetch_add(1, Ordering::Relaxed) as CK_OBJECT_HANDLE
    }

    fn slot(&self, id: CK_SLOT_ID) -> P11Result<&Slot> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.slots.get(i))
            .ok_or(Error::NoSlot(id))
    }

    /// The token in slot `id`: the card opened and its objects read on first use. A card that
    /// cannot be opened is "no token" (`CKR_TOKEN_NOT_PRESENT`), tried again on the next call.
    pub fn token(&self, id: CK_SLOT_ID) -> P11Result<Arc<Token>> {
        let slot = self.slot(id)?;
        let mut token = lock(&slot.token);
        if let Some(t) = token.as_ref() {
            return Ok(t.clone());
        }
        let opened = slot.spec.selection.open().map_err(|source| {
            // Said here: a slot list that leaves the slot out returns no error to say it.
            tracing::debug!(slot = id, card = %slot.spec.describe(), "no token: {source}");
            Error::NoToken { slot: id, source }
        })?;
        if opened.provisioned {
            tracing::debug!(slot = id, "provisioned a new {}", opened.description);
        }
        let content = crate::load::load(&opened.card, slot.spec.label.as_deref(), || {
            self.object_handle()
        })?;
        tracing::debug!(
            slot = id,
            label = %content.facts.label,
            objects = content.objects.len(),
            "token loaded"
        );
        let loaded = Arc::new(Token::new(opened.card, content.facts, content.objects));
        *token = Some(loaded.clone());
        Ok(loaded)
    }

    /// `C_GetSlotList`: every slot, or only those whose card opens.
    pub fn slot_list(&self, token_present: bool) -> Vec<CK_SLOT_ID> {
        (0..self.slots.len() as CK_SLOT_ID)
            .filter(|id| !token_present || self.token(*id).is_ok())
            .collect()
    }

    /// `C_GetSlotInfo`.
    pub fn slot_info(&self, id: CK_SLOT_ID) -> P11Result<SlotInfo> {
        let slot = self.slot(id)?;
        let present = self.token(id).is_ok();
        Ok(SlotInfo {
            description: slot.spec.describe(),
            manufacturer: String::from("iotsafe-rs"),
            flags: CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | if present { CKF_TOKEN_PRESENT } else { 0 },
        })
    }

    /// `C_GetTokenInfo`. No login: `CKF_LOGIN_REQUIRED` is not set.
    pub fn token_info(&self, id: CK_SLOT_ID) -> P11Result<TokenInfo> {
        let token = self.token(id)?;
        let (sessions, rw_sessions) = lock(&self.sessions)
            .open
            .values()
            .filter(|s| s.slot == id)
            .fold((0, 0), |(n, rw), s| {
                (n + 1, rw + CK_ULONG::from(s.read_write))
            });
        let version = token.facts.version.unwrap_or(0);
        Ok(TokenInfo {
            label: token.facts.label.clone(),
            manufacturer: String::from("GSMA IoT SAFE applet"),
            model: format!("IoT SAFE v{version}"),
            serial: token.facts.serial.clone(),
            flags: CKF_TOKEN_INITIALIZED | CKF_RNG,
            sessions,
            rw_sessions,
            hardware: Version {
                major: version,
                minor: 0,
            },
        })
    }

    /// `C_GetMechanismList`.
    pub fn mechanism_list(&self, id: CK_SLOT_ID) -> P11Result<Vec<CK_MECHANISM_TYPE>> {
        let token = self.token(id)?;
        let objects = token.objects();
        Ok(mechanisms::offered(
            &objects,
            token.facts.peer_slot.is_some(),
        ))
    }

    /// `C_GetMechanismInfo`.
    pub fn mechanism_info(
        &self,
        id: CK_SLOT_ID,
        mechanism: CK_MECHANISM_TYPE,
    ) -> P11Result<MechanismInfo> {
        if !self.mechanism_list(id)?.contains(&mechanism) {
            return Err(Error::Mechanism(mechanism));
        }
        mechanisms::info(mechanism).ok_or(Error::Mechanism(mechanism))
    }

    /// `C_OpenSession`. `CKF_SERIAL_SESSION` is required, as PKCS#11 says; a read-only session
    /// cannot join a token the SO is logged in to (`CKR_SESSION_READ_WRITE_SO_EXISTS`).
    pub fn open_session(&self, id: CK_SLOT_ID, flags: CK_FLAGS) -> P11Result<CK_SESSION_HANDLE> {
        self.slot(id)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Error::ParallelSession);
        }
        let token = self.token(id)?;
        let read_write = flags & CKF_RW_SESSION != 0;
        let mut table = lock(&self.sessions);
        if !read_write && table.logins.get(&id) == Some(&LoggedIn::SecurityOfficer) {
            return Err(Error::SoLoggedIn);
        }
        let handle = NEXT_SESSION.fetch_add(1, Ordering::Relaxed) as CK_SESSION_HANDLE;
        table
            .open
            .insert(handle, Session::new(id, token, read_write));
        Ok(handle)
    }

    /// `C_CloseSession`: its session objects are destroyed with it; closing the token's last
    /// session logs the token out.
    pub fn close_session(&self, handle: CK_SESSION_HANDLE) -> P11Result<()> {
        let session = lock(&self.sessions)
            .close(handle)
            .ok_or(Error::NoSession(handle))?;
        session.token.drop_session_objects(handle);
        Ok(())
    }

    /// `C_CloseAllSessions`.
    pub fn close_all_sessions(&self, id: CK_SLOT_ID) -> P11Result<()> {
        self.slot(id)?;
        let closed: Vec<(CK_SESSION_HANDLE, Session)> = {
            let mut table = lock(&self.sessions);
            let handles: Vec<_> = table
                .open
                .iter()
                .filter(|(_, s)| s.slot == id)
                .map(|(h, _)| *h)
                .collect();
            handles
                .into_iter()
                .filter_map(|h| table.close(h).map(|s| (h, s)))
                .collect()
        };
        for (handle, session) in closed {
            session.token.drop_session_objects(handle);
        }
        Ok(())
    }

    /// Runs `f` on a session, under the session table's lock (no card I/O in `f`).
    pub(crate) fn with_session<T>(
        &self,
        handle: CK_SESSION_HANDLE,
        f: impl FnOnce(&mut Session) -> P11Result<T>,
    ) -> P11Result<T> {
        self.with_table(|table| {
            let session = table
                .open
                .get_mut(&handle)
                .ok_or(Error::NoSession(handle))?;
            f(session)
        })
    }

    /// Runs `f` on the whole session table, under its lock (no card I/O in `f`).
    pub(crate) fn with_table<T>(&self, f: impl FnOnce(&mut SessionTable) -> T) -> T {
        f(&mut lock(&self.sessions))
    }

    /// The token a session works on.
    pub(crate) fn session_token(&self, handle: CK_SESSION_HANDLE) -> P11Result<Arc<Token>> {
        self.with_session(handle, |s| Ok(s.token.clone()))
    }

    /// `C_GetSessionInfo`: slot, state (`CKS_*`: read-only or read/write, and who is logged in
    /// to its token), flags.
    pub fn session_info(
        &self,
        handle: CK_SESSION_HANDLE,
    ) -> P11Result<(CK_SLOT_ID, CK_STATE, CK_FLAGS)> {
        self.with_table(|table| {
            let s = table.open.get(&handle).ok_or(Error::NoSession(handle))?;
            let state = login::session_state(s.read_write, table.logins.get(&s.slot).copied());
            let rw = if s.read_write { CKF_RW_SESSION } else { 0 };
            Ok((s.slot, state, CKF_SERIAL_SESSION | rw))
        })
    }

    /// `C_GenerateRandom`: `len` bytes from the card's generator (GET RANDOM).
    pub fn random(&self, handle: CK_SESSION_HANDLE, len: usize) -> P11Result<Zeroizing<Vec<u8>>> {
        let token = self.session_token(handle)?;
        if len == 0 {
            return Ok(Zeroizing::new(Vec::new()));
        }
        let bytes = token.card.get_random(len)?;
        if bytes.len() != len {
            return Err(Error::ShortRandom {
                asked: len,
                got: bytes.len(),
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests;
