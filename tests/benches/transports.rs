//! Issue #7, item 5: what one APDU costs on each transport, with the card itself at zero latency
//! (GET RANDOM of 16 bytes through `Card::get_random`: one APDU on T=1).
//!
//! * `apdu/in_process`: `InProcessTransport`, no I/O.
//! * `apdu/at_pty`: the AT modem emulation on a pseudo-terminal (`PtyModem`) and
//!   `AtTransport::open_tty` (`AT+CSIM`/`AT+CGLA` lines over the pty).
//! * `apdu/pcsc_vpcd` (feature `pcsc`, pcscd running): through pcscd and vpcd slot 1
//!   (`Virtual PCD 00 01`), `PcscTransport`.
//!
//! `cargo bench -p iotsafe-tests --bench transports --features pcsc`. Under
//! `cargo test --benches` only the in-process bench runs (once).
#![forbid(unsafe_code)]

use criterion::Criterion;
use iotsafe_core::{Card, CardConfig, Operation};
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::{CardOptions, InProcessTransport, VirtualCard};

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn vcard() -> VirtualCard {
    VirtualCard::with_default_layout(CardOptions::default())
}

fn one_apdu(card: &Card) {
    let before = card.stats().count(Operation::Random);
    card.get_random(16).expect("GET RANDOM");
    debug_assert_eq!(card.stats().count(Operation::Random), before + 1);
}

fn bench_card(c: &mut Criterion, name: &str, card: &Card) {
    one_apdu(card);
    let before = card.stats();
    one_apdu(card);
    let used = card.stats().since(&before);
    assert_eq!(used.apdus, 1, "{name}: GET RANDOM is one APDU: {used:?}");
    let mut group = c.benchmark_group("apdu");
    group.bench_function(name, |b| b.iter(|| one_apdu(card)));
    group.finish();
}

fn in_process(c: &mut Criterion) {
    let card = Card::open(InProcessTransport::new(vcard()), CardConfig::default())
        .expect("open the in-process card");
    bench_card(c, "in_process", &card);
}

fn at_pty(c: &mut Criterion) {
    use iotsafe_core::at::{AtOptions, AtTransport};
    use iotsafe_vcard::frontend::pty::PtyModem;
    let pty = PtyModem::open().expect("openpty");
    let path = pty.path().to_owned();
    let modem = pty
        .spawn(share(vcard()), Default::default())
        .expect("start the AT modem");
    let transport = AtTransport::open_tty(&path, AtOptions::default()).expect("open the pty");
    let card = Card::open(transport, CardConfig::default()).expect("open the card over AT");
    bench_card(c, "at_pty", &card);
    drop(card);
    modem.stop().expect("stop the modem");
}

#[cfg(feature = "pcsc")]
fn pcsc_vpcd(c: &mut Criterion) {
    use iotsafe_core::pcsc::{PcscOptions, PcscTransport, ReaderChoice};
    if !iotsafe_tests::service(iotsafe_tests::pcscd_running(), "pcscd") {
        return;
    }
    let _slot = iotsafe_tests::vpcd_slot_lock();
    let plugged = iotsafe_tests::vpcd::plug(share(vcard()));
    let transport = PcscTransport::connect(
        &ReaderChoice::Exact(iotsafe_tests::READER_SLOT1.into()),
        PcscOptions::default(),
    )
    .expect("connect to vpcd slot 1");
    let card = Card::open(transport, CardConfig::default()).expect("open the card over PC/SC");
    bench_card(c, "pcsc_vpcd", &card);
    drop(card);
    drop(plugged);
}

#[cfg(not(feature = "pcsc"))]
fn pcsc_vpcd(_: &mut Criterion) {
    eprintln!("apdu/pcsc_vpcd skipped: build with --features pcsc");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    in_process(&mut c);
    if bench_mode() {
        at_pty(&mut c);
        pcsc_vpcd(&mut c);
    }
    c.final_summary();
}
