//! The `iotsafe-vcard` binary end to end, with the real applet: provision a card, serve it on a
//! pty, on TCP and to a (fake) vpcd driver, talk to it like a host, stop it with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_iotsafe-vcard");
const DEADLINE: Duration = Duration::from_secs(10);

/// A running `iotsafe-vcard serve`; killed if the test fails before stopping it.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start iotsafe-vcard");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Served { child, lines }
    }

    /// Stdout lines up to `ready`.
    fn banner(&mut self) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(line) if line == "ready" => return got,
                Ok(line) => got.push(line),
                Err(e) => panic!(
                    "no `ready` line ({e}); got {got:?}; stderr: {}",
                    self.stderr()
                ),
            }
        }
    }

    fn value(banner: &[String], key: &str) -> String {
        banner
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} line in {banner:?}"))
            .to_owned()
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }

    /// SIGTERM, then the exit status within the deadline.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provisioned(dir: &Path) -> PathBuf {
    let state = dir.join("card.json");
    let pki = dir.join("pki");
    let out = Command::new(BIN)
        .args(["provision", "--state"])
        .arg(&state)
        .arg("--pki-out")
        .arg(&pki)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("device-public-key: "))
        .expect("public key line");
    assert!(key.starts_with("04") && key.len() == 130, "{key}");
    for file in ["ca.pem", "server.pem", "server.key", "device.pem"] {
        assert!(pki.join(file).exists(), "{file}");
    }
    state
}

/// Writes `command` and reads until the final result code.
fn at<S: Read + Write>(port: &mut S, command: &str) -> String {
    port.write_all(command.as_bytes()).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 512];
    while !(got.ends_with(b"OK\r\n") || got.ends_with(b"ERROR\r\n") || {
        let text = String::from_utf8_lossy(&got);
        text.contains("+CME ERROR") && text.ends_with("\r\n")
    }) {
        assert!(
            Instant::now() < deadline,
            "no final result for {command:?}: {got:?}"
        );
        match port.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8(got).unwrap()
}

/// The hex payload of `+CSIM: n,"…"` / `+CGLA: n,"…"`.
fn payload(answer: &str) -> String {
    let start = answer.find('"').expect("quoted payload") + 1;
    let end = answer[start..].find('"').unwrap() + start;
    answer[start..end].to_owned()
}

#[test]
fn serves_the_applet_on_pty_and_tcp_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(dir.path());
    let mut served = Served::start(&[
        "serve",
        "--state",
        state.to_str().unwrap(),
        "--at-pty",
        "--at-tcp",
        "127.0.0.1:0",
    ]);
    let banner = served.banner();
    assert!(!banner.iter().any(|l| l.starts_with("vpcd:")), "{banner:?}");

    // The pty, as a host opens a modem's serial port.
    let path = Served::value(&banner, "pty");
    // Non-blocking, so a missing answer fails the test instead of hanging it.
    let mut pty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits() | nix::fcntl::OFlag::O_NOCTTY.bits())
        .open(&path)
        .unwrap();
    assert_eq!(at(&mut pty, "ATE0\r"), "ATE0\r\r\nOK\r\n");
    assert_eq!(
        at(&mut pty, "AT+CCHO=\"A0000005590010\"\r"),
        "\r\n+CCHO: 1\r\n\r\nOK\r\n"
    );
    // GET RANDOM, 8 bytes, on the session's channel.
    let random = at(&mut pty, "AT+CGLA=1,10,\"8084000008\"\r");
    assert!(random.starts_with("\r\n+CGLA: 20,\""), "{random:?}");
    assert!(payload(&random).ends_with("9000"), "{random:?}");
    assert_eq!(at(&mut pty, "AT+CCHC=1\r"), "\r\nOK\r\n");
    // An AID the card does not have.
    assert_eq!(
        at(&mut pty, "AT+CCHO=\"A0000002480400\"\r"),
        "\r\n+CME ERROR: 22\r\n"
    );

    // TCP: SELECT on the basic channel through AT+CSIM, then GET RANDOM.
    let addr = Served::value(&banner, "at-tcp");
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert_eq!(at(&mut tcp, "ATE0\r\n"), "ATE0\r\r\nOK\r\n");
    assert_eq!(
        at(&mut tcp, "AT+CSIM=24,\"00A4040007A0000005590010\"\r\n"),
        "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n"
    );
    let random = at(&mut tcp, "AT+CSIM= 10,\"8084000004\"\r\n");
    assert!(random.starts_with("\r\n+CSIM: 12,\""), "{random:?}");

    let status = served.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn plugs_into_vpcd_with_the_applets_atr() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut served = Served::start(&[
        "serve",
        "--state",
        state.to_str().unwrap(),
        "--vpcd",
        &addr,
        "--profile",
        "t0",
    ]);
    let banner = served.banner();
    assert_eq!(Served::value(&banner, "vpcd"), addr);

    let (mut vpcd, _) = listener.accept().unwrap();
    vpcd.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut transmit = |payload: &[u8]| -> Vec<u8> {
        let mut frame = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        vpcd.write_all(&frame).unwrap();
        let mut len = [0u8; 2];
        vpcd.read_exact(&mut len).unwrap();
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        vpcd.read_exact(&mut answer).unwrap();
        answer
    };
    let atr = transmit(&[4]);
    assert_eq!(atr[0], 0x3B, "{atr:02X?}");
    assert!(atr.ends_with(b"IoTSAFE0"), "T=0 profile ATR: {atr:02X?}");
    let select = [
        0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
    ];
    assert_eq!(transmit(&select), [0x90, 0x00]);
    // A case 2 command with the right Le: the data, then 9000.
    assert_eq!(transmit(&[0x80, 0x84, 0x00, 0x00, 0x08]).len(), 10);

    let status = served.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn refuses_remote_addresses_and_missing_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(dir.path());
    let out = Command::new(BIN)
        .args([
            "serve",
            "--state",
            state.to_str().unwrap(),
            "--at-tcp",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let out = Command::new(BIN)
        .args([
            "serve",
            "--state",
            state.to_str().unwrap(),
            "--vpcd",
            "192.0.2.1:35963",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let missing = dir.path().join("nope.json");
    let out = Command::new(BIN)
        .args(["serve", "--state", missing.to_str().unwrap(), "--at-pty"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("provision"));

    let out = Command::new(BIN)
        .args(["serve", "--state", "x", "--profile", "t7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn the_binary_with_quirk_flags_two_tcp_hosts_and_planned_drops() {
    let dir = tempfile::tempdir().unwrap();
    let state = provisioned(dir.path());
    let mut served = Served::start(&[
        "serve",
        "--state",
        state.to_str().unwrap(),
        "--at-tcp",
        "127.0.0.1:0",
        "--at-echo-off",
        "--channels",
        "1",
        "--wipe-volatile-on-reset",
        "--at-drop-every",
        "3",
    ]);
    let banner = served.banner();
    let addr = Served::value(&banner, "at-tcp");
    let connect = || {
        let stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        stream
    };
    let mut first = connect();
    assert_eq!(
        at(&mut first, "AT+CCHO=\"A0000005590010\"\r"),
        "\r\n+CCHO: 1\r\n\r\nOK\r\n"
    );
    // One logical channel only (--channels 1): a second open is refused by the card.
    assert_eq!(
        at(&mut first, "AT+CSIM=10,\"0070000001\"\r"),
        "\r\n+CSIM: 4,\"6A81\"\r\n\r\nOK\r\n"
    );
    // A second host resets the SIM while the first stays connected.
    let mut second = connect();
    assert_eq!(at(&mut second, "AT+CFUN=1,1\r"), "\r\nOK\r\n");
    assert_eq!(
        at(&mut first, "AT#CHANNELS?\r"),
        "\r\n#CHANNELS: 0\r\n\r\nOK\r\n"
    );
    // The third card command (over both connections) is answered, then its connection closes.
    assert_eq!(
        at(&mut first, "AT+CCHO=\"A0000005590010\"\r"),
        "\r\n+CCHO: 2\r\n\r\nOK\r\n"
    );
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 16];
    loop {
        match first.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => panic!("unexpected {:?}", &buf[..n]),
            Err(_) => assert!(Instant::now() < deadline, "the connection stayed open"),
        }
    }
    // The next connection takes the session over; the channel stayed open.
    let mut third = connect();
    assert_eq!(
        at(&mut third, "AT#CHANNELS?\r"),
        "\r\n#CHANNELS: 1\r\n\r\nOK\r\n"
    );
    let random = at(&mut third, "AT+CGLA=2,10,\"8084000008\"\r");
    assert!(payload(&random).ends_with("9000"), "{random:?}");
    drop((second, third));
    assert!(served.terminate().success());
}

#[test]
fn provision_with_several_ephemeral_slots_lists_volatile_pairs_04_06_07() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    let provision = |slots: &str| {
        Command::new(BIN)
            .args(["provision", "--ephemeral-slots", slots, "--state"])
            .arg(&state)
            .arg("--pki-out")
            .arg(dir.path().join("pki"))
            .output()
            .unwrap()
    };
    let out = provision("3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = iotsafe_vcard::state::load(&state).unwrap();
    let volatile_ka: Vec<&[u8]> = store
        .private_keys
        .iter()
        .filter(|k| k.attributes.is_volatile() && k.attributes.functions & 0x06 == 0x06)
        .map(|k| &k.id[..])
        .collect();
    assert_eq!(volatile_ka, [&[0x04][..], &[0x06], &[0x07]]);
    for id in [[0x06], [0x07]] {
        assert!(store.public_keys.iter().any(|k| k.id == id), "{id:02X?}");
    }
    let out = provision("9");
    assert!(!out.status.success(), "at most 8 slots");
}
