//! A scripted in-memory [`AtPort`] for the unit tests of the line and the transport: a test
//! double of the port only, so the code under test is the real line, parser and transport.
//!
//! The modem side is a function from each line written to what the modem then says: chunks of
//! bytes (each one read, or split when the reader's buffer is smaller), a timeout, end of
//! stream, or an I/O error. When nothing is scripted, a read waits out its timeout, as a real
//! port does.

use crate::prelude::*;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One thing a read returns.
#[derive(Debug, Clone)]
pub(crate) enum Said {
    /// These bytes, as one read (or several, when the buffer is smaller).
    Bytes(Vec<u8>),
    /// A read that times out at once.
    Quiet,
    /// End of stream (`Ok(0)`).
    Eof,
    /// A read that fails with this error kind.
    Fails(io::ErrorKind),
    /// A read that claims `n` bytes without writing any (a broken port driver).
    Claims(usize),
}

/// `\r\n<line>\r\n`, as a modem frames an answer line.
pub(crate) fn line(text: &str) -> Said {
    Said::Bytes(format!("\r\n{text}\r\n").into_bytes())
}

/// Raw bytes as one read.
pub(crate) fn raw(bytes: &[u8]) -> Said {
    Said::Bytes(bytes.to_vec())
}

/// What the modem answers to a line written; `vec![]` is silence.
pub(crate) type Script = Box<dyn FnMut(&str) -> Vec<Said> + Send>;

/// The in-memory port.
pub(crate) struct FakePort {
    incoming: VecDeque<Said>,
    script: Script,
    partial: Vec<u8>,
    written: Arc<Mutex<Vec<String>>>,
    read_timeout: Option<Duration>,
    /// Every write fails with this kind, when set.
    pub(crate) write_error: Option<io::ErrorKind>,
    /// When nothing is scripted, time out at once instead of waiting the read timeout.
    pub(crate) impatient: bool,
}

impl FakePort {
    /// A port whose modem answers each written line with `script`.
    pub(crate) fn new(script: impl FnMut(&str) -> Vec<Said> + Send + 'static) -> FakePort {
        FakePort {
            incoming: VecDeque::new(),
            script: Box::new(script),
            partial: Vec::new(),
            written: Arc::new(Mutex::new(Vec::new())),
            read_timeout: None,
            write_error: None,
            impatient: false,
        }
    }

    /// Queues what the modem says before anything is written (or next, unprompted).
    pub(crate) fn say(&mut self, said: impl IntoIterator<Item = Said>) {
        self.incoming.extend(said);
    }

    /// The lines written so far, shared: it stays readable after the port moved into the code
    /// under test.
    pub(crate) fn written(&self) -> Arc<Mutex<Vec<String>>> {
        self.written.clone()
    }
}

/// The lines in `written`, copied out.
pub(crate) fn lines(written: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    written.lock().map(|w| w.clone()).unwrap_or_default()
}

impl Read for FakePort {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.incoming.pop_front() {
            Some(Said::Bytes(bytes)) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                if n < bytes.len() {
                    self.incoming.push_front(Said::Bytes(bytes[n..].to_vec()));
                }
                Ok(n)
            }
            Some(Said::Quiet) => Err(io::Error::new(io::ErrorKind::TimedOut, "quiet")),
            Some(Said::Eof) => Ok(0),
            Some(Said::Fails(kind)) => Err(io::Error::new(kind, "scripted failure")),
            Some(Said::Claims(n)) => Ok(n),
            None => {
                if !self.impatient {
                    std::thread::sleep(self.read_timeout.unwrap_or(Duration::from_millis(1)));
                }
                Err(io::Error::new(io::ErrorKind::TimedOut, "nothing scripted"))
            }
        }
    }
}

impl Write for FakePort {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(kind) = self.write_error {
            return Err(io::Error::new(kind, "scripted write failure"));
        }
        for &byte in buf {
            if byte != b'\r' && byte != b'\n' {
                self.partial.push(byte);
                continue;
            }
            if self.partial.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            let said = (self.script)(&text);
            if let Ok(mut written) = self.written.lock() {
                written.push(text);
            }
            self.incoming.extend(said);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl super::os_port::TimedStream for FakePort {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout = timeout;
        Ok(())
    }
}
