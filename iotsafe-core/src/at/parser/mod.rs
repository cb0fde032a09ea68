//! A pure, event-driven parser for modem answers: bytes in, one complete answer out.
//!
//! No I/O and no clocks live here, so the parser can be fuzzed and unit-tested on byte strings. The
//! caller feeds whatever each read returned; the parser reports [`Progress::Done`] as soon as the
//! final result line (`OK`, `ERROR`, `+CME ERROR: <n>`, `+CMS ERROR: <n>`) arrives. That is the point
//! of the design: an AT exchange never waits out an idle timeout (wolfSSL's `expect_tok` does, on
//! every exchange).
//!
//! Everything that is neither the final result nor an information line with the expected prefix is
//! skipped: the echo of the command (when `ATE0` has not taken effect yet), blank lines and
//! unsolicited result codes (`+CREG:`, `+CEREG:`, `RING`, `+CPIN:`, `^SYSSTART`, ...). Lines are
//! bounded in length and in number, so a babbling modem yields a [`ParseError`], never unbounded
//! memory.
//!
//! Beside the parser: [`parse_hex_payload`] decodes the data of a `+CSIM:`/`+CGLA:` line,
//! [`parse_session_id`] the session id of an `AT+CCHO` answer, and [`redact_answer_line`] says
//! what of an answer may be logged.

use crate::prelude::*;
use core::fmt;

use zeroize::{Zeroize, Zeroizing};

mod payload;
mod redact;

pub use payload::{parse_hex_payload, parse_session_id, HexPayload, PayloadError};
pub use redact::redact_answer_line;
use redact::redact_skipped_line;

/// Longest line the parser keeps (bytes, without the terminator). A `+CSIM:` line for a 2 KiB
/// response is about 4 100 characters; anything longer is garbage or a runaway modem.
pub const DEFAULT_MAX_LINE: usize = 4 * 1024 + 64;

/// Most lines (of any kind, skipped ones included) one answer may contain.
pub const DEFAULT_MAX_LINES: usize = 64;

/// How many skipped lines are kept for diagnostics (the rest are only counted).
const KEPT_SKIPPED_LINES: usize = 8;

/// The final result code that ends a modem answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalResult {
    /// `OK`.
    Ok,
    /// `ERROR`.
    Error,
    /// `+CME ERROR: <code or text>` (equipment error).
    CmeError(String),
    /// `+CMS ERROR: <code or text>` (message service error).
    CmsError(String),
}

impl FinalResult {
    /// True for `OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, FinalResult::Ok)
    }

    /// Recognises a final result line (already trimmed). Case-insensitive, because a few modems
    /// (and emulators) are sloppy about it.
    pub fn from_line(line: &str) -> Option<FinalResult> {
        if line.eq_ignore_ascii_case("OK") {
            return Some(FinalResult::Ok);
        }
        if line.eq_ignore_ascii_case("ERROR") {
            return Some(FinalResult::Error);
        }
        if let Some(rest) = strip_prefix_ignore_case(line, "+CME ERROR:") {
            return Some(FinalResult::CmeError(rest.trim().to_string()));
        }
        if let Some(rest) = strip_prefix_ignore_case(line, "+CMS ERROR:") {
            return Some(FinalResult::CmsError(rest.trim().to_string()));
        }
        None
    }
}

impl fmt::Display for FinalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinalResult::Ok => f.write_str("OK"),
            FinalResult::Error => f.write_str("ERROR"),
            FinalResult::CmeError(code) => write!(f, "+CME ERROR: {code}"),
            FinalResult::CmsError(code) => write!(f, "+CMS ERROR: {code}"),
        }
    }
}

/// One complete modem answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Information lines that carried the expected prefix, in arrival order (trimmed, prefix kept).
    pub info: Vec<String>,
    /// The final result code.
    pub result: FinalResult,
    /// The first few skipped lines (echo, URCs), for diagnostics.
    pub skipped: Vec<String>,
    /// How many lines were skipped in total.
    pub skipped_count: usize,
}

impl Drop for Answer {
    /// Information lines may carry secrets as hex (a DH output, a PRF result): wiped when freed.
    fn drop(&mut self) {
        self.info.zeroize();
        self.skipped.zeroize();
    }
}

impl Answer {
    /// A one-line summary of what the modem said, for error messages.
    /// Response data is replaced by `…`; only the length and the status word stay (the data may be
    /// a derived secret, e.g. a COMPUTE PRF result).
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self.info.iter().map(|l| redact_answer_line(l)).collect();
        parts.push(self.result.to_string());
        parts.join(" / ")
    }
}

/// What the parser knows after a call to [`AnswerParser::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The final result line has not arrived yet.
    NeedMore,
    /// The answer is complete. Bytes that came after the final line are kept in the parser
    /// ([`AnswerParser::leftover`]).
    Done(Answer),
}

/// Why an answer could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A line exceeded the length bound.
    LineTooLong {
        /// The bound.
        max: usize,
    },
    /// The answer exceeded the line-count bound without a final result.
    TooManyLines {
        /// The bound.
        max: usize,
    },
    /// [`AnswerParser::feed`] was called again after it returned [`Progress::Done`]. A parser
    /// reads one answer: what follows belongs to the next command's parser. Handing the answer out
    /// again would mean a second copy of lines that may carry a secret's hex, and `NeedMore`
    /// would be a lie that makes a caller wait out its deadline.
    AlreadyDone,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::LineTooLong { max } => {
                write!(f, "the modem sent a line longer than {max} bytes")
            }
            ParseError::TooManyLines { max } => write!(
                f,
                "the modem sent more than {max} lines without a final result code"
            ),
            ParseError::AlreadyDone => {
                f.write_str("the answer was already complete; a parser reads one answer")
            }
        }
    }
}

impl core::error::Error for ParseError {}

/// Collects one answer from a byte stream. Create one per AT command.
#[derive(Debug, Clone)]
pub struct AnswerParser {
    /// Information-line prefixes that belong to the answer (e.g. `+CSIM:`), compared case-insensitively.
    prefixes: Vec<String>,
    /// Also accept a line made only of decimal digits as information (27.007 `+CCHO` answers with a
    /// bare `<sessionid>`; many modems add a `+CCHO:` prefix, some do not).
    accept_bare_number: bool,
    max_line: usize,
    max_lines: usize,
    partial: Vec<u8>,
    lines: usize,
    info: Vec<String>,
    skipped: Vec<String>,
    skipped_count: usize,
    leftover: Vec<u8>,
    done: bool,
    failed: Option<ParseError>,
}

impl AnswerParser {
    /// A parser that keeps information lines starting with one of `prefixes`.
    pub fn new(prefixes: &[&str]) -> Self {
        AnswerParser {
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            accept_bare_number: false,
            max_line: DEFAULT_MAX_LINE,
            max_lines: DEFAULT_MAX_LINES,
            partial: Vec::new(),
            lines: 0,
            info: Vec::new(),
            skipped: Vec::new(),
            skipped_count: 0,
            leftover: Vec::new(),
            done: false,
            failed: None,
        }
    }

    /// Also treat a line of decimal digits as an information line (for `AT+CCHO`).
    pub fn accept_bare_number(mut self, accept: bool) -> Self {
        self.accept_bare_number = accept;
        self
    }

    /// Changes the bounds (line length in bytes, lines per answer). Zero is raised to one.
    pub fn with_limits(mut self, max_line: usize, max_lines: usize) -> Self {
        self.max_line = max_line.max(1);
        self.max_lines = max_lines.max(1);
        self
    }

    /// The information lines collected so far (before the final result line).
    pub fn info_lines(&self) -> &[String] {
        &self.info
    }

    /// Bytes received after the final result line (they belong to whatever comes next).
    pub fn leftover(&self) -> &[u8] {
        &self.leftover
    }

    /// The incomplete line and the lines kept so far, for a diagnostic after a timeout.
    pub fn partial_summary(&self) -> String {
        let mut parts: Vec<String> = self.info.iter().map(|l| redact_answer_line(l)).collect();
        parts.extend(self.skipped.iter().cloned());
        if !self.partial.is_empty() {
            // An incomplete line may be half of a secret: show its size only.
            parts.push(format!("(incomplete line of {} bytes)", self.partial.len()));
        }
        if parts.is_empty() {
            String::from("nothing")
        } else {
            parts.join(" / ")
        }
    }

    /// Feeds the bytes of one read. Returns [`Progress::Done`] once the final result line is in;
    /// the bytes of that read after the final line stay in [`AnswerParser::leftover`].
    ///
    /// After `Done`, feeding again is [`ParseError::AlreadyDone`] and the bytes are not kept
    /// (a parser reads one answer); after an error, the same error again.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Progress, ParseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.done {
            return Err(ParseError::AlreadyDone);
        }
        for (index, &byte) in bytes.iter().enumerate() {
            if byte == b'\r' || byte == b'\n' {
                if let Some(result) = self.end_line() {
                    self.done = true;
                    self.keep_leftover(&bytes[index + 1..]);
                    return Ok(Progress::Done(Answer {
                        info: core::mem::take(&mut self.info),
                        result,
                        skipped: core::mem::take(&mut self.skipped),
                        skipped_count: self.skipped_count,
                    }));
                }
                if self.lines > self.max_lines {
                    return Err(self.fail(ParseError::TooManyLines {
                        max: self.max_lines,
                    }));
                }
            } else if self.partial.len() >= self.max_line {
                return Err(self.fail(ParseError::LineTooLong { max: self.max_line }));
            } else {
                push_wiping(&mut self.partial, &[byte]);
            }
        }
        Ok(Progress::NeedMore)
    }

    fn fail(&mut self, err: ParseError) -> ParseError {
        self.partial.zeroize();
        self.failed = Some(err.clone());
        err
    }

    fn keep_leftover(&mut self, bytes: &[u8]) {
        let room = self.max_line.saturating_sub(self.leftover.len());
        let take = bytes.len().min(room);
        push_wiping(&mut self.leftover, &bytes[..take]);
    }

    /// Classifies the line just terminated. Returns the final result when it is one.
    fn end_line(&mut self) -> Option<FinalResult> {
        if self.partial.is_empty() {
            return None; // blank line, or the LF of CR LF
        }
        // AT answers are ASCII. Anything else becomes `?` (one byte, so a kept line never
        // outgrows the line bound, as U+FFFD replacement characters would). The line may be a
        // secret's hex: built in a block of its final size and wiped, as is the partial line.
        let mut text = Zeroizing::new(String::with_capacity(self.partial.len()));
        text.extend(
            self.partial
                .iter()
                .map(|&b| if b.is_ascii() { char::from(b) } else { '?' }),
        );
        self.partial.zeroize();
        let line = text.trim();
        if line.is_empty() {
            return None;
        }
        self.lines += 1;
        if let Some(result) = FinalResult::from_line(line) {
            return Some(result);
        }
        let wanted = self
            .prefixes
            .iter()
            .any(|p| strip_prefix_ignore_case(line, p).is_some())
            || (self.accept_bare_number && line.bytes().all(|b| b.is_ascii_digit()));
        if wanted {
            self.info.push(line.to_string());
        } else {
            self.skipped_count += 1;
            if self.skipped.len() < KEPT_SKIPPED_LINES {
                self.skipped.push(redact_skipped_line(line));
            }
        }
        None
    }
}

impl Drop for AnswerParser {
    /// What it holds may be a secret's hex (a partial line, information lines, what followed the
    /// final line): wiped when freed.
    fn drop(&mut self) {
        self.partial.zeroize();
        self.info.zeroize();
        self.skipped.zeroize();
        self.leftover.zeroize();
    }
}

/// Appends `more` to `buf` without leaving a copy behind: growing a `Vec` in place (`push`,
/// `extend`) moves it to a larger block and frees the old one unwiped, so here the contents are
/// moved by hand and the old block is wiped before it is freed.
pub(crate) fn push_wiping(buf: &mut Vec<u8>, more: &[u8]) {
    if buf.capacity() - buf.len() < more.len() {
        let wanted = (buf.len() + more.len()).max(buf.capacity() * 2).max(64);
        let mut grown = Vec::with_capacity(wanted);
        grown.extend_from_slice(buf);
        buf.zeroize();
        *buf = grown;
    }
    buf.extend_from_slice(more);
}

/// `line` without `prefix` when it starts with it, ignoring ASCII case.
pub(crate) fn strip_prefix_ignore_case<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        line.get(prefix.len()..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(prefixes: &[&str], chunks: &[&[u8]]) -> Result<Progress, ParseError> {
        let mut parser = AnswerParser::new(prefixes);
        let mut last = Progress::NeedMore;
        for chunk in chunks {
            last = parser.feed(chunk)?;
            if matches!(last, Progress::Done(_)) {
                break;
            }
        }
        Ok(last)
    }

    fn done(progress: Progress) -> Answer {
        match progress {
            Progress::Done(answer) => answer,
            Progress::NeedMore => panic!("answer not complete"),
        }
    }

    #[test]
    fn reference_csim_answer() {
        let answer =
            done(parse_all(&["+CSIM:"], &[b"\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n"]).unwrap());
        assert_eq!(answer.result, FinalResult::Ok);
        assert_eq!(answer.info, vec!["+CSIM: 6,\"019000\"".to_string()]);
        let payload = parse_hex_payload(&answer.info[0], "+CSIM:").unwrap();
        assert_eq!(payload.bytes, vec![0x01, 0x90, 0x00]);
    }

    #[test]
    fn passthrough_of_61xx() {
        let answer = done(parse_all(&["+CSIM:"], &[b"+CSIM: 4,\"6142\"\r\nOK\r\n"]).unwrap());
        let p = parse_hex_payload(&answer.info[0], "+CSIM:").unwrap();
        assert_eq!(p.bytes, vec![0x61, 0x42]);
    }

    #[test]
    fn echo_urcs_and_blank_lines_are_skipped() {
        let stream: &[u8] = b"AT+CSIM=10,\"0070000001\"\r\r\n+CREG: 1,5\r\nRING\r\n\r\n^SYSSTART\r\n+CPIN: READY\r\n+CEREG: 5\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n";
        let answer = done(parse_all(&["+CSIM:"], &[stream]).unwrap());
        assert_eq!(answer.info.len(), 1);
        assert_eq!(answer.skipped_count, 6);
        assert_eq!(answer.skipped[0], "AT+CSIM=10,\"0070000001\"");
        assert_eq!(answer.skipped[1], "+CREG: 1,5");
    }

    #[test]
    fn split_reads_byte_by_byte() {
        let stream: &[u8] = b"\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n";
        let mut parser = AnswerParser::new(&["+CSIM:"]);
        let mut answer = None;
        for b in stream {
            if let Progress::Done(a) = parser.feed(std::slice::from_ref(b)).unwrap() {
                answer = Some(a);
                break; // the LF of the final CR LF belongs to no answer
            }
        }
        assert_eq!(
            answer.unwrap().info,
            vec!["+CSIM: 6,\"019000\"".to_string()]
        );
    }

    #[test]
    fn done_as_soon_as_final_line_arrives_and_keeps_leftover() {
        let mut parser = AnswerParser::new(&["+CSIM:"]);
        let progress = parser.feed(b"+CSIM: 4,\"9000\"\r\nOK\r\n+CREG: 1").unwrap();
        assert!(matches!(progress, Progress::Done(_)));
        assert_eq!(parser.leftover(), b"\n+CREG: 1");
    }

    #[test]
    fn feeding_after_done_is_an_error_not_a_wait() {
        let mut parser = AnswerParser::new(&["+CSIM:"]);
        let first = parser.feed(b"+CSIM: 4,\"9000\"\r\nOK\r\nAB").unwrap();
        assert!(matches!(first, Progress::Done(_)));
        // Not NeedMore (the caller would wait out its deadline) and not the answer again.
        assert_eq!(parser.feed(b"\r\nOK\r\n"), Err(ParseError::AlreadyDone));
        assert_eq!(parser.feed(b""), Err(ParseError::AlreadyDone));
        // The later bytes were not taken into the leftover; the parser is done, not failed.
        assert_eq!(parser.leftover(), b"\nAB");
        assert_eq!(
            ParseError::AlreadyDone.to_string(),
            "the answer was already complete; a parser reads one answer"
        );
    }

    #[test]
    fn error_forms() {
        let a = done(parse_all(&["+CSIM:"], &[b"\r\nERROR\r\n"]).unwrap());
        assert_eq!(a.result, FinalResult::Error);
        let a = done(parse_all(&["+CSIM:"], &[b"\r\n+CME ERROR: 0\r\n"]).unwrap());
        assert_eq!(a.result, FinalResult::CmeError("0".into()));
        assert_eq!(a.summary(), "+CME ERROR: 0");
        let a = done(parse_all(&["+CSIM:"], &[b"+CMS ERROR: 500\r\n"]).unwrap());
        assert_eq!(a.result, FinalResult::CmsError("500".into()));
    }

    #[test]
    fn garbage_without_final_line_needs_more() {
        let p = parse_all(&["+CSIM:"], &[b"\x00\xff garbage \x1b[0m\r\nmore"]).unwrap();
        assert_eq!(p, Progress::NeedMore);
    }

    #[test]
    fn overlong_line_is_an_error() {
        let mut parser = AnswerParser::new(&["+CSIM:"]).with_limits(16, 8);
        let err = parser.feed(&[b'A'; 17]).unwrap_err();
        assert_eq!(err, ParseError::LineTooLong { max: 16 });
        // Once failed, it stays failed.
        assert!(parser.feed(b"OK\r\n").is_err());
    }

    #[test]
    fn too_many_lines_is_an_error() {
        let mut parser = AnswerParser::new(&["+CSIM:"]).with_limits(64, 3);
        let err = parser.feed(b"a\r\nb\r\nc\r\nd\r\nOK\r\n").unwrap_err();
        assert_eq!(err, ParseError::TooManyLines { max: 3 });
    }

    #[test]
    fn ccho_forms() {
        let a = done(parse_all(&["+CCHO:"], &[b"+CCHO: 3\r\nOK\r\n"]).unwrap());
        assert_eq!(parse_session_id(&a.info[0]), Some(3));
        let mut parser = AnswerParser::new(&["+CCHO:"]).accept_bare_number(true);
        let a = done(parser.feed(b"\r\n17\r\n\r\nOK\r\n").unwrap());
        assert_eq!(parse_session_id(&a.info[0]), Some(17));
        assert_eq!(parse_session_id("+CCHO:\"2\""), Some(2));
        assert_eq!(parse_session_id("+CCHO: x"), None);
    }

    #[test]
    fn push_wiping_keeps_the_bytes_and_grows_by_hand() {
        let mut buf = Vec::new();
        for chunk in [&b"AB"[..], &[0x5A; 100], b"", b"CD"] {
            push_wiping(&mut buf, chunk);
        }
        assert_eq!(buf.len(), 104);
        assert_eq!(&buf[..2], b"AB");
        assert_eq!(&buf[102..], b"CD");
        assert!(buf[2..102].iter().all(|&b| b == 0x5A));
    }

    #[test]
    fn a_parser_reuses_its_line_buffer() {
        // The partial line is wiped after each line, not handed away and freed unwiped.
        let mut parser = AnswerParser::new(&["+CSIM:"]);
        let _ = parser.feed(b"+CSIM: 6,\"019000\"\r\n").unwrap();
        let capacity = parser.partial.capacity();
        assert!(capacity > 0 && parser.partial.is_empty());
        let answer = done(parser.feed(b"OK\r\n").unwrap());
        assert_eq!(answer.info.len(), 1);
        assert_eq!(parser.partial.capacity(), capacity);
    }
}
