//! A scripted modem for the AT transport tests: a thread on a real pseudo-terminal (or a TCP
//! stream) that records every line it receives and answers with canned lines, so the tests check
//! the exact AT lines sent and how answers are read.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iotsafe_core::at::{AtMode, AtOptions, AtTransport, Deadlines};
use iotsafe_core::TransportError;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// One step of a canned answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `\r\n<line>\r\n`.
    Line(String),
    /// Bytes exactly as given.
    Raw(Vec<u8>),
    /// Wait before the next step (to split an answer across reads).
    Pause(Duration),
}

pub fn line(s: &str) -> Reply {
    Reply::Line(s.to_string())
}

pub fn ok() -> Reply {
    line("OK")
}

/// Decides the answer to each received line; an empty answer means silence.
pub type Script = Box<dyn FnMut(&str) -> Vec<Reply> + Send>;

/// The basics every scripted modem answers; `None` lets the test's own script decide.
pub fn basics(received: &str, cgla: bool) -> Option<Vec<Reply>> {
    match received {
        "ATE0" | "AT" => Some(vec![ok()]),
        "AT+CGMM" => Some(vec![line("TESTMODEM"), ok()]),
        "AT+CSIM=?" => Some(vec![ok()]),
        "AT+CCHO=?" => Some(vec![if cgla { ok() } else { line("ERROR") }]),
        _ => None,
    }
}

/// A modem without AT+CCHO that answers every AT+CSIM with `answer`, anything else with
/// `ERROR`.
pub fn csim_modem(answer: Vec<Reply>) -> Script {
    Box::new(move |l: &str| {
        basics(l, false).unwrap_or_else(|| {
            if l.starts_with("AT+CSIM=") {
                answer.clone()
            } else {
                vec![line("ERROR")]
            }
        })
    })
}

/// The command and answer of a [`TransportError::Modem`], or a panic naming what came instead.
pub fn modem_error<T: std::fmt::Debug>(result: Result<T, TransportError>) -> (String, String) {
    match result {
        Err(TransportError::Modem { command, answer }) => (command, answer),
        other => panic!("expected a Modem error, got {other:?}"),
    }
}

/// A stream the modem thread reads with a short timeout, so it can notice `stop`.
pub trait ModemSide: Read + Write + Send + 'static {
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
pub struct Modem {
    received: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Modem {
    pub fn start<S: ModemSide>(mut side: S, mut script: Script) -> Modem {
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

    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    /// The lines received after the opening handshake (ATE0, AT, probes).
    pub fn apdu_lines(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|l| {
                l.starts_with("AT+CSIM=") && l != "AT+CSIM=?"
                    || l.starts_with("AT+CGLA")
                    || l.starts_with("AT+CCH") && !l.ends_with("=?")
            })
            .collect()
    }

    pub fn stop(&mut self) {
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
pub fn pty() -> (File, PathBuf, std::os::fd::OwnedFd) {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let mut termios = tcgetattr(pair.slave.as_fd()).expect("tcgetattr");
    cfmakeraw(&mut termios);
    tcsetattr(pair.slave.as_fd(), SetArg::TCSANOW, &termios).expect("tcsetattr");
    let path = nix::unistd::ttyname(pair.slave.as_fd()).expect("ttyname");
    (File::from(pair.master), path, pair.slave)
}

pub fn options(mode: AtMode) -> AtOptions {
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
pub fn setup(
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

pub const SELECT_IOTSAFE: [u8; 12] = [
    0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
];
pub const AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10];

/// A modem that opens channels with ascending session ids from `first` and answers AT+CGLA and
/// AT+CCHC.
pub fn channel_modem(first: u32) -> Script {
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

pub fn count(lines: &[String], wanted: &str) -> usize {
    lines.iter().filter(|l| *l == wanted).count()
}
