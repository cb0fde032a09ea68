//! Building AT command lines for APDUs, and the redacted forms used in logs and errors;
//! `AtCommand` keeps the two together for the transport.
//!
//! 27.007 counts the `<length>` of `AT+CSIM` and `AT+CGLA` in **hex characters** (twice the byte
//! count): `AT+CSIM=24,"01A4040007A0000005590010"` carries a 12-byte APDU.

use crate::hexutil;
use crate::prelude::*;
use core::time::Duration;

use zeroize::Zeroizing;

/// How many APDU bytes (the header) appear in logs and error messages; the rest may be a secret
/// (a hash to sign, key material) and is replaced by `…`.
pub const SHOWN_APDU_BYTES: usize = 5;

/// Instructions that make the card compute for seconds: GENERATE KEY PAIR (`B9`), COMPUTE SIGNATURE
/// Update (`2B`), VERIFY SIGNATURE Update (`2D`), COMPUTE DH (`46`).
pub const SLOW_INSTRUCTIONS: [u8; 4] = [0xB9, 0x2B, 0x2D, 0x46];

/// `<head>"<HEX of apdu>"` in one block of its final size, wiped when dropped: the APDU may carry
/// a secret (HKDF input keying material, a PRF secret), and a `String` that grows frees its old
/// block unwiped.
fn apdu_line(head: &str, apdu: &[u8]) -> Zeroizing<String> {
    let mut line = Zeroizing::new(String::with_capacity(head.len() + apdu.len() * 2 + 2));
    line.push_str(head);
    line.push('"');
    hexutil::push_upper(&mut line, apdu);
    line.push('"');
    line
}

/// Hex of the APDU header followed by `…` when more bytes follow.
pub fn redacted_hex(apdu: &[u8]) -> String {
    if apdu.len() <= SHOWN_APDU_BYTES {
        hexutil::encode(apdu)
    } else {
        format!("{}…", hexutil::encode(&apdu[..SHOWN_APDU_BYTES]))
    }
}

/// The `<length>` argument: the number of hex characters, optionally right-aligned in a field of
/// three (`AT+CSIM= 24,...`), as wolfSSL writes it and some emulators expect.
fn length_field(apdu: &[u8], width3: bool) -> String {
    let n = apdu.len() * 2;
    if width3 {
        format!("{n:>3}")
    } else {
        n.to_string()
    }
}

/// `AT+CSIM=<2*len>,"<HEX>"` (without the line terminator), wiped when dropped.
pub fn csim_command(apdu: &[u8], width3: bool) -> Zeroizing<String> {
    apdu_line(&format!("AT+CSIM={},", length_field(apdu, width3)), apdu)
}

/// The loggable form of [`csim_command`]: header only.
pub fn csim_display(apdu: &[u8], width3: bool) -> String {
    format!(
        "AT+CSIM={},\"{}\"",
        length_field(apdu, width3),
        redacted_hex(apdu)
    )
}

/// `AT+CGLA=<sid>,<2*len>,"<HEX>"` (without the line terminator), wiped when dropped.
pub fn cgla_command(session: u32, apdu: &[u8]) -> Zeroizing<String> {
    apdu_line(&format!("AT+CGLA={session},{},", apdu.len() * 2), apdu)
}

/// The loggable form of [`cgla_command`]: header only.
pub fn cgla_display(session: u32, apdu: &[u8]) -> String {
    format!(
        "AT+CGLA={session},{},\"{}\"",
        apdu.len() * 2,
        redacted_hex(apdu)
    )
}

/// `AT+CCHO="<AID>"`. AIDs are public, so this form is also the loggable one.
pub fn ccho_command(aid: &[u8]) -> String {
    format!("AT+CCHO=\"{}\"", hexutil::encode(aid))
}

/// `AT+CCHC=<sid>`.
pub fn cchc_command(session: u32) -> String {
    format!("AT+CCHC={session}")
}

/// One AT command: the line to send and the text logs and errors show for it.
///
/// A card command's line carries an APDU, which may be a secret (HKDF input keying material, a
/// PRF secret): it is built in one block of its final size, wiped when dropped, and shown with the
/// payload redacted past the header. A plain command (`AT+CGMM`, `AT+CCHO="<AID>"`) carries
/// nothing secret and is shown as it is.
pub(crate) struct AtCommand {
    line: Zeroizing<String>,
    /// What logs and errors show; `None` when that is the line itself.
    shown: Option<String>,
    /// AT+CCHO: an answer that comes after the deadline names a channel opened for nobody.
    opens_channel: bool,
}

impl AtCommand {
    /// A command with nothing secret in it, shown as it is.
    pub(crate) fn plain(line: impl Into<String>) -> AtCommand {
        AtCommand {
            line: Zeroizing::new(line.into()),
            shown: None,
            opens_channel: false,
        }
    }

    /// `AT+CSIM` carrying `apdu`, shown as [`csim_display`].
    pub(crate) fn csim(apdu: &[u8], width3: bool) -> AtCommand {
        AtCommand {
            line: csim_command(apdu, width3),
            shown: Some(csim_display(apdu, width3)),
            opens_channel: false,
        }
    }

    /// `AT+CGLA` carrying `apdu` on `session`, shown as [`cgla_display`].
    pub(crate) fn cgla(session: u32, apdu: &[u8]) -> AtCommand {
        AtCommand {
            line: cgla_command(session, apdu),
            shown: Some(cgla_display(session, apdu)),
            opens_channel: false,
        }
    }

    /// `AT+CCHO="<AID>"` (AIDs are public).
    pub(crate) fn ccho(aid: &[u8]) -> AtCommand {
        AtCommand {
            opens_channel: true,
            ..AtCommand::plain(ccho_command(aid))
        }
    }

    /// `AT+CCHC=<sid>`.
    pub(crate) fn cchc(session: u32) -> AtCommand {
        AtCommand::plain(cchc_command(session))
    }

    /// The same line, shown as `shown` (the `AT` of a resync reads `AT (resync)` in errors).
    pub(crate) fn shown_as(mut self, shown: impl Into<String>) -> AtCommand {
        self.shown = Some(shown.into());
        self
    }

    /// The line to send, without the terminator.
    pub(crate) fn line(&self) -> &str {
        &self.line
    }

    /// The line as logs and errors show it.
    pub(crate) fn shown(&self) -> &str {
        self.shown.as_deref().unwrap_or(&self.line)
    }

    /// True for AT+CCHO: its answer names a channel the modem opened, which must be closed even
    /// when the answer comes too late.
    pub(crate) fn opens_channel(&self) -> bool {
        self.opens_channel
    }
}

impl core::fmt::Debug for AtCommand {
    /// The shown form only: a derived `Debug` would print the APDU's hex.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("AtCommand").field(&self.shown()).finish()
    }
}

/// Per-command deadlines: short for ordinary commands, long for the ones that compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Deadline for ordinary APDUs and plain AT commands.
    pub normal: Duration,
    /// Deadline for APDUs whose INS is in [`SLOW_INSTRUCTIONS`].
    pub slow: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            normal: Duration::from_secs(5),
            slow: Duration::from_secs(30),
        }
    }
}

impl Deadlines {
    /// The deadline for `apdu`, chosen by its INS byte.
    pub fn for_apdu(&self, apdu: &[u8]) -> Duration {
        match apdu.get(1) {
            Some(ins) if SLOW_INSTRUCTIONS.contains(ins) => self.slow,
            _ => self.normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELECT: [u8; 12] = [
        0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
    ];

    #[test]
    fn csim_counts_hex_characters() {
        assert_eq!(
            csim_command(&SELECT, false).as_str(),
            "AT+CSIM=24,\"01A4040007A0000005590010\""
        );
        assert_eq!(
            csim_command(&[0, 0x70, 0, 0, 1], true).as_str(),
            "AT+CSIM= 10,\"0070000001\""
        );
    }

    #[test]
    fn display_redacts_past_the_header() {
        assert_eq!(csim_display(&SELECT, false), "AT+CSIM=24,\"01A4040007…\"");
        assert_eq!(cgla_display(1, &SELECT), "AT+CGLA=1,24,\"01A4040007…\"");
        assert_eq!(redacted_hex(&[0, 0xC0, 0, 0, 0]), "00C0000000");
    }

    #[test]
    fn cgla_ccho_cchc() {
        assert_eq!(
            cgla_command(2, &[0x00, 0xC0, 0x00, 0x00, 0x00]).as_str(),
            "AT+CGLA=2,10,\"00C0000000\""
        );
        assert_eq!(
            ccho_command(&[0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10]),
            "AT+CCHO=\"A0000005590010\""
        );
        assert_eq!(cchc_command(2), "AT+CCHC=2");
    }

    #[test]
    fn apdu_lines_are_built_in_one_block_of_their_final_size() {
        // A line that had to grow would have freed a block holding the APDU's hex, unwiped.
        let apdu = [0x5Au8; 300];
        for line in [
            csim_command(&apdu, false),
            csim_command(&apdu, true),
            cgla_command(4_000_000_000, &apdu),
            csim_command(&[], false),
        ] {
            assert_eq!(line.capacity(), line.len(), "{}", &line[..20]);
        }
    }

    #[test]
    fn card_commands_are_shown_redacted_and_plain_ones_as_they_are() {
        let mut sign_update = vec![0x00, 0x2B, 0x80, 0x01, 0x22, 0x9E, 0x20];
        sign_update.extend([0x5A; 32]);
        let csim = AtCommand::csim(&sign_update, false);
        assert!(csim.line().starts_with("AT+CSIM=78,\"002B8001229E205A5A"));
        assert_eq!(csim.shown(), "AT+CSIM=78,\"002B800122…\"");
        let cgla = AtCommand::cgla(3, &sign_update);
        assert!(cgla.line().ends_with("5A5A\""));
        assert_eq!(cgla.shown(), "AT+CGLA=3,78,\"002B800122…\"");
        // Debug shows what logs may show, never the payload.
        for command in [&csim, &cgla] {
            let debug = format!("{command:?}");
            assert!(!debug.contains("5A5A"), "{debug}");
            assert!(debug.contains("002B800122…"), "{debug}");
        }
        let ccho = AtCommand::ccho(&[0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10]);
        assert_eq!(ccho.line(), "AT+CCHO=\"A0000005590010\"");
        assert_eq!(ccho.shown(), ccho.line());
        assert!(ccho.opens_channel());
        assert_eq!(AtCommand::cchc(2).shown(), "AT+CCHC=2");
        assert!(!AtCommand::cchc(2).opens_channel() && !csim.opens_channel());
        let resync = AtCommand::plain("AT").shown_as("AT (resync)");
        assert_eq!((resync.line(), resync.shown()), ("AT", "AT (resync)"));
    }

    #[test]
    fn slow_instructions_get_the_long_deadline() {
        let d = Deadlines::default();
        assert_eq!(d.for_apdu(&[0x00, 0x2B, 0x80, 0x01]), d.slow);
        assert_eq!(d.for_apdu(&[0x81, 0xB9, 0x00, 0x00]), d.slow);
        assert_eq!(d.for_apdu(&[0x00, 0xC0, 0x00, 0x00, 0x00]), d.normal);
        assert_eq!(d.for_apdu(&[]), d.normal);
    }
}
