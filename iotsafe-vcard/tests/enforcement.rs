//! Every enforcement rule of the applet, one negative test each (`docs/protocol.md#commands`).

mod common;

use common::*;
use iotsafe_vcard::profile::{ClaPolicy, Quirks, TransportMode};
use iotsafe_vcard::store::{attr, ObjectRef, ObjectStore};
use iotsafe_vcard::{CardOptions, VirtualCard};

const SELECT_CH1: &str = "01A4040007A0000005590010";

fn card() -> VirtualCard {
    let mut card = VirtualCard::with_default_layout(CardOptions::default());
    expect(&mut card, SELECT_CH1, 0x9000);
    card
}

fn card_with(options: CardOptions) -> VirtualCard {
    let mut card = VirtualCard::with_default_layout(options);
    expect(&mut card, SELECT_CH1, 0x9000);
    card
}

#[test]
fn bad_class_is_6e00() {
    let mut c = card();
    for apdu in [
        "A0CB000044",
        "10CB000044",
        "0CCB000044",
        "61CB000044",
        "FFCB000044",
        "21A4040007A0000005590010",
    ] {
        assert_eq!(send(&mut c, apdu), h("6E00"), "{apdu}");
    }
}

#[test]
fn class_policies() {
    let mut strict = card_with(CardOptions {
        quirks: Quirks {
            cla: ClaPolicy::ProprietaryOnly,
            ..Quirks::default()
        },
        ..CardOptions::default()
    });
    assert_eq!(send(&mut strict, "01CB000044").len(), 2);
    assert_eq!(send(&mut strict, "01CB000044"), h("6E00"));
    assert_eq!(sw(&send(&mut strict, "81CB000044")), 0x9000);
    let mut inter = card_with(CardOptions {
        quirks: Quirks {
            cla: ClaPolicy::InterindustryOnly,
            ..Quirks::default()
        },
        ..CardOptions::default()
    });
    assert_eq!(send(&mut inter, "81CB000044"), h("6E00"));
    assert_eq!(sw(&send(&mut inter, "01CB000044")), 0x9000);
}

#[test]
fn unknown_instruction_is_6d00() {
    let mut c = card();
    assert_eq!(send(&mut c, "81FF000000"), h("6D00"));
    assert_eq!(send(&mut c, "8122000000"), h("6D00"));
    // Not selected on channel 0: the applet's INS are unknown there.
    assert_eq!(send(&mut c, "80CB000044"), h("6D00"));
}

#[test]
fn wrong_lengths_are_6700() {
    let mut c = card();
    assert_eq!(send(&mut c, "81B9"), h("6700"));
    assert_eq!(
        send(&mut c, "81B900000584 0101"),
        h("6700"),
        "Lc longer than data"
    );
    assert_eq!(
        send(&mut c, "81B9000002840101"),
        h("6700"),
        "data longer than Lc + Le"
    );
    assert_eq!(
        send(&mut c, "81B900000384 0501"),
        h("6700"),
        "TLV runs past the end"
    );
    assert_eq!(send(&mut c, "81B90000008401"), h("6700"), "extended length");
    assert_eq!(
        send(&mut c, "81B0000000"),
        h("6700"),
        "READ FILE without a reference"
    );
    assert_eq!(send(&mut c, "81840000"), h("6700"), "GET RANDOM without Le");
}

#[test]
fn bad_p1_p2_are_6a86() {
    let mut c = card();
    assert_eq!(send(&mut c, "81B9010003840101"), h("6A86"));
    assert_eq!(send(&mut c, "81CB050000"), h("6A86"));
    assert_eq!(send(&mut c, "81CB000144"), h("6A86"));
    assert_eq!(send(&mut c, "81CB010200"), h("6A86"));
    assert_eq!(
        send(&mut c, "812A02010D840101A1010391020001920104"),
        h("6A86")
    );
    assert_eq!(
        send(&mut c, "812A00010D840101A1010391020001920104"),
        h("9000")
    );
    assert_eq!(
        send(&mut c, &("812B4001229E20".to_string() + &"11".repeat(32))),
        h("6A86")
    );
    assert_eq!(send(&mut c, "8184000100"), h("6A86"));
    assert_eq!(send(&mut c, "8146010006840104850105"), h("6A86"));
    assert_eq!(send(&mut c, "8148030000"), h("6A86"));
    assert_eq!(send(&mut c, "8170400000"), h("6A86"));
    assert_eq!(
        send(&mut c, "0070800000"),
        h("6A86"),
        "the basic channel cannot be closed"
    );
    assert_eq!(send(&mut c, "81A4000007A0000005590010"), h("6A86"));
}

#[test]
fn unknown_objects_are_6a82() {
    let mut c = card();
    assert_eq!(send(&mut c, "81B9000003840109"), h("6A82"));
    assert_eq!(send(&mut c, "81CD000003850109"), h("6A82"));
    assert_eq!(send(&mut c, "81B0000003830109"), h("6A82"));
    assert_eq!(send(&mut c, "81CBC10003840109"), h("6A82"));
    assert_eq!(send(&mut c, "81CBC40003860101"), h("6A82"));
    assert_eq!(
        send(&mut c, "812A00010D840109A1010391020001920104"),
        h("6A82")
    );
    assert_eq!(
        send(&mut c, "812C00010D850109A1010391020001920104"),
        h("6A82")
    );
    assert_eq!(send(&mut c, "8124000203850109"), h("6A82"));
    assert_eq!(send(&mut c, "8146000006840104850109"), h("6A82"));
    assert_eq!(
        send(&mut c, "81B900000874066E6F6E65786973"),
        h("6A82"),
        "unknown label"
    );
}

#[test]
fn id_and_label_together_or_neither_are_6a80() {
    let mut c = card();
    assert_eq!(send(&mut c, "81B9000009840101 7404 64657669"), h("6A80"));
    assert_eq!(send(&mut c, "81B9000003A10103"), h("6A80"));
    assert_eq!(send(&mut c, "81B9000002 8400"), h("6A80"), "empty ID");
}

#[test]
fn functions_are_enforced_6985() {
    let mut c = card();
    // Sign with the ephemeral key (key generation + agreement only).
    expect(&mut c, "81B9000003840104", 0x9000);
    assert_eq!(
        send(&mut c, "812A00010D840104A1010391020001920104"),
        h("6985")
    );
    // Key agreement with the device key (signature + key generation only).
    expect(&mut c, "8124000203850105", 0x9000);
    let peer = device_point(&c);
    expect(
        &mut c,
        &format!("81D8800247 344549438641 {}", hex(&peer)),
        0x9000,
    );
    assert_eq!(send(&mut c, "8146000006840101850105"), h("6985"));
    // Key agreement with a public key that has no agreement function (the device public key).
    assert_eq!(send(&mut c, "8146000006840104850101"), h("6985"));
    // Verify with the ephemeral public key (agreement only).
    assert_eq!(
        send(&mut c, "812C00010D850104A1010391020001920104"),
        h("6985")
    );
    // Key generation on a key without the key-generation function.
    let mut store = ObjectStore::default_layout();
    store.private_keys[0].attributes.functions = attr::FUNCTION_SIGNATURE;
    let mut c = VirtualCard::new(store, CardOptions::default());
    expect(&mut c, SELECT_CH1, 0x9000);
    assert_eq!(send(&mut c, "81B9000003840101"), h("6985"));
    // Hash or algorithm the key does not allow / the card does not know.
    assert_eq!(
        send(&mut c, "812A00010D840101A1010391020002920104"),
        h("6985")
    );
    assert_eq!(
        send(&mut c, "812A00010D840101A1010391020008920104"),
        h("6A80")
    );
    assert_eq!(
        send(&mut c, "812A00010D840101A1010391020001920101"),
        h("6A80")
    );
    assert_eq!(
        send(&mut c, "812A00010D840101A1010991020001920104"),
        h("6A80")
    );
    assert_eq!(
        send(&mut c, "812A000107840101 91020001"),
        h("6A80"),
        "mode missing"
    );
}

#[test]
fn updates_need_an_open_session_6985() {
    let mut c = card();
    let hash = "22".repeat(32);
    assert_eq!(send(&mut c, &format!("812B8001229E20{hash}")), h("6985"));
    assert_eq!(send(&mut c, &format!("812D8001229E20{hash}")), h("6985"));
    let put = format!("81D8800247344549438641{}", hex(&device_point(&c)));
    assert_eq!(send(&mut c, &put), h("6985"));
    // After the last Update, the session needs a new Init.
    expect(&mut c, "812A00010D840101A1010391020001920104", 0x9000);
    expect(&mut c, &format!("812B8001229E20{hash}"), 0x9000);
    assert_eq!(send(&mut c, &format!("812B8001229E20{hash}")), h("6985"));
    // Closed sessions are gone; a close of a session never opened is fine.
    expect(&mut c, "812A00010D840101A1010391020001920104", 0x9000);
    expect(&mut c, "812A010100", 0x9000);
    expect(&mut c, "812A010500", 0x9000);
    assert_eq!(send(&mut c, &format!("812B8001229E20{hash}")), h("6985"));
    // Another session number is another session.
    expect(&mut c, "812A00010D840101A1010391020001920104", 0x9000);
    assert_eq!(send(&mut c, &format!("812B8002229E20{hash}")), h("6985"));
    // SELECT resets the channel's sessions.
    expect(&mut c, SELECT_CH1, 0x9000);
    assert_eq!(send(&mut c, &format!("812B8001229E20{hash}")), h("6985"));
}

#[test]
fn session_limit() {
    let mut c = card_with(CardOptions {
        quirks: Quirks {
            max_sessions: 2,
            ..Quirks::default()
        },
        ..CardOptions::default()
    });
    expect(&mut c, "812A00010D840101A1010391020001920104", 0x9000);
    expect(&mut c, "812A00020D840101A1010391020001920104", 0x9000);
    assert_eq!(
        send(&mut c, "812A00030D840101A1010391020001920104"),
        h("6A84")
    );
    // Re-opening an open session replaces it and does not count twice.
    expect(&mut c, "812A00020D840101A1010391020001920104", 0x9000);
    expect(&mut c, "812A010200", 0x9000);
    expect(&mut c, "8124000303850105", 0x9000);
}

#[test]
fn dh_with_an_empty_peer_slot_is_6985() {
    let mut c = card();
    expect(&mut c, "81B9000003840104", 0x9000);
    assert_eq!(send(&mut c, "8146000006840104850105"), h("6985"));
    // And with an ephemeral key that was never generated.
    let mut c = card();
    expect(&mut c, "8124000203850105", 0x9000);
    let put = format!("81D8800247344549438641{}", hex(&device_point(&c)));
    expect(&mut c, &put, 0x9000);
    assert_eq!(send(&mut c, "8146000006840104850105"), h("6985"));
}

#[test]
fn dh_agrees_with_p256() {
    let mut c = card();
    let peer = p256::SecretKey::random(&mut rand_core::OsRng);
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let peer_point = peer
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let keygen = expect(&mut c, "81B9000003840104", 0x9000);
    let card_point = keygen[keygen.len() - 65..].to_vec();
    expect(&mut c, "8124000203850105", 0x9000);
    expect(
        &mut c,
        &format!("81D8800247344549438641{}", hex(&peer_point)),
        0x9000,
    );
    expect(&mut c, "8124010200", 0x9000);
    let secret = expect(&mut c, "8146000006840104850105", 0x9000);
    let expected = p256::ecdh::diffie_hellman(
        peer.to_nonzero_scalar(),
        p256::PublicKey::from_sec1_bytes(&card_point)
            .unwrap()
            .as_affine(),
    );
    assert_eq!(secret, expected.raw_secret_bytes().to_vec());
    // By label too.
    let by_label = expect(
        &mut c,
        "814600000D 7405 6563646865 7504 70656572 00",
        0x9000,
    );
    assert_eq!(by_label, secret);
}

#[test]
fn put_public_key_rules() {
    let mut c = card();
    // The public half of a key pair is not updatable.
    assert_eq!(send(&mut c, "8124000203850101"), h("6985"));
    // A point off the curve.
    expect(&mut c, "8124000203850105", 0x9000);
    let mut bad = device_point(&c);
    bad[64] ^= 0x01;
    assert_eq!(
        send(&mut c, &format!("81D8800247344549438641{}", hex(&bad))),
        h("6A80")
    );
    // Wrong tags or lengths inside.
    expect(&mut c, "8124000203850105", 0x9000);
    assert_eq!(send(&mut c, "81D8800206 3404 4902 8600"), h("6A80"));
    // Split over two chunks (P1=00 then 80), as Thales middleware does.
    expect(&mut c, "8124000203850105", 0x9000);
    let point = hex(&device_point(&c));
    expect(
        &mut c,
        &format!("81D8000220 344549438641{}", &point[..52]),
        0x9000,
    );
    expect(&mut c, &format!("81D8800227 {}", &point[52..]), 0x9000);
    assert_eq!(
        expect(&mut c, "81CD000003850105", 0x9000)[6..],
        device_point(&c)[..]
    );
    // A bare `49` template (Thales test input).
    expect(&mut c, "8124000203850105", 0x9000);
    expect(&mut c, &format!("81D8800245 49438641{point}"), 0x9000);
    // Reading an empty slot.
    let mut fresh = card();
    assert_eq!(send(&mut fresh, "81CD000003850105"), h("6985"));
}

#[test]
fn read_file_bounds_and_chunks() {
    let mut store = ObjectStore::default_layout();
    let contents: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
    assert!(store.write_file(ObjectRef::Id(&[0x02]), &contents));
    let mut c = VirtualCard::new(store.clone(), CardOptions::default());
    expect(&mut c, SELECT_CH1, 0x9000);
    assert_eq!(expect(&mut c, "81B0000003830102", 0x9000), contents[..256]);
    assert_eq!(
        expect(&mut c, "81B0010003830102", 0x9000),
        contents[256..512]
    );
    assert_eq!(expect(&mut c, "81B0020003830102", 0x9000), contents[512..]);
    assert_eq!(
        expect(&mut c, "81B000F00383010232", 0x9000),
        contents[240..290]
    );
    assert_eq!(
        expect(&mut c, "81B002580383010200", 0x9000),
        Vec::<u8>::new(),
        "at the end"
    );
    assert_eq!(send(&mut c, "81B0025903830102"), h("6A86"));
    assert_eq!(
        expect(&mut c, "81B000000D730B6465766963652D63657274", 0x9000),
        contents[..256]
    );
    let mut c = VirtualCard::new(
        store,
        CardOptions {
            quirks: Quirks {
                read_past_end_sw: 0x6981,
                ..Quirks::default()
            },
            ..CardOptions::default()
        },
    );
    expect(&mut c, SELECT_CH1, 0x9000);
    assert_eq!(send(&mut c, "81B0FFFF03830102"), h("6981"));
}

#[test]
fn channels() {
    let mut c = VirtualCard::with_default_layout(CardOptions::default());
    // Commands on a channel that is not open.
    assert_eq!(send(&mut c, "02CB000044"), h("6881"));
    assert_eq!(
        send(&mut c, "0070800200"),
        h("6881"),
        "closing a closed channel"
    );
    // Open 1..19 in order, then none is free.
    for n in 1..=19u8 {
        assert_eq!(send(&mut c, "0070000001"), vec![n, 0x90, 0x00]);
    }
    assert_eq!(send(&mut c, "0070000001"), h("6A81"));
    // Channels 4..19 use the further interindustry class.
    expect(&mut c, "40A4040007A0000005590010", 0x9000);
    expect(&mut c, "C0CB000044", 0x9000);
    expect(&mut c, "4FA4040007A0000005590010", 0x9000);
    expect(&mut c, "CFCB000044", 0x9000);
    // Close from the channel itself (P2=00) and from channel 0.
    expect(&mut c, "4F70800000", 0x9000);
    assert_eq!(send(&mut c, "CFCB000044"), h("6881"));
    expect(&mut c, "0070800400", 0x9000);
    assert_eq!(send(&mut c, "C0CB000044"), h("6881"));
    // A strict card does not open a channel on SELECT.
    let mut strict = VirtualCard::with_default_layout(CardOptions {
        quirks: Quirks {
            implicit_channel_on_select: false,
            ..Quirks::default()
        },
        ..CardOptions::default()
    });
    assert_eq!(send(&mut strict, SELECT_CH1), h("6881"));
    assert_eq!(send(&mut strict, "0070000001"), h("019000"));
    expect(&mut strict, SELECT_CH1, 0x9000);
    // Selecting an unknown AID deselects the applet on that channel.
    expect(&mut strict, "01A4040007A0000005590011", 0x6A82);
    assert_eq!(send(&mut strict, "81CB000044"), h("6D00"));
}

#[test]
fn t0_procedure_bytes() {
    let mut c = card_with(CardOptions {
        transport: TransportMode::T0,
        ..CardOptions::default()
    });
    // Case 2 with a wrong Le: 6Cxx; with the right Le (or 00) the data comes directly.
    assert_eq!(send(&mut c, "81CB000030"), h("6C44"));
    assert_eq!(expect(&mut c, "81CB000044", 0x9000).len(), 0x44);
    assert_eq!(expect(&mut c, "81CB000000", 0x9000).len(), 0x44);
    assert_eq!(send(&mut c, "0070000002"), h("6C01"));
    // Case 4: 61xx, then GET RESPONSE in pieces.
    assert_eq!(send(&mut c, "81B9000003840104"), h("614D"));
    let first = send(&mut c, "81C0000010");
    assert_eq!(sw(&first), 0x613D);
    assert_eq!(data(&first).len(), 0x10);
    let rest = expect(&mut c, "01C0000000", 0x9000);
    assert_eq!(rest.len(), 0x3D);
    assert_eq!(
        [data(&first), &rest[..]].concat()[..6],
        h("840104850104")[..]
    );
    // Nothing pending any more.
    assert_eq!(send(&mut c, "81C0000010"), h("6985"));
    // Another command discards a pending answer.
    assert_eq!(send(&mut c, "81B9000003840104"), h("614D"));
    expect(&mut c, "8184000004", 0x9000);
    assert_eq!(send(&mut c, "81C000004D"), h("6985"));
    // Pending answers belong to their channel.
    assert_eq!(send(&mut c, "81B9000003840104"), h("614D"));
    assert_eq!(send(&mut c, "00C0000049"), h("6985"));
    assert_eq!(expect(&mut c, "81C000004D", 0x9000).len(), 0x4D);
    // GET RESPONSE with a larger Le returns what there is.
    assert_eq!(send(&mut c, "81CD000003850104"), h("6147"));
    assert_eq!(expect(&mut c, "81C00000FF", 0x9000).len(), 0x47);
}

#[test]
fn applet_information_layout() {
    let mut c = card();
    let info = expect(&mut c, "81CB000044", 0x9000);
    assert_eq!(info.len(), 0x44);
    assert_eq!(&info[..5], &h("1001011120")[..]);
    assert_eq!(
        &info[37..],
        &h("B10110 B20110 B30110 B40110 90010F 91020007 920104 930101 940103 B70104")[..]
    );
}

#[test]
fn object_list_order_and_continuation() {
    let mut c = card();
    let all = expect(&mut c, "81CB010000", 0x9000);
    // Outer tags in order: C1 C1 C2 C2 C2 C3 C3.
    let mut tags = Vec::new();
    let mut i = 0;
    while i < all.len() {
        tags.push(all[i]);
        i += 2 + all[i + 1] as usize;
    }
    assert_eq!(tags, h("C1C1C2C2C2C3C3"));
    // Device private key structure, inner order 74 84 60 4A 4B 4E 61 92 91.
    assert_eq!(
        &all[..all[1] as usize + 2],
        &h("C1 21 7406 646576696365 840101 600102 4A0101 4B0113 4E0103 610103 920104 91020001")[..]
    );
    // In parts of at most 0x40 bytes, cut at structure boundaries.
    let mut joined = Vec::new();
    let mut r = send(&mut c, "81CB010040");
    let mut parts = 1;
    while sw(&r) == 0x6300 {
        assert!(data(&r).len() <= 0x40 && !data(&r).is_empty());
        assert!(data(&r)[0] >= 0xC1 && data(&r)[0] <= 0xC4);
        joined.extend_from_slice(data(&r));
        r = send(&mut c, "81CB010140");
        parts += 1;
    }
    assert_eq!(sw(&r), 0x9000);
    joined.extend_from_slice(data(&r));
    assert!(parts > 2);
    assert_eq!(joined, all);
}

#[test]
fn signing_modes_and_formats() {
    use sha2::Digest;
    let message: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let digest = sha2::Sha256::digest(&message);
    for format in ["33-00-40", "33-40", "der"] {
        let mut c = card_with(CardOptions {
            quirks: Quirks {
                signature_format: format.parse().unwrap(),
                ..Quirks::default()
            },
            ..CardOptions::default()
        });
        let point = device_point(&c);
        // Mode 01, full text in 9B chunks (ZARIOT style `9B FD` then the rest), key by label.
        expect(
            &mut c,
            "812A00011274066465766963 65A1010191020001920104",
            0x9000,
        );
        expect(
            &mut c,
            &format!("812B0001FF9BFD{}", hex(&message[..253])),
            0x9000,
        );
        let sig = expect(
            &mut c,
            &format!("812B800131 9B2F{}", hex(&message[253..])),
            0x9000,
        );
        let raw = match format {
            "33-00-40" => {
                assert_eq!(&sig[..3], &h("330040")[..]);
                sig[3..].to_vec()
            }
            "33-40" => {
                assert_eq!(&sig[..2], &h("3340")[..]);
                sig[2..].to_vec()
            }
            _ => {
                assert_eq!(sig[0], 0x33);
                assert_eq!(sig[1] as usize, sig.len() - 2);
                p256::ecdsa::Signature::from_der(&sig[2..])
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            }
        };
        assert!(verify_raw(&point, &digest, &raw));
    }
    // Mode 02: the host hashed the first 256 bytes; the card finishes SHA-256.
    let mut c = card();
    let mut state = [
        0x6a09e667u32,
        0xbb67ae85,
        0x3c6ef372,
        0xa54ff53a,
        0x510e527f,
        0x9b05688c,
        0x1f83d9ab,
        0x5be0cd19,
    ];
    for chunk in message[..256].chunks_exact(64) {
        let mut block = [0u8; 64];
        block.copy_from_slice(chunk);
        sha2::compress256(&mut state, &[block.into()]);
    }
    let intermediate: Vec<u8> = state.iter().flat_map(|w| w.to_be_bytes()).collect();
    expect(&mut c, "812A00010D840101A1010291020001920104", 0x9000);
    let update = format!(
        "812B800156 9A2C{} 9C20{} 9D0400000100",
        hex(&message[256..]),
        hex(&intermediate)
    );
    let sig = expect(&mut c, &update, 0x9000);
    assert!(verify_raw(&device_point(&c), &digest, &sig[3..]));
}

#[test]
fn secret_keys_by_reference() {
    use iotsafe_vcard::store::{SecretBytes, SecretKeyObject};
    let mut store = ObjectStore::default_layout();
    store.secret_keys.push(SecretKeyObject {
        id: vec![0x07],
        label: Some("psk".into()),
        access: 0,
        key_type: attr::KEY_TYPE_HMAC,
        functions: attr::FUNCTION_KEY_DERIVATION,
        key_derivation: Some(attr::DERIVATION_PRF_SHA256 | attr::DERIVATION_HKDF),
        value: Some(SecretBytes::new(vec![0x0b; 22])),
    });
    store.secret_keys.push(SecretKeyObject {
        id: vec![0x08],
        label: None,
        access: 0,
        key_type: attr::KEY_TYPE_HMAC,
        functions: attr::FUNCTION_SIGNATURE,
        key_derivation: None,
        value: Some(SecretBytes::new(vec![0x01; 16])),
    });
    let mut c = VirtualCard::new(store, CardOptions::default());
    expect(&mut c, SELECT_CH1, 0x9000);
    // HKDF with the IKM by reference equals HKDF with the same IKM in clear (RFC 5869 case 1).
    let prk = expect(
        &mut c,
        "814A000016 860107 D50D000102030405060708090a0b0c 91020001",
        0x9000,
    );
    assert_eq!(
        prk,
        h("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    );
    // PRF with the secret by reference equals PRF with it in D1.
    let by_ref = expect(&mut c, "814800000B 860107 D2036C6162 D30120", 0x9000);
    let in_clear = expect(
        &mut c,
        &format!("8148000020 D116{} D2036C6162 D30120", "0b".repeat(22)),
        0x9000,
    );
    assert_eq!(by_ref, in_clear);
    // PSK mode (P1=01) uses the RFC 4279 pre-master, so it differs.
    let psk = expect(&mut c, "814801000B 860107 D2036C6162 D30120", 0x9000);
    assert_ne!(psk, by_ref);
    // The secret key's info structure.
    assert_eq!(
        expect(&mut c, "81CBC40003860107", 0x9000),
        h("C4 17 7603 70736B 860107 600100 4A0101 4B01A0 610108 940103")
    );
    // A secret key without the derivation function.
    assert_eq!(
        send(&mut c, "814800000B 860108 D2036C6162 D30120"),
        h("6985")
    );
    assert_eq!(send(&mut c, "814A000007 860108 91020001"), h("6985"));
    // Missing label/seed or length.
    assert_eq!(send(&mut c, "8148000003 860107"), h("6A80"));
    assert_eq!(send(&mut c, "8148000008 860107 D2036C6162"), h("6A80"));
}

#[test]
fn public_half_is_derived_when_only_the_private_key_was_provisioned() {
    let mut store = ObjectStore::default_layout();
    let expected = store.public_keys[0].point.take().unwrap();
    let mut c = VirtualCard::new(store, CardOptions::default());
    expect(&mut c, SELECT_CH1, 0x9000);
    assert_eq!(
        expect(&mut c, "81CD000003850101", 0x9000)[6..],
        expected[..]
    );
}

#[test]
fn put_key_as_complete_tlvs_per_chunk_thales_pkcs11() {
    let mut c = card();
    let template = format!("49438641{}", hex(&device_point(&c)));
    expect(&mut c, "8124000003850105", 0x9000);
    expect(
        &mut c,
        &format!("81D8000022 3420{}", &template[..64]),
        0x9000,
    );
    expect(
        &mut c,
        &format!("81D8800027 3425{}", &template[64..]),
        0x9000,
    );
    assert_eq!(
        expect(&mut c, "81CD000003850105", 0x9000)[6..],
        device_point(&c)[..]
    );
}

#[test]
fn verify_full_text_mode_with_chunks() {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use sha2::Digest;
    let mut c = card();
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let point = key
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let sig: p256::ecdsa::Signature = key
        .sign_prehash(&sha2::Sha256::digest(b"hello world"))
        .unwrap();
    expect(&mut c, "8124000203850105", 0x9000);
    expect(
        &mut c,
        &format!("81D8800247344549438641{}", hex(&point)),
        0x9000,
    );
    // "hello " then "world" with the signature in the last chunk.
    expect(&mut c, "812C00010D850105A1010191020001920104", 0x9000);
    expect(&mut c, "812D000108 9B0668656C6C6F20", 0x9000);
    let last = format!("812D80014A 9B05776F726C64 330040{}", hex(&sig.to_bytes()));
    expect(&mut c, &last, 0x9000);
    // The same signature over another message does not match.
    expect(&mut c, "812C00010D850105A1010191020001920104", 0x9000);
    let wrong = format!("812D80014A 9B05776F726C65 330040{}", hex(&sig.to_bytes()));
    assert_eq!(send(&mut c, &wrong), h("6D01"));
    // A signature that is neither raw r‖s nor DER cannot match; a missing one is incorrect data.
    expect(&mut c, "812C00010D850105A1010191020001920104", 0x9000);
    assert_eq!(
        send(&mut c, "812D80010C 9B05776F726C64 33030102FF"),
        h("6D01")
    );
    expect(&mut c, "812C00010D850105A1010191020001920104", 0x9000);
    assert_eq!(send(&mut c, "812D800107 9B05776F726C64"), h("6A80"));
}
