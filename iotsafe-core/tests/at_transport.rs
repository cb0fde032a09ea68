//! AtTransport against a scripted modem on a real pseudo-terminal (and once over TCP).
//!
//! The modem runs in a thread on the pty master: it records every line it receives and answers
//! with canned lines, so the tests check the exact AT lines sent and how answers are read.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iotsafe_core::at::{AtMode, AtOptions, AtTransport, Deadlines, ModemQuirks};
use iotsafe_core::{Transport, TransportError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// One step of a canned answer.
#[derive(Debug, Clone)]
enum Reply {
    /// `\r\n<line>\r\n`.
    Line(String),
    /// Bytes exactly as given.
    Raw(Vec<u8>),
    /// Wait before the next step (to split an answer across reads).
    Pause(Duration),
}

fn line(s: &str) -> Reply {
    Reply::Line(s.to_string())
}

fn ok() -> Reply {
    line("OK")
}

/// Decides the answer to each received line; an empty answer means silence.
type Script = Box<dyn FnMut(&str) -> Vec<Reply> + Send>;

/// The basics every scripted modem answers; `None` lets the test's own script decide.
fn basics(received: &str, cgla: bool) -> Option<Vec<Reply>> {
    match received {
        "ATE0" | "AT" => Some(vec![ok()]),
        "AT+CGMM" => Some(vec![line("TESTMODEM"), ok()]),
        "AT+CSIM=?" => Some(vec![ok()]),
        "AT+CCHO=?" => Some(vec![if cgla { ok() } else { line("ERROR") }]),
        _ => None,
    }
}

/// A stream the modem thread reads with a short timeout, so it can notice `stop`.
trait ModemSide: Read + Write + Send + 'static {
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool>;
}

impl ModemSide for File {
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
        let t = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        Ok(poll(&mut fds, t).map_err(io::Error::from)? > 0)
    }
}

impl ModemSide for TcpStream {
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        self.set_read_timeout(Some(timeout))?;
        let mut probe = [0u8; 1];
        match self.peek(&mut probe) {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// The scripted modem: a thread plus what it received.
struct Modem {
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Modem {
    fn start<S: ModemSide>(mut side: S, mut script: Script) -> Modem {
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, st) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut pending = Vec::new();
            let started = Instant::now();
            // Bounded: a test never runs a minute.
            while !st.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                match side.wait_readable(Duration::from_millis(20)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => return,
                }
                let mut buf = [0u8; 1024];
                let n = match side.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    if b == b'\r' || b == b'\n' {
                        if pending.is_empty() {
                            continue;
                        }
                        let text = String::from_utf8_lossy(&pending).to_string();
                        pending.clear();
                        rx.lock().unwrap().push(text.clone());
                        for reply in script(&text) {
                            let result = match reply {
                                Reply::Line(l) => side.write_all(format!("\r\n{l}\r\n").as_bytes()),
                                Reply::Raw(bytes) => side.write_all(&bytes),
                                Reply::Pause(d) => {
                                    std::thread::sleep(d);
                                    Ok(())
                                }
                            };
                            if result.is_err() {
                                return;
                            }
                        }
                        let _ = side.flush();
                    } else {
                        pending.push(b);
                    }
                }
            }
        });
        Modem {
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    /// The lines received after the opening handshake (ATE0, AT, probes).
    fn apdu_lines(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|l| {
                l.starts_with("AT+CSIM=") && l != "AT+CSIM=?"
                    || l.starts_with("AT+CGLA")
                    || l.starts_with("AT+CCH") && !l.ends_with("=?")
            })
            .collect()
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Modem {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A pty pair in raw mode: the master for the modem, the slave path for the transport.
fn pty() -> (File, PathBuf, std::os::fd::OwnedFd) {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let mut termios = tcgetattr(pair.slave.as_fd()).expect("tcgetattr");
    cfmakeraw(&mut termios);
    tcsetattr(pair.slave.as_fd(), SetArg::TCSANOW, &termios).expect("tcsetattr");
    let path = nix::unistd::ttyname(pair.slave.as_fd()).expect("ttyname");
    (File::from(pair.master), path, pair.slave)
}

fn options(mode: AtMode) -> AtOptions {
    AtOptions {
        mode,
        deadlines: Deadlines {
            normal: Duration::from_millis(500),
            slow: Duration::from_millis(1500),
        },
        ready_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(1),
        ..AtOptions::default()
    }
}

/// Opens a transport on a fresh pty whose modem runs `script` (after the basics).
fn setup(
    mode: AtMode,
    cgla: bool,
    mut script: impl FnMut(&str) -> Vec<Reply> + Send + 'static,
) -> (
    AtTransport<iotsafe_core::at::TtyFile>,
    Modem,
    std::os::fd::OwnedFd,
) {
    let (master, path, slave) = pty();
    let modem = Modem::start(
        master,
        Box::new(move |l: &str| basics(l, cgla).unwrap_or_else(|| script(l))),
    );
    let transport = AtTransport::open_tty(&path, options(mode)).expect("open transport");
    (transport, modem, slave)
}

const SELECT_IOTSAFE: [u8; 12] = [
    0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
];
const AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10];

#[test]
fn csim_sends_the_exact_line_and_returns_without_idle_wait() {
    let (mut t, modem, _slave) = setup(AtMode::Csim, true, |l| {
        if l.starts_with("AT+CSIM=") {
            vec![line("+CSIM: 4,\"9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert!(!t.capabilities().manages_channels);
    let started = Instant::now();
    let answer = t.transmit(&SELECT_IOTSAFE).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(answer, vec![0x90, 0x00]);
    // The modem said OK at once: the transport must not wait anything like a deadline.
    assert!(elapsed < Duration::from_millis(200), "took {elapsed:?}");
    assert_eq!(
        modem.apdu_lines(),
        vec!["AT+CSIM=24,\"01A4040007A0000005590010\"".to_string()]
    );
    assert_eq!(modem.received()[0], "ATE0");
    assert!(t.describe().contains("AT+CSIM"));
}

#[test]
fn auto_mode_uses_ccho_cgla_cchc() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, true, |l| match l {
        "AT+CCHO=\"A0000005590010\"" => vec![line("+CCHO: 1"), ok()],
        "AT+CGLA=1,10,\"00C0000000\"" => vec![line("+CGLA: 6,\"019000\""), ok()],
        "AT+CCHC=1" => vec![ok()],
        _ => vec![line("ERROR")],
    });
    assert!(t.capabilities().manages_channels);
    let channel = t.open_channel(&AID).unwrap();
    assert!(channel.is_some());
    assert_eq!(t.session_id(), Some(1));
    let answer = t.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00]).unwrap();
    assert_eq!(answer, vec![0x01, 0x90, 0x00]);
    t.close_channel().unwrap();
    assert_eq!(t.session_id(), None);
    assert_eq!(
        modem.apdu_lines(),
        vec![
            "AT+CCHO=\"A0000005590010\"".to_string(),
            "AT+CGLA=1,10,\"00C0000000\"".to_string(),
            "AT+CCHC=1".to_string(),
        ]
    );
}

#[test]
fn bare_session_id_is_accepted() {
    let (mut t, _modem, _slave) = setup(AtMode::Cgla, true, |l| {
        if l.starts_with("AT+CCHO=") {
            vec![line("7"), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(7));
}

#[test]
fn auto_falls_back_to_csim_when_ccho_is_refused() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, true, |l| {
        if l.starts_with("AT+CCHO=\"") {
            vec![line("+CME ERROR: 4")]
        } else if l.starts_with("AT+CSIM=") {
            vec![line("+CSIM: 4,\"9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(t.capabilities().manages_channels);
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert!(!t.capabilities().manages_channels);
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    // Sticky: the next open does not try AT+CCHO again.
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert_eq!(
        modem.apdu_lines(),
        vec![
            "AT+CCHO=\"A0000005590010\"".to_string(),
            "AT+CSIM=24,\"01A4040007A0000005590010\"".to_string(),
        ]
    );
}

#[test]
fn auto_without_ccho_support_uses_csim() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, false, |_| vec![line("ERROR")]);
    assert!(!t.capabilities().manages_channels);
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert!(modem.apdu_lines().is_empty());
}

#[test]
fn forced_cgla_mode_reports_a_refused_ccho() {
    let (mut t, _modem, _slave) = setup(AtMode::Cgla, true, |_| vec![line("ERROR")]);
    match t.open_channel(&AID) {
        Err(TransportError::Modem { command, answer }) => {
            assert_eq!(command, "AT+CCHO=\"A0000005590010\"");
            assert_eq!(answer, "ERROR");
        }
        other => panic!("expected a Modem error, got {other:?}"),
    }
}

#[test]
fn echo_urcs_unquoted_lower_case_and_split_reads() {
    let mut echo = true;
    let (master, path, _slave) = pty();
    let modem = Modem::start(
        master,
        Box::new(move |l: &str| {
            let mut out = Vec::new();
            if echo {
                // Echo as a modem does before ATE0 takes effect.
                out.push(Reply::Raw(format!("{l}\r").into_bytes()));
            }
            if l == "ATE0" {
                echo = false;
            }
            match l {
                "ATE0" | "AT" => out.push(ok()),
                "AT+CGMM" => out.extend([line("GMS01Q"), ok()]),
                l if l.starts_with("AT+CSIM=") && l != "AT+CSIM=?" => out.extend([
                    line("+CREG: 1,5"),
                    line("RING"),
                    Reply::Raw(b"\r\n+CSIM: 8,01".to_vec()),
                    Reply::Pause(Duration::from_millis(30)),
                    Reply::Raw(b"ab90".to_vec()),
                    Reply::Pause(Duration::from_millis(30)),
                    Reply::Raw(b"00\r\n".to_vec()),
                    line("+CEREG: 5"),
                    ok(),
                ]),
                _ => out.push(line("ERROR")),
            }
            out
        }),
    );
    let mut t = AtTransport::open_tty(&path, options(AtMode::Csim)).unwrap();
    assert_eq!(t.quirks().name, "Sequans GMS01Q");
    let answer = t.transmit(&[0x00, 0xB0, 0x00, 0x00, 0x02]).unwrap();
    assert_eq!(answer, vec![0x01, 0xAB, 0x90, 0x00]);
    drop(modem);
}

#[test]
fn procedure_bytes_pass_through() {
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, |l| {
        if l.starts_with("AT+CSIM=") {
            vec![line("+CSIM: 4,\"6142\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert_eq!(
        t.transmit(&[0x00, 0x2B, 0x80, 0x01, 0x00]).unwrap(),
        vec![0x61, 0x42]
    );
}

#[test]
fn errors_name_the_command_and_redact_the_payload() {
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, |l| {
        if l.starts_with("AT+CSIM=78") {
            vec![line("+CME ERROR: 0")]
        } else {
            vec![line("ERROR")]
        }
    });
    let mut sign_update = vec![0x00, 0x2B, 0x80, 0x01, 0x22, 0x9E, 0x20];
    sign_update.extend([0x5A; 32]);
    match t.transmit(&sign_update) {
        Err(TransportError::Modem { command, answer }) => {
            assert_eq!(command, "AT+CSIM=78,\"002B800122…\"");
            assert_eq!(answer, "+CME ERROR: 0");
        }
        other => panic!("expected a Modem error, got {other:?}"),
    }
    let message = t.transmit(&sign_update).unwrap_err().to_string();
    assert!(!message.contains("5A5A"), "payload leaked: {message}");
    // Still usable afterwards, and ERROR is typed too.
    match t.transmit(&SELECT_IOTSAFE) {
        Err(TransportError::Modem { command, answer }) => {
            assert_eq!(command, "AT+CSIM=24,\"01A4040007…\"");
            assert_eq!(answer, "ERROR");
        }
        other => panic!("expected a Modem error, got {other:?}"),
    }
}

#[test]
fn silent_modem_times_out_within_the_deadline_and_recovers() {
    let mut first = true;
    let (mut t, modem, _slave) = setup(AtMode::Csim, false, move |l| {
        if l.starts_with("AT+CSIM=") {
            if first {
                first = false;
                return Vec::new(); // silence
            }
            vec![line("+CSIM: 4,\"9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    let started = Instant::now();
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, TransportError::Timeout { waited, command }
            if *waited == Duration::from_millis(500) && command.starts_with("AT+CSIM=")),
        "{err:?}"
    );
    // The message names the AT line that went unanswered, not only how long we waited.
    assert!(err.to_string().contains("to AT+CSIM="), "{err}");
    assert!(err.needs_reconnect());
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_millis(1200),
        "took {elapsed:?}"
    );
    // The next command resynchronises (AT → OK) and then works.
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    let lines = modem.received();
    let n = lines.len();
    assert_eq!(lines[n - 2], "AT");
    assert!(lines[n - 1].starts_with("AT+CSIM=24"));
}

#[test]
fn slow_instructions_get_the_long_deadline() {
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, |l| {
        if l.starts_with("AT+CSIM=") {
            // Longer than the normal deadline (500 ms), shorter than the slow one (1500 ms).
            vec![
                Reply::Pause(Duration::from_millis(800)),
                line("+CSIM: 4,\"6145\""),
                ok(),
            ]
        } else {
            vec![line("ERROR")]
        }
    });
    let keygen = [0x81, 0xB9, 0x00, 0x00, 0x03, 0x84, 0x01, 0x01];
    assert_eq!(t.transmit(&keygen).unwrap(), vec![0x61, 0x45]);
}

#[test]
fn garbage_and_overlong_lines_are_protocol_errors_then_recovery() {
    let mut calls = 0;
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, move |l| {
        if l.starts_with("AT+CSIM=") {
            calls += 1;
            match calls {
                1 => vec![Reply::Raw(vec![b'Z'; 10_000])],
                2 => vec![line("+CSIM: 4,\"90ZZ\""), ok()],
                3 => vec![ok()],
                _ => vec![line("+CSIM: 4,\"9000\""), ok()],
            }
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Protocol(_))
    ));
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Protocol(_))
    ));
    // A bare OK with no +CSIM line (after the grace period) is a typed error.
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Modem { .. })
    ));
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
}

#[test]
fn late_answer_line_after_ok_is_used() {
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, |l| {
        if l.starts_with("AT+CSIM=") {
            vec![
                ok(),
                Reply::Pause(Duration::from_millis(50)),
                line("+CSIM: 4,\"9000\""),
            ]
        } else {
            vec![line("ERROR")]
        }
    });
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    // And the next exchange still works (after a resync).
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
}

#[test]
fn width3_length_for_wolfssl_style_emulators() {
    let (master, path, _slave) = pty();
    let modem = Modem::start(
        master,
        Box::new(|l: &str| {
            basics(l, false).unwrap_or_else(|| {
                if l.starts_with("AT+CSIM=") {
                    vec![ok()] // bare OK: the emulator's answer to an Init command
                } else {
                    vec![line("ERROR")]
                }
            })
        }),
    );
    let opts = AtOptions {
        quirks: Some(ModemQuirks::WOLFSSL_EMULATOR),
        ..options(AtMode::Csim)
    };
    let mut t = AtTransport::open_tty(&path, opts).unwrap();
    let init = [0x81, 0x2A, 0x00, 0x01, 0x03, 0x84, 0x01, 0x01];
    assert_eq!(t.transmit(&init).unwrap(), vec![0x90, 0x00]);
    assert_eq!(
        modem.apdu_lines(),
        vec!["AT+CSIM= 16,\"812A000103840101\"".to_string()]
    );
}

#[test]
fn modem_hang_up_is_disconnected_not_a_hang() {
    let (mut t, mut modem, slave) = setup(AtMode::Csim, false, |_| vec![line("ERROR")]);
    modem.stop();
    drop(modem);
    drop(slave);
    // The master side is gone (the modem thread owned it).
    let started = Instant::now();
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Disconnected | TransportError::Io(_) | TransportError::Timeout { .. }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn opens_through_serialport_on_a_pty() {
    let (master, path, _slave) = pty();
    let modem = Modem::start(
        master,
        Box::new(|l: &str| {
            basics(l, false).unwrap_or_else(|| {
                if l.starts_with("AT+CSIM=") {
                    vec![line("+CSIM: 4,\"9000\""), ok()]
                } else {
                    vec![line("ERROR")]
                }
            })
        }),
    );
    let mut t =
        AtTransport::open_serial_with(path.to_str().unwrap(), 115_200, options(AtMode::Auto))
            .unwrap();
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    assert_eq!(
        modem.apdu_lines(),
        vec!["AT+CSIM=24,\"01A4040007A0000005590010\"".to_string()]
    );
}

#[test]
fn works_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let client =
        std::thread::spawn(move || AtTransport::connect_tcp_with(addr, options(AtMode::Csim)));
    let stream = server.join().unwrap().unwrap();
    let modem = Modem::start(
        stream,
        Box::new(|l: &str| {
            basics(l, false).unwrap_or_else(|| {
                if l.starts_with("AT+CSIM=") {
                    vec![line("+CSIM: 6,\"019000\""), ok()]
                } else {
                    vec![line("ERROR")]
                }
            })
        }),
    );
    let mut t = client.join().unwrap().unwrap();
    assert_eq!(
        t.transmit(&[0x00, 0x70, 0x00, 0x00, 0x01]).unwrap(),
        vec![0x01, 0x90, 0x00]
    );
    assert_eq!(
        modem.apdu_lines(),
        vec!["AT+CSIM=10,\"0070000001\"".to_string()]
    );
}

#[test]
fn reconnect_reopens_a_closed_tcp_link() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let script = || -> Script {
        Box::new(|l: &str| {
            basics(l, false).unwrap_or_else(|| {
                if l.starts_with("AT+CSIM=") {
                    vec![line("+CSIM: 4,\"9000\""), ok()]
                } else {
                    vec![line("ERROR")]
                }
            })
        })
    };
    let client =
        std::thread::spawn(move || AtTransport::connect_tcp_with(addr, options(AtMode::Csim)));
    let (stream, _) = listener.accept().unwrap();
    let mut first = Modem::start(stream, script());
    let mut t = client.join().unwrap().unwrap();
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);

    // The modem goes away: typed error, quickly.
    first.stop();
    drop(first);
    let started = Instant::now();
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    assert!(err.needs_reconnect(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // reconnect() dials again and the link works.
    let server = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let reconnect = std::thread::spawn(move || t.reconnect().map(|()| t));
    let second = Modem::start(server.join().unwrap().unwrap(), script());
    let mut t = reconnect.join().unwrap().unwrap();
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    assert!(second.apdu_lines().len() == 1);
}

#[test]
fn lost_sim_is_removed_card_even_for_ccho() {
    let (mut t, _modem, _slave) = setup(AtMode::Auto, true, |l| {
        if l.starts_with("AT+CCHO=\"") || l.starts_with("AT+CSIM=") {
            vec![line("+CME ERROR: 13")]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(matches!(
        t.open_channel(&AID),
        Err(TransportError::RemovedCard)
    ));
    // No fallback happened: AT+CCHO stays in use.
    assert!(t.capabilities().manages_channels);
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::RemovedCard)
    ));
}

#[test]
fn auto_ccho_not_found_is_a_modem_error_without_fallback() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, true, |l| match l {
        "AT+CCHO=\"A00000003053F12401770101495341\"" => vec![line("+CME ERROR: 22")],
        "AT+CCHO=\"A0000005590010\"" => vec![line("+CCHO: 2"), ok()],
        _ => vec![line("ERROR")],
    });
    let thales_aid = [
        0xA0, 0x00, 0x00, 0x00, 0x30, 0x53, 0xF1, 0x24, 0x01, 0x77, 0x01, 0x01, 0x49, 0x53, 0x41,
    ];
    match t.open_channel(&thales_aid) {
        Err(TransportError::Modem { command, answer }) => {
            assert_eq!(command, "AT+CCHO=\"A00000003053F12401770101495341\"");
            assert_eq!(answer, "+CME ERROR: 22");
        }
        other => panic!("expected a Modem error, got {other:?}"),
    }
    // Still AT+CCHO: the next AID opens a modem-managed channel.
    assert!(t.capabilities().manages_channels);
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(2));
    assert_eq!(modem.apdu_lines().len(), 2);
}

#[test]
fn late_answer_of_a_timed_out_command_is_not_taken_for_the_next_one() {
    // A modem that works sequentially: the stalled command's answer comes out (late) before
    // the answer to anything sent after it.
    let mut calls = 0;
    let (mut t, modem, _slave) = setup(AtMode::Csim, false, move |l| {
        if l.starts_with("AT+CSIM=") {
            calls += 1;
            if calls == 1 {
                return vec![
                    Reply::Pause(Duration::from_millis(700)),
                    line("+CSIM: 6,\"AA9000\""),
                    ok(),
                ];
            }
            vec![line("+CSIM: 6,\"BB9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Timeout { .. })
    ));
    // The modem thread is still sleeping; the next command's resync sees the late answer first.
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0xBB, 0x90, 0x00]);
    let received = modem.received();
    assert_eq!(received[received.len() - 2], "AT");
}

#[test]
fn reconnect_after_a_timeout_discards_the_late_answer() {
    let mut calls = 0;
    let (mut t, _modem, _slave) = setup(AtMode::Csim, false, move |l| {
        if l.starts_with("AT+CSIM=") {
            calls += 1;
            if calls == 1 {
                return vec![
                    Reply::Pause(Duration::from_millis(700)),
                    line("+CSIM: 6,\"AA9000\""),
                    ok(),
                ];
            }
            vec![line("+CSIM: 6,\"BB9000\""), ok()]
        } else {
            vec![line("ERROR")]
        }
    });
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::Timeout { .. })
    ));
    // What the card session does after a transport error: reconnect, then go on.
    t.reconnect().unwrap();
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0xBB, 0x90, 0x00]);
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0xBB, 0x90, 0x00]);
}

#[test]
fn auto_falls_back_when_the_first_cgla_is_refused() {
    let (mut t, modem, _slave) = setup(AtMode::Auto, true, |l| match l {
        "AT+CCHO=\"A0000005590010\"" => vec![line("+CCHO: 3"), ok()],
        "AT+CCHC=3" => vec![ok()],
        l if l.starts_with("AT+CGLA=") => vec![line("ERROR")],
        l if l.starts_with("AT+CSIM=") => vec![line("+CSIM: 4,\"9000\""), ok()],
        _ => vec![line("ERROR")],
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    // ResetCard: the session reconnects, re-selects (now over AT+CSIM) and retries once.
    assert!(matches!(
        t.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00]),
        Err(TransportError::ResetCard)
    ));
    assert!(!t.capabilities().manages_channels);
    assert_eq!(t.open_channel(&AID).unwrap(), None);
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    let lines = modem.apdu_lines();
    assert_eq!(lines[1], "AT+CGLA=3,10,\"00C0000000\"");
    assert_eq!(lines[2], "AT+CCHC=3");
}

#[test]
fn lost_channel_is_reported_as_reset() {
    let mut cgla_calls = 0;
    let (mut t, _modem, _slave) = setup(AtMode::Cgla, true, move |l| match l {
        l if l.starts_with("AT+CCHO=") => vec![line("+CCHO: 1"), ok()],
        l if l.starts_with("AT+CGLA=") => {
            cgla_calls += 1;
            if cgla_calls == 1 {
                vec![line("+CGLA: 4,\"9000\""), ok()]
            } else {
                vec![line("+CME ERROR: 21")]
            }
        }
        _ => vec![line("ERROR")],
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    assert!(matches!(
        t.transmit(&SELECT_IOTSAFE),
        Err(TransportError::ResetCard)
    ));
    assert_eq!(t.session_id(), None);
    assert!(t.capabilities().manages_channels);
}

#[test]
fn dropping_the_transport_closes_its_channel() {
    let (mut t, modem, _slave) = setup(AtMode::Cgla, true, |l| match l {
        l if l.starts_with("AT+CCHO=") => vec![line("+CCHO: 4"), ok()],
        "AT+CCHC=4" => vec![ok()],
        _ => vec![line("ERROR")],
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    drop(t);
    assert_eq!(
        modem.apdu_lines().last().map(String::as_str),
        Some("AT+CCHC=4")
    );
}

/// A modem that opens channels with ascending session ids from `first` and answers AT+CGLA and
/// AT+CCHC.
fn channel_modem(first: u32) -> Script {
    let mut next = first;
    Box::new(move |l: &str| {
        basics(l, true).unwrap_or_else(|| {
            if l.starts_with("AT+CCHO=\"") {
                next += 1;
                vec![line(&format!("+CCHO: {}", next - 1)), ok()]
            } else if l.starts_with("AT+CGLA=") {
                vec![line("+CGLA: 4,\"9000\""), ok()]
            } else if l.starts_with("AT+CCHC=") {
                vec![ok()]
            } else {
                vec![line("ERROR")]
            }
        })
    })
}

fn count(lines: &[String], wanted: &str) -> usize {
    lines.iter().filter(|l| *l == wanted).count()
}

#[test]
fn reconnect_through_a_reopened_port_closes_the_old_channel() {
    // A TCP modem bridge that closes: the SIM behind it was not reset and still holds the channel.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client =
        std::thread::spawn(move || AtTransport::connect_tcp_with(addr, options(AtMode::Cgla)));
    let (stream, _) = listener.accept().unwrap();
    let mut first = Modem::start(stream, channel_modem(7));
    let mut t = client.join().unwrap().unwrap();
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(7));
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);

    first.stop();
    drop(first);
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    assert!(err.needs_reconnect(), "{err:?}");

    // reconnect() finds the link dead, dials again, and closes channel 7 on the new link.
    let server = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let reconnect = std::thread::spawn(move || t.reconnect().map(|()| t));
    let second = Modem::start(server.join().unwrap().unwrap(), channel_modem(8));
    let mut t = reconnect.join().unwrap().unwrap();
    assert_eq!(t.session_id(), None);
    assert_eq!(second.apdu_lines(), vec!["AT+CCHC=7".to_string()]);

    // The session's new channel works, and dropping the transport closes it (and nothing twice).
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(8));
    assert_eq!(t.transmit(&SELECT_IOTSAFE).unwrap(), vec![0x90, 0x00]);
    drop(t);
    let lines = second.apdu_lines();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("AT+CCHC=8"),
        "{lines:?}"
    );
    assert_eq!(count(&lines, "AT+CCHC=7"), 1, "{lines:?}");
}

#[test]
fn a_channel_survives_a_failed_reopen_and_is_closed_by_the_next_reconnect() {
    // Port 1 dies; reopening fails once (the USB modem has not re-enumerated yet), then gives
    // port 2. The channel opened on port 1 is closed on port 2.
    let (master1, path1, slave1) = pty();
    let (master2, path2, _slave2) = pty();
    let first = Modem::start(master1, channel_modem(3));
    let second = Modem::start(master2, channel_modem(4));
    let mut attempts = 0;
    let mut t = AtTransport::new(
        iotsafe_core::at::TtyFile::open(&path1).unwrap(),
        "pty",
        options(AtMode::Cgla),
    )
    .unwrap()
    .with_reopen(move || {
        attempts += 1;
        if attempts == 1 {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no such device yet",
            ))
        } else {
            iotsafe_core::at::TtyFile::open(&path2)
        }
    });
    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(3));

    // The modem on port 1 goes away for good.
    let mut first = first;
    first.stop();
    drop(first);
    drop(slave1);
    let err = t.transmit(&SELECT_IOTSAFE).unwrap_err();
    assert!(err.needs_reconnect(), "{err:?}");

    assert!(t.reconnect().is_err(), "the first reopen fails");
    t.reconnect().unwrap();
    assert_eq!(second.apdu_lines(), vec!["AT+CCHC=3".to_string()]);

    assert!(t.open_channel(&AID).unwrap().is_some());
    assert_eq!(t.session_id(), Some(4));
    drop(t);
    let lines = second.apdu_lines();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("AT+CCHC=4"),
        "{lines:?}"
    );
    assert_eq!(count(&lines, "AT+CCHC=3"), 1, "{lines:?}");
}
