//! Opening and ending the card's multi-step sessions (COMPUTE SIGNATURE, VERIFY SIGNATURE, PUT
//! PUBLIC KEY) as [`SessionClosing`] says: which sessions this channel left open, and whether this
//! card wants them closed.
//!
//! A session left open costs nothing on a card that opens it afresh at the next Init, and saves
//! the close's APDU (two per handshake). A card that refuses such an Init is found out by the
//! refusal itself: the sessions left open are closed, the Init goes again, and the card's
//! sessions are closed after use from then on.

use super::Op;
use crate::apdu::Command;
use crate::commands;
use crate::config::SessionClosing;
use crate::error::{CommandKind, Error};
use crate::link::Secrecy;
use crate::prelude::*;

/// The sessions the channel's earlier operations left open, and what the card showed of itself.
#[derive(Debug, Clone, Default)]
pub(in crate::card) struct OpenSessions {
    /// Sessions (command family, number) not closed after their final Update.
    left: Vec<(CommandKind, u8)>,
    /// The card refused an Init while sessions were left open: close after every operation.
    refused: bool,
}

impl OpenSessions {
    /// The channel was opened or selected afresh (a SELECT ends every session on it), or the card
    /// was reset: nothing is open any more.
    pub(in crate::card) fn channel_reset(&mut self) {
        self.left.clear();
    }

    /// Whether this card refused an Init while a session was left open (it wants closes).
    pub(in crate::card) fn card_wants_closes(&self) -> bool {
        self.refused
    }

    /// Starts as if the card had refused before (known from an earlier run on the same card).
    pub(in crate::card) fn assume_card_wants_closes(&mut self) {
        self.refused = true;
    }
}

/// The close of a session: `CLA <Init INS> 01 <number> 00`.
fn close_command(cla: u8, kind: CommandKind, number: u8) -> Command {
    match kind {
        CommandKind::PutPublicKey => commands::put_public_key_close(cla, number),
        CommandKind::VerifySignature => commands::verify_close(cla, number),
        _ => commands::sign_close(cla, number),
    }
}

impl Op<'_> {
    /// Sends a session's Init. When the card refuses it while sessions are left open on the
    /// channel, closes them and sends the Init once more; the card's sessions are then closed
    /// after every operation.
    pub(super) fn open_session(&mut self, init: &Command, kind: CommandKind) -> Result<(), Error> {
        let refusal = match self.exchange_ok(init, kind, Secrecy::Public) {
            Ok(_) => return Ok(()),
            Err(e @ Error::Status { .. }) if !self.sessions.left.is_empty() => e,
            Err(e) => return Err(e),
        };
        tracing::debug!(error = %refusal, "Init refused with sessions left open; closing them and trying again");
        for (left_kind, number) in core::mem::take(&mut self.sessions.left) {
            let close = close_command(self.cla, left_kind, number);
            // Best effort: a close refused here changes nothing the retried Init will not show.
            let _ = self.exchange_ok(&close, left_kind, Secrecy::Public);
        }
        self.exchange_ok(init, kind, Secrecy::Public)?;
        self.sessions.refused = true;
        self.link.stats.reopen_refusals += 1;
        Ok(())
    }

    /// Ends a session after its last Update: closes it, or leaves it open, as configured and as
    /// the card has shown it wants. Runs even after a failed step so that the session is free for
    /// the next operation. Returns the close's failure instead of raising it.
    pub(super) fn end_session(&mut self, kind: CommandKind, number: u8) -> Option<Error> {
        let close = match self.config.close_sessions {
            SessionClosing::Never => false,
            SessionClosing::Always => true,
            SessionClosing::UnlessRefused => {
                kind == CommandKind::VerifySignature || self.sessions.refused
            }
        };
        if !close {
            if !self.sessions.left.contains(&(kind, number)) {
                self.sessions.left.push((kind, number));
            }
            return None;
        }
        let command = close_command(self.cla, kind, number);
        let error = self.exchange_ok(&command, kind, Secrecy::Public).err()?;
        self.link.stats.close_failures += 1;
        tracing::warn!(error = %error, "closing the {kind} session failed; the result is kept");
        Some(error)
    }
}
