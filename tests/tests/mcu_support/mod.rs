//! What the QEMU firmware tests share: building the firmware, running QEMU with a deadline, a
//! recording TCP relay between a UART and its peer, and reading the firmware's `key: value`
//! output and ELF sizes.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use object::{Object, ObjectSection, SectionKind};

pub const QEMU: &str = "qemu-system-arm";
pub const MACHINE: &str = "mps2-an386";
pub const TARGET: &str = "thumbv7em-none-eabihf";
/// Where the firmware's RAM starts (`examples/mcu/memory.x`); below it is code ("flash").
pub const RAM_ORIGIN: u64 = 0x2000_0000;
/// A cold build downloads and compiles the embedded crates.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(600);
/// The run takes well under a second; the firmware's own AT deadline is 5 s per command.
pub const RUN_DEADLINE: Duration = Duration::from_secs(60);

pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mcu")
}

/// Whether the Rust standard library for `TARGET` is installed in rustc's sysroot.
pub fn rust_target_installed() -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|sysroot| sysroot.join("lib/rustlib").join(TARGET).is_dir())
}

/// Runs `command` with stdout and stderr in files under `dir`, killing it after `deadline`.
/// Returns its status and output.
pub fn run_bounded(
    mut command: Command,
    name: &str,
    dir: &Path,
    deadline: Duration,
) -> (ExitStatus, String, String) {
    let (out_path, err_path) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    let out = std::fs::File::create(&out_path).expect("stdout file");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let mut child = KillOnDrop(child);
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for a child") {
            break status;
        }
        if Instant::now() >= end {
            let (out, err) = (read(&out_path), read(&err_path));
            panic!(
                "{name} still running after {deadline:?} (killed)\nstdout:\n{out}\nstderr:\n{err}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, read(&out_path), read(&err_path))
}

/// A child process killed and reaped when dropped (a deadline passed or the test panicked).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `cargo build --release` of the firmware in its own workspace and target directory, without
/// the host build's flags; it must build without warnings. Returns the ELF.
pub fn build_firmware(dir: &Path, bin: &str) -> PathBuf {
    let fw = firmware_dir();
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&fw)
        .args(["build", "--release", "--locked", "--target", TARGET])
        .env("CARGO_TARGET_DIR", fw.join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    let (status, _, err) = run_bounded(cargo, "cargo-build-mcu", dir, BUILD_DEADLINE);
    assert!(status.success(), "the firmware did not build:\n{err}");
    // Cargo's summary of the crate's own compiler warnings (replayed on a build with nothing to
    // do), not its other notices such as a retried download.
    assert!(
        !err.lines()
            .any(|l| l.starts_with("warning: `iotsafe-mcu`") && l.contains("generated")),
        "the firmware built with warnings:\n{err}"
    );
    fw.join("target").join(TARGET).join("release").join(bin)
}

/// Bytes that crossed the relay in one direction.
pub type Transcript = Arc<Mutex<Vec<u8>>>;

/// A TCP relay between QEMU's UART (which connects to it) and the modem, recording both ways.
pub struct Relay {
    /// The port QEMU connects to.
    pub port: u16,
    to_modem: Transcript,
    to_board: Transcript,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Relay {
    pub fn start(modem: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let port = listener.local_addr().expect("relay address").port();
        let (to_modem, to_board) = (Transcript::default(), Transcript::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (up, down, flag) = (to_modem.clone(), to_board.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let board = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if flag.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("relay accept: {e}"),
                }
            };
            let modem = TcpStream::connect(modem).expect("the relay reaches the modem");
            let pumps = [
                pump(&board, &modem, up, flag.clone()),
                pump(&modem, &board, down, flag),
            ];
            for p in pumps {
                p.join().expect("a relay pump");
            }
        });
        Relay {
            port,
            to_modem,
            to_board,
            stop,
            thread,
        }
    }

    /// Waits (boundedly) for both directions to reach end of stream, then returns the
    /// transcripts (to the modem, to the board).
    pub fn finish(self) -> (Vec<u8>, Vec<u8>) {
        let end = Instant::now() + Duration::from_secs(5);
        while !self.thread.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the relay");
        let take = |t: &Transcript| t.lock().unwrap().clone();
        (take(&self.to_modem), take(&self.to_board))
    }
}

/// Copies `from` to `to` on a thread of its own until end of stream or `stop`, recording every
/// byte; then passes the end of stream on.
pub fn pump(
    from: &TcpStream,
    to: &TcpStream,
    record: Transcript,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    to.set_nodelay(true).unwrap();
    let run = move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    };
    std::thread::spawn(run)
}

/// The value of `key=` in the firmware's line starting with `prefix:`.
pub fn field(output: &str, prefix: &str, key: &str) -> u64 {
    let line = output
        .lines()
        .find(|l| l.starts_with(&format!("{prefix}: ")))
        .unwrap_or_else(|| panic!("no {prefix:?} line in the firmware output:\n{output}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Flash (code, read-only data and the initial values of `.data`) and static RAM (`.data`,
/// `.bss`, `.uninit`: the heap array included) from the ELF's allocated sections.
pub fn flash_and_ram(elf: &Path) -> (u64, u64) {
    let bytes = std::fs::read(elf).expect("read the firmware ELF");
    let file = object::File::parse(&*bytes).expect("parse the firmware ELF");
    let (mut flash, mut ram) = (0, 0);
    for section in file.sections() {
        let allocated = matches!(section.flags(),
            object::SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0);
        if !allocated {
            continue;
        }
        if section.kind() == SectionKind::UninitializedData {
            ram += section.size();
        } else if section.address() >= RAM_ORIGIN {
            ram += section.size();
            flash += section.size();
        } else {
            flash += section.size();
        }
    }
    (flash, ram)
}

/// The value after `key: ` in the firmware's output.
pub fn value<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key:?} line in the firmware output:\n{output}"))
}

pub fn unhex(text: &str) -> Vec<u8> {
    iotsafe_core::hexutil::decode(text.trim()).unwrap_or_else(|| panic!("not hex: {text:?}"))
}

/// The firmware's stack high-water mark (`stack: peak=… past_window=false`); fails when the
/// stack went past the painted window (the number would only be a lower bound).
pub fn stack_peak(output: &str, context: &str) -> u64 {
    assert!(
        output.contains("past_window=false"),
        "the stack stayed inside the painted window\n{output}\n{context}"
    );
    let peak = field(output, "stack", "peak");
    assert!(peak > 0, "{output}");
    peak
}
