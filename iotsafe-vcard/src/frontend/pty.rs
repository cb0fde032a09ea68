//! The AT modem on a pseudo-terminal: a real `/dev/pts/N` device node a host opens like the serial
//! port of a cellular modem.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use super::at::{AtHandle, AtModem, AtOptions};
use super::{FrontendHandle, SharedCard};

/// A pty pair whose master side is the modem. The slave side stays open here too, so the master
/// does not read end-of-file (EIO) while no host has the device open, and a host may close and
/// reopen the device as often as it likes.
pub struct PtyModem {
    master: File,
    _slave: OwnedFd,
    path: PathBuf,
}

impl PtyModem {
    /// Opens a pty pair in raw mode (no echo, no line editing, no CR/LF translation: the bytes a
    /// host writes are the bytes the modem reads, as on a serial line).
    pub fn open() -> io::Result<Self> {
        let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        let mut termios = tcgetattr(&pty.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
        let path = nix::unistd::ttyname(&pty.slave).map_err(io::Error::from)?;
        // Non-blocking master: a host that stops reading must not block the modem forever (see
        // `PolledFile::write`).
        let flags = fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(pty.master.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        Ok(Self {
            master: File::from(pty.master),
            _slave: pty.slave,
            path,
        })
    }

    /// The device node a host opens, e.g. `/dev/pts/3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves the modem on this thread until `stop` is raised.
    pub fn serve(self, card: SharedCard, options: AtOptions, stop: &AtomicBool) -> io::Result<()> {
        let mut port = PolledFile {
            file: self.master,
            poll_interval: options.poll_interval,
            write_timeout: options.write_timeout,
            overflowing: false,
        };
        let mut modem = AtModem::new(card, options);
        let result = modem.serve(&mut port, stop);
        modem.close_all_sessions(stop);
        result
    }

    /// Serves the modem on a background thread. Read the device path first with
    /// [`PtyModem::path`].
    pub fn spawn(self, card: SharedCard, options: AtOptions) -> io::Result<AtHandle> {
        FrontendHandle::spawn("iotsafe-at-pty", move |stop| {
            self.serve(card, options, &stop)
        })
    }
}

/// The (non-blocking) pty master with reads that time out, so the modem loop sees its stop flag,
/// and writes that give up on a host that stopped reading: after `write_timeout` the answer is
/// dropped, as a serial line overflows, and so is every answer after it that does not fit at
/// once, until the host reads again. The modem is never stuck for longer than one timeout.
struct PolledFile {
    file: File,
    poll_interval: Duration,
    write_timeout: Duration,
    overflowing: bool,
}

impl PolledFile {
    /// Waits up to `timeout` for `events`; true when ready.
    fn wait(&self, events: PollFlags, timeout: Duration) -> io::Result<bool> {
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.file.as_fd(), events)];
        Ok(poll(&mut fds, PollTimeout::from(millis)).map_err(io::Error::from)? > 0)
    }
}

impl Read for PolledFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.wait(PollFlags::POLLIN, self.poll_interval)? {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.file.read(buf)
    }
}

impl Write for PolledFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let deadline = std::time::Instant::now() + self.write_timeout;
        loop {
            match self.file.write(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if self.overflowing || left.is_zero() {
                        if !self.overflowing {
                            tracing::warn!("host is not reading; answers dropped until it does");
                        }
                        self.overflowing = true;
                        return Ok(buf.len());
                    }
                    self.wait(PollFlags::POLLOUT, left.min(self.poll_interval))?;
                }
                Ok(n) => {
                    self.overflowing = false;
                    return Ok(n);
                }
                Err(err) => return Err(err),
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
