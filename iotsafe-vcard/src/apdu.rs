//! Splits a raw command APDU into header, data and Le (short APDUs only, as every host sends).

use crate::sw;

/// One command APDU, borrowed from the bytes the front end delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// The command data (empty for cases 1 and 2).
    pub data: &'a [u8],
    /// True when the APDU carried an Lc and a data field (cases 3 and 4).
    pub has_data: bool,
    /// Expected response length; `00` is decoded as 256. `None` for cases 1 and 3.
    pub le: Option<usize>,
}

impl Command<'_> {
    /// The largest answer the host accepts: Le, or 256 when Le is absent.
    pub fn max_response(&self) -> usize {
        self.le.unwrap_or(256)
    }
}

/// Parses `bytes`. Anything shorter than a header, an Lc that disagrees with the data, or a zero Lc
/// announcing an extended-length APDU gives `6700`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Command<'_>, u16> {
    let (header, body) = (bytes.get(..4), bytes.get(4..).unwrap_or_default());
    let &[cla, ins, p1, p2] = header.ok_or(sw::WRONG_LENGTH)? else {
        return Err(sw::WRONG_LENGTH);
    };
    let mut cmd = Command {
        cla,
        ins,
        p1,
        p2,
        data: &[],
        has_data: false,
        le: None,
    };
    match body {
        [] => {}
        [le] => cmd.le = Some(decode_le(*le)),
        [lc, rest @ ..] => {
            let lc = usize::from(*lc);
            if lc == 0 {
                // Extended length (or garbage): no source uses it.
                return Err(sw::WRONG_LENGTH);
            }
            cmd.data = rest.get(..lc).ok_or(sw::WRONG_LENGTH)?;
            cmd.has_data = true;
            match rest.get(lc..).unwrap_or_default() {
                [] => {}
                [le] => cmd.le = Some(decode_le(*le)),
                _ => return Err(sw::WRONG_LENGTH),
            }
        }
    }
    Ok(cmd)
}

fn decode_le(le: u8) -> usize {
    if le == 0 {
        256
    } else {
        usize::from(le)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let c1 = parse(&[0x00, 0x70, 0x80, 0x01]).unwrap();
        assert!(!c1.has_data && c1.le.is_none());
        let c2 = parse(&[0x81, 0x84, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(c2.le, Some(256));
        let c3 = parse(&[0x81, 0xB0, 0x00, 0x00, 0x03, 0x83, 0x01, 0x03]).unwrap();
        assert_eq!(c3.data, &[0x83, 0x01, 0x03]);
        assert_eq!(c3.le, None);
        let c4 = parse(&[0x00, 0xB0, 0x00, 0x00, 0x03, 0x83, 0x01, 0x02, 0x00]).unwrap();
        assert_eq!(c4.le, Some(256));
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(parse(&[0x00, 0xA4, 0x04]), Err(sw::WRONG_LENGTH));
        assert_eq!(
            parse(&[0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0]),
            Err(sw::WRONG_LENGTH)
        );
        assert_eq!(
            parse(&[0x00, 0xA4, 0x04, 0x00, 0x01, 0xA0, 0, 0]),
            Err(sw::WRONG_LENGTH)
        );
        assert_eq!(
            parse(&[0x00, 0xA4, 0x04, 0x00, 0x00, 0xA0]),
            Err(sw::WRONG_LENGTH)
        );
    }
}
