//! The line over a scripted in-memory port: what is written, how answers are read, and when
//! the line is dirty.

use std::io;
use std::sync::{Arc, Mutex};

use super::*;
use crate::at::fake_port::{line, lines, raw, FakePort, Said};
use crate::at::refusal::expect_modem_error;
use crate::clock::Instant;

const CSIM_SELECT: &str = "AT+CSIM=24,\"01A4040007A0000005590010\"";
const SELECT: [u8; 12] = [
    0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
];
const SHORT: Duration = Duration::from_millis(60);

fn options() -> AtOptions {
    AtOptions {
        ready_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(200),
        ..AtOptions::default()
    }
}

/// A line over a fake port answering with `script`, and the lines written to it.
fn modem_line(
    script: impl FnMut(&str) -> Vec<Said> + Send + 'static,
) -> (ModemLine<FakePort>, Arc<Mutex<Vec<String>>>) {
    let port = FakePort::new(script);
    let written = port.written();
    (ModemLine::new(port, "fake".into(), &options()), written)
}

fn csim() -> AtCommand {
    AtCommand::csim(&SELECT, false)
}

fn exchange_csim(modem: &mut ModemLine<FakePort>) -> Result<Answer, TransportError> {
    let parser = modem.parser(&["+CSIM:"]);
    modem.exchange(&csim(), parser, SHORT)
}

#[test]
fn an_answer_split_over_reads_is_put_together_and_the_line_written_exactly() {
    let (mut modem, written) = modem_line(|_| {
        vec![
            raw(b"\r\n+CSIM: 6,\"01"),
            raw(b"90"),
            Said::Quiet,
            raw(b"00\"\r\n\r\nO"),
            raw(b"K\r\n"),
        ]
    });
    let answer = exchange_csim(&mut modem).unwrap();
    assert_eq!(answer.info, ["+CSIM: 6,\"019000\""]);
    assert!(answer.result.is_ok());
    assert!(!modem.is_dirty());
    assert_eq!(lines(&written), [CSIM_SELECT]);
}

#[test]
fn bytes_after_the_final_line_are_not_taken_for_the_next_answer() {
    let mut calls = 0;
    let (mut modem, written) = modem_line(move |_| {
        calls += 1;
        if calls == 1 {
            // The answer and, in the same read, a URC and a stray OK.
            vec![raw(
                b"\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n+CREG: 1\r\nOK\r\n",
            )]
        } else {
            vec![line("+CSIM: 4,\"6A82\""), line("OK")]
        }
    });
    exchange_csim(&mut modem).unwrap();
    assert!(
        !modem.is_dirty(),
        "a complete answer leaves the line in sync"
    );
    let second = exchange_csim(&mut modem).unwrap();
    assert_eq!(second.info, ["+CSIM: 4,\"6A82\""]);
    assert_eq!(lines(&written), [CSIM_SELECT, CSIM_SELECT], "no resync");
}

#[test]
fn a_timeout_names_the_redacted_command_marks_the_line_dirty_and_the_next_exchange_resyncs() {
    let mut calls = 0;
    let (mut modem, written) = modem_line(move |l| {
        if l == "AT" {
            return vec![line("OK")];
        }
        calls += 1;
        if calls == 1 {
            vec![] // silence
        } else {
            vec![line("+CSIM: 4,\"9000\""), line("OK")]
        }
    });
    match exchange_csim(&mut modem) {
        Err(TransportError::Timeout { waited, command }) => {
            assert_eq!(waited, SHORT);
            assert_eq!(command, "AT+CSIM=24,\"01A4040007…\"");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(modem.is_dirty());
    exchange_csim(&mut modem).unwrap();
    assert!(!modem.is_dirty());
    assert_eq!(lines(&written), [CSIM_SELECT, "AT", CSIM_SELECT]);
}

#[test]
fn a_resync_discards_the_late_answer_of_a_timed_out_command() {
    let mut calls = 0;
    let (mut modem, written) = modem_line(move |l| {
        if l == "AT" {
            // The modem answers the stalled AT+CSIM first, our AT after it, in one read.
            return vec![raw(b"\r\n+CSIM: 6,\"AA9000\"\r\n\r\nOK\r\n\r\nOK\r\n")];
        }
        calls += 1;
        if calls == 1 {
            vec![]
        } else {
            vec![line("+CSIM: 6,\"BB9000\""), line("OK")]
        }
    });
    assert!(exchange_csim(&mut modem).is_err());
    let answer = exchange_csim(&mut modem).unwrap();
    assert_eq!(answer.info, ["+CSIM: 6,\"BB9000\""]);
    assert_eq!(lines(&written), [CSIM_SELECT, "AT", CSIM_SELECT]);
}

#[test]
fn a_late_answer_in_separate_reads_is_discarded_too() {
    let (mut modem, _) = modem_line(|l| match l {
        "AT" => vec![
            line("+CGLA: 6,\"AA9000\""),
            Said::Quiet,
            line("OK"),
            Said::Quiet,
            line("OK"),
        ],
        _ => vec![],
    });
    modem.state = LineState::Dirty;
    modem.resync().unwrap();
    assert!(!modem.is_dirty());
}

#[test]
fn a_resync_that_gets_no_ok_fails_and_leaves_the_line_dirty() {
    let (mut modem, written) = modem_line(|l| match l {
        "AT" => vec![line("ERROR")],
        _ => vec![line("+CSIM: 4,\"9000\""), line("OK")],
    });
    modem.state = LineState::Dirty;
    let (command, answer) = expect_modem_error(exchange_csim(&mut modem));
    assert_eq!(command, "AT (resync)");
    assert_eq!(answer, "ERROR");
    assert!(modem.is_dirty());
    assert_eq!(
        lines(&written),
        ["AT"],
        "the command was not sent on a dirty line"
    );
}

#[test]
fn end_of_stream_and_broken_reads_are_disconnected_and_leave_the_line_dirty() {
    for said in [
        Said::Eof,
        Said::Fails(io::ErrorKind::ConnectionReset),
        Said::Fails(io::ErrorKind::BrokenPipe),
        Said::Fails(io::ErrorKind::UnexpectedEof),
    ] {
        let (mut modem, _) = modem_line(move |_| vec![said.clone()]);
        let result = exchange_csim(&mut modem);
        assert!(
            matches!(result, Err(TransportError::Disconnected)),
            "{result:?}"
        );
        assert!(modem.is_dirty());
    }
    let (mut modem, _) = modem_line(|_| vec![Said::Fails(io::ErrorKind::PermissionDenied)]);
    assert!(matches!(
        exchange_csim(&mut modem),
        Err(TransportError::Io(_))
    ));
}

#[test]
fn a_failed_write_is_typed_and_leaves_the_line_dirty() {
    for (kind, disconnected) in [
        (io::ErrorKind::BrokenPipe, true),
        (io::ErrorKind::ConnectionReset, true),
        (io::ErrorKind::PermissionDenied, false),
    ] {
        let mut port = FakePort::new(|_| vec![line("OK")]);
        port.write_error = Some(kind);
        let mut modem = ModemLine::new(port, "fake".into(), &options());
        let result = exchange_csim(&mut modem);
        if disconnected {
            assert!(
                matches!(result, Err(TransportError::Disconnected)),
                "{result:?}"
            );
        } else {
            assert!(matches!(result, Err(TransportError::Io(_))), "{result:?}");
        }
        assert!(modem.is_dirty());
    }
}

#[test]
fn a_garbled_answer_is_a_protocol_error_naming_the_command() {
    let (mut modem, _) = modem_line(|_| vec![raw(&[b'Z'; 5000])]);
    match exchange_csim(&mut modem) {
        Err(TransportError::Protocol(message)) => {
            assert!(
                message.starts_with("AT+CSIM=24,\"01A4040007…\": "),
                "{message}"
            );
            assert!(message.contains("longer than"), "{message}");
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert!(modem.is_dirty());
}

#[test]
fn a_port_claiming_more_than_the_buffer_does_not_panic() {
    let (mut modem, _) = modem_line(|_| vec![Said::Claims(usize::MAX), line("OK")]);
    // The claimed bytes read as zeros (garbage on the line), then OK ends the answer.
    let answer = exchange_csim(&mut modem).unwrap();
    assert!(answer.result.is_ok());
}

#[test]
fn a_port_that_times_out_at_once_forever_is_bounded_by_the_read_count() {
    let mut port = FakePort::new(|_| vec![]);
    port.impatient = true;
    let mut modem = ModemLine::new(port, "fake".into(), &options());
    let started = Instant::now();
    let parser = modem.parser(&[]);
    let result = modem.exchange(&AtCommand::plain("AT"), parser, Duration::from_secs(3600));
    assert!(
        matches!(result, Err(TransportError::Timeout { .. })),
        "{result:?}"
    );
    // MAX_READS_PER_EXCHANGE reads of nothing, not an hour.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_late_answer_line_after_ok_is_taken_and_leaves_the_line_dirty() {
    // The late line alone, the late line with a second OK in one read, and the late line in
    // two reads.
    for late in [
        vec![Said::Quiet, line("+CSIM: 4,\"9000\"")],
        vec![raw(b"\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n")],
        vec![raw(b"\r\n+CSIM: 4,\"90"), raw(b"00\"\r\n")],
    ] {
        let mut port = FakePort::new(|_| vec![]);
        port.say(late);
        let mut modem = ModemLine::new(port, "fake".into(), &options());
        let line = modem
            .late_answer_line("AT+CSIM=…", "+CSIM:", SHORT)
            .unwrap();
        assert_eq!(line.as_str(), "+CSIM: 4,\"9000\"");
        assert!(modem.is_dirty());
    }
}

#[test]
fn no_late_answer_line_is_a_modem_error() {
    let mut port = FakePort::new(|_| vec![]);
    port.say([line("+CREG: 1")]);
    let mut modem = ModemLine::new(port, "fake".into(), &options());
    let (command, answer) =
        expect_modem_error(modem.late_answer_line("AT+CSIM=…", "+CSIM:", SHORT));
    assert_eq!(command, "AT+CSIM=…");
    assert_eq!(answer, "OK without a +CSIM: line");
    assert!(modem.is_dirty());
}

#[test]
fn drain_discards_until_quiet() {
    let mut port = FakePort::new(|_| vec![line("OK")]);
    port.say([
        line("RING"),
        raw(b"+CSIM: 4,\"90"),
        Said::Quiet,
        line("LATE"),
    ]);
    let mut modem = ModemLine::new(port, "fake".into(), &options());
    modem.drain(Duration::from_secs(1)).unwrap();
    // What came before the quiet read is gone; what came after it is still there.
    let parser = modem.parser(&["LATE"]);
    let answer = modem
        .exchange(&AtCommand::plain("AT"), parser, SHORT)
        .unwrap();
    assert_eq!(answer.info, ["LATE"]);
}

#[test]
fn wait_ready_skips_echo_falls_back_to_at_and_puts_the_line_in_sync() {
    // Echo on until ATE0 takes effect.
    let (mut modem, written) = modem_line(|l| match l {
        "ATE0" => vec![raw(b"ATE0\r"), line("OK")],
        "AT" => vec![line("OK")],
        _ => vec![line("ERROR")],
    });
    modem.state = LineState::Dirty;
    modem.wait_ready().unwrap();
    assert!(!modem.is_dirty());
    assert_eq!(lines(&written), ["ATE0", "AT"]);

    // An emulator without ATE: the plain AT is the check.
    let (mut modem, written) = modem_line(|l| match l {
        "AT" => vec![line("OK")],
        _ => vec![line("ERROR")],
    });
    modem.wait_ready().unwrap();
    assert_eq!(lines(&written), ["ATE0", "AT"]);

    // A modem that refuses both.
    let (mut modem, _) = modem_line(|_| vec![line("ERROR")]);
    assert!(matches!(
        modem.wait_ready(),
        Err(TransportError::Modem { .. })
    ));
}

#[test]
fn settle_drains_a_dirty_line_and_counts_it_in_sync() {
    let (mut modem, written) = modem_line(|_| vec![]);
    modem.settle().unwrap();
    modem.state = LineState::Dirty;
    modem.settle().unwrap();
    assert!(!modem.is_dirty());
    assert!(lines(&written).is_empty(), "settle writes nothing");

    let (mut modem, _) = modem_line(|_| vec![]);
    modem.port.say([Said::Eof]);
    modem.state = LineState::Dirty;
    assert!(matches!(modem.settle(), Err(TransportError::Disconnected)));
}

#[test]
fn a_new_port_is_in_sync() {
    let (mut modem, _) = modem_line(|_| vec![]);
    modem.state = LineState::Dirty;
    modem.replace_port(FakePort::new(|_| vec![]));
    assert!(!modem.is_dirty());
}

#[test]
fn a_huge_timeout_does_not_overflow_the_clock() {
    let (mut modem, _) = modem_line(|_| vec![line("+CSIM: 4,\"9000\""), line("OK")]);
    let parser = modem.parser(&["+CSIM:"]);
    let answer = modem.exchange(&csim(), parser, Duration::MAX).unwrap();
    assert_eq!(answer.info, ["+CSIM: 4,\"9000\""]);
}

/// A port that never brings a byte, whose reads end at once (as if on a timer of its own);
/// counts reads and writes.
#[derive(Default)]
struct SilentPort {
    reads: Arc<Mutex<usize>>,
    writes: Arc<Mutex<usize>>,
}

impl AtPort for SilentPort {
    fn read_within(
        &mut self,
        _buf: &mut [u8],
        _timeout: Duration,
    ) -> Result<usize, TransportError> {
        *self.reads.lock().unwrap() += 1;
        Ok(0)
    }

    fn write_all_out(&mut self, _bytes: &[u8]) -> Result<(), TransportError> {
        *self.writes.lock().unwrap() += 1;
        Ok(())
    }
}

#[test]
fn without_a_clock_an_exchange_neither_sends_nor_reads() {
    let port = SilentPort::default();
    let (reads, writes) = (port.reads.clone(), port.writes.clone());
    let mut modem = ModemLine::new(port, "silent".into(), &options());
    let parser = modem.parser(&["+CSIM:"]);
    let result = crate::clock::without_clock(|| modem.exchange(&csim(), parser, SHORT));
    // Before: 100,000 reads of a port that could each have waited out the 60 ms, then a
    // "timeout" that no clock had measured.
    assert!(
        matches!(result, Err(TransportError::NoClock(_))),
        "{result:?}"
    );
    assert_eq!(*reads.lock().unwrap(), 0);
    assert_eq!(*writes.lock().unwrap(), 0);
    assert!(!modem.is_dirty(), "nothing was sent, nothing can come late");
    // With the clock, the same line times out as usual.
    let parser = modem.parser(&["+CSIM:"]);
    let timed = modem.exchange(&csim(), parser, SHORT);
    assert!(
        matches!(timed, Err(TransportError::Timeout { .. })),
        "{timed:?}"
    );
    assert_eq!(*writes.lock().unwrap(), 1);
}

fn ccho() -> AtCommand {
    AtCommand::ccho(&SELECT[5..])
}

fn exchange_ccho(modem: &mut ModemLine<FakePort>) -> Result<Answer, TransportError> {
    let parser = modem.parser(&["+CCHO:"]).accept_bare_number(true);
    modem.exchange(&ccho(), parser, SHORT)
}

#[test]
fn a_ccho_line_read_before_the_deadline_is_a_late_session() {
    // The session id came, its OK did not.
    let (mut modem, _) = modem_line(|_| vec![line("+CCHO: 4")]);
    assert!(matches!(
        exchange_ccho(&mut modem),
        Err(TransportError::Timeout { .. })
    ));
    assert!(modem.awaits_late_session());
    assert_eq!(modem.take_late_sessions(), [4]);
    assert!(modem.take_late_sessions().is_empty());
}

#[test]
fn a_late_ccho_answer_is_found_in_a_drain_and_in_a_resync() {
    // In what a drain discards (it came before anything else was written).
    let (mut modem, _) = modem_line(|l| match l {
        "AT" => vec![line("OK")],
        _ => vec![],
    });
    assert!(exchange_ccho(&mut modem).is_err());
    modem
        .port
        .say([raw(b"\r\n+CCHO: 3\r\n\r\nO"), raw(b"K\r\n\r\n")]);
    modem.resync().unwrap();
    assert!(
        !modem.awaits_late_session(),
        "in sync: nothing more can come"
    );
    assert_eq!(modem.take_late_sessions(), [3]);

    // As the late answer before the resync's own OK, a bare number too.
    let (mut modem, written) = modem_line(|l| match l {
        "AT" => vec![line("9"), line("OK"), line("OK")],
        _ => vec![],
    });
    assert!(exchange_ccho(&mut modem).is_err());
    modem.resync().unwrap();
    assert_eq!(modem.take_late_sessions(), [9]);
    assert_eq!(lines(&written), ["AT+CCHO=\"A0000005590010\"", "AT"]);
}

#[test]
fn settle_keeps_a_late_ccho_answer_and_other_late_answers_give_no_session() {
    let (mut modem, _) = modem_line(|_| vec![]);
    assert!(exchange_ccho(&mut modem).is_err());
    modem.port.say([line("+CCHO: 2"), line("OK")]);
    modem.settle().unwrap();
    assert_eq!(modem.take_late_sessions(), [2]);

    // A timed-out AT+CSIM: a bare number in what follows is no session id.
    let (mut modem, _) = modem_line(|l| match l {
        "AT" => vec![
            line("+CSIM: 4,\"9000\""),
            line("12"),
            line("OK"),
            line("OK"),
        ],
        _ => vec![],
    });
    assert!(exchange_csim(&mut modem).is_err());
    assert!(!modem.awaits_late_session());
    modem.resync().unwrap();
    assert!(modem.take_late_sessions().is_empty());
}
