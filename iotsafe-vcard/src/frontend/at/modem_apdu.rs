//! The APDUs the modem itself sends to the SIM, behind AT+CCHO, AT+CCHC and a T=0 GET RESPONSE:
//! one builder each, with its bytes. (The applet's own parsing never sees these as special.)

use super::channel::cla_for_channel;

/// MANAGE CHANNEL open, the card picks the number: `00 70 00 00 01`.
pub(crate) const OPEN_CHANNEL: [u8; 5] = [0x00, 0x70, 0x00, 0x00, 0x01];

/// MANAGE CHANNEL close of `channel`, sent on the basic channel: `00 70 80 0n`.
pub(crate) fn close_channel(channel: u8) -> [u8; 4] {
    [0x00, 0x70, 0x80, channel]
}

/// SELECT by DF name on `channel`: `0n A4 04 00 Lc <aid>` (interindustry class, the channel's
/// bits; an AID is 5..=16 bytes, so Lc fits one byte).
pub(crate) fn select_on_channel(channel: u8, aid: &[u8]) -> Vec<u8> {
    let cla = cla_for_channel(0x00, channel).unwrap_or(channel);
    let mut apdu = Vec::with_capacity(5 + aid.len());
    apdu.extend_from_slice(&[cla, 0xA4, 0x04, 0x00, aid.len() as u8]);
    apdu.extend_from_slice(aid);
    apdu
}

/// GET RESPONSE for `le` bytes on the channel of `cla`: `0n C0 00 00 Le`.
pub(crate) fn get_response(cla: u8, le: u8) -> [u8; 5] {
    [cla & 0x03, 0xC0, 0x00, 0x00, le]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(close_channel(2), [0x00, 0x70, 0x80, 0x02]);
        assert_eq!(
            select_on_channel(1, &[0xA0, 0, 0, 5, 0x59, 0, 0x10]),
            [0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0, 0, 5, 0x59, 0, 0x10]
        );
        assert_eq!(get_response(0x81, 0x42), [0x01, 0xC0, 0x00, 0x00, 0x42]);
    }
}
