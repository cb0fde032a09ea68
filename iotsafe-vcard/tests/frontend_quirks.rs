//! Real-modem and real-reader behaviours through the front ends, with the real applet: a SIM reset
//! from a second TCP connection (`AT+CFUN=1,1`), `AT+CFUN=0`/`=1`, connections the modem drops every
//! N card commands (TCP and pty), a truncated `+CSIM:` line, and volatile keys wiped by vpcd's power
//! codes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotsafe_vcard::frontend::at::{AtFault, AtHandle, AtInjection, AtOptions, DropPlan};
use iotsafe_vcard::frontend::pty::PtyModem;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::frontend::vpcd::{VpcdClient, VpcdOptions};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardOptions, Quirks, VirtualCard};

const DEADLINE: Duration = Duration::from_secs(5);
const GX: &str = "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296";
const GY: &str = "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5";

/// A card that wipes its volatile keys on reset, shared typed (to read its channel count) and as
/// the front ends want it.
fn wiping_card() -> (Arc<Mutex<VirtualCard>>, SharedCard) {
    let card = Arc::new(Mutex::new(VirtualCard::with_default_layout(CardOptions {
        quirks: Quirks {
            wipe_volatile_on_reset: true,
            ..Quirks::default()
        },
        ..CardOptions::default()
    })));
    let shared: SharedCard = card.clone();
    (card, shared)
}

fn quiet(options: AtOptions) -> AtOptions {
    AtOptions {
        echo: false,
        poll_interval: Duration::from_millis(20),
        ..options
    }
}

fn tcp_modem(card: SharedCard, options: AtOptions) -> (AtHandle, SocketAddr) {
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = modem.local_addr().unwrap();
    (modem.spawn(card, quiet(options)).unwrap(), addr)
}

struct Host {
    stream: TcpStream,
}

impl Host {
    fn connect(addr: SocketAddr) -> Host {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Host { stream }
    }

    /// Sends `command` and returns everything up to its final result code.
    fn ask(&mut self, command: &str) -> String {
        self.stream
            .write_all(format!("{command}\r").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 1024];
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if text.ends_with("OK\r\n") || text.ends_with("ERROR\r\n") || is_cme(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no answer to {command:?}: {text:?}"
            );
            match self.stream.read(&mut buf) {
                Ok(0) => return text,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    }

    /// Whether the modem closed the connection (end of file) within the deadline.
    fn closed(&mut self) -> bool {
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 64];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => return false,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => {}
            }
        }
        false
    }
}

fn is_cme(text: &str) -> bool {
    text.rsplit_once("+CME ERROR: ")
        .is_some_and(|(_, code)| code.ends_with("\r\n"))
}

/// The hex payload of a `+CSIM:`/`+CGLA:` answer.
fn payload(answer: &str) -> String {
    let (_, rest) = answer.split_once(",\"").expect("a data answer");
    rest.split_once('"').unwrap().0.to_owned()
}

fn csim(apdu: &str) -> String {
    let apdu: String = apdu.split_whitespace().collect();
    format!("AT+CSIM={},\"{apdu}\"", apdu.len())
}

fn cgla(id: u32, apdu: &str) -> String {
    let apdu: String = apdu.split_whitespace().collect();
    format!("AT+CGLA={id},{},\"{apdu}\"", apdu.len())
}

const OK: &str = "\r\nOK\r\n";

#[test]
fn a_second_connection_resets_the_sim_while_the_first_stays() {
    let (card, shared) = wiping_card();
    let (handle, addr) = tcp_modem(shared, AtOptions::default());
    let mut first = Host::connect(addr);
    assert_eq!(
        first.ask("AT+CCHO=\"A0000005590010\""),
        "\r\n+CCHO: 1\r\n\r\nOK\r\n"
    );
    let keygen = first.ask(&cgla(1, "00 B9 00 00 03 84 01 04"));
    assert!(payload(&keygen).ends_with("9000"), "{keygen:?}");
    assert_eq!(first.ask("AT#CHANNELS?"), "\r\n#CHANNELS: 1\r\n\r\nOK\r\n");
    assert_eq!(card.lock().unwrap().open_channel_count(), 1);

    // A second host on the same modem, while the first stays connected.
    let mut second = Host::connect(addr);
    assert_eq!(second.ask("AT+CFUN?"), "\r\n+CFUN: 1\r\n\r\nOK\r\n");
    assert_eq!(second.ask("AT+CFUN=1,1"), OK);
    assert_eq!(card.lock().unwrap().open_channel_count(), 0);

    // The first host's session died with the reset; its connection did not.
    assert_eq!(
        first.ask(&cgla(1, "00 84 00 00 08")),
        "\r\n+CME ERROR: 21\r\n"
    );
    assert_eq!(first.ask("AT#CHANNELS?"), "\r\n#CHANNELS: 0\r\n\r\nOK\r\n");
    // The ephemeral key went with it: DH after putting a peer key answers 6985.
    assert_eq!(
        first.ask("AT+CCHO=\"A0000005590010\""),
        "\r\n+CCHO: 2\r\n\r\nOK\r\n"
    );
    assert_eq!(
        first.ask(&cgla(2, "00 24 00 02 03 85 01 05")),
        "\r\n+CGLA: 4,\"9000\"\r\n\r\nOK\r\n"
    );
    let put = format!("00 D8 80 02 47 34 45 49 43 86 41 04 {GX} {GY}");
    assert_eq!(
        first.ask(&cgla(2, &put)),
        "\r\n+CGLA: 4,\"9000\"\r\n\r\nOK\r\n"
    );
    assert_eq!(
        first.ask(&cgla(2, "00 46 00 00 06 84 01 04 85 01 05")),
        "\r\n+CGLA: 4,\"6985\"\r\n\r\nOK\r\n"
    );
    drop(first);
    drop(second);
    handle.stop().unwrap();
}

#[test]
fn cfun_0_switches_the_sim_off_and_cfun_1_back_on() {
    let (card, shared) = wiping_card();
    let (handle, addr) = tcp_modem(shared, AtOptions::default());
    let mut host = Host::connect(addr);
    assert_eq!(
        host.ask(&csim("00 70 00 00 01")),
        "\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n"
    );
    assert_eq!(
        host.ask(&csim("01 A4 04 00 07 A0000005590010")),
        "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n"
    );
    assert!(payload(&host.ask(&csim("01 B9 00 00 03 84 01 04"))).ends_with("9000"));
    assert_eq!(host.ask("AT+CFUN=0"), OK);
    assert_eq!(host.ask("AT+CFUN?"), "\r\n+CFUN: 0\r\n\r\nOK\r\n");
    assert_eq!(host.ask(&csim("01 84 00 00 08")), "\r\n+CME ERROR: 13\r\n");
    assert_eq!(host.ask("AT+CPIN?"), "\r\n+CME ERROR: 13\r\n");
    assert_eq!(host.ask("AT+CFUN=1"), OK);
    assert_eq!(host.ask("AT+CPIN?"), "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    // Channel 1 is gone, and with it the volatile key.
    assert_eq!(
        host.ask(&csim("01 84 00 00 08")),
        "\r\n+CSIM: 4,\"6881\"\r\n\r\nOK\r\n"
    );
    assert_eq!(card.lock().unwrap().open_channel_count(), 0);
    assert_eq!(
        host.ask(&csim("00 A4 04 00 07 A0000005590010")),
        "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n"
    );
    assert_eq!(
        host.ask(&csim("00 CD 00 00 03 85 01 04")),
        "\r\n+CSIM: 4,\"6985\"\r\n\r\nOK\r\n"
    );
    drop(host);
    handle.stop().unwrap();
}

#[test]
fn tcp_drops_every_third_card_command_and_the_sim_keeps_its_state() {
    for when in ["after", "before"] {
        let (card, shared) = wiping_card();
        let plan: DropPlan = format!("3:{when}").parse().unwrap();
        let (handle, addr) = tcp_modem(
            shared,
            AtOptions {
                drop_every: Some(plan),
                ..AtOptions::default()
            },
        );
        let mut host = Host::connect(addr);
        // Modem commands do not count.
        assert_eq!(host.ask("AT"), OK);
        assert_eq!(
            host.ask("AT+CCHO=\"A0000005590010\""),
            "\r\n+CCHO: 1\r\n\r\nOK\r\n"
        );
        assert!(payload(&host.ask(&cgla(1, "00 B9 00 00 03 84 01 04"))).ends_with("9000"));
        // The third: the card runs it; the host gets the answer (or not), then the socket closes.
        let third = "00 24 00 02 03 85 01 05";
        if when == "after" {
            assert_eq!(
                host.ask(&cgla(1, third)),
                "\r\n+CGLA: 4,\"9000\"\r\n\r\nOK\r\n"
            );
        } else {
            host.stream
                .write_all(format!("{}\r", cgla(1, third)).as_bytes())
                .unwrap();
        }
        assert!(host.closed(), "{when}: the modem kept the connection");

        // The next connection takes over session 1: the channel, the key and the put session stayed.
        let mut again = Host::connect(addr);
        assert_eq!(again.ask("AT#CHANNELS?"), "\r\n#CHANNELS: 1\r\n\r\nOK\r\n");
        let put = format!("00 D8 80 02 47 34 45 49 43 86 41 04 {GX} {GY}");
        assert_eq!(
            again.ask(&cgla(1, &put)),
            "\r\n+CGLA: 4,\"9000\"\r\n\r\nOK\r\n"
        );
        assert_eq!(
            again.ask(&cgla(1, "00 24 01 02 00")),
            "\r\n+CGLA: 4,\"9000\"\r\n\r\nOK\r\n"
        );
        // Sixth card command: the DH answer comes (or not), then this connection goes too.
        let dh = cgla(1, "00 46 00 00 06 84 01 04 85 01 05");
        if when == "after" {
            let answer = again.ask(&dh);
            assert_eq!(payload(&answer).len(), 68, "{answer:?}");
        } else {
            again
                .stream
                .write_all(format!("{dh}\r").as_bytes())
                .unwrap();
        }
        assert!(again.closed());
        assert_eq!(card.lock().unwrap().open_channel_count(), 1);
        // A host that leaves on its own closes what it holds.
        let mut last = Host::connect(addr);
        assert_eq!(last.ask("AT+CCHC=1"), OK);
        drop(last);
        assert_eq!(card.lock().unwrap().open_channel_count(), 0);
        handle.stop().unwrap();
    }
}

#[test]
fn a_truncated_csim_line() {
    let (_, shared) = wiping_card();
    let (handle, addr) = tcp_modem(
        shared,
        AtOptions {
            inject: Some(AtInjection::once(AtFault::Truncate(4), 2)),
            ..AtOptions::default()
        },
    );
    let mut host = Host::connect(addr);
    assert_eq!(
        host.ask(&csim("00 70 00 00 01")),
        "\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n"
    );
    // The command ran (the channel is open), but the line lost its last two hex digits.
    assert_eq!(
        host.ask(&csim("00 70 00 00 01")),
        "\r\n+CSIM: 6,\"0290\"\r\n\r\nOK\r\n"
    );
    assert_eq!(host.ask("AT#CHANNELS?"), "\r\n#CHANNELS: 2\r\n\r\nOK\r\n");
    drop(host);
    handle.stop().unwrap();
}

#[test]
fn pty_hangs_up_and_comes_back_at_the_same_link() {
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;

    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyIOTSAFE");
    let (card, shared) = wiping_card();
    let pty = PtyModem::open_linked(&link).unwrap();
    let first_path = pty.path().to_owned();
    assert_eq!(std::fs::read_link(&link).unwrap(), first_path);
    let handle = pty
        .spawn(
            shared,
            quiet(AtOptions {
                drop_every: Some("2".parse().unwrap()),
                ..AtOptions::default()
            }),
        )
        .unwrap();
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NOCTTY.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&link)
            .unwrap()
    };
    // Reads what comes within `within`; `None` when the device hung up.
    let read = |port: &mut std::fs::File, within: Duration| -> Option<String> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            match port.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if String::from_utf8_lossy(&got).ends_with("OK\r\n") {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return None,
            }
        }
        Some(String::from_utf8_lossy(&got).into_owned())
    };
    let mut port = open();
    port.write_all(format!("{}\r", csim("00 70 00 00 01")).as_bytes())
        .unwrap();
    assert_eq!(
        read(&mut port, DEADLINE).as_deref(),
        Some("\r\n+CSIM: 6,\"019000\"\r\n\r\nOK\r\n")
    );
    port.write_all(format!("{}\r", csim("01 A4 04 00 07 A0000005590010")).as_bytes())
        .unwrap();
    assert_eq!(
        read(&mut port, DEADLINE).as_deref(),
        Some("\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n")
    );
    // The second card command was the last on this device: it hangs up.
    let deadline = Instant::now() + DEADLINE;
    loop {
        match read(&mut port, Duration::from_millis(50)) {
            None => break,
            Some(text) => assert!(text.is_empty(), "{text:?}"),
        }
        assert!(Instant::now() < deadline, "the pty never hung up");
    }
    // The link now names the new device; the channel opened before the hang-up is still there.
    let deadline = Instant::now() + DEADLINE;
    while std::fs::read_link(&link).unwrap() == first_path {
        assert!(Instant::now() < deadline, "the pty was never re-created");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut port = open();
    port.write_all(b"AT#CHANNELS?\r").unwrap();
    assert_eq!(
        read(&mut port, DEADLINE).as_deref(),
        Some("\r\n#CHANNELS: 1\r\n\r\nOK\r\n")
    );
    port.write_all(format!("{}\r", csim("01 B9 00 00 03 84 01 04")).as_bytes())
        .unwrap();
    let keygen = read(&mut port, DEADLINE).unwrap();
    assert!(payload(&keygen).ends_with("9000"), "{keygen:?}");
    assert_eq!(card.lock().unwrap().open_channel_count(), 1);
    handle.stop().unwrap();
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is removed when the modem stops"
    );
}

/// The driver side of a vpcd connection.
struct Vpcd {
    stream: TcpStream,
}

impl Vpcd {
    fn send(&mut self, payload: &[u8]) {
        let mut frame = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).unwrap();
    }

    fn transmit(&mut self, apdu: &str) -> Vec<u8> {
        let digits: String = apdu.split_whitespace().collect();
        let bytes: Vec<u8> = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect();
        self.send(&bytes);
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len).unwrap();
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream.read_exact(&mut answer).unwrap();
        answer
    }
}

#[test]
fn vpcd_power_codes_wipe_volatile_keys() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (card, shared) = wiping_card();
    let handle = VpcdClient::new(
        shared,
        addr,
        VpcdOptions {
            poll_interval: Duration::from_millis(20),
            ..VpcdOptions::default()
        },
    )
    .spawn()
    .unwrap();
    let (stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut vpcd = Vpcd { stream };
    let dh = "00 46 00 00 06 84 01 04 85 01 05";
    let select = "00 A4 04 00 07 A0000005590010";
    assert_eq!(vpcd.transmit(select), [0x90, 0x00]);
    assert!(vpcd
        .transmit("00 B9 00 00 03 84 01 04")
        .ends_with(&[0x90, 0x00]));
    assert_eq!(vpcd.transmit("00 24 00 02 03 85 01 05"), [0x90, 0x00]);
    let put = format!("00 D8 80 02 47 34 45 49 43 86 41 04 {GX} {GY}");
    assert_eq!(vpcd.transmit(&put), [0x90, 0x00]);
    assert_eq!(vpcd.transmit("00 24 01 02 00"), [0x90, 0x00]);
    assert_eq!(vpcd.transmit(dh).len(), 34);
    assert_eq!(vpcd.transmit("00 70 00 00 01"), [0x01, 0x90, 0x00]);
    assert_eq!(card.lock().unwrap().open_channel_count(), 1);

    // pcscd powers the card off and on (control codes 0 and 1, no reply).
    vpcd.send(&[0]);
    vpcd.send(&[1]);
    assert_eq!(vpcd.transmit(select), [0x90, 0x00]);
    assert_eq!(vpcd.transmit(dh), [0x69, 0x85]);
    assert_eq!(card.lock().unwrap().open_channel_count(), 0);
    // A warm reset (code 2) wipes too: the regenerated pair's public half is empty again.
    assert!(vpcd
        .transmit("00 B9 00 00 03 84 01 04")
        .ends_with(&[0x90, 0x00]));
    vpcd.send(&[2]);
    assert_eq!(vpcd.transmit(select), [0x90, 0x00]);
    assert_eq!(vpcd.transmit("00 CD 00 00 03 85 01 04"), [0x69, 0x85]);
    handle.stop().unwrap();
}
