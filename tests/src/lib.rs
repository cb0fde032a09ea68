//! Helpers shared by the integration tests: the services the test script started (pcscd), the
//! peers the tests start themselves (the virtual card behind vpcd, openssl s_server, mosquitto),
//! and the rule for when a missing service is a skip or a failure.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// True when the test script asked for every service to be present (`IOTSAFE_REQUIRE_SERVICES=1`):
/// a missing service is then a failure, not a skip.
pub fn services_required() -> bool {
    std::env::var("IOTSAFE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Returns `true` when `available`; otherwise skips (prints why and returns `false`), or panics
/// when services are required.
pub fn service(available: bool, what: &str) -> bool {
    if !available {
        assert!(
            !services_required(),
            "IOTSAFE_REQUIRE_SERVICES=1 but {what} is not available"
        );
        eprintln!(
            "skipped: {what} is not available (set IOTSAFE_REQUIRE_SERVICES=1 to fail instead)"
        );
    }
    available
}

/// Whether pcscd is running (its socket exists).
pub fn pcscd_running() -> bool {
    Path::new("/run/pcscd/pcscd.comm").exists()
}

/// Whether a program is on the PATH.
pub fn have_program(name: &str) -> bool {
    Command::new(name)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The vpcd slot the integration tests plug their card into. Slot 1 (`Virtual PCD 00 01`, port
/// 35964): the vcard's own tests use slot 0, so the two never fight over one reader.
pub const VPCD_SLOT1: &str = "127.0.0.1:35964";
/// The PC/SC name of slot 1.
pub const READER_SLOT1: &str = "Virtual PCD 00 01";

/// Held while a test uses vpcd slot 1: see [`vpcd_slot_lock`].
pub struct VpcdSlotGuard {
    _across_processes: nix::fcntl::Flock<std::fs::File>,
    _in_process: MutexGuard<'static, ()>,
}

/// Serializes the tests that use vpcd slot 1: those of one binary (a mutex) and those of test
/// binaries running at the same time, e.g. two `cargo test` runs on one machine (an exclusive
/// `flock` on a file in the temporary directory, released by the kernel if the process dies).
pub fn vpcd_slot_lock() -> VpcdSlotGuard {
    static SLOT: Mutex<()> = Mutex::new(());
    let in_process = iotsafe_core::lock::lock(&SLOT);
    let path = std::env::temp_dir().join("iotsafe-tests-vpcd-slot1.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let across_processes = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("locking {}: {e}", path.display()));
    VpcdSlotGuard {
        _across_processes: across_processes,
        _in_process: in_process,
    }
}

/// A child process killed (and reaped) when dropped.
pub struct ChildGuard {
    child: Child,
    /// A name for messages.
    pub name: String,
    log: Option<PathBuf>,
}

impl ChildGuard {
    /// Wraps a spawned child.
    pub fn new(child: Child, name: &str, log: Option<PathBuf>) -> Self {
        ChildGuard {
            child,
            name: name.to_owned(),
            log,
        }
    }
    /// The process ID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
    /// What the child wrote to its log file so far.
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
    /// Writes `data` to the child's standard input (when it was started with a pipe there).
    pub fn write_stdin(&mut self, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let stdin = self
            .child
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the child has no stdin pipe"))?;
        stdin.write_all(data)?;
        stdin.flush()
    }
    /// Waits until the child's log contains `needle` (then `true`) or `deadline` passes.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` with stdout and stderr in `log`, and waits until it accepts connections on
/// `addr` (the log is in the panic message if it never does).
pub fn spawn_listening(
    mut command: Command,
    name: &str,
    log: PathBuf,
    addr: SocketAddr,
) -> ChildGuard {
    let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{name} log: {e}"));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("{name} log: {e}"));
    let child = command
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let guard = ChildGuard::new(child, name, Some(log));
    assert!(
        wait_for_port(addr, Duration::from_secs(10)),
        "{name} did not listen on {addr}: {}",
        guard.log()
    );
    guard
}

/// `openssl s_server` as a TLS 1.3 peer that requires a client certificate from `ca_pem`
/// (`-Verify 1 -verify_return_error`), on a free loopback port.
pub fn openssl_server(
    dir: &Path,
    server_pem: &Path,
    server_key: &Path,
    ca_pem: &Path,
) -> (ChildGuard, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .expect("loopback address");
    let log = dir.join(format!("s_server-{port}.log"));
    let mut command = Command::new("openssl");
    command
        .args([
            "s_server",
            "-accept",
            &addr.to_string(),
            "-tls1_3",
            "-naccept",
            "16",
            "-cert",
        ])
        .arg(server_pem)
        .arg("-key")
        .arg(server_key)
        .arg("-CAfile")
        .arg(ca_pem)
        .args(["-Verify", "1", "-verify_return_error"])
        // s_server quits when its stdin closes: keep a pipe open.
        .stdin(Stdio::piped());
    let guard = spawn_listening(command, "openssl s_server", log, addr);
    (guard, addr)
}

/// mosquitto on a free loopback port with mutual TLS 1.3: `require_certificate true`, the client
/// certificate's CN as user name, trusting `ca_pem`.
pub fn mosquitto(
    dir: &Path,
    server_pem: &Path,
    server_key: &Path,
    ca_pem: &Path,
) -> (ChildGuard, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .expect("loopback address");
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    let log = dir.join(format!("mosquitto-{port}.log"));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut text = format!(
        "per_listener_settings false\nallow_anonymous false\nlistener {port} 127.0.0.1\n\
         cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
         use_identity_as_username true\ntls_version tlsv1.3\nlog_dest stderr\nlog_type all\n",
        ca_pem.display(),
        server_pem.display(),
        server_key.display()
    );
    if root {
        // As root mosquitto would drop to user mosquitto before reading the key.
        text.push_str("user root\n");
    }
    std::fs::write(&conf, text).expect("mosquitto config");
    let mut command = Command::new("mosquitto");
    command.arg("-c").arg(&conf);
    let guard = spawn_listening(command, "mosquitto", log, addr);
    (guard, addr)
}

/// Provisions a card state into `dir` (`dir/card.json`, PEM files in `dir/pki`) and opens it as a
/// virtual card with `options`.
pub fn provisioned(
    dir: &Path,
    options: iotsafe_vcard::CardOptions,
) -> (iotsafe_vcard::ProvisionReport, iotsafe_vcard::VirtualCard) {
    let state = dir.join("card.json");
    let report = iotsafe_vcard::provision(&state, &dir.join("pki"), options.clone())
        .expect("provision a card state");
    let card =
        iotsafe_vcard::VirtualCard::open_state(&state, options).expect("open the card state");
    (report, card)
}

/// Sends `command` to an AT modem on TCP from a connection of its own (another host on the same
/// modem) and returns its answer lines (echo left out), up to and including the final result.
pub fn at_command(modem: SocketAddr, command: &str) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(modem).expect("a second AT connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    stream
        .write_all(format!("{command}\r").as_bytes())
        .expect("write the command");
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    loop {
        let mut got = String::new();
        assert!(
            reader.read_line(&mut got).expect("read the answer") > 0,
            "{command}: no answer"
        );
        let text = got.trim();
        if text.is_empty() || text == command {
            continue;
        }
        lines.push(text.to_owned());
        if text == "OK" || text.contains("ERROR") {
            return lines;
        }
    }
}

#[cfg(feature = "pcsc")]
pub mod private_pcscd;
#[cfg(feature = "pcsc")]
pub mod vpcd;

pub mod async_load;
pub mod echo_server;
pub mod est_server;
pub mod handshake;
pub mod workout;
