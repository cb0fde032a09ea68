//! What one run found out about a modem that the next run on the same port may skip finding out
//! again: its quirks (from `AT+CGMM`) and which command families it has (`AT+CCHO=?`,
//! `AT+CSIM=?`). Three AT exchanges fewer per process; the fallbacks of
//! [`AtMode::Auto`](super::AtMode::Auto) still apply if the modem changed meanwhile.

use super::quirks::{ModemQuirks, KNOWN_MODEMS};
use crate::prelude::*;

/// A modem's quirks and command families, as found at an earlier open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    /// The quirks its `AT+CGMM` answer named.
    pub quirks: ModemQuirks,
    /// It answered `OK` to `AT+CCHO=?`.
    pub cgla: bool,
    /// It answered `OK` to `AT+CSIM=?`.
    pub csim: bool,
}

impl Learned {
    /// One line: `cgla=1 csim=1 quirks=<name>`.
    pub fn to_text(&self) -> String {
        format!(
            "cgla={} csim={} quirks={}",
            u8::from(self.cgla),
            u8::from(self.csim),
            self.quirks.name
        )
    }

    /// The facts of [`Learned::to_text`]; `None` for anything else (an unknown quirks name
    /// included: this build does not know that modem family).
    pub fn parse(text: &str) -> Option<Learned> {
        let rest = text.strip_prefix("cgla=")?;
        let (cgla, rest) = rest.split_once(" csim=")?;
        let (csim, name) = rest.split_once(" quirks=")?;
        let flag = |f: &str| match f {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        let quirks = core::iter::once(&ModemQuirks::GENERIC)
            .chain(KNOWN_MODEMS)
            .find(|q| q.name == name)?;
        Some(Learned {
            quirks: *quirks,
            cgla: flag(cgla)?,
            csim: flag(csim)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes_and_nothing_else() {
        for quirks in core::iter::once(&ModemQuirks::GENERIC).chain(KNOWN_MODEMS) {
            let learned = Learned {
                quirks: *quirks,
                cgla: true,
                csim: false,
            };
            assert_eq!(Learned::parse(&learned.to_text()), Some(learned));
        }
        for bad in [
            "",
            "cgla=1 csim=1",
            "cgla=2 csim=1 quirks=generic 27.007 modem",
            "cgla=1 csim=1 quirks=a modem from the future",
            "csim=1 cgla=1 quirks=generic 27.007 modem",
        ] {
            assert_eq!(Learned::parse(bad), None, "{bad:?}");
        }
    }
}
