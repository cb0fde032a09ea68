#![no_main]
//! The virtual card's command dispatcher on arbitrary APDU sequences, in every card profile: it
//! never panics, every answer ends in a status word, and no answer ever carries a private scalar.
//!
//! Input layout: byte 0 picks the profile (and T=0/T=1), then APDUs as `len ‖ bytes`. A SELECT of
//! the applet on channel 1 is sent first so that the deeper command paths are reachable.
use std::sync::OnceLock;

use iotsafe_vcard::store::ObjectStore;
use iotsafe_vcard::{CardHandler, CardProfile, VirtualCard};
use libfuzzer_sys::fuzz_target;

/// The default layout with its device key, made once: generating a P-256 key per input would
/// spend most of the fuzzing time in key generation.
fn layout() -> &'static ObjectStore {
    static LAYOUT: OnceLock<ObjectStore> = OnceLock::new();
    LAYOUT.get_or_init(ObjectStore::default_layout)
}

const PROFILES: [CardProfile; 6] = [
    CardProfile::Standard,
    CardProfile::Ntt,
    CardProfile::Zariot,
    CardProfile::ThalesMvp,
    CardProfile::StrictUicc,
    CardProfile::NoApplet,
];

const SELECT_CH1: [u8; 12] = [
    0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
];

fn secrets(card: &VirtualCard) -> Vec<Vec<u8>> {
    card.store()
        .private_keys
        .iter()
        .filter_map(|k| k.scalar.as_ref().map(|s| s.expose().to_vec()))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && needle.len() <= haystack.len()
        && haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let mut card = VirtualCard::new(
        layout().clone(),
        PROFILES[usize::from(selector) % PROFILES.len()].options(),
    );
    if selector & 0x80 == 0 {
        card.process(&SELECT_CH1);
    }
    let mut count = 0;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (apdu, tail) = tail.split_at(len);
        rest = tail;
        // Secrets before the command (it may generate a fresh key) and after it.
        let mut keys = secrets(&card);
        let response = card.process(apdu);
        keys.extend(secrets(&card));
        assert!(response.len() >= 2, "an answer without a status word");
        for key in &keys {
            assert!(!contains(&response, key), "a private scalar left the card");
        }
        count += 1;
        if count > 64 {
            break;
        }
    }
});
