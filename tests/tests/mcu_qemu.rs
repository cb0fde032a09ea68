//! The Cortex-M firmware (`examples/mcu`) on QEMU's `mps2-an386` board, its modem UART (UART0)
//! connected over TCP to the virtual card's AT modem through a relay in this test that records
//! every byte each way. The firmware must open a logical channel, SELECT the IoT SAFE applet on
//! it with 9000, close the channel, and exit 0; the relay's transcript is the independent witness
//! of what crossed the UART, and its byte counts must equal the firmware's own.
//!
//! Also reported (not asserted against a budget): the firmware's flash and static RAM from its
//! ELF sections, the heap high-water mark, and the UART bytes each way.
//!
//! Skipped with a printed reason where `qemu-system-arm` or the Rust target is missing, unless
//! `IOTSAFE_REQUIRE_SERVICES=1` (then it fails).
#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iotsafe_tests::{have_program, provisioned, service};
use iotsafe_vcard::frontend::at::AtOptions as ModemOptions;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::CardOptions;
use object::{Object, ObjectSection, SectionKind};

const QEMU: &str = "qemu-system-arm";
const MACHINE: &str = "mps2-an386";
const TARGET: &str = "thumbv7em-none-eabihf";
/// Where the firmware's RAM starts (`examples/mcu/memory.x`); below it is code ("flash").
const RAM_ORIGIN: u64 = 0x2000_0000;
/// A cold build downloads and compiles the embedded crates.
const BUILD_DEADLINE: Duration = Duration::from_secs(600);
/// The run takes well under a second; the firmware's own AT deadline is 5 s per command.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mcu")
}

/// Whether the Rust standard library for `TARGET` is installed in rustc's sysroot.
fn rust_target_installed() -> bool {
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
fn run_bounded(
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
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `cargo build --release` of the firmware in its own workspace and target directory, without
/// the host build's flags; it must build without warnings. Returns the ELF.
fn build_firmware(dir: &Path) -> PathBuf {
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
    fw.join("target").join(TARGET).join("release/iotsafe-mcu")
}

/// Bytes that crossed the relay in one direction.
type Transcript = Arc<Mutex<Vec<u8>>>;

/// A TCP relay between QEMU's UART (which connects to it) and the modem, recording both ways.
struct Relay {
    port: u16,
    to_modem: Transcript,
    to_board: Transcript,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Relay {
    fn start(modem: std::net::SocketAddr) -> Relay {
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
    fn finish(self) -> (Vec<u8>, Vec<u8>) {
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
fn pump(
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
fn field(output: &str, prefix: &str, key: &str) -> u64 {
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
fn flash_and_ram(elf: &Path) -> (u64, u64) {
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

/// Lines of a transcript, split at CR and LF, without empty ones.
fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn firmware_in_qemu_selects_the_applet_over_the_modem_uart() {
    if !(service(have_program(QEMU), QEMU)
        && service(
            rust_target_installed(),
            &format!("the Rust target {TARGET}"),
        ))
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let elf = build_firmware(dir.path());
    let (flash, ram) = flash_and_ram(&elf);

    let (_, card) = provisioned(dir.path(), CardOptions::default());
    let tcp = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let modem_addr = tcp.local_addr().expect("modem address");
    let modem = tcp
        .spawn(Arc::new(Mutex::new(card)), ModemOptions::default())
        .expect("start the modem");
    let relay = Relay::start(modem_addr);

    let mut qemu = Command::new(QEMU);
    qemu.args(["-M", MACHINE, "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-serial")
        .arg(format!("tcp:127.0.0.1:{},nodelay=on", relay.port))
        .arg("-kernel")
        .arg(&elf);
    let (status, out, err) = run_bounded(qemu, "qemu", dir.path(), RUN_DEADLINE);
    let (to_modem, to_board) = relay.finish();
    modem.stop().expect("stop the modem");
    let context = format!(
        "QEMU {status}\nfirmware output:\n{out}\nQEMU stderr:\n{err}\nto the modem: {:?}\n\
         to the board: {:?}",
        String::from_utf8_lossy(&to_modem),
        String::from_utf8_lossy(&to_board)
    );

    assert_eq!(status.code(), Some(0), "{context}");
    assert!(out.contains("result: ok"), "{context}");

    // What crossed the UART, as the relay saw it: the commands, in order, and the card's answers.
    let answers: Vec<String> = lines(&to_board)
        .into_iter()
        .filter(|l| l.starts_with("+CSIM:"))
        .collect();
    let [open, select, close] = answers.as_slice() else {
        panic!("expected three +CSIM answers\n{context}");
    };
    let channel = open
        .strip_prefix("+CSIM: 6,\"")
        .and_then(|rest| rest.strip_suffix("9000\""))
        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("MANAGE CHANNEL answer {open:?}\n{context}"));
    assert!((1..=3).contains(&channel), "channel {channel}\n{context}");
    let select_apdu = format!("0{channel}A4040007A0000005590010");
    let close_apdu = format!("007080{channel:02X}");
    assert_eq!(
        lines(&to_modem),
        [
            "ATE0".to_owned(),
            "AT".to_owned(),
            "AT+CSIM=10,\"0070000001\"".to_owned(),
            format!("AT+CSIM=24,\"{select_apdu}\""),
            format!("AT+CSIM=8,\"{close_apdu}\""),
        ],
        "{context}"
    );
    assert_eq!(select, "+CSIM: 4,\"9000\"", "{context}");
    assert_eq!(close, "+CSIM: 4,\"9000\"", "{context}");
    assert!(
        out.contains(&format!("result: ok channel={channel} sw=9000")),
        "{context}"
    );

    // The firmware counted the same bytes as the relay, but for the LF that ends the modem's
    // last answer: its AT layer takes a line as ended at the CR and the program exits then
    // (an LF left over from an earlier answer is read, as an empty line, by the next command).
    let (tx, rx) = (field(&out, "uart", "tx"), field(&out, "uart", "rx"));
    assert_eq!(tx, to_modem.len() as u64, "UART bytes out\n{context}");
    assert!(to_board.ends_with(b"OK\r\n"), "{context}");
    assert_eq!(rx + 1, to_board.len() as u64, "UART bytes in\n{context}");

    let heap_size = field(&out, "heap", "size");
    let peak = field(&out, "heap", "peak");
    let peak_allocator = field(&out, "heap", "peak_allocator");
    assert!(
        0 < peak && peak <= peak_allocator && peak_allocator <= heap_size,
        "heap counts\n{context}"
    );
    assert!(
        ram >= heap_size,
        "static RAM {ram} holds the {heap_size}-byte heap"
    );
    assert_eq!(
        field(&out, "heap", "in_use"),
        0,
        "heap left in use\n{context}"
    );

    eprintln!(
        "mcu ({MACHINE}, {TARGET}, release): flash {flash} B, static RAM {ram} B (heap \
         {heap_size} B of it), heap peak {peak} B requested / {peak_allocator} B by the \
         allocator, UART {tx} B out / {} B in ({rx} read), {} ms on the firmware clock",
        to_board.len(),
        field(&out, "clock", "elapsed_ms")
    );
}
