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

use super::at::{AtHandle, AtModem, AtOptions, SharedModem};
use super::{FrontendHandle, SharedCard};

/// A pty pair whose master side is the modem. The slave side stays open here too, so the master
/// does not read end-of-file (EIO) while no host has the device open, and a host may close and
/// reopen the device as often as it likes.
///
/// When the modem drops the connection on purpose ([`AtOptions::drop_every`], a USB modem that
/// re-enumerates), the pty is hung up: both sides are closed here, so the host's reads and writes
/// fail, and a new pty is opened. The kernel picks its `/dev/pts/N`, usually another number; a pty
/// opened with [`PtyModem::open_linked`] keeps a symlink (like a udev `/dev/serial/by-id` name)
/// pointing at the current device, which the host re-opens. The SIM keeps its state across the
/// hang-up, and the new connection takes over the `AT+CCHO` sessions.
pub struct PtyModem {
    pty: Pty,
    link: Option<Link>,
    modem: SharedModem,
}

/// One pty pair.
struct Pty {
    master: File,
    slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    /// Opens a pty pair in raw mode (no echo, no line editing, no CR/LF translation: the bytes a
    /// host writes are the bytes the modem reads, as on a serial line).
    fn open() -> io::Result<Pty> {
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
        Ok(Pty {
            master: File::from(pty.master),
            slave: pty.slave,
            path,
        })
    }
}

/// A symlink to the current pty device, removed when the modem ends.
struct Link {
    path: PathBuf,
}

impl Link {
    /// Points `path` at `target`, replacing an older symlink atomically; refuses to replace
    /// anything that is not a symlink.
    fn point(path: &Path, target: &Path) -> io::Result<Link> {
        Link::repoint(path, target)?;
        Ok(Link {
            path: path.to_path_buf(),
        })
    }

    /// Points `path` at `target` (see [`Link::point`]) without taking charge of removing it.
    fn repoint(path: &Path, target: &Path) -> io::Result<()> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_symlink() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a symlink", path.display()),
                ));
            }
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pty".to_owned());
        let temp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        std::os::unix::fs::symlink(target, &temp)?;
        if let Err(err) = std::fs::rename(&temp, path) {
            let _ = std::fs::remove_file(&temp);
            return Err(err);
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl PtyModem {
    /// Opens a pty pair in raw mode (no echo, no line editing, no CR/LF translation: the bytes a
    /// host writes are the bytes the modem reads, as on a serial line).
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            pty: Pty::open()?,
            link: None,
            modem: SharedModem::new(),
        })
    }

    /// Like [`PtyModem::open`], and makes `link` a symlink to the device node that follows the pty
    /// when it is re-created after a planned hang-up. An existing symlink at `link` is replaced;
    /// any other file there is an error. The symlink is removed when the modem ends.
    pub fn open_linked(link: &Path) -> io::Result<Self> {
        let mut modem = Self::open()?;
        modem.link = Some(Link::point(link, &modem.pty.path)?);
        Ok(modem)
    }

    /// The device node a host opens, e.g. `/dev/pts/3` (the first one, when the pty gets
    /// re-created).
    pub fn path(&self) -> &Path {
        &self.pty.path
    }

    /// The stable symlink, if opened with [`PtyModem::open_linked`].
    pub fn link(&self) -> Option<&Path> {
        self.link.as_ref().map(|l| l.path.as_path())
    }

    /// Serves the modem on this thread until `stop` is raised (re-creating the pty after each
    /// planned hang-up).
    pub fn serve(self, card: SharedCard, options: AtOptions, stop: &AtomicBool) -> io::Result<()> {
        let PtyModem {
            mut pty,
            link,
            modem,
        } = self;
        let link_path = link.as_ref().map(|l| l.path.clone());
        // Kept until the end, so the symlink is removed when the modem stops.
        let _link = link;
        loop {
            let Pty {
                master,
                slave,
                path,
            } = pty;
            let mut port = PolledFile {
                file: master,
                poll_interval: options.poll_interval,
                write_timeout: options.write_timeout,
                overflowing: false,
            };
            let mut at = AtModem::attached(card.clone(), options.clone(), &modem);
            let result = at.serve(&mut port, stop);
            at.finish(stop);
            if !at.hung_up() || stop.load(std::sync::atomic::Ordering::Relaxed) {
                return result;
            }
            // An answer written before the drop is the host's: let it read it first (bounded).
            wait_until_read(&slave, options.write_timeout, stop);
            // Hang up: both sides go, as a USB device that disappears.
            drop(port);
            drop(slave);
            tracing::info!(old = %path.display(), "pty hung up (planned drop)");
            pty = Pty::open()?;
            if let Some(link) = &link_path {
                Link::repoint(link, &pty.path)?;
            }
            tracing::info!(path = %pty.path.display(), "pty re-created");
        }
    }

    /// Serves the modem on a background thread. Read the device path first with
    /// [`PtyModem::path`] (or [`PtyModem::link`]).
    pub fn spawn(self, card: SharedCard, options: AtOptions) -> io::Result<AtHandle> {
        FrontendHandle::spawn("iotsafe-at-pty", move |stop| {
            self.serve(card, options, &stop)
        })
    }
}

/// Waits (up to `limit`, or until `stop`) until the host has read everything written to it: our own
/// slave descriptor stops polling readable. Closing the master earlier would throw the last answer
/// away.
fn wait_until_read(slave: &OwnedFd, limit: Duration, stop: &AtomicBool) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut fds = [PollFd::new(slave.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return,
        }
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
