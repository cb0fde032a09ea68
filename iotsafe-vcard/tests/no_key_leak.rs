//! No command, in any transport mode, on any path (success or error), ever returns private key bytes.

mod common;

use common::*;
use iotsafe_vcard::profile::{SignatureFormat, TransportMode};
use iotsafe_vcard::{CardHandler, CardOptions, Quirks, VirtualCard};

/// Data fields that reach the deeper paths of each command.
const DATA_FIELDS: &[&str] = &[
    "",
    "840101",
    "840104",
    "850101",
    "850104",
    "850105",
    "74066465766963650000",
    "830102",
    "830103",
    "860101",
    "840101A1010391020001920104",
    "840104A1010391020001920104",
    "850101A1010391020001920104",
    "9E20AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "840101850101",
    "840104850104",
    "840101850105",
    "D1200000000000000000000000000000000000000000000000000000000000000000D2036C6162D30140",
    "34454943864104",
    "C1",
    "FF",
];

fn secrets(card: &VirtualCard) -> Vec<Vec<u8>> {
    card.store()
        .private_keys
        .iter()
        .filter_map(|k| k.scalar.as_ref().map(|s| s.expose().to_vec()))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_response_contains_a_private_scalar() {
    for transport in [TransportMode::T0, TransportMode::T1] {
        for format in [
            SignatureFormat::TwoByteLength,
            SignatureFormat::OneByteLength,
            SignatureFormat::Der,
        ] {
            let mut card = VirtualCard::with_default_layout(CardOptions {
                transport,
                quirks: Quirks {
                    signature_format: format,
                    ..Quirks::default()
                },
                ..CardOptions::default()
            });
            expect(&mut card, "01A4040007A0000005590010", 0x9000);
            // Fill the ephemeral key and the peer slot so that DH and friends run to the end.
            card.process(&h("81B9000003840104"));
            card.process(&h("81C0000000"));
            card.process(&h("8124000203850105"));
            let put = format!("81D8800247344549438641{}", hex(&device_point(&card)));
            card.process(&h(&put));
            let mut checked = 0u32;
            for ins in 0u8..=0xFF {
                for (p1, p2) in [
                    (0x00, 0x00),
                    (0x00, 0x01),
                    (0x80, 0x01),
                    (0x01, 0x01),
                    (0xC1, 0x00),
                    (0xC3, 0x00),
                    (0x01, 0x00),
                ] {
                    for data in DATA_FIELDS {
                        let body = h(data);
                        let mut apdu = vec![0x81, ins, p1, p2];
                        if !body.is_empty() {
                            apdu.push(body.len() as u8);
                            apdu.extend_from_slice(&body);
                        }
                        apdu.push(0x00);
                        let keys = secrets(&card);
                        let response = card.process(&apdu);
                        let fetched = card.process(&h("81C0000000"));
                        for key in &keys {
                            assert!(
                                !contains(&response, key),
                                "INS {ins:02X} leaked a private key"
                            );
                            assert!(
                                !contains(&fetched, key),
                                "INS {ins:02X} leaked through GET RESPONSE"
                            );
                        }
                        checked += 1;
                        // Keep the applet selected on channel 1 whatever the last command did.
                        if ins == 0xA4 || ins == 0x70 {
                            card.process(&h("01A4040007A0000005590010"));
                        }
                    }
                }
            }
            assert!(checked > 30_000);
            // Nor does the Debug output of the card.
            let debug = format!("{card:?}");
            for key in secrets(&card) {
                assert!(!debug.contains(&format!("{key:?}")));
                assert!(!debug.to_uppercase().contains(&hex(&key)));
            }
        }
    }
}
