//! Command APDU encoding (ISO 7816-4 cases 1–4, short and extended) and response parsing.

use crate::error::{CommandKind, Error};
use crate::hexutil;
use crate::prelude::*;
use crate::sw::StatusWord;
use zeroize::Zeroizing;

/// Expected response length (Le) of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Le {
    /// No Le: case 1 (no data) or case 3 (data in only).
    Absent,
    /// A case-1 command sent as five bytes with P3 = `00`, the T=0 form real hosts send for closes
    /// (`81 2A 01 01 00`, `00 70 80 01 00`).
    P3Zero,
    /// Up to this many response bytes (1..=256 short, up to 65536 extended); 256 encodes as `00`.
    Ne(u32),
}

/// A command APDU. Its data may hold secrets (HKDF input, PRF secret), so it is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte (channel bits included).
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Lc is its length).
    pub data: Zeroizing<Vec<u8>>,
    /// Expected response length.
    pub le: Le,
}

impl core::fmt::Debug for Command {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Command({:02X} {:02X} {:02X} {:02X}, {} data bytes, {:?})",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le
        )
    }
}

impl Command {
    /// A command with no data and no Le (case 1).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Command {
            cla,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: Le::Absent,
        }
    }
    /// Sets the command data.
    pub fn with_data(mut self, data: Vec<u8>) -> Self {
        self.data = Zeroizing::new(data);
        self
    }
    /// Sets Le.
    pub fn with_le(mut self, le: Le) -> Self {
        self.le = le;
        self
    }

    /// Splits a short command APDU given as bytes (a raw APDU from the command line) into its
    /// parts, so that the session can send it again with another Le on `6Cxx`. A lone P3 is read
    /// as Le (case 2); extended-length APDUs are refused.
    pub fn parse(apdu: &[u8]) -> Result<Command, Error> {
        let bad = |reason: String| Error::InvalidRequest {
            command: CommandKind::Raw,
            reason,
        };
        let short_le = |b: u8| Le::Ne(if b == 0 { 256 } else { u32::from(b) });
        let &[cla, ins, p1, p2, ref body @ ..] = apdu else {
            return Err(bad(format!(
                "an APDU has at least 4 bytes, got {}",
                apdu.len()
            )));
        };
        let cmd = Command::new(cla, ins, p1, p2);
        let Some((&p3, rest)) = body.split_first() else {
            return Ok(cmd);
        };
        if rest.is_empty() {
            return Ok(cmd.with_le(short_le(p3)));
        }
        let refuse = |reason: &str| bad(format!("{reason}: {}", hexutil::encode(apdu)));
        if p3 == 0 {
            return Err(refuse("extended-length raw APDUs are not supported"));
        }
        let lc = usize::from(p3);
        let data = rest
            .get(..lc)
            .ok_or_else(|| refuse("Lc exceeds the APDU"))?;
        let cmd = cmd.with_data(data.to_vec());
        match rest[lc..] {
            [] => Ok(cmd),
            [le] => Ok(cmd.with_le(short_le(le))),
            _ => Err(refuse("trailing bytes after Le")),
        }
    }

    /// Encodes the command. Short form when it fits; extended form only when `extended` allows it.
    pub fn encode(&self, extended: bool, kind: CommandKind) -> Result<Zeroizing<Vec<u8>>, Error> {
        let lc = self.data.len();
        let ne = match self.le {
            Le::Ne(n) if n == 0 || n > 65536 => {
                return Err(Error::InvalidRequest {
                    command: kind,
                    reason: format!("Le {n} is outside 1..=65536"),
                })
            }
            Le::Ne(n) => Some(n),
            _ => None,
        };
        let needs_extended = lc > 255 || ne.is_some_and(|n| n > 256);
        if needs_extended && !extended {
            return Err(Error::InvalidRequest {
                command: kind,
                reason: format!(
                    "{lc} data bytes / Le {ne:?} need extended length, which the transport does not offer"
                ),
            });
        }
        if lc > 65535 {
            return Err(Error::InvalidRequest {
                command: kind,
                reason: format!("{lc} data bytes exceed the extended-length maximum"),
            });
        }
        let mut out = Zeroizing::new(Vec::with_capacity(4 + 3 + lc + 3));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if needs_extended {
            // Extended: 00 Lc1 Lc2 data [Le1 Le2], or 00 Le1 Le2 for case 2E; 65536 encodes as 0000.
            if lc > 0 {
                out.push(0);
                out.extend_from_slice(&(lc as u16).to_be_bytes());
                out.extend_from_slice(&self.data);
                if let Some(n) = ne {
                    out.extend_from_slice(&((n % 65536) as u16).to_be_bytes());
                }
            } else if let Some(n) = ne {
                out.push(0);
                out.extend_from_slice(&((n % 65536) as u16).to_be_bytes());
            }
        } else {
            if lc > 0 {
                out.push(lc as u8);
                out.extend_from_slice(&self.data);
            }
            match self.le {
                Le::Absent => {}
                Le::P3Zero => {
                    if lc == 0 {
                        out.push(0)
                    }
                }
                Le::Ne(n) => out.push((n % 256) as u8),
            }
        }
        Ok(out)
    }
}

/// A response APDU: data and status word. The data may hold secrets and is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data (without SW1 SW2).
    pub data: Zeroizing<Vec<u8>>,
    /// The status word.
    pub sw: StatusWord,
}

impl core::fmt::Debug for Response {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Response({} data bytes, {:?})", self.data.len(), self.sw)
    }
}

impl Response {
    /// Splits raw response bytes into data and status word; fewer than two bytes is malformed.
    pub fn parse(raw: &[u8], kind: CommandKind) -> Result<Response, Error> {
        match raw.len().checked_sub(2) {
            Some(n) => Ok(Response {
                data: Zeroizing::new(raw[..n].to_vec()),
                sw: StatusWord::new(raw[n], raw[n + 1]),
            }),
            None => Err(Error::malformed(
                kind,
                "a response of at least two bytes (SW1 SW2)",
                raw,
            )),
        }
    }
}

/// The class byte style of IoT SAFE commands: ISO interindustry (`0X`/`4X`) or proprietary (`8X`/`CX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassStyle {
    /// `00`..`03`, `40`..`4F` (Thales, Orange, NTT).
    Interindustry,
    /// `80`..`83`, `C0`..`CF` (wolfSSL, atsign/ZARIOT, Quantag); the IoT SAFE "8X" class.
    #[default]
    Proprietary,
}

/// The class byte for `channel` (0..=19) in `style` (ETSI TS 102 221 §10.1.1).
pub fn class_byte(channel: u8, style: ClassStyle) -> Result<u8, Error> {
    let base = match style {
        ClassStyle::Interindustry => 0x00,
        ClassStyle::Proprietary => 0x80,
    };
    match channel {
        0..=3 => Ok(base | channel),
        4..=19 => Ok(base | 0x40 | (channel - 4)),
        _ => Err(Error::InvalidRequest {
            command: CommandKind::OpenChannel,
            reason: format!("channel {channel} is outside 0..=19"),
        }),
    }
}

/// The channel number a class byte addresses, if it is one of the four IoT SAFE forms.
pub fn channel_of_class(cla: u8) -> Option<u8> {
    match cla & 0xF0 {
        0x00 | 0x80 if cla & 0x0C == 0 => Some(cla & 0x03),
        0x40 | 0xC0 => Some((cla & 0x0F) + 4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: &Command) -> Vec<u8> {
        c.encode(false, CommandKind::Raw).unwrap().to_vec()
    }

    #[test]
    fn parse_reads_the_four_short_cases_back() {
        for command in [
            Command::new(0x00, 0x70, 0x80, 0x01),
            Command::new(0x81, 0x84, 0x00, 0x00).with_le(Le::Ne(8)),
            Command::new(0x81, 0x84, 0x00, 0x00).with_le(Le::Ne(256)),
            Command::new(0x81, 0x2A, 0x80, 0x01).with_data(vec![0x9E, 0x01, 0xAA]),
            Command::new(0x81, 0xCB, 0x00, 0xC0)
                .with_data(vec![0x84, 0x01, 0x01])
                .with_le(Le::Ne(256)),
        ] {
            assert_eq!(Command::parse(&enc(&command)).unwrap(), command);
        }
    }

    #[test]
    fn parse_refuses_what_it_cannot_resend() {
        for bad in [
            &[0x00, 0xA4, 0x04][..],
            &[0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x01, 0xAA],
            &[0x00, 0xA4, 0x04, 0x00, 0x03, 0xA0, 0x00],
            &[0x00, 0xA4, 0x04, 0x00, 0x01, 0xA0, 0x00, 0x00],
        ] {
            let err = Command::parse(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidRequest {
                        command: CommandKind::Raw,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn four_cases_short() {
        assert_eq!(enc(&Command::new(0, 0x70, 0x80, 1)), [0, 0x70, 0x80, 1]);
        assert_eq!(
            enc(&Command::new(0x81, 0x2A, 1, 1).with_le(Le::P3Zero)),
            [0x81, 0x2A, 1, 1, 0]
        );
        assert_eq!(
            enc(&Command::new(0x81, 0x84, 0, 0).with_le(Le::Ne(8))),
            [0x81, 0x84, 0, 0, 8]
        );
        assert_eq!(
            enc(&Command::new(0, 0x84, 0, 0).with_le(Le::Ne(256))),
            [0, 0x84, 0, 0, 0]
        );
        assert_eq!(
            enc(&Command::new(0x81, 0xCD, 0, 0).with_data(vec![0x85, 1, 4])),
            [0x81, 0xCD, 0, 0, 3, 0x85, 1, 4]
        );
        assert_eq!(
            enc(&Command::new(0, 0xB0, 0, 0)
                .with_data(vec![0x83, 1, 2])
                .with_le(Le::Ne(256))),
            [0, 0xB0, 0, 0, 3, 0x83, 1, 2, 0]
        );
    }

    #[test]
    fn extended_only_when_allowed() {
        let big = Command::new(0, 0x2B, 0x80, 1).with_data(vec![0xAA; 300]);
        assert!(big.encode(false, CommandKind::Raw).is_err());
        let e = big.encode(true, CommandKind::Raw).unwrap();
        assert_eq!(&e[..7], &[0, 0x2B, 0x80, 1, 0, 0x01, 0x2C]);
        assert_eq!(e.len(), 7 + 300);
        let c2 = Command::new(0, 0xB0, 0, 0).with_le(Le::Ne(65536));
        assert_eq!(
            c2.encode(true, CommandKind::Raw).unwrap().to_vec(),
            [0, 0xB0, 0, 0, 0, 0, 0]
        );
        let c4 = Command::new(0, 0xB0, 0, 0)
            .with_data(vec![1; 2])
            .with_le(Le::Ne(1000));
        assert_eq!(
            c4.encode(true, CommandKind::Raw).unwrap().to_vec(),
            [0, 0xB0, 0, 0, 0, 0, 2, 1, 1, 0x03, 0xE8]
        );
        assert!(Command::new(0, 0, 0, 0)
            .with_le(Le::Ne(0))
            .encode(true, CommandKind::Raw)
            .is_err());
    }

    #[test]
    fn class_bytes_for_all_channels() {
        for ch in 0..=19u8 {
            let i = class_byte(ch, ClassStyle::Interindustry).unwrap();
            let p = class_byte(ch, ClassStyle::Proprietary).unwrap();
            assert_eq!(channel_of_class(i), Some(ch));
            assert_eq!(channel_of_class(p), Some(ch));
            assert_eq!(p, i | 0x80);
        }
        assert_eq!(class_byte(1, ClassStyle::Proprietary).unwrap(), 0x81);
        assert_eq!(class_byte(4, ClassStyle::Interindustry).unwrap(), 0x40);
        assert_eq!(class_byte(19, ClassStyle::Proprietary).unwrap(), 0xCF);
        assert!(class_byte(20, ClassStyle::Proprietary).is_err());
        assert_eq!(channel_of_class(0x10), None);
        assert_eq!(channel_of_class(0xA0), None);
    }

    #[test]
    fn response_split() {
        let r = Response::parse(&[1, 2, 0x90, 0], CommandKind::Raw).unwrap();
        assert_eq!(r.data.as_slice(), &[1, 2]);
        assert_eq!(r.sw, StatusWord::SUCCESS);
        assert!(Response::parse(&[0x90], CommandKind::Raw).is_err());
        assert!(Response::parse(&[], CommandKind::Raw).is_err());
    }
}
