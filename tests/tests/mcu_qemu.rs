//! The Cortex-M firmware (`examples/mcu`: iotsafe-core built without `std`) on QEMU's
//! `mps2-an386` board, its modem UART (UART0) connected over TCP to the virtual card's AT modem
//! through a relay in this test that records every byte each way. The firmware selects the
//! applet, lists the objects, reads the device certificate, signs a digest, generates an
//! ephemeral key and computes a DH with a fixed peer point, and exits 0. Checked here: the
//! certificate is the card's, the signature verifies with the device key, the DH equals the
//! software ECDH, each step took as many APDUs as the host client takes for it, and the
//! firmware's UART byte counts agree with the relay's.
//!
//! Also reported (not asserted against a budget): the firmware's flash and static RAM from its
//! ELF sections, the heap high-water mark, and the APDUs and UART bytes per step.
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

use iotsafe_core::at::{AtOptions, AtTransport};
use iotsafe_tests::{have_program, provisioned, service};
use iotsafe_vcard::frontend::at::AtOptions as ModemOptions;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::CardOptions;
use object::{Object, ObjectSection, SectionKind};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};

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

/// The value after `key: ` in the firmware's output.
fn value<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key:?} line in the firmware output:\n{output}"))
}

fn unhex(text: &str) -> Vec<u8> {
    iotsafe_core::hexutil::decode(text.trim()).unwrap_or_else(|| panic!("not hex: {text:?}"))
}

/// The message the firmware signs and the peer scalar of its DH (`examples/mcu/src/app.rs`).
const MESSAGE: &[u8] = b"iotsafe-rs on a microcontroller";
const PEER_SCALAR: [u8; 32] = [7; 32];
/// The firmware's steps after opening the session, in order.
const STEPS: [&str; 6] = ["objects", "certificate", "sign", "keygen", "dh", "close"];

/// The host client's APDUs for the firmware's steps, on the same modem: the same AT client and
/// session, on the operating system's TCP port.
fn host_apdus(modem: std::net::SocketAddr) -> Vec<u64> {
    use iotsafe_core::{Card, CardConfig, EcPoint, HashAlgorithm, ObjectRef};
    let transport =
        AtTransport::connect_tcp_with(modem, AtOptions::default()).expect("AT over TCP");
    let card = Card::open(transport, CardConfig::default()).expect("open over TCP");
    let digest = Sha256::digest(MESSAGE);
    let peer = p256::SecretKey::from_slice(&PEER_SCALAR)
        .unwrap()
        .public_key();
    let peer = EcPoint::from_slice(peer.to_encoded_point(false).as_bytes()).unwrap();
    let mut apdus = Vec::new();
    let mut count = |step: &mut dyn FnMut(&Card)| {
        let before = card.stats().apdus;
        step(&card);
        apdus.push(card.stats().apdus - before);
    };
    count(&mut |c| drop(c.objects().unwrap()));
    count(&mut |c| drop(c.read_file(&ObjectRef::id([2])).unwrap()));
    count(&mut |c| {
        drop(
            c.sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &digest)
                .unwrap(),
        )
    });
    let mut key = None;
    count(&mut |c| key = Some(c.generate_ephemeral(&ObjectRef::id([4])).unwrap()));
    let key = key.unwrap();
    count(&mut |c| {
        drop(
            c.ephemeral_agreement(&key, &ObjectRef::id([5]), &peer)
                .unwrap(),
        );
    });
    count(&mut |c| c.close().unwrap());
    apdus
}

#[test]
fn firmware_in_qemu_signs_and_agrees_a_key_on_the_card_over_the_modem_uart() {
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

    let (report, card) = provisioned(dir.path(), CardOptions::default());
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
    let context = format!(
        "QEMU {status}\nfirmware output:\n{out}\nQEMU stderr:\n{err}\nto the modem: {:?}",
        String::from_utf8_lossy(&to_modem),
    );
    assert_eq!(status.code(), Some(0), "{context}");
    assert!(out.contains("result: ok"), "{context}");

    // The results, checked against the card's provisioning and software.
    assert_eq!(
        unhex(value(&out, "certificate")),
        report.device_cert_der,
        "{context}"
    );
    let device = VerifyingKey::from_sec1_bytes(&report.device_public_key).unwrap();
    let signature = Signature::from_slice(&unhex(value(&out, "signature"))).expect("r‖s");
    device
        .verify_prehash(&Sha256::digest(MESSAGE), &signature)
        .expect("the firmware's card signature verifies with the device key");
    let ephemeral = p256::PublicKey::from_sec1_bytes(&unhex(value(&out, "ephemeral"))).unwrap();
    let peer = p256::SecretKey::from_slice(&PEER_SCALAR).unwrap();
    let shared = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), ephemeral.as_affine());
    assert_eq!(
        unhex(value(&out, "dh-sha256")),
        Sha256::digest(shared.raw_secret_bytes()).to_vec(),
        "the card's DH equals software ECDH\n{context}"
    );

    // The same APDUs per step as the host client, on the same modem and card.
    let steps: Vec<(String, u64, u64, u64)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("step: "))
        .map(|l| {
            let name = l.split_whitespace().next().unwrap_or_default().to_owned();
            let line = format!("step: {l}");
            (
                name,
                field(&line, "step", "apdus"),
                field(&line, "step", "tx"),
                field(&line, "step", "rx"),
            )
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).skip(1).collect();
    assert_eq!(names, STEPS, "{context}");
    let firmware: Vec<u64> = steps.iter().skip(1).map(|s| s.1).collect();
    assert_eq!(
        firmware,
        host_apdus(modem_addr),
        "APDUs per step\n{context}"
    );
    modem.stop().expect("stop the modem");

    // The firmware counted the bytes the relay saw; the LF that ends the modem's last answer may
    // still be on the line when the AT client has its answer (it ends a line at the CR).
    let (tx, rx) = (field(&out, "uart", "tx"), field(&out, "uart", "rx"));
    assert_eq!(tx, to_modem.len() as u64, "UART bytes out\n{context}");
    let from_modem = to_board.len() as u64;
    assert!(
        rx == from_modem || (rx + 1 == from_modem && to_board.ends_with(b"\r\n")),
        "UART bytes in: firmware {rx}, relay {from_modem}\n{context}"
    );

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

    let per_step: Vec<String> = steps
        .iter()
        .map(|(name, apdus, tx, rx)| format!("{name} {apdus} APDUs {tx}/{rx} B"))
        .collect();
    eprintln!(
        "mcu ({MACHINE}, {TARGET}, release): flash {flash} B, static RAM {ram} B (heap \
         {heap_size} B of it), heap peak {peak} B requested / {peak_allocator} B by the \
         allocator, UART {tx} B out / {from_modem} B in, {} ms on the firmware clock; per step \
         (APDUs, UART out/in): {}",
        field(&out, "clock", "elapsed_ms"),
        per_step.join(", ")
    );
}
