//! The operating system's byte streams a modem can sit behind (serial port, tty file, TCP), as
//! [`AtPort`]s: anything `Read + Write` whose reads can time out ([`TimedStream`]).

use crate::prelude::*;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use super::port::AtPort;
use crate::transport::TransportError;

/// A byte stream to a modem whose reads can time out.
///
/// A read that times out must fail with [`io::ErrorKind::TimedOut`] or
/// [`io::ErrorKind::WouldBlock`]; a read of `Ok(0)` means the stream is closed.
pub trait TimedStream: Read + Write + Send {
    /// Bounds the next reads: `None` blocks until data arrives.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl<T: TimedStream> AtPort for T {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, TransportError> {
        self.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.read(buf) {
            Ok(0) => Err(TransportError::Disconnected),
            Ok(n) => Ok(n),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(err) => Err(stream_error(err)),
        }
    }

    fn write_all_out(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.write_all(bytes)
            .and_then(|()| self.flush())
            .map_err(stream_error)
    }
}

/// A closed or broken stream is [`TransportError::Disconnected`]: a pty whose other side is gone
/// reads EIO, a closed socket resets or breaks the pipe.
fn stream_error(err: io::Error) -> TransportError {
    let closed = matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    ) || err.raw_os_error() == Some(nix::libc::EIO);
    if closed {
        TransportError::Disconnected
    } else {
        TransportError::Io(err)
    }
}

impl TimedStream for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // TcpStream rejects a zero timeout; round up to the smallest useful one.
        TcpStream::set_read_timeout(self, timeout.map(|t| t.max(Duration::from_millis(1))))
    }
}

impl TimedStream for Box<dyn serialport::SerialPort> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // serialport has no "block forever"; an hour is forever for an AT exchange.
        let timeout = timeout.unwrap_or(Duration::from_secs(3600));
        self.set_timeout(timeout.max(Duration::from_millis(1)))
            .map_err(io::Error::from)
    }
}

/// A terminal device file (a real tty or a pty slave) read with `poll` deadlines, for when the
/// `serialport` crate is not wanted (no baud rate to set on a pty, or a device it does not know).
#[derive(Debug)]
pub struct TtyFile {
    file: File,
    path: PathBuf,
    timeout: Option<Duration>,
}

impl TtyFile {
    /// Opens `path` read-write and puts the terminal in raw mode (no echo, no line editing, no
    /// CR/LF translation), which a modem link needs. A non-terminal file is used as it is.
    pub fn open(path: impl AsRef<Path>) -> io::Result<TtyFile> {
        let path = path.as_ref();
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        match tcgetattr(file.as_fd()) {
            Ok(mut termios) => {
                cfmakeraw(&mut termios);
                tcsetattr(file.as_fd(), SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
            }
            Err(nix::errno::Errno::ENOTTY) => {
                tracing::debug!(path = %path.display(), "not a terminal; using it as a plain stream");
            }
            Err(err) => return Err(io::Error::from(err)),
        }
        Ok(TtyFile {
            file,
            path: path.to_path_buf(),
            timeout: None,
        })
    }

    /// The path the device was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Read for TtyFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(timeout) = self.timeout {
            let poll_timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, poll_timeout).map_err(io::Error::from)?;
            if ready == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no data from the modem",
                ));
            }
        }
        self.file.read(buf)
    }
}

impl Write for TtyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl TimedStream for TtyFile {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
}
