//! The real-card traces of `docs/protocol.md#traces` and the wolfSSL handshake sequence
//! (`docs/protocol.md#wolfssl-handshake-sequence`),
//! replayed byte for byte: the client must send exactly these commands and understand exactly
//! these answers. Every hex string below is copied from the published traces, not built by our encoders.

use iotsafe_core::apdu::ClassStyle;
use iotsafe_core::config::{ChannelStrategy, GetResponseClass, GetResponseLe, SessionNumbers};
use iotsafe_core::hexutil::decode;
use iotsafe_core::testing::{ScriptedTransport, Step};
use iotsafe_core::{
    Card, CardConfig, CardSignature, EcPoint, Error, HashAlgorithm, ObjectRef, Operation,
    SessionClosing, StatusWord,
};

const HELLO_SHA256: &str = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";
const NTT_R: &str = "73B3A470B67ADD1B954EAC15CFFB4F6BA77B53D91E35E1244526621D97C38524";
const NTT_S: &str = "0E2656458895A4F99A73B7E5263C4073C98A4B0D66AC71005871694660B9EC9C";
// ECDSA known answer (Thales JWT demo, `docs/protocol.md#traces`).
const KAT_POINT: &str = "04954b6788ae9db0647a8bfb3f700231c484928d1ecbfa5732e0ee053a54568a55be3b547ffc72e86d1273ccaf2a1153e1a77dabf868199fc3bb3a05a88a8e1cfd";
const KAT_HASH: &str = "1788c8296577d15157b01bfb7ff277389661241212bb45db4247338aef087414";
const KAT_RS: &str = "c0c1b4b29ec17dd1838ef5b89c93c4eacc30104d1bed4bcf98c5a26306bbd73b8032e0e945b41ab20733de596cd15d232e1ed78e67e714f6a1491b34121dce51";

fn h(s: &str) -> Vec<u8> {
    decode(s).unwrap()
}

fn point(p: &str) -> EcPoint {
    EcPoint::from_slice(&h(p)).unwrap()
}

/// NTT docomo applet via AT+CGLA: the modem opened the channel and patches CLA, the host writes
/// CLA 00, sends case-3 updates and GET RESPONSE with Le=00.
#[test]
fn ntt_sign_trace_via_cgla() {
    let (t, log) = ScriptedTransport::new(vec![
        Step::OpenChannel {
            aid: h("A0000001157000000000000049534102"),
            ok: true,
        },
        Step::apdu(
            "00 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
            "9000",
        ),
        Step::apdu(&format!("00 2B 80 01 22 9E 20 {HELLO_SHA256}"), "6142"),
        Step::apdu("00 C0 00 00 00", &format!("3340 {NTT_R} {NTT_S} 9000")),
    ]);
    let t = t.managing_channels();
    let config = CardConfig {
        aids: vec![h("A0000001157000000000000049534102")],
        class: ClassStyle::Interindustry,
        get_response_le: GetResponseLe::Zero,
        close_sessions: SessionClosing::Never,
        ..CardConfig::default()
    };
    let card = Card::open(t, config).unwrap();
    let sig = card
        .sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &h(HELLO_SHA256))
        .unwrap();
    assert_eq!(sig, CardSignature::RawRs(h(&format!("{NTT_R}{NTT_S}"))));
    log.assert_done();
    let stats = card.stats();
    assert_eq!(stats.count(Operation::Sign), 1);
    assert_eq!(stats.of(Operation::Sign).apdus, 3);
}

/// Thales MVP applet over PC/SC (Quantag): SELECT with Le=00 on the basic channel, CLA 80,
/// keygen answered directly with data and 9000 (T=1).
#[test]
fn thales_keygen_trace_over_pcsc() {
    let x = "4AA6E6".to_string() + &"11".repeat(29);
    let y = "22".repeat(32);
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("00 A4 04 00 0F A00000003053F12401770101495341 00", "9000"),
        Step::apdu(
            "80 B9 00 00 04 84 02 00 02",
            &format!("84 02 00 02 85 02 00 02 34 45 49 43 86 41 04 {x} {y} 90 00"),
        ),
    ]);
    let config = CardConfig {
        aids: vec![h("A00000003053F12401770101495341")],
        channel: ChannelStrategy::Basic,
        select_le: Some(0),
        ..CardConfig::default()
    };
    let card = Card::open(t, config).unwrap();
    let kp = card.generate_key_pair(&ObjectRef::id([0, 2])).unwrap();
    assert_eq!(kp.private, ObjectRef::id([0, 2]));
    assert_eq!(kp.public, ObjectRef::id([0, 2]));
    assert_eq!(kp.point.as_bytes()[1..4], [0x4A, 0xA6, 0xE6]);
    log.assert_done();
}

/// ZARIOT SIM (atsign host) on channel 1: MANAGE CHANNEL with Le=00, CLA 81, 3-byte IDs, T=0
/// answers fetched with `81 C0`, signature `33 00 40`, verify session 02, closes.
#[test]
fn zariot_channel_keygen_sign_verify_read_key_traces() {
    let id = "303036";
    let xy = "AB".repeat(64);
    let hash = "5A".repeat(32);
    let rs = "C3".repeat(64);
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("0070000000", "019000"),
        Step::apdu("01A4040007A0000005590010", "9000"),
        // keygen
        Step::apdu(&format!("81B90000058403{id}"), "6151"),
        Step::apdu(
            "81C0000051",
            &format!("8403{id}8503{id}34454943864104{xy}9000"),
        ),
        // sign
        Step::apdu(&format!("812A00010F8403{id}A1010391020001920104"), "9000"),
        Step::apdu(&format!("812B8001229E20{hash}"), "6143"),
        Step::apdu("81C0000043", &format!("330040{rs}9000")),
        Step::apdu("812A010100", "9000"),
        // verify
        Step::apdu(&format!("812C00020F8503{id}A1010391020001920104"), "9000"),
        Step::apdu(&format!("812D8002659E20{hash}330040{rs}"), "9000"),
        Step::apdu("812C010200", "9000"),
        // read public key
        Step::apdu(&format!("81CD0000058503{id}"), "6147"),
        Step::apdu("81C0000047", &format!("34454943864104{xy}9000")),
        // close the channel
        Step::apdu("0070800100", "9000"),
    ]);
    let config = CardConfig {
        open_channel_le: 0,
        get_response_class: GetResponseClass::SameAsCommand,
        sessions: SessionNumbers {
            sign: 1,
            verify: 2,
            put_public_key: 2,
        },
        close_sessions: SessionClosing::Always,
        ..CardConfig::default()
    };
    let card = Card::open(t, config).unwrap();
    assert_eq!(card.selection(), Some((h("A0000005590010"), 1)));
    let key = ObjectRef::id(h(id));
    let kp = card.generate_key_pair(&key).unwrap();
    assert_eq!(kp.point.as_bytes()[1..], h(&xy)[..]);
    let sig = card
        .sign_digest(&key, HashAlgorithm::Sha256, &h(&hash))
        .unwrap();
    assert_eq!(sig, CardSignature::RawRs(h(&rs)));
    assert!(card
        .verify_digest(&key, HashAlgorithm::Sha256, &h(&hash), &h(&rs))
        .unwrap());
    assert_eq!(card.read_public_key(&key).unwrap(), kp.point);
    card.close().unwrap();
    log.assert_done();
}

/// A SIM without the IoT SAFE applet (Orange issue #7): SELECT → 6A82, and the session closes
/// the channel it opened and says no applet answered.
#[test]
fn non_iot_safe_sim_select_fails_cleanly() {
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("0070000001", "019000"),
        Step::apdu("01A4040007A0000005590010", "6A82"),
        Step::apdu("0070800100", "9000"),
    ]);
    let err = Card::open(t, CardConfig::default()).unwrap_err();
    assert!(matches!(err, Error::AppletNotFound { .. }), "{err}");
    assert!(err.to_string().contains("A0000005590010 → 6A82"), "{err}");
    log.assert_done();
}

/// The same SIM's other refusals (Orange's host sends on regardless): `6D00` to GET DATA and to
/// COMPUTE SIGNATURE Init are typed status errors that say what they mean.
#[test]
fn non_iot_safe_sim_refusals_are_typed() {
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("0070000001", "019000"),
        Step::apdu("01A4040007A0000005590010", "9000"),
        Step::apdu("01CB010000", "6D00"),
        Step::apdu("012A00010E84021234A1010391020001920104", "6D00"),
    ]);
    let config = CardConfig {
        class: ClassStyle::Interindustry,
        ..CardConfig::default()
    };
    let card = Card::open(t, config).unwrap();
    let err = card.objects().unwrap_err();
    assert_eq!(err.status(), Some(StatusWord(0x6D00)));
    assert!(
        err.to_string().contains("is this an IoT SAFE applet?"),
        "{err}"
    );
    let err = card
        .sign_digest(
            &ObjectRef::id([0x12, 0x34]),
            HashAlgorithm::Sha256,
            &[0; 32],
        )
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusWord(0x6D00)));
    // The failed Init leaves nothing to close; the session is still usable.
    log.assert_done();
}

/// Thales cinterion test constants: CLA 00 on the basic channel, Le on case-4 commands, READ FILE
/// with Le=00 when the card has no GET DATA, GET RANDOM of 0x1C bytes.
#[test]
fn thales_cinterion_constants() {
    let cert = "30".to_string() + &"AA".repeat(99);
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("00A404000FA00000003053F12401770101495341", "9000"),
        Step::apdu(
            "00 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
            "9000",
        ),
        Step::apdu(
            &format!("00 2B 80 01 22 9E 20 {HELLO_SHA256} 00"),
            &format!("3340{NTT_R}{NTT_S}9000"),
        ),
        Step::apdu("002A010100", "9000"),
        // No GET DATA on this card: read until the card reports the end (a short chunk alone is
        // not the end: some modems cut long answers).
        Step::apdu("00 CB C3 00 03 83 01 02 00", "6D00"),
        Step::apdu("00 B0 00 00 03 83 01 02 00", &format!("{cert}9000")),
        Step::apdu("00 B0 00 64 03 83 01 02 00", "6B00"),
        Step::apdu(
            "00 B9 00 00 03 84 01 04 00",
            &format!("34454943864104{}9000", "CD".repeat(64)),
        ),
        Step::apdu("00 84 00 00 1C", &format!("{}9000", "EE".repeat(0x1C))),
    ]);
    let config = CardConfig {
        aids: vec![h("A00000003053F12401770101495341")],
        channel: ChannelStrategy::Basic,
        class: ClassStyle::Interindustry,
        le_in_case4: true,
        read_chunk: 256,
        close_sessions: SessionClosing::Always,
        ..CardConfig::default()
    };
    let card = Card::open(t, config).unwrap();
    card.sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &h(HELLO_SHA256))
        .unwrap();
    assert_eq!(card.read_file(&ObjectRef::id([2])).unwrap(), h(&cert));
    let kp = card.generate_key_pair(&ObjectRef::id([4])).unwrap();
    assert_eq!(kp.private, ObjectRef::id([4]));
    assert_eq!(card.get_random(0x1C).unwrap().len(), 0x1C);
    log.assert_done();
}

/// m33mu simulator check: GET DATA C3 for a 2-byte file ID, then READ FILE in what the card
/// returns (≤240 bytes) until the announced size.
#[test]
fn m33mu_file_size_then_chunked_read() {
    let body: String = (0..300u32).map(|i| format!("{:02X}", i % 251)).collect();
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("01A4040007A0000005590010", "9000"),
        Step::apdu("81CBC3000483020200", "C3088302020020 02 012C 9000"),
        Step::apdu("81B0000004830202 00 F0", &format!("{}9000", &body[..480])),
        Step::apdu("81B000F004830202 00 3C", &format!("{}9000", &body[480..])),
    ]);
    let card = Card::open(t, CardConfig::wolfssl_compatible()).unwrap();
    let file = card.read_file(&ObjectRef::id([2, 0])).unwrap();
    assert_eq!(file, h(&body));
    log.assert_done();
}

/// wolfSSL's TLS 1.3 client sequence (`docs/protocol.md#wolfssl-handshake-sequence`) as this client produces it in its wolfSSL-compatible
/// configuration: implicit channel 1, CLA 81, case-3 commands, GET RESPONSE `01 C0`.
#[test]
fn wolfssl_handshake_sequence() {
    let server_xy = "5B".repeat(64);
    let eph_xy = "6C".repeat(64);
    let secret = "7D".repeat(32);
    let zeros = "00".repeat(32);
    let derived = "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba";
    let prk = "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a";
    let hash = "9A".repeat(32);
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("01 A4 04 00 07 A0 00 00 05 59 00 10", "9000"),
        // 1. key share
        Step::apdu("81 B9 00 00 03 84 01 04", "6151"),
        Step::apdu(
            "01 C0 00 00 51",
            &format!("840104850104 34454943864104{eph_xy} 9000"),
        ),
        // 2. early secret
        Step::apdu(
            &format!("81 4A 00 00 48 D1 20 {zeros} D5 20 {zeros} 91 02 00 01"),
            "6120",
        ),
        Step::apdu("01 C0 00 00 20", &format!("{prk}9000")),
        // 3. ECDHE
        Step::apdu("81 24 00 02 03 85 01 05", "9000"),
        Step::apdu(
            &format!("81 D8 80 02 47 34 45 49 43 86 41 04 {server_xy}"),
            "9000",
        ),
        Step::apdu("81 24 01 02 00", "9000"),
        Step::apdu("81 46 00 00 06 84 01 04 85 01 05", "6120"),
        Step::apdu("01 C0 00 00 20", &format!("{secret}9000")),
        // 4. handshake secret
        Step::apdu(
            &format!("81 4A 00 00 48 D1 20 {secret} D5 20 {derived} 91 02 00 01"),
            &format!("{prk}9000"),
        ),
        // 5. server CertificateVerify, verified on the card (the known-answer bytes)
        Step::apdu("81 24 00 02 03 85 01 05", "9000"),
        Step::apdu(
            &format!("81 D8 80 02 47 34 45 49 43 86 41 {KAT_POINT}"),
            "9000",
        ),
        Step::apdu("81 24 01 02 00", "9000"),
        Step::apdu(
            "81 2C 00 01 0D 85 01 05 A1 01 03 91 02 00 01 92 01 04",
            "9000",
        ),
        Step::apdu(
            &format!("81 2D 80 01 65 9E 20 {KAT_HASH} 33 00 40 {KAT_RS}"),
            "9000",
        ),
        Step::apdu("81 2C 01 01 00", "9000"),
        // 6. master secret
        Step::apdu(
            &format!("81 4A 00 00 48 D1 20 {zeros} D5 20 {derived} 91 02 00 01"),
            &format!("{prk}9000"),
        ),
        // 7. client CertificateVerify
        Step::apdu(
            "81 2A 00 01 0D 84 01 01 A1 01 03 91 02 00 01 92 01 04",
            "9000",
        ),
        Step::apdu(&format!("81 2B 80 01 22 9E 20 {hash}"), "6143"),
        Step::apdu("01 C0 00 00 43", &format!("330040{}9000", "11".repeat(64))),
        Step::apdu("81 2A 01 01 00", "9000"),
    ]);
    let card = Card::open(t, CardConfig::wolfssl_compatible()).unwrap();
    let eph = card.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    assert_eq!(eph.key_pair.public, ObjectRef::id([4]));
    assert_eq!(
        card.hkdf_extract(&[], &[], HashAlgorithm::Sha256)
            .unwrap()
            .as_slice(),
        h(prk)
    );
    let shared = card
        .ephemeral_agreement(&eph, &ObjectRef::id([5]), &point(&format!("04{server_xy}")))
        .unwrap();
    assert_eq!(shared.as_slice(), h(&secret));
    card.hkdf_extract(&shared, &h(derived), HashAlgorithm::Sha256)
        .unwrap();
    card.put_public_key(&ObjectRef::id([5]), &point(KAT_POINT))
        .unwrap();
    assert!(card
        .verify_digest(
            &ObjectRef::id([5]),
            HashAlgorithm::Sha256,
            &h(KAT_HASH),
            &h(KAT_RS)
        )
        .unwrap());
    card.hkdf_extract(&[], &h(derived), HashAlgorithm::Sha256)
        .unwrap();
    card.sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &h(&hash))
        .unwrap();
    log.assert_done();
    // 17 APDUs of the handshake (wolfSSL's sequence) + 4 GET RESPONSEs on this T=0 path + SELECT.
    assert_eq!(card.stats().apdus, 1 + 17 + 4);
}

/// TLS 1.2 PRF vector 1 (Thales unit test), APDU shape of the general mode with Le=00.
#[test]
fn prf_apdu_shape() {
    let secret = "C0485B054863F6DFA458789768B9035C6CACB160DD1A01834811F5783309DB81";
    let seed = "CE15B44D68440B652624244DB8D2FB7DD601C759E9EB627FB10529AB0DB76049";
    let label = hexlify(b"extended master secret");
    let out = "a1f02a766da04c8fd83a40e358267528f8d815c48e3dc353d55fe3861c350622c78b48fe6f49f6e13e1b6b175cfe59fb";
    let full = format!("{out}{}", "00".repeat(255 - 48));
    let (t, log) = ScriptedTransport::new(vec![
        Step::apdu("01A4040007A0000005590010", "9000"),
        Step::apdu(
            &format!("81 48 00 00 5D D1 20 {secret} D2 36 {label}{seed} D3 01 FF 00"),
            &format!("{full}9000"),
        ),
    ]);
    let config = CardConfig {
        le_in_case4: true,
        ..CardConfig::wolfssl_compatible()
    };
    let card = Card::open(t, config).unwrap();
    let mut label_seed = b"extended master secret".to_vec();
    label_seed.extend_from_slice(&h(seed));
    let prf = card.prf(&h(secret), &label_seed, 0xFF).unwrap();
    assert_eq!(&prf[..48], &h(out)[..]);
    log.assert_done();
}

fn hexlify(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}
