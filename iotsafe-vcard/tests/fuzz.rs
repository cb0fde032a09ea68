//! Property tests: the card never panics, whatever bytes arrive, alone or in sequences.

use iotsafe_vcard::profile::TransportMode;
use iotsafe_vcard::{CardHandler, CardOptions, VirtualCard};
use proptest::prelude::*;

/// APDUs that start like real IoT SAFE commands, to get past the class and INS checks.
fn plausible_apdu() -> impl Strategy<Value = Vec<u8>> {
    let ins = prop::sample::select(vec![
        0x24u8, 0x2A, 0x2B, 0x2C, 0x2D, 0x46, 0x48, 0x4A, 0x70, 0x84, 0xA4, 0xB0, 0xB9, 0xC0, 0xCB,
        0xCD, 0xD8,
    ]);
    let cla = prop::sample::select(vec![0x00u8, 0x01, 0x81, 0x80, 0x40, 0xC3]);
    (
        cla,
        ins,
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..260),
    )
        .prop_map(|(cla, ins, p1, p2, body)| {
            let mut apdu = vec![cla, ins, p1, p2];
            apdu.extend(body);
            apdu
        })
}

/// A well-formed APDU with a TLV-shaped body, to reach the command parsers.
fn tlv_apdu() -> impl Strategy<Value = Vec<u8>> {
    let tag = prop::sample::select(vec![
        0x33u8, 0x34, 0x49, 0x73, 0x74, 0x75, 0x76, 0x83, 0x84, 0x85, 0x86, 0x91, 0x92, 0x9A, 0x9B,
        0x9C, 0x9D, 0x9E, 0xA1, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5,
    ]);
    let tlv = (tag, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, v)| {
        let mut out = vec![t, v.len() as u8];
        out.extend(v);
        out
    });
    let ins = prop::sample::select(vec![
        0x24u8, 0x2A, 0x2B, 0x2C, 0x2D, 0x46, 0x48, 0x4A, 0xB0, 0xB9, 0xCB, 0xCD, 0xD8,
    ]);
    let p1 = prop::sample::select(vec![0x00u8, 0x01, 0x80, 0xC1, 0xC2, 0xC3, 0xC4]);
    (ins, p1, prop::collection::vec(tlv, 0..5)).prop_map(|(ins, p1, tlvs)| {
        let body: Vec<u8> = tlvs.concat();
        let mut apdu = vec![0x81, ins, p1, 0x01];
        if !body.is_empty() && body.len() < 256 {
            apdu.push(body.len() as u8);
            apdu.extend(body);
        }
        apdu
    })
}

fn fresh(transport: TransportMode) -> VirtualCard {
    let mut card = VirtualCard::with_default_layout(CardOptions {
        transport,
        ..CardOptions::default()
    });
    card.process(&[
        0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10,
    ]);
    card.process(&[0x81, 0xB9, 0x00, 0x00, 0x03, 0x84, 0x01, 0x04]);
    card
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for transport in [TransportMode::T0, TransportMode::T1] {
            let mut card = fresh(transport);
            let r = card.process(&bytes);
            prop_assert!(r.len() >= 2);
        }
    }

    #[test]
    fn sequences_never_panic(apdus in prop::collection::vec(prop_oneof![plausible_apdu(), tlv_apdu()], 1..24)) {
        for transport in [TransportMode::T0, TransportMode::T1] {
            let mut card = fresh(transport);
            for apdu in &apdus {
                let r = card.process(apdu);
                prop_assert!(r.len() >= 2);
            }
        }
    }
}
