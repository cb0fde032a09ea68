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

mod mcu_support;

use std::process::Command;
use std::sync::{Arc, Mutex};

use iotsafe_core::at::{AtOptions, AtTransport};
use iotsafe_tests::{have_program, provisioned, service};
use iotsafe_vcard::frontend::at::AtOptions as ModemOptions;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::CardOptions;
use mcu_support::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};

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
    let elf = build_firmware(dir.path(), "iotsafe-mcu");
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

    let stack = stack_peak(&out, "");
    let per_step: Vec<String> = steps
        .iter()
        .map(|(name, apdus, tx, rx)| format!("{name} {apdus} APDUs {tx}/{rx} B"))
        .collect();
    eprintln!(
        "mcu ({MACHINE}, {TARGET}, release): flash {flash} B, static RAM {ram} B (heap \
         {heap_size} B of it), heap peak {peak} B requested / {peak_allocator} B by the \
         allocator, stack peak {stack} B, UART {tx} B out / {from_modem} B in, {} ms on the firmware clock; per step \
         (APDUs, UART out/in): {}",
        field(&out, "clock", "elapsed_ms"),
        per_step.join(", ")
    );
}
