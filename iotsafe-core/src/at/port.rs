//! Byte streams a modem can sit behind, with the one thing the AT transport needs beyond
//! `Read + Write`: a read timeout, so that every exchange has a deadline.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// A byte stream to a modem whose reads can time out.
///
/// A read that times out must fail with [`io::ErrorKind::TimedOut`] or
/// [`io::ErrorKind::WouldBlock`]; a read of `Ok(0)` means the stream is closed.
pub trait AtPort: Read + Write + Send {
    /// Bounds the next reads: `None` blocks until data arrives.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl AtPort for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // TcpStream rejects a zero timeout; round up to the smallest useful one.
        TcpStream::set_read_timeout(self, timeout.map(|t| t.max(Duration::from_millis(1))))
    }
}

impl AtPort for Box<dyn serialport::SerialPort> {
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

impl AtPort for TtyFile {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
}

impl<T: AtPort + ?Sized> AtPort for Box<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}
