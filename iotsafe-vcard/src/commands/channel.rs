//! SELECT (by AID) and MANAGE CHANNEL (`docs/protocol.md#select`, `#manage-channel`).

use super::{CommandResult, Outcome};
use crate::apdu::Command;
use crate::dispatch::Applet;
use crate::profile::TransportMode;
use crate::sw;

/// SELECT by DF name. Opens a closed channel when the quirk allows (wolfSSL), resets the channel's
/// sessions, answers `9000` without FCI, or `6A82` for an AID the card does not host.
pub(crate) fn select(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    let implicit_open = applet.quirks.implicit_channel_on_select;
    let aid_known = applet
        .quirks
        .aids
        .iter()
        .any(|aid| aid.as_slice() == cmd.data);
    let channel = applet
        .channels
        .get_mut(number)
        .ok_or(sw::CHANNEL_NOT_SUPPORTED)?;
    if !channel.open {
        if !implicit_open {
            return Err(sw::CHANNEL_NOT_SUPPORTED);
        }
        channel.open = true;
    }
    if cmd.p1 != 0x04 {
        return Err(sw::WRONG_P1P2);
    }
    if !cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    channel.clear();
    if !aid_known {
        return Err(sw::NOT_FOUND);
    }
    channel.selected = true;
    Ok(Outcome::ok())
}

/// MANAGE CHANNEL: P1=00 opens (P2=00: the card picks the lowest free channel and returns its
/// number; P2=n opens channel n), P1=80 closes channel P2 (P2=00: the channel the command came on).
/// Opening beyond the channels the card offers (`Quirks::logical_channels`) is `6A81`.
pub(crate) fn manage_channel(
    applet: &mut Applet,
    cmd: &Command<'_>,
    number: usize,
) -> CommandResult {
    if !applet.channels.get(number).is_some_and(|c| c.open) {
        return Err(sw::CHANNEL_NOT_SUPPORTED);
    }
    match cmd.p1 {
        0x00 => open(applet, cmd),
        0x80 => close(applet, cmd, number),
        _ => Err(sw::WRONG_P1P2),
    }
}

fn open(applet: &mut Applet, cmd: &Command<'_>) -> CommandResult {
    if cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    if cmd.p2 == 0 {
        // One byte comes back; on T=0 a Le other than 01 (or 00) is answered `6C01` before opening.
        if applet.transport == TransportMode::T0 && matches!(cmd.le, Some(n) if n != 1 && n != 256)
        {
            return Err(sw::wrong_le(1));
        }
        let offered = usize::from(applet.quirks.logical_channels);
        let (free, channel) = applet
            .channels
            .iter_mut()
            .enumerate()
            .take(offered + 1)
            .skip(1)
            .find(|(_, c)| !c.open)
            .ok_or(sw::NO_FREE_CHANNEL)?;
        channel.clear();
        channel.open = true;
        let byte = u8::try_from(free).map_err(|_| sw::NO_FREE_CHANNEL)?;
        return Ok(Outcome::data(vec![byte]));
    }
    if cmd.p2 > applet.quirks.logical_channels && usize::from(cmd.p2) < applet.channels.len() {
        // A channel number ISO allows but this card does not offer.
        return Err(sw::NO_FREE_CHANNEL);
    }
    let channel = applet
        .channels
        .get_mut(usize::from(cmd.p2))
        .ok_or(sw::WRONG_P1P2)?;
    if channel.open {
        return Err(sw::WRONG_P1P2);
    }
    channel.clear();
    channel.open = true;
    Ok(Outcome::ok())
}

fn close(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    let target = if cmd.p2 == 0 {
        number
    } else {
        usize::from(cmd.p2)
    };
    if target == 0 {
        // The basic channel cannot be closed.
        return Err(sw::WRONG_P1P2);
    }
    let channel = applet.channels.get_mut(target).ok_or(sw::WRONG_P1P2)?;
    if !channel.open {
        // Thales PKCS#11 closes channels 1, 2, 3 ... until the card refuses: a closed channel must not
        // answer 9000.
        return Err(sw::CHANNEL_NOT_SUPPORTED);
    }
    channel.clear();
    channel.open = false;
    Ok(Outcome::ok())
}
