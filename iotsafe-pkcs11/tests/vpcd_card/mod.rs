//! What the OpenSSL engine, mosquitto and unplug tests share: the provisioned virtual card in vpcd
//! slot 1 behind the shared pcscd, watched so that a test can count the signatures it made, and
//! the programs those tests start (logged, bounded in time).
#![allow(dead_code)]

use iotsafe_tests::vpcd::{self, Plugged};
use iotsafe_tests::{provisioned, ChildGuard};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardHandler, CardOptions, ProvisionReport, Reply, VirtualCard};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Upper bound for any one step (a handshake, a publish, a failing call): only catches hangs.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The device key as OpenSSL's pkcs11 engine and mosquitto name it.
pub const KEY_URI: &str = "pkcs11:object=device;type=private";

// Instruction bytes the tests look for in the card's APDUs (docs/protocol.md#commands).
/// SELECT (the module selects the applet again on a card that came back).
pub const INS_SELECT: u8 = 0xA4;
/// COMPUTE SIGNATURE Init (P1 `00` opens the session, `01` closes it).
pub const INS_SIGN_INIT: u8 = 0x2A;
/// COMPUTE SIGNATURE Update (P1 `80` on the last one, whose answer is the signature).
pub const INS_SIGN_UPDATE: u8 = 0x2B;

/// The virtual card, and the header (CLA INS P1 P2) of every APDU it was sent, in order.
pub struct Watched {
    /// The card (for its fault plan and APDU count).
    pub card: VirtualCard,
    headers: Vec<[u8; 4]>,
}

impl Watched {
    /// Headers of every APDU so far.
    pub fn headers(&self) -> &[[u8; 4]] {
        &self.headers
    }
    /// Signatures the card handed out: last COMPUTE SIGNATURE Updates.
    pub fn signatures(&self) -> usize {
        self.headers
            .iter()
            .filter(|h| h[1] == INS_SIGN_UPDATE && h[2] & 0x80 != 0)
            .count()
    }
    /// Keeps the header of an APDU on its way in (a shorter APDU is padded with zeros).
    fn note(&mut self, apdu: &[u8]) {
        let mut header = [0u8; 4];
        let n = apdu.len().min(4);
        header[..n].copy_from_slice(&apdu[..n]);
        self.headers.push(header);
    }
}

impl CardHandler for Watched {
    fn atr(&self) -> Vec<u8> {
        self.card.atr()
    }
    fn power_on(&mut self) {
        self.card.power_on()
    }
    fn power_off(&mut self) {
        self.card.power_off()
    }
    fn reset(&mut self) {
        self.card.reset()
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.note(apdu);
        self.card.process(apdu)
    }
    fn open_channel_count(&self) -> Option<usize> {
        CardHandler::open_channel_count(&self.card)
    }
    fn handle(&mut self, apdu: &[u8]) -> Reply {
        self.note(apdu);
        self.card.handle(apdu)
    }
}

/// A watched card, shared with its vpcd front end.
pub type Card = Arc<Mutex<Watched>>;

/// Locks the watched card (a test that failed while holding it leaves it usable).
pub fn lock(card: &Card) -> MutexGuard<'_, Watched> {
    card.lock().unwrap_or_else(|p| p.into_inner())
}

/// A card provisioned into `dir` (state, PKI in `dir/pki`), plugged into vpcd slot 1: pcscd
/// shows it in `Virtual PCD 00 01` when this returns. Hold `vpcd_slot_lock` around it.
pub fn plugged(dir: &Path) -> (ProvisionReport, Card, Plugged) {
    let (report, card) = provisioned(dir, CardOptions::default());
    let card = Arc::new(Mutex::new(Watched {
        card,
        headers: Vec::new(),
    }));
    let plugged = vpcd::plug(card.clone() as SharedCard);
    (report, card, plugged)
}

/// Starts `command` with stdin piped and stdout and stderr in `dir/<name>.log`.
pub fn spawn_logged(mut command: Command, dir: &Path, name: &str) -> ChildGuard {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{name} log: {e}"));
    let err = out.try_clone().unwrap();
    let child = command
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    ChildGuard::new(child, name, Some(log))
}

/// Waits for `child` to exit, for at most [`DEADLINE`]; kills it and panics with `what` and its
/// output if it does not.
pub fn finish(mut child: Child, what: &str, output: &Path) -> ExitStatus {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {DEADLINE:?}: {}",
                std::fs::read_to_string(output).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `child` exited, for at most [`DEADLINE`].
pub fn wait_exited(child: &mut ChildGuard) -> bool {
    let end = Instant::now() + DEADLINE;
    while !child.exited() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The card variables for a program that loads the module: the card in `Virtual PCD 00 01`, and
/// the module's diagnostics on (they land in the program's log, shown when a test fails).
pub fn card_env() -> [(&'static str, String); 2] {
    [
        ("IOTSAFE_READER", iotsafe_tests::READER_SLOT1.to_owned()),
        ("IOTSAFE_PKCS11_DEBUG", String::from("1")),
    ]
}

/// `command` without any card variable or OpenSSL setting of this process, with the card ones.
pub fn with_card_env(command: &mut Command) -> &mut Command {
    for var in super::support::CARD_VARIABLES.iter().chain(&[
        "OPENSSL_CONF",
        "PKCS11_MODULE_PATH",
        "PKCS11_PROVIDER_MODULE",
    ]) {
        command.env_remove(var);
    }
    command.envs(card_env())
}

/// The module's path, as a string for command lines and configuration files.
pub fn module() -> String {
    let path: PathBuf = super::support::module_path();
    path.to_str().expect("a UTF-8 path").to_owned()
}
