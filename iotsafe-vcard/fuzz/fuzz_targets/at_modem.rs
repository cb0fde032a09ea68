#![no_main]
//! The virtual card's AT modem front end (AT+CSIM, AT+CCHO, AT+CGLA, AT+CCHC, …) fed arbitrary
//! bytes from the host side: it never panics, answers only in lines, and never sends a private
//! scalar (in binary or in the hex of +CSIM/+CGLA answers).
use std::sync::atomic::AtomicBool;

use iotsafe_vcard::frontend::at::{AtModem, AtOptions};
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::{CardOptions, VirtualCard};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let card = VirtualCard::with_default_layout(CardOptions::default());
    let secrets: Vec<String> = card
        .store()
        .private_keys
        .iter()
        .filter_map(|k| k.scalar.as_ref())
        .map(|s| s.expose().iter().map(|b| format!("{b:02X}")).collect())
        .collect();
    let mut modem = AtModem::new(share(card), AtOptions::default());
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    // Fed in two pieces: a command line may arrive split across reads.
    let (a, b) = data.split_at(data.len() / 2);
    let _ = modem.feed(a, &mut out, &stop);
    let _ = modem.feed(b, &mut out, &stop);
    let text = String::from_utf8_lossy(&out).to_uppercase();
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a private scalar in the modem's answer");
    }
});
