//! The session ids of AT+CCHO answers that came too late: channels the modem opened after the
//! transport had given up on the command. Nobody will use or close them unless the transport
//! does, and three of them fill a SIM with three logical channels.
//!
//! While an AT+CCHO may still be answered, the line hands this collector what it would otherwise
//! discard: the part of the answer read before the deadline, the bytes a drain throws away, and
//! the late answers a resync recognises. A `+CCHO: <n>` line (or, while an AT+CCHO is
//! unanswered, a bare number, as 27.007 writes it) gives a session id to close.

use crate::prelude::*;

use zeroize::Zeroizing;

use super::super::parser::{parse_session_id, strip_prefix_ignore_case, AnswerParser, Progress};

/// Most late session ids kept until the transport takes them (as many as stale channels).
const MAX_LATE_SESSIONS: usize = 8;

/// Session ids of late AT+CCHO answers, and the scanner of discarded bytes.
pub(super) struct LateSessions {
    /// Set while an AT+CCHO that got no complete answer may still be answered.
    scanner: Option<AnswerParser>,
    /// Information lines of the scanner's current answer already taken.
    taken: usize,
    found: Vec<u32>,
    max_line: usize,
    max_lines: usize,
}

impl Default for LateSessions {
    /// A collector with the parser's default bounds (the line keeps one with its own).
    fn default() -> Self {
        LateSessions::new(
            super::super::parser::DEFAULT_MAX_LINE,
            super::super::parser::DEFAULT_MAX_LINES,
        )
    }
}

impl LateSessions {
    /// A collector whose scanner has the line's bounds.
    pub(super) fn new(max_line: usize, max_lines: usize) -> Self {
        LateSessions {
            scanner: None,
            taken: 0,
            found: Vec::new(),
            max_line,
            max_lines,
        }
    }

    /// True while an AT+CCHO may still be answered.
    pub(super) fn awaited(&self) -> bool {
        self.scanner.is_some()
    }

    /// An AT+CCHO ended without a complete answer; `info` is what of it was read (a `+CCHO:`
    /// line whose `OK` missed the deadline).
    pub(super) fn ccho_unanswered(&mut self, info: &[String]) {
        self.take_lines(info, true);
        self.scanner = Some(self.fresh_scanner());
        self.taken = 0;
    }

    /// Bytes the line discards (a drain); scanned only while an AT+CCHO is awaited.
    pub(super) fn discarded(&mut self, bytes: &[u8]) {
        let Some(mut scanner) = self.scanner.take() else {
            return;
        };
        // What followed an answer's final line, scanned next; it may be a late answer's hex.
        let mut rest: Zeroizing<Vec<u8>>;
        let mut input = bytes;
        loop {
            match scanner.feed(input) {
                Ok(Progress::NeedMore) => {
                    let taken = self.taken;
                    self.take_lines(&scanner.info_lines()[taken..], true);
                    self.taken = scanner.info_lines().len();
                    break;
                }
                Ok(Progress::Done(answer)) => {
                    self.take_lines(&answer.info[self.taken.min(answer.info.len())..], true);
                    // What followed the final line may be the start of another answer.
                    let next = Zeroizing::new(scanner.leftover().to_vec());
                    scanner = self.fresh_scanner();
                    self.taken = 0;
                    if next.is_empty() {
                        break;
                    }
                    rest = next;
                    input = &rest;
                }
                // A line over the bounds: no session id in it; start over after it.
                Err(_) => {
                    scanner = self.fresh_scanner();
                    self.taken = 0;
                    break;
                }
            }
        }
        self.scanner = Some(scanner);
    }

    /// The information lines of an answer a resync discarded as late. A `+CCHO:` line counts
    /// always (it answers nothing but an AT+CCHO); a bare number only while one is awaited.
    pub(super) fn late_answer(&mut self, info: &[String]) {
        self.take_lines(info, self.awaited());
    }

    /// The line is in sync: whatever an AT+CCHO was going to say has been said.
    pub(super) fn settled(&mut self) {
        self.scanner = None;
        self.taken = 0;
    }

    /// The session ids found so far, oldest first; the collector forgets them.
    pub(super) fn take(&mut self) -> Vec<u32> {
        core::mem::take(&mut self.found)
    }

    fn fresh_scanner(&self) -> AnswerParser {
        AnswerParser::new(&["+CCHO:"])
            .accept_bare_number(true)
            .with_limits(self.max_line, self.max_lines)
    }

    fn take_lines(&mut self, lines: &[String], bare_numbers: bool) {
        for line in lines {
            let prefixed = strip_prefix_ignore_case(line.trim(), "+CCHO:").is_some();
            if !prefixed && !bare_numbers {
                continue;
            }
            let Some(session) = parse_session_id(line) else {
                continue;
            };
            if self.found.contains(&session) {
                continue;
            }
            if self.found.len() >= MAX_LATE_SESSIONS {
                self.found.remove(0);
            }
            tracing::warn!(
                session,
                "an AT+CCHO answered after its deadline; its channel will be closed"
            );
            self.found.push(session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector() -> LateSessions {
        LateSessions::new(256, 16)
    }

    #[test]
    fn nothing_is_scanned_unless_an_answer_is_awaited() {
        let mut late = collector();
        late.discarded(b"\r\n+CCHO: 3\r\n\r\nOK\r\n");
        assert!(late.take().is_empty());
        // A prefixed line in a late answer counts anyway; a bare number does not.
        late.late_answer(&["+CCHO: 4".into(), "5".into()]);
        assert_eq!(late.take(), [4]);
    }

    #[test]
    fn drained_answers_in_any_pieces_give_their_session_ids() {
        let stream: &[u8] = b"\r\n+CCHO: 3\r\n\r\nOK\r\n\r\n+CREG: 1\r\n\r\n7\r\n\r\nOK\r\n";
        for piece in 1..stream.len() {
            let mut late = collector();
            late.ccho_unanswered(&[]);
            for chunk in stream.chunks(piece) {
                late.discarded(chunk);
            }
            assert_eq!(late.take(), [3, 7], "pieces of {piece}");
        }
    }

    #[test]
    fn the_part_read_before_the_deadline_counts_once() {
        let mut late = collector();
        late.ccho_unanswered(&["+CCHO: 2".into()]);
        assert!(late.awaited());
        // The same id again (a modem repeating itself) is kept once.
        late.discarded(b"+CCHO: 2\r\nOK\r\n");
        late.settled();
        assert!(!late.awaited());
        assert_eq!(late.take(), [2]);
        assert!(late.take().is_empty());
    }

    #[test]
    fn garbage_and_overlong_lines_give_nothing_and_do_not_stop_the_scan() {
        let mut late = collector();
        late.ccho_unanswered(&[]);
        late.discarded(&[b'9'; 300]);
        late.discarded(b"\r\n+CCHO: x\r\nERROR\r\n+CCHO: 12\r\nOK\r\n");
        assert_eq!(late.take(), [12]);
    }

    #[test]
    fn the_ids_kept_are_bounded() {
        let mut late = collector();
        let info: Vec<String> = (1..=20).map(|n| format!("+CCHO: {n}")).collect();
        late.late_answer(&info);
        assert_eq!(late.take(), (13..=20).collect::<Vec<u32>>());
    }
}
