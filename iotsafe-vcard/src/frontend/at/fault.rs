//! Faults and noise a modem can add on purpose, so a host's AT parser is tested against what real
//! modems do: errors, garbage, silence, late answers, and unsolicited result codes in the middle of
//! an exchange.

/// What the modem does instead of forwarding one card command (`AT+CSIM`, `AT+CCHO`, `AT+CGLA`,
/// `AT+CCHC`). The APDU never reaches the card, except with [`AtFault::Truncate`] and
/// [`AtFault::Late`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtFault {
    /// Forward the command to the card, then cut the hex of the `+CSIM:`/`+CGLA:` answer line to
    /// at most this many characters while the announced length stays the full one (a modem whose
    /// buffer cut the line): the length then disagrees with the hex. Answers without such a line
    /// (`AT+CCHO`, `AT+CCHC`) are left whole.
    Truncate(usize),
    /// Answer `ERROR`.
    Error,
    /// Answer `+CME ERROR: <n>` (or `ERROR` after `AT+CMEE=0`).
    CmeError(u16),
    /// Answer a line of printable junk in place of the information line, then `OK`: a host that
    /// takes `OK` without its `+CSIM:` line as success is caught.
    Garbage,
    /// Answer nothing at all: the host's deadline must fire.
    Silence,
    /// Forward the command to the card, but hold its answer back until the host writes its next
    /// line, then write it before anything about that line: an answer that comes after any
    /// deadline the host had (a late `+CCHO: <n>` names a channel the host never learned of).
    Late,
}

/// When an [`AtFault`] is injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtInjection {
    /// The fault.
    pub fault: AtFault,
    /// The card command (1-based, counting `AT+CSIM`, `AT+CCHO`, `AT+CGLA` and `AT+CCHC`) that
    /// gets it first.
    pub at: u64,
    /// Then again every this many card commands; `None` (or 0) for once only.
    pub every: Option<u64>,
}

impl std::str::FromStr for AtInjection {
    type Err = String;
    /// `KIND@N[/EVERY]`: `error@3`, `cme:13@2/5`, `garbage@1`, `silence@5`, `late@1`,
    /// `truncate:4@2`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, when) = text
            .split_once('@')
            .ok_or("expected KIND@N[/EVERY], e.g. error@3 or cme:13@2/5")?;
        let fault = match kind.split_once(':') {
            None if kind == "error" => AtFault::Error,
            None if kind == "garbage" => AtFault::Garbage,
            None if kind == "silence" => AtFault::Silence,
            None if kind == "late" => AtFault::Late,
            Some(("cme", code)) => {
                AtFault::CmeError(code.parse().map_err(|e| format!("CME code: {e}"))?)
            }
            Some(("truncate", keep)) => AtFault::Truncate(
                keep.parse()
                    .map_err(|e| format!("hex characters kept: {e}"))?,
            ),
            _ => {
                return Err(format!(
                "unknown fault {kind:?} (error, cme:CODE, garbage, silence, late, truncate:KEEP)"
            ))
            }
        };
        let (at, every) = match when.split_once('/') {
            Some((at, every)) => (at, Some(every.parse().map_err(|e| format!("EVERY: {e}"))?)),
            None => (when, None),
        };
        let at = at.parse().map_err(|e| format!("N: {e}"))?;
        Ok(AtInjection { fault, at, every })
    }
}

impl AtInjection {
    /// The fault once, at the `at`-th card command.
    pub fn once(fault: AtFault, at: u64) -> Self {
        Self {
            fault,
            at,
            every: None,
        }
    }

    /// Whether the `count`-th card command gets the fault.
    pub fn fires(&self, count: u64) -> bool {
        if count == self.at {
            return true;
        }
        match self.every {
            Some(every) if every > 0 && count > self.at => (count - self.at).is_multiple_of(every),
            _ => false,
        }
    }
}

/// Unsolicited result codes written before the answer of every `every`-th command line (all
/// commands count, 1-based), cycling through `lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrcPlan {
    /// Period in command lines; 0 disables.
    pub every: u64,
    /// The codes, e.g. `+CREG: 1` and `RING`; used in turn.
    pub lines: Vec<String>,
}

impl UrcPlan {
    /// The code to write before the answer of the `count`-th command, if any.
    pub fn line_for(&self, count: u64) -> Option<&str> {
        if self.every == 0
            || count == 0
            || !count.is_multiple_of(self.every)
            || self.lines.is_empty()
        {
            return None;
        }
        let turn = (count / self.every - 1) % self.lines.len() as u64;
        self.lines
            .get(usize::try_from(turn).ok()?)
            .map(String::as_str)
    }
}

impl Default for UrcPlan {
    fn default() -> Self {
        Self {
            every: 3,
            lines: vec!["+CREG: 1".to_owned(), "RING".to_owned()],
        }
    }
}

/// A line of printable junk that is no AT result code (it starts with `~`), different for each
/// `seed` and the same for the same seed, so a failing test can be replayed.
pub fn garbage_line(seed: u64) -> String {
    // xorshift64*: a few bits of noise, no need for a real random source.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let len = 8 + (next() % 32) as usize;
    let mut line = String::with_capacity(len + 1);
    line.push('~');
    for _ in 0..len {
        // Printable ASCII without the double quote, so it never looks like a quoted payload.
        let c = b'#' + (next() % u64::from(b'~' - b'#')) as u8;
        line.push(char::from(c));
    }
    line
}

/// Cuts the quoted hex of a `+CSIM: <n>,"<hex>"` / `+CGLA: …` line to `keep` characters; `<n>` stays.
pub(crate) fn truncate_data_line(line: &str, keep: usize) -> String {
    let is_data = line.starts_with("+CSIM: ") || line.starts_with("+CGLA: ");
    let Some((head, rest)) = line.split_once(",\"").filter(|_| is_data) else {
        return line.to_owned();
    };
    let hex = rest.strip_suffix('"').unwrap_or(rest);
    let cut = hex.get(..keep.min(hex.len())).unwrap_or(hex);
    format!("{head},\"{cut}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_syntax() {
        assert_eq!(
            "error@3".parse::<AtInjection>().unwrap(),
            AtInjection::once(AtFault::Error, 3)
        );
        assert_eq!(
            "cme:13@2/5".parse::<AtInjection>().unwrap(),
            AtInjection {
                fault: AtFault::CmeError(13),
                at: 2,
                every: Some(5)
            }
        );
        assert_eq!(
            "truncate:4@1".parse::<AtInjection>().unwrap(),
            AtInjection::once(AtFault::Truncate(4), 1)
        );
        assert_eq!(
            "late@4".parse::<AtInjection>().unwrap(),
            AtInjection::once(AtFault::Late, 4)
        );
        assert!("garbage@x".parse::<AtInjection>().is_err());
        assert!("boom@1".parse::<AtInjection>().is_err());
        assert!("silence".parse::<AtInjection>().is_err());
        assert!("truncate:x@1".parse::<AtInjection>().is_err());
    }

    #[test]
    fn truncated_lines_keep_their_announced_length() {
        assert_eq!(
            truncate_data_line("+CSIM: 8,\"01029000\"", 4),
            "+CSIM: 8,\"0102\""
        );
        assert_eq!(
            truncate_data_line("+CGLA: 4,\"9000\"", 10),
            "+CGLA: 4,\"9000\""
        );
        assert_eq!(truncate_data_line("+CCHO: 1", 0), "+CCHO: 1");
    }

    #[test]
    fn injection_schedule() {
        let once = AtInjection::once(AtFault::Error, 3);
        let fired: Vec<u64> = (1..=10).filter(|&n| once.fires(n)).collect();
        assert_eq!(fired, [3]);
        let repeated = AtInjection {
            every: Some(4),
            ..once
        };
        let fired: Vec<u64> = (1..=12).filter(|&n| repeated.fires(n)).collect();
        assert_eq!(fired, [3, 7, 11]);
    }

    #[test]
    fn urc_schedule_cycles() {
        let plan = UrcPlan::default();
        let got: Vec<_> = (1..=9).map(|n| plan.line_for(n)).collect();
        assert_eq!(
            got,
            [
                None,
                None,
                Some("+CREG: 1"),
                None,
                None,
                Some("RING"),
                None,
                None,
                Some("+CREG: 1")
            ]
        );
        let off = UrcPlan {
            every: 0,
            ..UrcPlan::default()
        };
        assert_eq!(off.line_for(3), None);
    }

    #[test]
    fn garbage_is_printable_and_no_result_code() {
        for seed in 0..200 {
            let line = garbage_line(seed);
            assert!(line.starts_with('~'));
            assert!(line.bytes().all(|b| (b'#'..=b'~').contains(&b)), "{line}");
            assert!(line.len() >= 9);
            assert_eq!(line, garbage_line(seed));
        }
    }
}
