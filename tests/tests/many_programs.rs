//! One SIM, many programs: several processes (spawned binaries) making handshakes with the
//! default configuration on one virtual card at once, through the AT modem's TCP front end (each
//! process its own connection to the one modem) and through pcscd; every handshake succeeds,
//! because every process takes its turn on the card's volatile key slot through the queue they
//! share (`iotsafe_core::slots`), as threads of one process do.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use iotsafe_tests::echo_server::EchoServer;
use iotsafe_vcard::frontend::at::AtOptions as ModemOptions;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, Latency, VirtualCard};

/// Each program's threads and handshakes.
const THREADS: usize = 2;
const EACH: usize = 4;

/// A provisioned card with the typical-SIM latency, state and PKI in `dir`.
fn sim_card(dir: &Path) -> VirtualCard {
    let options = CardOptions {
        latency: Latency::typical_sim(),
        ..CardOptions::default()
    };
    iotsafe_tests::provisioned(dir, options).1
}

/// Runs `processes` copies of the handshakes program at once on the card `card` names, each
/// `THREADS` × `EACH` handshakes to a server with the PKI in `dir`, sharing the lock folder
/// `dir/locks`; every program must succeed with every handshake.
fn programs_all_succeed(card: &[&str], dir: &Path, processes: usize) {
    let server = EchoServer::start(&dir.join("pki"));
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_handshakes"))
                .args(card)
                .args(["--server", &server.addr().to_string()])
                .arg("--ca")
                .arg(dir.join("pki/ca.pem"))
                .args(["--threads", &THREADS.to_string()])
                .args(["--each", &EACH.to_string()])
                .env("IOTSAFE_LOCK_DIR", dir.join("locks"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start the handshakes program")
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("the handshakes program");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("program {i}: {}", stdout.trim());
        assert!(
            out.status.success(),
            "program {i} ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let total = THREADS * EACH;
        assert!(
            stdout.contains(&format!("handshakes: {total} ok, 0 failed")),
            "program {i}: {stdout}"
        );
    }
}

#[test]
fn three_programs_two_threads_four_handshakes_each_on_one_card_over_at_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let vcard = sim_card(dir.path());
    let tcp = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let modem = tcp.local_addr().unwrap();
    let handle = tcp
        .spawn(Arc::new(Mutex::new(vcard)), ModemOptions::default())
        .expect("start the modem");
    programs_all_succeed(&["--modem", &format!("tcp://{modem}")], dir.path(), 3);
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
    let plugged = iotsafe_tests::vpcd::plug(Arc::new(Mutex::new(sim_card(dir.path()))));
    let reader = iotsafe_tests::vpcd::Slot::shared().reader;
    programs_all_succeed(&["--reader", reader.as_str()], dir.path(), 2);
    drop(plugged);
}
