//! A pcscd of the test's own, which the test may kill and restart without disturbing the shared
//! pcscd the test script started (and stops by PID) or the other tests using it.
//!
//! pcscd 1.9 has its socket and PID file at fixed paths (`/run/pcscd/pcscd.comm`, `pcscd.pid`)
//! and refuses to start while another pcscd owns them. So the private pcscd runs in a mount
//! namespace of its own (`unshare --mount`) where a temporary directory is bind-mounted over
//! `/run/pcscd`: its socket lands in that directory, visible from outside at
//! [`PrivatePcscd::socket`]. Clients reach it with `PCSCLITE_CSOCK_NAME` set to that path
//! (read by libpcsclite once, at the process's first PC/SC call: see
//! [`PrivatePcscd::use_in_this_process`]). Its readers come from a reader.conf directory of its
//! own (`pcscd --config`): one vpcd reader on two free ports, so it never shares vpcd ports with
//! the shared pcscd. Needs root (for the mount namespace); [`PrivatePcscd::unavailable`] says
//! what is missing.

use crate::vpcd::Slot;
use crate::ChildGuard;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The vpcd driver Debian's `vsmartcard-vpcd` package installs.
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// The reader name (before pcscd's ` 00 0N` suffix) the private pcscd gives its vpcd reader.
pub const FRIENDLY_NAME: &str = "iotsafe-rs private vpcd";
/// How long pcscd may take to come up (socket accepting, readers loaded).
const START_DEADLINE: Duration = Duration::from_secs(15);

/// A running (or stopped, between restarts) private pcscd.
pub struct PrivatePcscd {
    dir: tempfile::TempDir,
    /// The vpcd driver's port for slot 0 (slot 1 is the next port).
    port: u16,
    child: Option<ChildGuard>,
    starts: u32,
}

impl PrivatePcscd {
    /// Why a private pcscd cannot run here, or `None` when it can.
    pub fn unavailable() -> Option<String> {
        if !Path::new("/usr/sbin/pcscd").exists() {
            return Some("/usr/sbin/pcscd is not installed (package pcscd)".into());
        }
        if !Path::new(VPCD_DRIVER).exists() {
            return Some(format!(
                "{VPCD_DRIVER} is not installed (package vsmartcard-vpcd)"
            ));
        }
        // `unshare --mount` needs CAP_SYS_ADMIN: root, outside a container that forbids it.
        match Command::new("unshare")
            .args(["--mount", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => None,
            Ok(_) => Some("`unshare --mount` is not permitted (needs root)".into()),
            Err(err) => Some(format!("`unshare` cannot run: {err}")),
        }
    }

    /// Starts a private pcscd with one vpcd reader (two slots) on free ports, and waits until it
    /// accepts clients.
    pub fn start() -> PrivatePcscd {
        let dir = tempfile::tempdir().expect("tempdir for the private pcscd");
        std::fs::create_dir(dir.path().join("run")).expect("run directory");
        std::fs::create_dir(dir.path().join("reader.conf.d")).expect("reader.conf.d directory");
        let port = two_free_ports();
        std::fs::write(
            dir.path().join("reader.conf.d").join("vpcd"),
            format!(
                "FRIENDLYNAME \"{FRIENDLY_NAME}\"\nDEVICENAME   /dev/null:{port}\n\
                 LIBPATH      {VPCD_DRIVER}\nCHANNELID    {port}\n"
            ),
        )
        .expect("reader.conf for vpcd");
        let mut pcscd = PrivatePcscd {
            dir,
            port,
            child: None,
            starts: 0,
        };
        pcscd.spawn();
        pcscd
    }

    /// The socket clients connect to (`PCSCLITE_CSOCK_NAME`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("pcscd.comm")
    }

    /// Points this process's PC/SC calls at the private pcscd. libpcsclite reads
    /// `PCSCLITE_CSOCK_NAME` at the process's first PC/SC call and keeps it, so this must come
    /// before any PC/SC call of the process, and the test binary must not also use the shared
    /// pcscd.
    pub fn use_in_this_process(&self) {
        std::env::set_var("PCSCLITE_CSOCK_NAME", self.socket());
    }

    /// vpcd slot `n` (0 or 1) of the private pcscd.
    pub fn slot(&self, n: u16) -> Slot {
        assert!(n < 2, "vpcd has slots 0 and 1");
        Slot {
            vpcd: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port + n)),
            reader: format!("{FRIENDLY_NAME} 00 {n:02X}"),
        }
    }

    /// The running pcscd's process ID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::id)
    }

    /// How many times pcscd was started (1 after [`PrivatePcscd::start`]).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// What the private pcscd wrote so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pcscd.log")).unwrap_or_default()
    }

    /// Starts pcscd again, on the same socket and vpcd ports, after reaping the previous one
    /// (killed with SIGKILL first if it still runs). A killed pcscd leaves its socket and PID
    /// file behind, as after a real crash; the new one finds its PID dead and replaces them.
    pub fn restart(&mut self) {
        // ChildGuard's drop sends SIGKILL and waits.
        self.child = None;
        self.spawn();
    }

    fn spawn(&mut self) {
        let run = self.dir.path().join("run");
        let conf = self.dir.path().join("reader.conf.d");
        let log = self.dir.path().join("pcscd.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("pcscd log");
        let err = out.try_clone().expect("pcscd log");
        // `unshare` execs the shell, which execs pcscd: the child's PID is pcscd's.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "mkdir -p /run/pcscd && mount --bind \"$1\" /run/pcscd && \
                 exec /usr/sbin/pcscd --foreground --config \"$2\"",
            )
            .arg("sh")
            .arg(&run)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the private pcscd");
        let mut guard = ChildGuard::new(child, "private pcscd", Some(log));
        self.starts += 1;
        let deadline = Instant::now() + START_DEADLINE;
        while UnixStream::connect(self.socket()).is_err() {
            assert!(
                !guard.exited(),
                "the private pcscd exited at start: {}",
                guard.log()
            );
            assert!(
                Instant::now() < deadline,
                "the private pcscd did not accept clients on {:?} within {START_DEADLINE:?}: {}",
                self.socket(),
                guard.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(guard);
    }
}

/// A port `p` such that `p` and `p + 1` are both free (vpcd listens on one port per slot, on all
/// interfaces).
fn two_free_ports() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("a free port");
        let port = first.local_addr().expect("its address").port();
        if port < u16::MAX && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free TCP ports");
}
