//! One SIM, many programs: several processes (spawned binaries) making handshakes with the
//! default configuration on one virtual card at once, through the AT modem's TCP front end (each
//! process its own connection to the one modem) and through pcscd; every handshake succeeds,
//! because every process takes its turn on the card's volatile key slot through the queue they
//! share (`iotsafe_core::slots`), as threads of one process do.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use iotsafe_tests::echo_server::EchoServer;
use iotsafe_vcard::frontend::at::AtOptions as ModemOptions;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, Latency};

/// Runs `processes` copies of the handshakes program at once with `card` arguments, each
/// `threads` × `each` handshakes to `server`; returns their outputs.
fn run_programs(
    card: &[&str],
    server: &EchoServer,
    ca: &Path,
    lock_dir: &Path,
    processes: usize,
    threads: usize,
    each: usize,
) -> Vec<Output> {
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_handshakes"))
                .args(card)
                .args(["--server", &server.addr().to_string()])
                .arg("--ca")
                .arg(ca)
                .args(["--threads", &threads.to_string()])
                .args(["--each", &each.to_string()])
                .env("IOTSAFE_LOCK_DIR", lock_dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start the handshakes program")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("the handshakes program"))
        .collect()
}

/// Every program succeeded with every handshake.
fn all_succeeded(outputs: &[Output], threads: usize, each: usize) {
    for (i, out) in outputs.iter().enumerate() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("program {i}: {}", stdout.trim());
        assert!(
            out.status.success(),
            "program {i} ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("handshakes: {} ok, 0 failed", threads * each)),
            "program {i}: {stdout}"
        );
    }
}

#[test]
fn three_programs_two_threads_four_handshakes_each_on_one_card_over_at_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let options = CardOptions {
        latency: Latency::typical_sim(),
        ..CardOptions::default()
    };
    let (_, vcard) = iotsafe_tests::provisioned(dir.path(), options);
    let tcp = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let modem = tcp.local_addr().unwrap();
    let handle = tcp
        .spawn(Arc::new(Mutex::new(vcard)), ModemOptions::default())
        .expect("start the modem");
    let server = EchoServer::start(&dir.path().join("pki"));
    let locks = dir.path().join("locks");
    let card = ["--modem", &format!("tcp://{modem}")];
    let outputs = run_programs(
        &card,
        &server,
        &dir.path().join("pki/ca.pem"),
        &locks,
        3,
        2,
        4,
    );
    all_succeeded(&outputs, 2, 4);
    handle.stop().unwrap();
}

#[cfg(feature = "pcsc")]
#[test]
fn two_programs_on_one_card_through_pcscd() {
    if !iotsafe_tests::service(iotsafe_tests::pcscd_running(), "pcscd with vpcd") {
        return;
    }
    let _slot = iotsafe_tests::vpcd_slot_lock();
    let dir = tempfile::tempdir().unwrap();
    let options = CardOptions {
        latency: Latency::typical_sim(),
        ..CardOptions::default()
    };
    let (_, vcard) = iotsafe_tests::provisioned(dir.path(), options);
    let plugged = iotsafe_tests::vpcd::plug(Arc::new(Mutex::new(vcard)));
    let server = EchoServer::start(&dir.path().join("pki"));
    let reader = iotsafe_tests::vpcd::Slot::shared().reader;
    let card = ["--reader", reader.as_str()];
    let locks = dir.path().join("locks");
    let outputs = run_programs(
        &card,
        &server,
        &dir.path().join("pki/ca.pem"),
        &locks,
        2,
        2,
        4,
    );
    all_succeeded(&outputs, 2, 4);
    drop(plugged);
}
