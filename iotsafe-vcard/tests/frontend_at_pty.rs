//! The AT modem emulation over a REAL pseudo-terminal: the modem runs on the master side in a
//! thread; the test opens the `/dev/pts/N` device node like a host opens a modem's serial port, and
//! checks every byte that comes back.

mod frontend_support;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frontend_support::{TestCard, INS_STALL, STALL};
use iotsafe_vcard::frontend::at::{AtFault, AtHandle, AtInjection, AtOptions, UrcPlan};
use iotsafe_vcard::frontend::pty::PtyModem;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// How long a test waits for an answer that must come.
const DEADLINE: Duration = Duration::from_secs(5);

/// The host side: the pty's device node, opened as a file.
struct Host {
    port: File,
}

impl Host {
    fn open(path: &Path) -> Host {
        let port = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Host { port }
    }

    fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes());
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        self.port.write_all(bytes).unwrap();
        self.port.flush().unwrap();
    }

    /// Reads whatever arrives within `within` (stops early once `want` bytes came).
    fn read_for(&mut self, within: Duration, want: usize) -> Vec<u8> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while got.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.port.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(millis)).unwrap() == 0 {
                break;
            }
            let mut buf = [0u8; 4096];
            let n = self.port.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// Reads until the text ends with `suffix` (or the deadline passes).
    fn read_until(&mut self, suffix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut got = Vec::new();
        while !got.ends_with(suffix.as_bytes()) && Instant::now() < deadline {
            got.extend(self.read_for(Duration::from_millis(50), usize::MAX));
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Sends `command` and checks the exact bytes answered (and that nothing else follows).
    fn exchange(&mut self, command: &str, answer: &str) {
        self.send(command);
        self.expect(answer);
    }

    fn expect(&mut self, answer: &str) {
        let got = self.read_for(DEADLINE, answer.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            answer,
            "answer to the last command"
        );
        let extra = self.read_for(Duration::from_millis(30), usize::MAX);
        assert!(
            extra.is_empty(),
            "unexpected extra bytes {:?}",
            String::from_utf8_lossy(&extra)
        );
    }

    /// Checks that nothing at all comes back within `within`.
    fn expect_silence(&mut self, within: Duration) {
        let got = self.read_for(within, usize::MAX);
        assert!(
            got.is_empty(),
            "expected silence, got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// A modem on a fresh pty, and the host side opened on its device node.
fn start(options: AtOptions) -> (AtHandle, Host, Arc<Mutex<TestCard>>) {
    let (handle, host, card, _) = start_at(options);
    (handle, host, card)
}

/// Like [`start`], and also the device path.
fn start_at(options: AtOptions) -> (AtHandle, Host, Arc<Mutex<TestCard>>, PathBuf) {
    let (shared, card) = TestCard::shared();
    let pty = PtyModem::open().expect("openpty");
    let path = pty.path().to_owned();
    assert!(path.starts_with("/dev/pts/"), "{}", path.display());
    let handle = pty.spawn(shared, options).expect("spawn modem");
    let host = Host::open(&path);
    (handle, host, card, path)
}

#[test]
fn echo_is_on_until_ate0() {
    let (handle, mut host, _) = start(AtOptions::default());
    host.exchange("AT\r", "AT\r\r\nOK\r\n");
    host.exchange("ATE0\r\n", "ATE0\r\r\nOK\r\n");
    host.exchange("AT\r\n", "\r\nOK\r\n");
    host.exchange("AT\n", "\r\nOK\r\n");
    host.exchange("ATE1\r", "\r\nOK\r\n");
    host.exchange("AT\r", "AT\r\r\nOK\r\n");
    handle.stop().unwrap();
}

#[test]
fn csim_exact_bytes_and_lenient_forms() {
    let (handle, mut host, card) = start(AtOptions::default());
    host.exchange("ATE0\r", "ATE0\r\r\nOK\r\n");
    // Orange's trace: MANAGE CHANNEL open answered `+CSIM: 6,"019000"`.
    host.exchange(
        "AT+CSIM=10,\"0070000001\"\r\n",
        "\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n",
    );
    // wolfSSL's width-3 length with a leading space, CLA 01 SELECT.
    host.exchange(
        "AT+CSIM= 24,\"01A4040007A0000005590010\"\r\n",
        "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n",
    );
    // atsign's space after the comma, lower-case hex; the answer is upper case.
    host.exchange(
        "AT+CSIM=14, \"81cb0000 02abcd\"\r",
        "\r\nERROR\r\n", // a space inside the hex is malformed
    );
    host.exchange(
        "AT+CSIM=14, \"81cb000002abcd\"\r",
        "\r\n+CSIM: 10,\"81ABCD9000\"\r\n\r\nOK\r\n",
    );
    host.exchange("at+csim=?\r", "\r\nOK\r\n");
    let apdus = card.lock().unwrap().apdus();
    assert_eq!(
        apdus,
        vec![
            vec![0x00, 0x70, 0x00, 0x00, 0x01],
            vec![0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10],
            vec![0x81, 0xCB, 0x00, 0x00, 0x02, 0xAB, 0xCD],
        ]
    );
    handle.stop().unwrap();
}

#[test]
fn malformed_and_unknown_commands_are_error() {
    let (handle, mut host, card) = start(AtOptions::default());
    host.exchange("ATE0\r", "ATE0\r\r\nOK\r\n");
    for bad in [
        "AT+CSIM=8,\"0070000001\"\r",  // length is not the hex length
        "AT+CSIM=9,\"007000000\"\r",   // odd hex
        "AT+CSIM=10,\"00700000ZZ\"\r", // not hex
        "AT+CSIM=10,\"0070000001\r",   // unbalanced quote
        "AT+CSIM=0,\"\"\r",            // empty APDU
        "AT+CSIM\r",
        "AT+CGLA=1,4\r",
        "AT+CCHO=\"\"\r",
        "AT+COPS?\r", // unknown
        "HELLO\r",    // not AT at all
        "AT+CSIM=10,\"0070000001\";+CSIM=10,\"0070000001\"\r",
    ] {
        host.exchange(bad, "\r\nERROR\r\n");
    }
    // A line longer than 8 KiB: ERROR, and the modem keeps working.
    let long = format!("AT+CSIM=20000,\"{}\"\r", "00".repeat(10_000));
    host.exchange(&long, "\r\nERROR\r\n");
    host.exchange("AT\r", "\r\nOK\r\n");
    assert!(
        card.lock().unwrap().apdus().is_empty(),
        "nothing malformed reached the card"
    );
    handle.stop().unwrap();
}

#[test]
fn logical_channels_ccho_cgla_cchc() {
    let (handle, mut host, card) = start(AtOptions::default());
    host.exchange("ATE0\r", "ATE0\r\r\nOK\r\n");
    host.exchange("AT+CCHO=\"A0000005590010\"\r", "\r\n+CCHO: 1\r\n\r\nOK\r\n");
    host.exchange("AT+CCHO=\"A0000002480400\"\r", "\r\n+CCHO: 2\r\n\r\nOK\r\n");
    // NTT's form: the host writes CLA 00, the modem puts the channel in.
    host.exchange(
        "AT+CGLA=2,12,\"002A000101FF\"\r",
        "\r\n+CGLA: 8,\"02FF9000\"\r\n\r\nOK\r\n",
    );
    // The proprietary class bit is kept: 80 on channel 1 is 81.
    host.exchange(
        "AT+CGLA=1, 10, \"80cb000000\"\r",
        "\r\n+CGLA: 6,\"819000\"\r\n\r\nOK\r\n",
    );
    host.exchange("AT+CGLA=9,10,\"00CB000000\"\r", "\r\n+CME ERROR: 21\r\n");
    host.exchange("AT+CCHC=1\r", "\r\nOK\r\n");
    host.exchange("AT+CCHC=1\r", "\r\n+CME ERROR: 21\r\n");
    // An application the card does not have: not found, and the channel is closed again.
    host.exchange("AT+CCHO=\"EE00000000\"\r", "\r\n+CME ERROR: 22\r\n");
    host.exchange("AT+CCHC=2\r", "\r\nOK\r\n");
    let apdus = card.lock().unwrap().apdus();
    let hex: Vec<String> = apdus.iter().map(|a| hex(a)).collect();
    assert_eq!(
        hex,
        [
            "0070000001",
            "01A4040007A0000005590010",
            "0070000001",
            "02A4040007A0000002480400",
            "022A000101FF",
            "81CB000000",
            "00708001",
            "0070000001",
            "01A4040005EE00000000",
            "00708001",
            "00708002",
        ]
        .map(str::to_owned)
    );
    handle.stop().unwrap();
}

#[test]
fn channels_above_three_use_the_further_class() {
    let (handle, mut host, card) = start(AtOptions::default());
    host.exchange("ATE0\r", "ATE0\r\r\nOK\r\n");
    for id in 1..=5 {
        host.exchange(
            "AT+CCHO=\"A0000005590010\"\r",
            &format!("\r\n+CCHO: {id}\r\n\r\nOK\r\n"),
        );
    }
    // Session 5 is channel 5: CLA 41 (interindustry) or C1 (proprietary).
    host.exchange(
        "AT+CGLA=5,10,\"00CB000000\"\r",
        "\r\n+CGLA: 6,\"419000\"\r\n\r\nOK\r\n",
    );
    host.exchange(
        "AT+CGLA=5,10,\"81CB000000\"\r",
        "\r\n+CGLA: 6,\"C19000\"\r\n\r\nOK\r\n",
    );
    let apdus = card.lock().unwrap().apdus();
    assert_eq!(
        hex(&apdus[9]),
        "41A4040007A0000005590010",
        "SELECT on channel 5"
    );
    handle.stop().unwrap();
}

#[test]
fn modem_without_cgla_or_csim() {
    let (handle, mut host, card) = start(AtOptions {
        cgla: false,
        ..AtOptions::default()
    });
    host.exchange("ATE0\r", "ATE0\r\r\nOK\r\n");
    host.exchange("AT+CCHO=\"A0000005590010\"\r", "\r\nERROR\r\n");
    host.exchange("AT+CCHO=?\r", "\r\nERROR\r\n");
    host.exchange(
        "AT+CSIM=10,\"0070000001\"\r",
        "\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n",
    );
    handle.stop().unwrap();
    assert_eq!(card.lock().unwrap().apdus().len(), 1);

    let (handle, mut host, _) = start(AtOptions {
        csim: false,
        ..AtOptions::default()
    });
    host.exchange("ATE0\r", "ATE0\r\r\nOK\r\n");
    host.exchange("AT+CSIM=10,\"0070000001\"\r", "\r\nERROR\r\n");
    host.exchange("AT+CCHO=\"A0000005590010\"\r", "\r\n+CCHO: 1\r\n\r\nOK\r\n");
    handle.stop().unwrap();
}

#[test]
fn injected_faults_at_the_nth_card_command() {
    let csim = "AT+CSIM=10,\"00CA000000\"\r";
    let ok = "\r\n+CSIM: 6,\"009000\"\r\n\r\nOK\r\n";
    for (fault, answer) in [
        (AtFault::Error, Some("\r\nERROR\r\n".to_owned())),
        (
            AtFault::CmeError(14),
            Some("\r\n+CME ERROR: 14\r\n".to_owned()),
        ),
        (AtFault::Silence, None),
    ] {
        let (handle, mut host, card) = start(AtOptions {
            echo: false,
            inject: Some(AtInjection::once(fault.clone(), 2)),
            ..AtOptions::default()
        });
        host.exchange(csim, ok);
        host.send(csim);
        match answer {
            Some(answer) => host.expect(&answer),
            None => host.expect_silence(Duration::from_millis(300)),
        }
        host.exchange(csim, ok);
        assert_eq!(
            card.lock().unwrap().apdus().len(),
            2,
            "{fault:?}: faulted APDU not forwarded"
        );
        handle.stop().unwrap();
    }

    // Garbage: a junk line instead of `+CSIM:`, then OK.
    let (handle, mut host, _) = start(AtOptions {
        echo: false,
        inject: Some(AtInjection {
            fault: AtFault::Garbage,
            at: 1,
            every: Some(2),
        }),
        ..AtOptions::default()
    });
    for round in 0..2 {
        host.send(csim);
        let got = host.read_until("\r\nOK\r\n");
        let lines: Vec<&str> = got.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2, "round {round}: {got:?}");
        assert!(
            lines[0].starts_with('~') && !lines[0].contains("CSIM"),
            "{got:?}"
        );
        assert_eq!(lines[1], "OK");
        host.exchange(csim, ok);
    }
    handle.stop().unwrap();
}

#[test]
fn unsolicited_result_codes_come_before_answers() {
    let (handle, mut host, _) = start(AtOptions {
        echo: false,
        urc: Some(UrcPlan {
            every: 2,
            lines: vec!["+CREG: 1".to_owned(), "RING".to_owned()],
        }),
        ..AtOptions::default()
    });
    host.exchange("AT\r", "\r\nOK\r\n");
    host.exchange(
        "AT+CSIM=4,\"0000\"\r",
        "\r\n+CREG: 1\r\n\r\n+CSIM: 6,\"009000\"\r\n\r\nOK\r\n",
    );
    host.exchange("AT\r", "\r\nOK\r\n");
    host.exchange("AT\r", "\r\nRING\r\n\r\nOK\r\n");
    handle.stop().unwrap();
}

#[test]
fn card_removal_is_sim_failure_and_stall_is_slow() {
    let (handle, mut host, card) = start(AtOptions {
        echo: false,
        ..AtOptions::default()
    });
    host.exchange("AT+CCHO=\"A0000005590010\"\r", "\r\n+CCHO: 1\r\n\r\nOK\r\n");
    host.exchange("AT+CSIM=8,\"00DD0000\"\r", "\r\n+CME ERROR: 13\r\n");
    // The channels went with the SIM.
    host.exchange("AT+CGLA=1,10,\"00CB000000\"\r", "\r\n+CME ERROR: 21\r\n");
    // The next command finds the SIM again.
    host.exchange("AT+CCHO=\"A0000005590010\"\r", "\r\n+CCHO: 2\r\n\r\nOK\r\n");

    let started = Instant::now();
    host.exchange(
        &format!("AT+CSIM=8,\"00{INS_STALL:02X}0000\"\r"),
        "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n",
    );
    assert!(started.elapsed() >= STALL, "the stall was acted out");
    use frontend_support::Event::*;
    let power: Vec<_> = card
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|e| !matches!(e, Apdu(_)))
        .cloned()
        .collect();
    assert_eq!(power, [PowerOn, PowerOff, PowerOn]);
    handle.stop().unwrap();
}

#[test]
fn host_may_close_and_reopen_the_device() {
    let (handle, mut host, _, path) = start_at(AtOptions::default());
    host.exchange("ATE0\r", "ATE0\r\r\nOK\r\n");
    drop(host);
    let mut host = Host::open(&path);
    host.exchange("AT\r", "\r\nOK\r\n");
    handle.stop().unwrap();
}

#[test]
fn random_bytes_never_kill_the_modem() {
    let (handle, mut host, _) = start(AtOptions {
        echo: false,
        ..AtOptions::default()
    });
    // Deterministic noise with line ends sprinkled in.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = Vec::new();
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.push(match state % 50 {
            0 => b'\r',
            1 => b'\n',
            _ => (state >> 8) as u8,
        });
    }
    noise.push(b'\r');
    // In chunks, draining the answers in between: a host that writes without reading would fill
    // the pty's buffers both ways. Every answer to noise is ERROR.
    let mut answers = Vec::new();
    for chunk in noise.chunks(512) {
        host.send_bytes(chunk);
        answers.extend(host.read_for(Duration::from_millis(20), usize::MAX));
    }
    answers.extend(host.read_for(Duration::from_millis(300), usize::MAX));
    let text = String::from_utf8_lossy(&answers).replace("\r\nERROR\r\n", "");
    assert!(text.is_empty(), "only ERROR answers expected, got {text:?}");
    host.exchange("AT\r", "\r\nOK\r\n");
    assert!(!handle.is_finished());
    handle.stop().unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn a_host_that_never_reads_cannot_block_the_modem() {
    let (handle, mut host, _) = start(AtOptions {
        write_timeout: Duration::from_millis(200),
        ..AtOptions::default()
    });
    // Far more answers than the pty buffers hold, and the host reads none of them.
    for _ in 0..100 {
        host.send(&"AT\r".repeat(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Drain what was kept; then the modem answers again.
    while !host
        .read_for(Duration::from_millis(100), usize::MAX)
        .is_empty()
    {}
    host.exchange("AT\r", "AT\r\r\nOK\r\n");
    let started = Instant::now();
    handle.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_pty_modem_charges_its_uart_too() {
    use iotsafe_vcard::{CardOptions, Latency, SerialLink, VirtualCard};
    let link = SerialLink::new(9_600).unwrap();
    let card = VirtualCard::with_default_layout(CardOptions {
        latency: Latency {
            serial: Some(link),
            ..Latency::none()
        },
        ..CardOptions::default()
    });
    let pty = PtyModem::open().expect("openpty");
    let path = pty.path().to_owned();
    let handle = pty
        .spawn(iotsafe_vcard::frontend::share(card), AtOptions::default())
        .expect("spawn modem");
    let mut host = Host::open(&path);
    let started = Instant::now();
    host.send("ATE0\r");
    assert_eq!(host.read_until("OK\r\n"), "ATE0\r\r\nOK\r\n");
    assert!(started.elapsed() >= link.time_of(5 + 1 + 6));
    let line = "AT+CSIM=10,\"0070000001\"\r";
    let started = Instant::now();
    host.send(line);
    let answer = host.read_until("OK\r\n");
    assert_eq!(answer, "\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n");
    let modelled = link.time_of(line.len() + answer.len());
    assert!(started.elapsed() >= modelled, "modelled {modelled:?}");
    handle.stop().unwrap();
}
