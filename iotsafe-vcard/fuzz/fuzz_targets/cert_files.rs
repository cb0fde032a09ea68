#![no_main]
//! Certificate loading from card files: the rustls resolver reads the device certificate (file
//! `02`, or by searching every certificate file) and the CA certificate (file `03`) through the
//! core client from a virtual card whose files hold fuzzed bytes. It never panics, and it accepts
//! a device certificate only when it certifies the card's key.
//!
//! Input: byte 0 picks the mode, the rest is either a whole file, or XOR patches (offset, value)
//! and a cut length applied to the genuine certificates of a provisioned card, so that the deep
//! paths (a certificate that parses and names the card's key) are reached.
use std::sync::{Arc, OnceLock};

use iotsafe_core::{Card, CardConfig, ObjectRef};
use iotsafe_rustls::{CardCertResolver, ChainPolicy};
use iotsafe_vcard::store::{ObjectRef as StoreRef, ObjectStore};
use iotsafe_vcard::{provision, CardOptions, InProcessTransport, VirtualCard};
use libfuzzer_sys::fuzz_target;

struct Base {
    store: ObjectStore,
    device: Vec<u8>,
    ca: Vec<u8>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("iotsafe-fuzz-cert-{}", std::process::id()));
        let report = provision(&dir.join("card.json"), &dir.join("pki"), CardOptions::default())
            .expect("provision");
        let card = VirtualCard::open_state(&dir.join("card.json"), CardOptions::default())
            .expect("open");
        let _ = std::fs::remove_dir_all(&dir);
        Base {
            store: card.store().clone(),
            device: report.device_cert_der,
            ca: report.ca_cert_der,
        }
    })
}

fn patched(genuine: &[u8], patch: &[u8]) -> Vec<u8> {
    let mut out = genuine.to_vec();
    let (cut, pairs) = patch.split_first().map_or((255, &[][..]), |(c, p)| (*c, p));
    for pair in pairs.chunks_exact(3) {
        let offset = usize::from(u16::from_be_bytes([pair[0], pair[1]]));
        if let Some(b) = out.get_mut(offset % genuine.len().max(1)) {
            *b ^= pair[2];
        }
    }
    if cut < 255 {
        out.truncate(out.len() * usize::from(cut) / 255);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let base = base();
    let (device, ca) = match mode % 4 {
        0 => (rest.to_vec(), base.ca.clone()),
        1 => (base.device.clone(), rest.to_vec()),
        2 => (patched(&base.device, rest), base.ca.clone()),
        _ => (base.device.clone(), patched(&base.ca, rest)),
    };
    let mut vcard = VirtualCard::new(base.store.clone(), CardOptions::default());
    assert!(vcard.store_mut().write_file(StoreRef::Id(&[2]), &device));
    assert!(vcard.store_mut().write_file(StoreRef::Id(&[3]), &ca));
    let Ok(card) = Card::open(InProcessTransport::new(vcard), CardConfig::default()) else {
        return;
    };
    let card = Arc::new(card);
    let searched = CardCertResolver::builder(Arc::clone(&card)).build();
    let named = CardCertResolver::builder(Arc::clone(&card))
        .certificate_file(ObjectRef::id([2]))
        .chain(ChainPolicy::WithCardCa)
        .build();
    // Whatever was accepted is a certificate for the card's own key, and only the bytes of that
    // certificate (card padding trimmed) are served.
    for resolver in [searched, named].into_iter().flatten() {
        let served = resolver.device_certificate().as_ref();
        assert!(device.starts_with(served), "served bytes that are not the file's");
        assert!(!served.is_empty());
    }
});
