//! The steps COMPUTE SIGNATURE, VERIFY SIGNATURE and PUT PUBLIC KEY share: an Init that opens a
//! session (P1=00) or closes it (P1=01), and Updates (P1=00 more, P1=80 last) on an open session.

use super::{CommandResult, Outcome};
use crate::apdu::Command;
use crate::dispatch::Applet;
use crate::session::{Session, SessionKind};
use crate::sw;

/// Handles an Init's P1: `01` closes the session (true), `00` asks for an open (false), others are
/// `6A86`.
pub(crate) fn close_requested(
    applet: &mut Applet,
    cmd: &Command<'_>,
    number: usize,
    kind: SessionKind,
) -> Result<bool, u16> {
    match cmd.p1 {
        0x01 => {
            close_session(applet, number, kind, cmd.p2)?;
            Ok(true)
        }
        0x00 => Ok(false),
        _ => Err(sw::WRONG_P1P2),
    }
}

/// The host closes a session (P1=01): `9000`, or the configured status word when the card had already
/// closed it after its last Update (`Quirks::close_after_final_update`).
fn close_session(
    applet: &mut Applet,
    number: usize,
    kind: SessionKind,
    session: u8,
) -> Result<(), u16> {
    let closed_by_card = applet
        .channels
        .get_mut(number)
        .is_some_and(|c| c.close_session(kind, session));
    match applet.quirks.close_after_final_update {
        Some(status) if closed_by_card && status != sw::OK => Err(status),
        _ => Ok(()),
    }
}

/// Opens `session` on channel `number`, within the card's limit of open sessions; a card with
/// `Quirks::reopen_refused` refuses to open one of the same kind and number that is still open.
pub(crate) fn open(applet: &mut Applet, number: usize, session: Session) -> CommandResult {
    let max = applet.quirks.max_sessions;
    let refused = applet.quirks.reopen_refused;
    let channel = applet
        .channels
        .get_mut(number)
        .ok_or(sw::CHANNEL_NOT_SUPPORTED)?;
    if let Some(status) = refused {
        if channel.session_mut(session.kind, session.number).is_some() {
            return Err(status);
        }
    }
    channel.open_session(session, max)?;
    Ok(Outcome::ok())
}

/// An Update's P1 and the session it continues: `80` is the last Update (true), `00` more follow
/// (false), others are `6A86`; the session of `kind` numbered P2 must be open and unfinished, else
/// `6985`.
pub(crate) fn update_session<'a>(
    applet: &'a mut Applet,
    cmd: &Command<'_>,
    number: usize,
    kind: SessionKind,
) -> Result<(bool, &'a mut Session), u16> {
    let last = match cmd.p1 {
        0x80 => true,
        0x00 => false,
        _ => return Err(sw::WRONG_P1P2),
    };
    let session = applet
        .channels
        .get_mut(number)
        .and_then(|c| c.session_mut(kind, cmd.p2))
        .filter(|s| !s.finished)
        .ok_or(sw::CONDITIONS_NOT_SATISFIED)?;
    Ok((last, session))
}
