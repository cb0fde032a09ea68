//! The quirks of real SIMs the card can act out, byte by byte through the in-process card: sessions
//! closed by the card, volatile keys wiped on reset, few logical channels, grouped object lists,
//! unlucky signatures, short READ FILE answers, hashed DH output, a strict T=0 GET RESPONSE and
//! plain one-byte TLV lengths, and cards that refuse an Init while a session is left open.

mod common;

use std::time::{Duration, Instant};

use common::{device_point, expect, h, hex, send, sw, verify_raw};
use iotsafe_vcard::store::{
    attr, FileObject, KeyAttributes, ObjectStore, PrivateKeyObject, PublicKeyObject, SecretBytes,
};
use iotsafe_vcard::{
    CardHandler, CardOptions, DhOutput, InfoFieldOrder, ObjectListLayout, Quirks, SignatureFormat,
    SignaturePrefix, TlvLengths, TransportMode, VirtualCard,
};

const SELECT: &str = "00 A4 04 00 07 A0000005590010";
const GX: &str = "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296";
const GY: &str = "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5";
const HASH: &str = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";

fn card(quirks: Quirks) -> VirtualCard {
    card_with(quirks, TransportMode::T1)
}

fn card_with(quirks: Quirks, transport: TransportMode) -> VirtualCard {
    let mut card = VirtualCard::with_default_layout(CardOptions {
        quirks,
        transport,
        ..CardOptions::default()
    });
    expect(&mut card, SELECT, 0x9000);
    card
}

/// Puts the generator G into the peer slot 05 (Put Public Key init, update, close).
fn put_generator(card: &mut VirtualCard, close_sw: u16) {
    expect(card, "00 24 00 02 03 85 01 05", 0x9000);
    expect(
        card,
        &format!("00 D8 80 02 47 34 45 49 43 86 41 04 {GX} {GY}"),
        0x9000,
    );
    expect(card, "00 24 01 02 00", close_sw);
}

#[test]
fn sessions_closed_by_the_card_after_the_last_update() {
    let mut c = card(Quirks {
        close_after_final_update: Some(0x6985),
        ..Quirks::default()
    });
    // Sign: the session is over once the signature came back.
    expect(
        &mut c,
        "00 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
        0x9000,
    );
    let signature = expect(&mut c, &format!("00 2B 80 01 22 9E 20 {HASH}"), 0x9000);
    assert_eq!(signature[..3], [0x33, 0x00, 0x40]);
    assert_eq!(sw(&send(&mut c, "00 2A 01 01 00")), 0x6985);
    // Closed once: a second close of the same number is a close of nothing.
    assert_eq!(sw(&send(&mut c, "00 2A 01 01 00")), 0x9000);
    // A further Update finds no session.
    assert_eq!(
        sw(&send(&mut c, &format!("00 2B 80 01 22 9E 20 {HASH}"))),
        0x6985
    );
    // Verify, even when the signature does not match.
    let point = hex(&device_point(&c));
    put_device_key_into_peer_slot(&mut c, &point);
    expect(
        &mut c,
        "00 2C 00 01 0D 85 01 05 A1 01 03 91 02 00 01 92 01 04",
        0x9000,
    );
    let mut bad = signature[3..].to_vec();
    bad[10] ^= 1;
    let update = format!("00 2D 80 01 65 9E 20 {HASH} 33 00 40 {}", hex(&bad));
    assert_eq!(sw(&send(&mut c, &update)), 0x6D01);
    assert_eq!(sw(&send(&mut c, "00 2C 01 01 00")), 0x6985);
    // Put public key.
    put_generator(&mut c, 0x6985);
    // A session number never opened closes with 9000, as before (Thales closes 0..5 at start-up).
    assert_eq!(sw(&send(&mut c, "00 2A 01 05 00")), 0x9000);

    // Without the quirk the session stays until the host closes it.
    let mut plain = card(Quirks::default());
    put_generator(&mut plain, 0x9000);
    expect(
        &mut plain,
        "00 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
        0x9000,
    );
    expect(&mut plain, &format!("00 2B 80 01 22 9E 20 {HASH}"), 0x9000);
    assert_eq!(sw(&send(&mut plain, "00 2A 01 01 00")), 0x9000);
}

fn put_device_key_into_peer_slot(card: &mut VirtualCard, point_hex: &str) {
    expect(card, "00 24 00 02 03 85 01 05", 0x9000);
    expect(
        card,
        &format!("00 D8 80 02 47 34 45 49 43 86 41 {point_hex}"),
        0x9000,
    );
    // With the quirk on, the card already closed the put session.
    let _ = send(card, "00 24 01 02 00");
}

#[test]
fn volatile_keys_are_wiped_by_a_reset() {
    for wipe in [true, false] {
        let mut c = card(Quirks {
            wipe_volatile_on_reset: wipe,
            ..Quirks::default()
        });
        expect(&mut c, "00 B9 00 00 03 84 01 04", 0x9000);
        put_generator(&mut c, 0x9000);
        let dh = "00 46 00 00 06 84 01 04 85 01 05";
        assert_eq!(expect(&mut c, dh, 0x9000).len(), 32);
        // A logical channel and an open sign session, both gone after the reset.
        assert_eq!(expect(&mut c, "00 70 00 00 01", 0x9000), [0x01]);
        expect(&mut c, "01 A4 04 00 07 A0000005590010", 0x9000);
        expect(
            &mut c,
            "01 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
            0x9000,
        );
        assert_eq!(c.open_channel_count(), 1);
        c.reset();
        assert_eq!(c.open_channel_count(), 0);
        assert_eq!(
            sw(&send(&mut c, &format!("01 2B 80 01 22 9E 20 {HASH}"))),
            0x6881
        );
        expect(&mut c, SELECT, 0x9000);
        if wipe {
            assert_eq!(sw(&send(&mut c, dh)), 0x6985, "DH with a wiped key");
            // The persistent device key survives.
            expect(&mut c, "00 CD 00 00 03 85 01 01", 0x9000);
        } else {
            assert_eq!(expect(&mut c, dh, 0x9000).len(), 32);
        }
        // Power off and on wipes the same way.
        expect(&mut c, "00 B9 00 00 03 84 01 04", 0x9000);
        c.power_off();
        c.power_on();
        expect(&mut c, SELECT, 0x9000);
        assert_eq!(sw(&send(&mut c, dh)) == 0x6985, wipe, "after a power cycle");
    }
}

#[test]
fn a_card_with_three_logical_channels() {
    let mut c = card(Quirks {
        logical_channels: 3,
        ..Quirks::default()
    });
    for n in 1..=3u8 {
        assert_eq!(expect(&mut c, "00 70 00 00 01", 0x9000), [n]);
    }
    assert_eq!(c.open_channel_count(), 3);
    assert_eq!(send(&mut c, "00 70 00 00 01"), h("6A81"));
    assert_eq!(send(&mut c, "00 70 00 04"), h("6A81"));
    // Channel 4 (CLA 40) does not exist on this card, even for an implicit open by SELECT.
    assert_eq!(send(&mut c, "40 A4 04 00 07 A0000005590010"), h("6881"));
    assert_eq!(send(&mut c, "00 70 80 02"), h("9000"));
    assert_eq!(c.open_channel_count(), 2);
    assert_eq!(expect(&mut c, "00 70 00 00 01", 0x9000), [0x02]);
    assert_eq!(c.open_channel_count(), 3);

    // The default offers all 19.
    let mut full = card(Quirks::default());
    for n in 1..=19u8 {
        assert_eq!(expect(&mut full, "00 70 00 00 01", 0x9000), [n]);
    }
    assert_eq!(send(&mut full, "00 70 00 00 01"), h("6A81"));
    assert_eq!(full.open_channel_count(), 19);
}

fn list_store() -> ObjectStore {
    let attributes = KeyAttributes {
        key_type: attr::KEY_TYPE_P256_PERSISTENT,
        usage: attr::USAGE_GENERAL,
        functions: attr::FUNCTION_SIGNATURE,
        signature_algorithms: Some(attr::SIGNATURE_ECDSA),
        hash_algorithms: Some(attr::HASH_SHA256),
        key_agreement: None,
    };
    let key = |id: u8, label: &str| PrivateKeyObject {
        id: vec![id],
        label: Some(label.to_owned()),
        access: attr::ACCESS_UPDATE,
        attributes: attributes.clone(),
        public_key_id: None,
        scalar: None,
    };
    ObjectStore {
        private_keys: vec![key(1, "k1"), key(2, "k2")],
        files: vec![FileObject {
            id: vec![3],
            label: None,
            access: attr::ACCESS_READ,
            usage: attr::FILE_USAGE_CERTIFICATE,
            data: vec![0xAB; 5],
        }],
        ..ObjectStore::default()
    }
}

fn object_list(layout: ObjectListLayout, order: InfoFieldOrder) -> Vec<u8> {
    let mut c = VirtualCard::new(
        list_store(),
        CardOptions {
            quirks: Quirks {
                object_list_layout: layout,
                info_field_order: order,
                ..Quirks::default()
            },
            ..CardOptions::default()
        },
    );
    expect(&mut c, SELECT, 0x9000);
    expect(&mut c, "80 CB 01 00 00", 0x9000)
}

#[test]
fn object_list_layouts_and_field_orders() {
    const ATTRS: &str = "60 01 02 4A 01 00 4B 01 13 4E 01 01 61 01 01 92 01 04 91 02 00 01";
    const FILE: &str = "C3 10 83 01 03 60 01 01 4A 01 01 21 01 02 20 02 00 05";
    use InfoFieldOrder::*;
    use ObjectListLayout::*;
    assert_eq!(
        object_list(PerObject, LabelFirst),
        h(&format!(
            "C1 1D 74 02 6B31 84 01 01 {ATTRS} C1 1D 74 02 6B32 84 01 02 {ATTRS} {FILE}"
        ))
    );
    assert_eq!(
        object_list(Grouped, LabelFirst),
        h(&format!(
            "C1 3A 74 02 6B31 84 01 01 {ATTRS} 74 02 6B32 84 01 02 {ATTRS} {FILE}"
        ))
    );
    assert_eq!(
        object_list(Grouped, IdFirst),
        h(&format!(
            "C1 3A 84 01 01 74 02 6B31 {ATTRS} 84 01 02 74 02 6B32 {ATTRS} {FILE}"
        ))
    );
    assert_eq!(
        object_list(PerObject, AttributesFirst),
        h(&format!(
            "C1 1D {ATTRS} 74 02 6B31 84 01 01 C1 1D {ATTRS} 74 02 6B32 84 01 02 \
             C3 10 60 01 01 4A 01 01 21 01 02 20 02 00 05 83 01 03"
        ))
    );
    // GET DATA of one object follows the field order too.
    let mut c = VirtualCard::new(
        list_store(),
        CardOptions {
            quirks: Quirks {
                info_field_order: IdFirst,
                ..Quirks::default()
            },
            ..CardOptions::default()
        },
    );
    expect(&mut c, SELECT, 0x9000);
    assert_eq!(
        expect(&mut c, "80 CB C1 00 04 74 02 6B 32", 0x9000),
        h(&format!("C1 1D 84 01 02 74 02 6B32 {ATTRS}"))
    );
}

#[test]
fn long_structures_get_ber_or_one_byte_lengths() {
    let mut store = list_store();
    for key in &mut store.private_keys {
        key.label = Some("a label of forty bytes, padded out.....".to_owned());
    }
    // Two keys of 41 (label) + 3 (ID) + 22 (attributes) = 66 bytes each: 132 (0x84) in the grouped C1.
    for (style, head) in [
        (TlvLengths::Ber, h("C1 81 84 74 27")),
        (TlvLengths::OneByte, h("C1 84 74 27")),
    ] {
        let mut c = VirtualCard::new(
            store.clone(),
            CardOptions {
                quirks: Quirks {
                    object_list_layout: ObjectListLayout::Grouped,
                    tlv_lengths: style,
                    ..Quirks::default()
                },
                ..CardOptions::default()
            },
        );
        expect(&mut c, SELECT, 0x9000);
        let list = expect(&mut c, "80 CB 01 00 00", 0x9000);
        assert_eq!(list[..head.len()], head[..], "{style:?}: {}", hex(&list));
        assert_eq!(list.len(), head.len() - 2 + 0x84 + 18, "{style:?}");
    }
}

#[test]
fn signatures_that_begin_with_a_chosen_prefix() {
    for (format, prefix) in [
        (SignatureFormat::Bare, "303E"),
        (SignatureFormat::Bare, "333E"),
        (SignatureFormat::TwoByteLength, "3340"),
    ] {
        let mut c = card(Quirks {
            signature_format: format,
            signature_prefix: Some(prefix.parse::<SignaturePrefix>().unwrap()),
            ..Quirks::default()
        });
        expect(
            &mut c,
            "81 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
            0x6881,
        );
        expect(
            &mut c,
            "80 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
            0x9000,
        );
        let started = Instant::now();
        let answer = expect(&mut c, &format!("80 2B 80 01 22 9E 20 {HASH}"), 0x9000);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the nonce search took {:?}",
            started.elapsed()
        );
        let r_s = match format {
            SignatureFormat::Bare => &answer[..],
            _ => {
                assert_eq!(answer[..3], [0x33, 0x00, 0x40]);
                &answer[3..]
            }
        };
        assert_eq!(r_s.len(), 64);
        assert_eq!(hex(&r_s[..2]), prefix);
        assert!(verify_raw(&device_point(&c), &h(HASH), r_s));
    }
    // Bare without a prefix: just r‖s.
    let mut c = card(Quirks {
        signature_format: SignatureFormat::Bare,
        ..Quirks::default()
    });
    expect(
        &mut c,
        "80 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
        0x9000,
    );
    let r_s = expect(&mut c, &format!("80 2B 80 01 22 9E 20 {HASH}"), 0x9000);
    assert_eq!(r_s.len(), 64);
    assert!(verify_raw(&device_point(&c), &h(HASH), &r_s));
}

#[test]
fn read_file_answers_at_most_n_bytes() {
    let mut c = card(Quirks {
        read_file_max: Some(50),
        ..Quirks::default()
    });
    let cert: Vec<u8> = (0..=199u8).collect();
    assert!(c
        .store_mut()
        .write_file(iotsafe_vcard::store::ObjectRef::Id(&[2]), &cert));
    assert_eq!(
        expect(&mut c, "00 B0 00 00 03 83 01 02 00", 0x9000),
        cert[..50]
    );
    assert_eq!(
        expect(&mut c, "00 B0 00 32 03 83 01 02 20", 0x9000),
        cert[50..82]
    );
    assert_eq!(
        expect(&mut c, "00 B0 00 B4 03 83 01 02", 0x9000),
        cert[180..]
    );
}

#[test]
fn dh_output_hashed_like_java_card() {
    // Private scalar 1 and peer point G: the shared x is G's own x, so its SHA-1 is a constant.
    let mut one = vec![0u8; 32];
    one[31] = 1;
    let attributes = KeyAttributes {
        key_type: attr::KEY_TYPE_P256_PERSISTENT,
        usage: attr::USAGE_GENERAL,
        functions: attr::FUNCTION_KEY_AGREEMENT,
        signature_algorithms: None,
        hash_algorithms: None,
        key_agreement: Some(attr::KEY_AGREEMENT_ECKA),
    };
    let store = ObjectStore {
        private_keys: vec![PrivateKeyObject {
            id: vec![4],
            label: None,
            access: attr::ACCESS_UPDATE,
            attributes: attributes.clone(),
            public_key_id: None,
            scalar: Some(SecretBytes::new(one)),
        }],
        public_keys: vec![PublicKeyObject {
            id: vec![5],
            label: None,
            access: attr::ACCESS_READ,
            attributes,
            point: Some(h(&format!("04 {GX} {GY}"))),
        }],
        ..ObjectStore::default()
    };
    for (output, answer) in [
        (DhOutput::RawX, h(&format!("{GX} 9000"))),
        (
            DhOutput::Sha1,
            h("c7f2297b1d005a8f5c995fd1d4c862cc31753793 9000"),
        ),
    ] {
        let mut c = VirtualCard::new(
            store.clone(),
            CardOptions {
                quirks: Quirks {
                    dh_output: output,
                    ..Quirks::default()
                },
                ..CardOptions::default()
            },
        );
        expect(&mut c, SELECT, 0x9000);
        assert_eq!(send(&mut c, "00 46 00 00 06 84 01 04 85 01 05"), answer);
    }
}

#[test]
fn strict_t0_get_response_answers_6cxx() {
    let mut strict = card_with(
        Quirks {
            get_response_strict: true,
            ..Quirks::default()
        },
        TransportMode::T0,
    );
    let point = hex(&device_point(&strict));
    let key = h(&format!("34 45 49 43 86 41 {point} 9000"));
    assert_eq!(send(&mut strict, "00 CD 00 00 03 85 01 01"), h("6147"));
    assert_eq!(send(&mut strict, "00 C0 00 00 00"), h("6C47"));
    assert_eq!(send(&mut strict, "00 C0 00 00 50"), h("6C47"));
    assert_eq!(send(&mut strict, "00 C0 00 00"), h("6C47"));
    // A smaller Le still takes part of it.
    assert_eq!(
        send(&mut strict, "00 C0 00 00 07"),
        h("34 45 49 43 86 41 04 6140")
    );
    assert_eq!(send(&mut strict, "00 C0 00 00 00"), h("6C40"));
    assert_eq!(send(&mut strict, "00 C0 00 00 40"), key[7..].to_vec());

    // The default T=0 card hands everything over on Le=00 (the NTT trace).
    let mut lenient = card_with(Quirks::default(), TransportMode::T0);
    assert_eq!(send(&mut lenient, "00 CD 00 00 03 85 01 01"), h("6147"));
    let point = hex(&device_point(&lenient));
    assert_eq!(
        send(&mut lenient, "00 C0 00 00 00"),
        h(&format!("34 45 49 43 86 41 {point} 9000"))
    );
}

#[test]
fn an_init_on_a_session_still_open_refused_until_the_host_closes_it() {
    const SIGN_INIT: &str = "00 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04";
    let mut c = card(Quirks {
        reopen_refused: Some(0x6985),
        ..Quirks::default()
    });
    expect(&mut c, SIGN_INIT, 0x9000);
    expect(&mut c, &format!("00 2B 80 01 22 9E 20 {HASH}"), 0x9000);
    // Left open: the next Init of the same kind and number is refused ...
    assert_eq!(sw(&send(&mut c, SIGN_INIT)), 0x6985);
    // ... but another number, or another kind, opens.
    expect(
        &mut c,
        "00 2A 00 03 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
        0x9000,
    );
    expect(&mut c, "00 24 00 01 03 85 01 05", 0x9000);
    // Closed, it opens again.
    expect(&mut c, "00 2A 01 01 00", 0x9000);
    expect(&mut c, SIGN_INIT, 0x9000);

    // By default an Init replaces the open session (hosts that never close).
    let mut plain = card(Quirks::default());
    expect(&mut plain, SIGN_INIT, 0x9000);
    expect(&mut plain, &format!("00 2B 80 01 22 9E 20 {HASH}"), 0x9000);
    expect(&mut plain, SIGN_INIT, 0x9000);
    expect(&mut plain, &format!("00 2B 80 01 22 9E 20 {HASH}"), 0x9000);
}

#[test]
fn one_session_at_a_time_refuses_a_second_init_with_6a84() {
    let mut c = card(Quirks {
        max_sessions: 1,
        ..Quirks::default()
    });
    // The put-key session left open (no close) ...
    expect(&mut c, "00 24 00 02 03 85 01 05", 0x9000);
    // ... takes the only session: a sign Init is refused, and opens once it is closed.
    const SIGN_INIT: &str = "00 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04";
    assert_eq!(sw(&send(&mut c, SIGN_INIT)), 0x6A84);
    expect(&mut c, "00 24 01 02 00", 0x9000);
    expect(&mut c, SIGN_INIT, 0x9000);
}
