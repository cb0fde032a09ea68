//! The TLS firmware (`examples/mcu`, binary `iotsafe-mcu-tls`) on QEMU's `mps2-an386` board:
//! UART0 → the virtual card's AT modem, UART1 → a TLS 1.3 server that requires a client
//! certificate, both through recording relays. The firmware reads its CA, key and certificate
//! from the card, makes the handshake with the card's signature and ECDHE, and talks:
//!
//! - to `openssl s_server -tls1_3 -Verify 1 -verify_return_error -rev`: the server verifies the
//!   card's certificate, the firmware prints the reversed line and exits 0; its handshake took as
//!   many APDUs as the host client's (`IotSafeTls` over the same modem, to the same server);
//! - to mosquitto with `require_certificate true` over TLS 1.3: the message it publishes reaches
//!   `mosquitto_sub`.
//!
//! Reported (not asserted against a budget): flash, static RAM, heap high-water mark, handshake
//! time and its card share, UART bytes. Skipped with a printed reason where QEMU, the Rust target,
//! openssl or mosquitto are missing, unless `IOTSAFE_REQUIRE_SERVICES=1` (then it fails).
#![forbid(unsafe_code)]

mod mcu_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_core::at::{AtOptions, AtTransport};
use iotsafe_core::{Card, CardConfig};
use iotsafe_tests::{free_port, have_program, provisioned, service, spawn_listening, ChildGuard};
use iotsafe_vcard::frontend::at::{AtHandle, AtOptions as ModemOptions};
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, ProvisionReport};
use mcu_support::*;

const FIRMWARE: &str = "iotsafe-mcu-tls";
/// The device certificate's subject CN of a provisioned card.
const DEVICE_CN: &str = "device-0001";
/// A full TLS 1.3 handshake with client authentication at T=1: GENERATE KEY PAIR, PUT PUBLIC KEY
/// (2), COMPUTE DH, COMPUTE SIGNATURE (2); the sessions left open, as on the host.
const HANDSHAKE_APDUS: u64 = 6;

/// Whether everything the tests need is there (or, with services required, fails).
fn available(server: &str) -> bool {
    service(have_program(QEMU), QEMU)
        && service(
            rust_target_installed(),
            &format!("the Rust target {TARGET}"),
        )
        && service(have_program(server), server)
}

/// A provisioned card behind the virtual card's AT modem on a loopback port.
fn card_modem(dir: &Path) -> (ProvisionReport, SocketAddr, AtHandle) {
    let (report, card) = provisioned(dir, CardOptions::default());
    let tcp = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let addr = tcp.local_addr().expect("modem address");
    let handle = tcp
        .spawn(Arc::new(Mutex::new(card)), ModemOptions::default())
        .expect("start the modem");
    (report, addr, handle)
}

/// QEMU with the firmware, UART0 and UART1 connected to `modem` and `network`, and the
/// semihosting command line `args`.
fn qemu(elf: &Path, modem: u16, network: u16, args: &[&str]) -> Command {
    let mut config = format!("enable=on,target=native,arg={FIRMWARE}");
    for arg in args {
        config.push_str(&format!(",arg={arg}"));
    }
    let mut qemu = Command::new(QEMU);
    qemu.args(["-M", MACHINE, "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", &config])
        .arg("-serial")
        .arg(format!("tcp:127.0.0.1:{modem},nodelay=on"))
        .arg("-serial")
        .arg(format!("tcp:127.0.0.1:{network},nodelay=on"))
        .arg("-kernel")
        .arg(elf);
    qemu
}

/// `openssl s_server -tls1_3 -rev` on a free loopback port with the card's PKI, requiring a
/// client certificate from the card's CA.
fn echo_server(dir: &Path, pki: &Path) -> (ChildGuard, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut s_server = Command::new("openssl");
    s_server
        .args(["s_server", "-accept", &addr.to_string(), "-tls1_3", "-rev"])
        .args(["-Verify", "1", "-verify_return_error"])
        .arg("-cert")
        .arg(pki.join("server.pem"))
        .arg("-key")
        .arg(pki.join("server.key"))
        .arg("-CAfile")
        .arg(pki.join("ca.pem"));
    // s_server quits when its stdin closes: keep a pipe open.
    s_server.stdin(Stdio::piped());
    let log = dir.join(format!("s_server-{}.log", addr.port()));
    (
        spawn_listening(s_server, "openssl s_server", log, addr),
        addr,
    )
}

/// The APDUs of one handshake of the host client (`IotSafeTls`, resumption off) over the same
/// modem to `server`, which answers a line reversed.
fn host_handshake_apdus(
    modem: SocketAddr,
    server: SocketAddr,
    ca_pem: &Path,
    server_process: &ChildGuard,
) -> u64 {
    let transport =
        AtTransport::connect_tcp_with(modem, AtOptions::default()).expect("AT over TCP");
    let card = Arc::new(Card::open(transport, CardConfig::default()).expect("open over TCP"));
    let config = iotsafe_tests::handshake::card_client_config(card.clone(), ca_pem);
    let before = card.stats().apdus;
    let mut conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap())
        .expect("a client connection");
    let mut tcp = TcpStream::connect(server)
        .unwrap_or_else(|e| panic!("reach the server: {e}\n{}", server_process.log()));
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("the host handshake");
    }
    let apdus = card.stats().apdus - before;
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    stream.write_all(b"host\n").expect("send a line");
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .expect("the answer");
    assert_eq!(
        answer.trim_end(),
        "tsoh",
        "the server reversed the host's line"
    );
    apdus
}

/// The firmware's output, checked to have ended well; with the context for messages.
fn succeeded(status: std::process::ExitStatus, out: &str, err: &str) -> String {
    let context = format!("QEMU {status}\nfirmware output:\n{out}\nQEMU stderr:\n{err}");
    assert_eq!(status.code(), Some(0), "{context}");
    assert!(out.contains("result: ok"), "{context}");
    context
}

#[test]
fn firmware_in_qemu_makes_a_mutual_tls13_connection_with_the_card_key_and_ecdhe() {
    if !available("openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let elf = build_firmware(dir.path(), FIRMWARE);
    let (flash, ram) = flash_and_ram(&elf);
    let (_report, modem_addr, modem) = card_modem(dir.path());
    let pki = dir.path().join("pki");

    let server = echo_server(dir.path(), &pki);
    // The host client's handshake on the same card, to an echo server of its own (after one
    // connection, `-rev` ends the server).
    let host_apdus = {
        let host_server = echo_server(dir.path(), &pki);
        host_handshake_apdus(
            modem_addr,
            host_server.1,
            &pki.join("ca.pem"),
            &host_server.0,
        )
    };
    let (server, server_addr) = server;

    let (modem_relay, network_relay) = (Relay::start(modem_addr), Relay::start(server_addr));
    let command = qemu(
        &elf,
        modem_relay.port,
        network_relay.port,
        &["echo", "localhost"],
    );
    let (status, out, err) = run_bounded(command, "qemu", dir.path(), RUN_DEADLINE);
    let (to_modem, from_modem) = modem_relay.finish();
    let (to_server, from_server) = network_relay.finish();
    let context = succeeded(status, &out, &err);

    // The server verified the card's certificate; the firmware got its line back reversed.
    let hello = format!("hello from {DEVICE_CN}");
    assert_eq!(value(&out, "sent"), hello, "{context}");
    let reversed: String = hello.chars().rev().collect();
    assert_eq!(value(&out, "answer"), reversed, "{context}");
    let log = server.log();
    assert!(
        log.contains(&format!("Peer certificate: CN = {DEVICE_CN}"))
            && log.contains("Verification: OK"),
        "the server verified the card's certificate:\n{log}\n{context}"
    );
    assert!(log.contains("Protocol version: TLSv1.3"), "{log}");

    // The card did the handshake's key generation, DH and signature, as for the host client.
    let apdus = field(&out, "handshake", "apdus");
    assert_eq!(apdus, HANDSHAKE_APDUS, "{context}");
    assert_eq!(
        apdus, host_apdus,
        "the host client's handshake APDUs\n{context}"
    );
    modem.stop().expect("stop the modem");

    // Every byte the firmware counted crossed the relays. It stops reading after its
    // close_notify, so the server's last records may be left unread.
    assert_eq!(
        field(&out, "uart", "network_tx"),
        to_server.len() as u64,
        "{context}"
    );
    assert!(field(&out, "uart", "network_rx") <= from_server.len() as u64);
    assert_eq!(
        field(&out, "uart", "modem_tx"),
        to_modem.len() as u64,
        "{context}"
    );
    let modem_rx = field(&out, "uart", "modem_rx");
    assert!(
        modem_rx == from_modem.len() as u64
            || (modem_rx + 1 == from_modem.len() as u64 && from_modem.ends_with(b"\r\n")),
        "{context}"
    );

    let (size, peak) = (field(&out, "heap", "size"), field(&out, "heap", "peak"));
    assert!(0 < peak && peak <= size, "{context}");
    let stack = stack_peak(&out, &context);
    eprintln!(
        "mcu TLS ({MACHINE}, {TARGET}, release): flash {flash} B, static RAM {ram} B, heap peak \
         {peak} B of {size} B ({} by the allocator), stack peak {stack} B, handshake {} ms of which {} ms in the card \
         (firmware clock), {apdus} APDUs, network {} B out / {} B in during the handshake; whole \
         run {} ms, UART1 {} B out / {} B in, UART0 {} B out / {} B in",
        field(&out, "heap", "peak_allocator"),
        field(&out, "handshake", "ms"),
        field(&out, "handshake", "card_ms"),
        field(&out, "handshake", "tx"),
        field(&out, "handshake", "rx"),
        field(&out, "clock", "elapsed_ms"),
        to_server.len(),
        from_server.len(),
        to_modem.len(),
        from_modem.len()
    );
}

/// A client key and certificate for the subscriber, issued by the card's test CA.
fn subscriber_certificate(pki: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(pki)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "sub.key",
        "-subj",
        "/CN=subscriber",
        "-out",
        "sub.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "sub.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-days",
        "1",
        "-out",
        "sub.pem",
    ]);
}

#[test]
fn firmware_in_qemu_publishes_to_mosquitto_over_tls13_with_the_card_key() {
    if !(available("mosquitto") && service(have_program("mosquitto_sub"), "mosquitto_sub")) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let elf = build_firmware(dir.path(), FIRMWARE);
    let (_report, modem_addr, modem) = card_modem(dir.path());
    let pki = dir.path().join("pki");
    subscriber_certificate(&pki);
    let (broker, broker_addr) = iotsafe_tests::mosquitto(
        dir.path(),
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &pki.join("ca.pem"),
    );

    let topic = "iotsafe/mcu-test";
    let mut sub = Command::new("mosquitto_sub");
    sub.args(["-h", "127.0.0.1", "-p", &broker_addr.port().to_string()])
        .args([
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "60",
            "--tls-version",
            "tlsv1.3",
        ])
        .arg("--cafile")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join("sub.pem"))
        .arg("--key")
        .arg(pki.join("sub.key"));
    let sub_log = dir.path().join("mosquitto_sub.log");
    let out = std::fs::File::create(&sub_log).expect("a log file");
    sub.stdout(out.try_clone().expect("the log again"))
        .stderr(out);
    let child = sub.spawn().expect("start mosquitto_sub");
    let mut subscriber = ChildGuard::new(child, "mosquitto_sub", Some(sub_log));
    assert!(
        broker.wait_for_log("Received SUBSCRIBE from", Duration::from_secs(20)),
        "the subscriber subscribed:\n{}",
        broker.log()
    );

    let network_relay = Relay::start(broker_addr);
    let command = qemu(
        &elf,
        modem_addr.port(),
        network_relay.port,
        &["mqtt", "localhost", topic],
    );
    let (status, out, err) = run_bounded(command, "qemu", dir.path(), RUN_DEADLINE);
    network_relay.finish();
    let context = succeeded(status, &out, &err);
    modem.stop().expect("stop the modem");

    let hello = format!("hello from {DEVICE_CN}");
    assert_eq!(
        value(&out, "published"),
        format!("topic={topic} payload={hello}"),
        "{context}"
    );
    assert_eq!(
        field(&out, "handshake", "apdus"),
        HANDSHAKE_APDUS,
        "{context}"
    );
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while !subscriber.exited() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        subscriber.log().trim_end(),
        hello,
        "the subscriber received the firmware's message\n{}\n{context}",
        broker.log()
    );
    // The broker took the card's certificate as the client's identity.
    assert!(
        broker.log().contains(&format!("as {DEVICE_CN}")),
        "{}",
        broker.log()
    );
}
