//! The operations of a [`Card`](super::Card), one module per command family. Each public method
//! takes the session's lock and hands [`Session::run`](super::session::Session::run) a body that
//! works on an [`Op`]: the APDUs of one operation, inside one transaction of the transport.

mod closing;
mod derive;
mod keys;
mod objects;
mod raw;
mod sign;

pub(in crate::card) use closing::OpenSessions;

use crate::apdu::{Command, Le, Response};
use crate::clock::Instant;
use crate::config::CardConfig;
use crate::error::{CommandKind, Error};
use crate::link::{success, Link, Secrecy};
use crate::prelude::*;
use crate::stats::Operation;

/// One operation in progress: the link its APDUs go through, the class byte of the session's
/// channel and the session's configuration.
pub(in crate::card) struct Op<'a> {
    link: Link<'a>,
    cla: u8,
    config: &'a CardConfig,
    /// The sessions the channel has left open, and whether the card wants them closed.
    sessions: &'a mut OpenSessions,
    /// What is counted now: the operation, when it began, the APDUs sent before it.
    current: (Operation, Instant, u64),
}

impl<'a> Op<'a> {
    /// An operation sending on `link` with class byte `cla`, counted as `current` says.
    pub(in crate::card) fn new(
        link: Link<'a>,
        cla: u8,
        config: &'a CardConfig,
        sessions: &'a mut OpenSessions,
        current: (Operation, Instant, u64),
    ) -> Op<'a> {
        Op {
            link,
            cla,
            config,
            sessions,
            current,
        }
    }

    /// The operation counted now (see [`Op::begin`]).
    pub(in crate::card) fn current(&self) -> (Operation, Instant, u64) {
        self.current
    }

    /// Counts what this transaction did so far as one successful run of the operation it
    /// counted, and what follows as `next`: one transaction, two operations in the counters.
    fn begin(&mut self, next: Operation) {
        let (op, started, before) = self.current;
        super::session::count(self.link.stats, op, started, before, true);
        self.current = (next, Instant::now(), self.link.stats.apdus);
    }

    /// Whether any APDU of this operation was handed to the transport.
    pub(in crate::card) fn sent(&self) -> bool {
        self.link.sent
    }

    /// Sends `command` and returns its complete answer (procedure bytes resolved).
    fn exchange(
        &mut self,
        command: &Command,
        kind: CommandKind,
        secrecy: Secrecy,
    ) -> Result<Response, Error> {
        self.link.exchange(command, kind, secrecy)
    }

    /// [`Op::exchange`], then the answer's data if the card reported success.
    fn exchange_ok(
        &mut self,
        command: &Command,
        kind: CommandKind,
        secrecy: Secrecy,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        success(self.exchange(command, kind, secrecy)?, kind)
    }

    /// Le of a case-4 command: written only when the configuration asks for it (T=1 style);
    /// hosts send IoT SAFE case-4 commands without Le otherwise (the T=0 form).
    fn case4_le(&self) -> Le {
        if self.config.le_in_case4 {
            Le::Ne(256)
        } else {
            Le::Absent
        }
    }
}

/// An operation's result, and how closing its card session failed, if it did. A failed close
/// does not undo a result already received: some cards close the session themselves after the
/// final Update and refuse the explicit close (`6985`).
pub(in crate::card) struct Closed<T> {
    pub(in crate::card) value: T,
    pub(in crate::card) close_error: Option<Error>,
}
