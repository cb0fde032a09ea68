//! The card's public data kept between runs (`iotsafe_core::cache`), through the virtual card's
//! AT modem on loopback TCP with the client's real AT transport: a second run opens with one short
//! APDU instead of the object list, public key and certificate; and a SIM swapped behind the same
//! modem, one provisioned again (new key and certificate), or one whose certificate alone was
//! renewed, is never answered from the cache: the run reads the new data from the card. Also as
//! `iotsafe` processes (`iotsafe --modem tcp://… cert`). docs/performance.md#one-shot-runs.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use iotsafe_core::at::AtTransport;
use iotsafe_core::cache::{CacheUse, PublicCache};
use iotsafe_core::{Card, CardConfig, EcPoint, ObjectRef};
use iotsafe_tests::provisioned;
use iotsafe_vcard::frontend::at::{AtHandle, AtOptions as ModemOptions};
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, ProvisionReport, VirtualCard};

const DEVICE_KEY: u8 = 1;
const DEVICE_CERT: u8 = 2;

/// A SIM in a modem on a loopback port; the SIM can be swapped (the mutex's content replaced).
struct Modem {
    sim: Arc<Mutex<VirtualCard>>,
    addr: SocketAddr,
    handle: AtHandle,
}

impl Modem {
    fn with(card: VirtualCard) -> Modem {
        let sim = Arc::new(Mutex::new(card));
        let listener = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
        let addr = listener.local_addr().unwrap();
        let handle = listener
            .spawn(sim.clone(), ModemOptions::default())
            .expect("start the modem");
        Modem { sim, addr, handle }
    }

    fn swap(&self, card: VirtualCard) {
        *self.sim.lock().unwrap() = card;
    }
}

/// What one run saw: whether the cache was used, the APDUs its open and check cost, and what it
/// read.
struct Run {
    used: CacheUse,
    check_apdus: u64,
    reads_apdus: u64,
    point: EcPoint,
    cert: Vec<u8>,
}

/// One program's run: open over AT, use the cache, read the device key and certificate (as
/// `IotSafeTls::build` does), keep them, close.
fn run(modem: &Modem, cache: &PublicCache) -> Run {
    let transport = AtTransport::connect_tcp(modem.addr).expect("connect over AT");
    let card = Card::open(transport, CardConfig::default()).expect("open over AT");
    let opened = card.stats().apdus;
    let used = cache.load(&card);
    let checked = card.stats().apdus;
    card.objects().expect("object list");
    let point = card
        .read_public_key(&ObjectRef::id([DEVICE_KEY]))
        .expect("device key");
    let cert = card
        .read_file(&ObjectRef::id([DEVICE_CERT]))
        .expect("certificate");
    let read = card.stats().apdus;
    cache.store(&card).expect("keep the card's data");
    card.close().expect("close");
    Run {
        used,
        check_apdus: checked - opened,
        reads_apdus: read - checked,
        point,
        cert,
    }
}

fn assert_card(run: &Run, report: &ProvisionReport, what: &str) {
    assert_eq!(run.cert, report.device_cert_der, "{what}: certificate");
    assert_eq!(
        run.point.as_bytes().as_slice(),
        report.device_public_key.as_slice(),
        "{what}: public key"
    );
}

fn assert_warm(run: &Run, what: &str) {
    assert_eq!(run.used, CacheUse::Warm, "{what}");
    assert_eq!(
        run.check_apdus, 1,
        "{what}: one short APDU checks the entry"
    );
    assert_eq!(run.reads_apdus, 0, "{what}: everything else from the cache");
}

fn assert_cold(run: &Run, what: &str) {
    assert!(
        matches!(run.used, CacheUse::Cold(_)),
        "{what}: {:?}",
        run.used
    );
    // Object list, public key, and the certificate in two READ FILEs of 240 bytes at most.
    assert_eq!(run.reads_apdus, 4, "{what}: everything read from the card");
}

fn card(dir: &Path) -> (ProvisionReport, VirtualCard) {
    provisioned(dir, CardOptions::default())
}

#[test]
fn a_second_run_checks_with_one_apdu_and_a_swapped_sim_is_read_again() {
    let (dir_a, dir_b, cache_dir) = (tempdir(), tempdir(), tempdir());
    let (report_a, sim_a) = card(dir_a.path());
    let (report_b, sim_b) = card(dir_b.path());
    let cache = PublicCache::at(cache_dir.path());
    let modem = Modem::with(sim_a);

    let first = run(&modem, &cache);
    assert_cold(&first, "first run");
    assert_card(&first, &report_a, "first run");
    let second = run(&modem, &cache);
    assert_warm(&second, "second run");
    assert_card(&second, &report_a, "second run");
    // A warm run leaves the entry as it was: not written again (a device's flash spared).
    let entry = std::fs::read_dir(cache_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "card"))
        .expect("the card's entry");
    let written = std::fs::metadata(&entry).unwrap().modified().unwrap();
    assert_warm(&run(&modem, &cache), "third run");
    assert_eq!(
        std::fs::metadata(&entry).unwrap().modified().unwrap(),
        written
    );

    // Another SIM in the same modem: same route, another card.
    modem.swap(sim_b);
    let swapped = run(&modem, &cache);
    assert_cold(&swapped, "after the swap");
    assert_eq!(swapped.check_apdus, 1, "the check that failed");
    assert_card(&swapped, &report_b, "after the swap");
    let again = run(&modem, &cache);
    assert_warm(&again, "the swapped SIM's second run");
    assert_card(&again, &report_b, "the swapped SIM's second run");
    modem.handle.stop().unwrap();
}

#[test]
fn a_sim_provisioned_again_or_with_a_renewed_certificate_is_read_again() {
    let (dir, cache_dir) = (tempdir(), tempdir());
    let (report, sim) = card(dir.path());
    let cache = PublicCache::at(cache_dir.path());
    let modem = Modem::with(sim);
    assert_cold(&run(&modem, &cache), "first run");
    assert_warm(&run(&modem, &cache), "second run");

    // Provisioned again in place: a new key made on the card, a new certificate.
    let (again, sim) = card(dir.path());
    assert_ne!(again.device_public_key, report.device_public_key);
    modem.swap(sim);
    let reprovisioned = run(&modem, &cache);
    assert_cold(&reprovisioned, "after provisioning again");
    assert_card(&reprovisioned, &again, "after provisioning again");
    assert_warm(&run(&modem, &cache), "its second run");

    // The same key, a renewed certificate (as after `iotsafe enroll --reenroll`, written OTA).
    let renewed = renew(&again);
    assert_ne!(renewed, again.device_cert_der);
    let written = modem.sim.lock().unwrap().store_mut().write_file(
        iotsafe_vcard::store::ObjectRef::Id(&[DEVICE_CERT]),
        &renewed,
    );
    assert!(written);
    let after = run(&modem, &cache);
    assert_cold(&after, "after the renewal");
    assert_eq!(after.cert, renewed);
    assert_warm(&run(&modem, &cache), "the renewed certificate's second run");
    modem.handle.stop().unwrap();
}

#[test]
fn a_cache_entry_never_touched_by_the_card_is_refused() {
    // An entry written for another card (the identity inside differs from the file name's) or
    // damaged on disk is never used, and never fails the run.
    let (dir, cache_dir) = (tempdir(), tempdir());
    let (report, sim) = card(dir.path());
    let cache = PublicCache::at(cache_dir.path());
    let modem = Modem::with(sim);
    assert_cold(&run(&modem, &cache), "first run");
    let entry = std::fs::read_dir(cache_dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&entry).unwrap();
    for damaged in [
        text.replace("closes 0", "closes 0 extra"),
        text.replacen("identity ", "identity 41", 1),
        text[..text.len() / 2].to_string(),
    ] {
        std::fs::write(&entry, damaged).unwrap();
        let r = run(&modem, &cache);
        assert_cold(&r, "damaged entry");
        assert_card(&r, &report, "damaged entry");
    }
    assert_eq!(run(&modem, &cache).used, CacheUse::Warm);
    modem.handle.stop().unwrap();
}

#[test]
fn iotsafe_processes_use_the_cache_and_never_its_stale_certificate() {
    let Some(program) = iotsafe_program() else {
        assert!(
            !iotsafe_tests::services_required(),
            "the iotsafe program was not built beside the tests"
        );
        return;
    };
    let (dir_a, dir_b, cache_dir) = (tempdir(), tempdir(), tempdir());
    let (report_a, sim_a) = card(dir_a.path());
    let (report_b, sim_b) = card(dir_b.path());
    let modem = Modem::with(sim_a);
    let cache_dir_path = cache_dir.path().join("cache");
    let der = cache_dir.path().join("cert.der");
    let cert = |what: &str| {
        let out = std::process::Command::new(&program)
            .args([
                "--modem",
                &format!("tcp://{}", modem.addr),
                "--trace",
                "cert",
            ])
            .arg("--out")
            .arg(&der)
            .env("IOTSAFE_CACHE_DIR", &cache_dir_path)
            .env_remove("IOTSAFE_READER")
            .env_remove("IOTSAFE_VCARD")
            .env_remove("IOTSAFE_MODEM")
            .output()
            .expect("run iotsafe");
        let trace = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{what}: {trace}");
        let commands: Vec<String> = trace
            .lines()
            .filter(|l| l.starts_with('→'))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .collect();
        (
            std::fs::read(&der).expect("the certificate written"),
            commands,
            trace,
        )
    };
    let (first, commands, trace) = cert("first run");
    assert_eq!(first, report_a.device_cert_der, "{trace}");
    assert!(commands.iter().any(|c| c == "GET"), "{trace}");
    let (second, commands, trace) = cert("second run");
    assert_eq!(second, report_a.device_cert_der, "{trace}");
    assert_eq!(
        commands,
        ["READ"],
        "one READ FILE checks the entry: {trace}"
    );
    modem.swap(sim_b);
    let (swapped, _, trace) = cert("after the swap");
    assert_eq!(swapped, report_b.device_cert_der, "{trace}");
    modem.handle.stop().unwrap();
}

/// A certificate for `report`'s card key, issued again by its CA.
fn renew(report: &ProvisionReport) -> Vec<u8> {
    use rcgen::{
        CertificateParams, DnType, Issuer, KeyPair, PublicKeyData, SignatureAlgorithm,
        PKCS_ECDSA_P256_SHA256,
    };
    struct CardKey(Vec<u8>);
    impl PublicKeyData for CardKey {
        fn der_bytes(&self) -> &[u8] {
            &self.0
        }
        fn algorithm(&self) -> &'static SignatureAlgorithm {
            &PKCS_ECDSA_P256_SHA256
        }
    }
    let ca_key = std::fs::read_to_string(report.pki_dir.join("ca.key")).unwrap();
    let ca_key = KeyPair::from_pem(&ca_key).unwrap();
    let issuer = Issuer::from_ca_cert_der(&report.ca_cert_der.clone().into(), ca_key).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "device-0001 renewed");
    params
        .signed_by(&CardKey(report.device_public_key.clone()), &issuer)
        .unwrap()
        .der()
        .to_vec()
}

/// The `iotsafe` program the workspace's test run built beside this test.
fn iotsafe_program() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let program = exe.parent()?.parent()?.join("iotsafe");
    program.is_file().then_some(program)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn what_a_run_learned_about_the_modem_saves_the_next_its_questions() {
    use iotsafe_core::at::{AtOptions, Learned};
    use iotsafe_core::Transport;
    let dir = tempdir();
    let (_, sim) = card(dir.path());
    let modem = Modem::with(sim);
    let first = AtTransport::connect_tcp(modem.addr).expect("connect over AT");
    let learned = first.learned().expect("the probes answered");
    assert!(learned.cgla && learned.csim, "{learned:?}");
    let asked = first.wire_bytes().unwrap();
    drop(first);
    let options = AtOptions {
        learned: Some(learned),
        ..AtOptions::default()
    };
    let second = AtTransport::connect_tcp_with(modem.addr, options).expect("connect");
    let told = second.wire_bytes().unwrap();
    // AT+CGMM, AT+CCHO=? and AT+CSIM=? (lines and answers) are not sent again.
    let saved = b"AT+CGMM\r\n".len() + b"AT+CCHO=?\r\n".len() + b"AT+CSIM=?\r\n".len();
    assert_eq!(asked.sent - told.sent, saved as u64, "{asked:?} {told:?}");
    assert!(told.received < asked.received, "{asked:?} {told:?}");
    assert_eq!(second.learned(), Some(learned));
    drop(second);
    modem.handle.stop().unwrap();

    // A modem that no longer has AT+CCHO on that port (the facts are stale): the open still
    // works, AT+CCHO's refusal falls back to AT+CSIM as when it was asked.
    let (_, sim) = card(dir.path());
    let sim = Arc::new(Mutex::new(sim));
    let listener = TcpModem::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = listener
        .spawn(
            sim,
            ModemOptions {
                cgla: false,
                ..ModemOptions::default()
            },
        )
        .unwrap();
    let stale = AtOptions {
        learned: Some(Learned {
            csim: true,
            ..learned
        }),
        ..AtOptions::default()
    };
    let transport = AtTransport::connect_tcp_with(addr, stale).expect("connect");
    let card = Card::open(transport, CardConfig::default()).expect("open through AT+CSIM");
    card.read_public_key(&ObjectRef::id([DEVICE_KEY]))
        .expect("the card answers");
    drop(card);
    handle.stop().unwrap();
}

#[test]
fn the_cli_remembers_the_modem_between_runs() {
    use iotsafe_select::CardSelection;
    let (dir, cache_dir) = (tempdir(), tempdir());
    let (report, sim) = card(dir.path());
    let modem = Modem::with(sim);
    let selection = CardSelection {
        modem: Some(format!("tcp://{}", modem.addr)),
        public_cache: Some(cache_dir.path().to_path_buf()),
        ..CardSelection::default()
    };
    let port = format!("modem tcp://{}", modem.addr);
    let cache = PublicCache::at(cache_dir.path());
    assert_eq!(cache.port_facts(&port), None);
    for round in 0..2 {
        let opened = selection.open_traced(None).expect("open");
        let cert = opened
            .card
            .read_file(&ObjectRef::id([DEVICE_CERT]))
            .unwrap();
        assert_eq!(cert, report.device_cert_der, "round {round}");
        opened.finish().unwrap();
        let facts = cache.port_facts(&port).expect("the modem's facts kept");
        assert!(
            iotsafe_core::at::Learned::parse(&facts).is_some(),
            "{facts}"
        );
    }
    modem.handle.stop().unwrap();
}
