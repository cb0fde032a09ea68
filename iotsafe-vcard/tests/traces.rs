//! Byte-exact replays of the real-card traces and known answers of `docs/protocol.md#traces`, each in the
//! quirk profile of the card that produced it. APDUs are hex literals copied from the published traces.

mod common;

use common::*;
use iotsafe_vcard::profile::{Quirks, SignatureFormat, TransportMode};
use iotsafe_vcard::{CardOptions, CardProfile, VirtualCard};
use sha2::Digest;

const SHA256_HELLO: &str = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";

fn options(transport: TransportMode, signature_format: SignatureFormat) -> CardOptions {
    CardOptions {
        transport,
        quirks: Quirks {
            signature_format,
            ..Quirks::default()
        },
        ..CardOptions::default()
    }
}

/// NTT docomo: T=0, `33 40` signatures, CLA 00 (the modem selected the applet through AT+CCHO).
#[test]
fn ntt_sign_trace() {
    let mut card = VirtualCard::with_default_layout(CardProfile::Ntt.options());
    // AT+CCHO="A0000001157000000000000049534102" selects the NTT AID; the host then writes CLA 00.
    expect(
        &mut card,
        "00A4040010A0000001157000000000000049534102",
        0x9000,
    );
    assert_eq!(
        send(&mut card, "002A00010D840101A1010391020001920104"),
        h("9000")
    );
    let r = send(&mut card, &format!("002B8001229E20{SHA256_HELLO}"));
    assert_eq!(r, h("6142"));
    let r = send(&mut card, "00C0000000");
    assert_eq!(r.len(), 66 + 2);
    assert_eq!(&r[..2], &h("3340")[..]);
    assert_eq!(sw(&r), 0x9000);
    let digest = sha2::Sha256::digest(b"hello");
    assert_eq!(digest.to_vec(), h(SHA256_HELLO));
    assert!(verify_raw(&device_point(&card), &digest, &r[2..66]));
}

/// Thales MVP applet over PC/SC (T=1): SELECT with Le, keygen answer `84 85 34`.
#[test]
fn thales_keygen_trace() {
    let mut card = VirtualCard::new(
        store_with_pair(&h("0002"), &h("0002")),
        CardProfile::ThalesMvp.options(),
    );
    assert_eq!(
        send(&mut card, "00A404000FA00000003053F1240177010149534100"),
        h("9000")
    );
    let r = send(&mut card, "80B90000048402 0002");
    assert_eq!(sw(&r), 0x9000);
    let d = data(&r);
    assert_eq!(d.len(), 8 + 71);
    assert_eq!(&d[..15], &h("84020002 85020002 3445 4943 8641 04")[..]);
    assert_eq!(d[8..].to_vec(), {
        let mut v = h("34454943864104");
        v.extend_from_slice(&card.store().public_keys[0].point.clone().unwrap()[1..]);
        v
    });
}

/// ZARIOT SIM (atsign): T=0, CLA 8X on channel 1, 3-byte ASCII IDs, `33 00 40`.
#[test]
fn zariot_trace() {
    let mut card = VirtualCard::new(
        store_with_pair(&h("303036"), &h("303037")),
        CardProfile::Zariot.options(),
    );
    assert_eq!(send(&mut card, "0070000000"), h("019000"));
    assert_eq!(send(&mut card, "01A4040007A0000005590010"), h("9000"));
    assert_eq!(
        send(&mut card, "812A00010F8403303036A1010191020001920104"),
        h("9000")
    );
    // The trace opens in full-text mode (`A1 01 01`) and then sends a `9E` hash, which the card signs.
    // Key generation (the sign session keeps the key's ID, so it signs with the new key).
    assert_eq!(send(&mut card, "81B90000058403303036"), h("6151"));
    let r = send(&mut card, "81C0000051");
    assert_eq!(r.len(), 81 + 2);
    assert_eq!(&r[..17], &h("8403303036 8503303037 344549438641 04")[..]);
    assert_eq!(sw(&r), 0x9000);
    let point = r[16..81].to_vec();
    // Sign.
    assert_eq!(
        send(&mut card, &format!("812B8001229E20{SHA256_HELLO}")),
        h("6143")
    );
    let r = send(&mut card, "81C0000043");
    assert_eq!(r.len(), 67 + 2);
    assert_eq!(&r[..3], &h("330040")[..]);
    assert_eq!(sw(&r), 0x9000);
    let r_s = r[3..67].to_vec();
    assert!(verify_raw(&point, &h(SHA256_HELLO), &r_s));
    // Verify on the card with the public key, session 02.
    assert_eq!(
        send(&mut card, "812C00020F8503303037A1010191020001920104"),
        h("9000")
    );
    let verify = format!("812D8002659E20{SHA256_HELLO}330040{}", hex(&r_s));
    assert_eq!(verify.len(), 212);
    assert_eq!(send(&mut card, &verify), h("9000"));
    // Read the public key.
    assert_eq!(send(&mut card, "81CD0000058503303037"), h("6147"));
    let r = send(&mut card, "81C0000047");
    assert_eq!(data(&r), &[h("344549438641"), point.clone()].concat()[..]);
    assert_eq!(sw(&r), 0x9000);
    // Closes.
    assert_eq!(send(&mut card, "812A010100"), h("9000"));
    assert_eq!(send(&mut card, "812C010200"), h("9000"));
    assert_eq!(send(&mut card, "0070800100"), h("9000"));
}

/// A SIM without the IoT SAFE applet (no AID registered).
#[test]
fn non_iot_safe_sim_trace() {
    let mut card = VirtualCard::with_default_layout(CardOptions {
        transport: TransportMode::T0,
        ..CardProfile::NoApplet.options()
    });
    assert_eq!(send(&mut card, "0070000001"), h("019000"));
    assert_eq!(send(&mut card, "01A4040007A0000005590010"), h("6A82"));
    assert_eq!(send(&mut card, "01CB010000"), h("6D00"));
    assert_eq!(
        send(&mut card, "012A00010E84021234A1010191020001920104"),
        h("6D00")
    );
    assert_eq!(send(&mut card, "0070800100"), h("9000"));
}

const KAT_POINT: &str = "04954b6788ae9db0647a8bfb3f700231c484928d1ecbfa5732e0ee053a54568a55be3b547ffc72e86d1273ccaf2a1153e1a77dabf868199fc3bb3a05a88a8e1cfd";
const KAT_HASH: &str = "1788c8296577d15157b01bfb7ff277389661241212bb45db4247338aef087414";
const KAT_SIG: &str = "c0c1b4b29ec17dd1838ef5b89c93c4eacc30104d1bed4bcf98c5a26306bbd73b8032e0e945b41ab20733de596cd15d232e1ed78e67e714f6a1491b34121dce51";

fn card_with_kat_key(transport: TransportMode) -> VirtualCard {
    let mut card =
        VirtualCard::with_default_layout(options(transport, SignatureFormat::TwoByteLength));
    assert_eq!(send(&mut card, "01A4040007A0000005590010"), h("9000"));
    assert_eq!(send(&mut card, "81240002038501 05"), h("9000"));
    assert_eq!(
        send(&mut card, &format!("81D8800247 3445 4943 8641 {KAT_POINT}")),
        h("9000")
    );
    assert_eq!(send(&mut card, "8124010200"), h("9000"));
    card
}

/// ECDSA verify known answer through the exact APDUs (wolfSSL encoding, slot 05).
#[test]
fn verify_known_answer() {
    for transport in [TransportMode::T1, TransportMode::T0] {
        let mut card = card_with_kat_key(transport);
        assert_eq!(
            send(&mut card, "812C00010D850105A1010391020001920104"),
            h("9000")
        );
        assert_eq!(
            send(
                &mut card,
                &format!("812D8001659E20{KAT_HASH}330040{KAT_SIG}")
            ),
            h("9000")
        );
        assert_eq!(send(&mut card, "812C010100"), h("9000"));
        // One flipped bit in the signature.
        let mut bad = h(KAT_SIG);
        bad[10] ^= 0x01;
        assert_eq!(
            send(&mut card, "812C00010D850105A1010391020001920104"),
            h("9000")
        );
        assert_eq!(
            send(
                &mut card,
                &format!("812D8001659E20{KAT_HASH}330040{}", hex(&bad))
            ),
            h("6D01")
        );
        assert_eq!(send(&mut card, "812C010100"), h("9000"));
        // Orange's one-byte form `33 40` verifies too.
        assert_eq!(
            send(&mut card, "812C00010D850105A1010391020001920104"),
            h("9000")
        );
        assert_eq!(
            send(&mut card, &format!("812D8001649E20{KAT_HASH}3340{KAT_SIG}")),
            h("9000")
        );
    }
}

/// TLS 1.2 PRF vectors (Thales unit test), general mode with the secret in `D1`.
#[test]
fn prf_vectors() {
    let mut card = VirtualCard::with_default_layout(CardOptions::default());
    expect(&mut card, "00A4040007A0000005590010", 0x9000);
    // Vector 1: "extended master secret", D3 01 FF.
    let apdu = "8048 0000 5D \
        D120 C0485B054863F6DFA458789768B9035C6CACB160DD1A01834811F5783309DB81 \
        D236 657874656e646564206d617374657220736563726574 \
        CE15B44D68440B652624244DB8D2FB7DD601C759E9EB627FB10529AB0DB76049 \
        D301FF 00";
    let out = expect(&mut card, apdu, 0x9000);
    assert_eq!(out.len(), 255);
    let master = h("a1f02a766da04c8fd83a40e358267528f8d815c48e3dc353d55fe3861c350622c78b48fe6f49f6e13e1b6b175cfe59fb");
    assert_eq!(&out[..48], &master[..]);
    // Vector 2: "key expansion" with the 48-byte master secret.
    let apdu = format!(
        "8048 0000 84 D130 {} D24D 6b657920657870616e73696f6e \
         cb52e451a752ca812ea9646f2e5a0ec138c3d4d8aefa744e17f01499867450815dcadeed3917d046311a4b5d73bbd75e500ce963a7d05d8122ea9745f2e0d9e9 \
         D301FF 00",
        hex(&master)
    );
    let out = expect(&mut card, &apdu, 0x9000);
    assert_eq!(out.len(), 255);
    assert_eq!(&out[..16], &h("ed6c6644c075653f1919fd05a11a93c8")[..]);
    assert!(out.ends_with(&h("9877125b8c0b41")));
    // On T=0 the 255 bytes wait behind `61FF` (atsign sees `6110` for 16 bytes).
    let mut t0 = VirtualCard::with_default_layout(options(
        TransportMode::T0,
        SignatureFormat::TwoByteLength,
    ));
    expect(&mut t0, "01A4040007A0000005590010", 0x9000);
    let apdu16 = "8148 0000 5D \
        D120 C0485B054863F6DFA458789768B9035C6CACB160DD1A01834811F5783309DB81 \
        D236 657874656e646564206d617374657220736563726574 \
        CE15B44D68440B652624244DB8D2FB7DD601C759E9EB627FB10529AB0DB76049 \
        D30110 00";
    assert_eq!(send(&mut t0, apdu16), h("6110"));
    assert_eq!(expect(&mut t0, "81C0000010", 0x9000), master[..16].to_vec());
}

/// HKDF-Extract: the TLS 1.3 early secret, with explicit zeros and with empty salt/IKM.
#[test]
fn hkdf_vectors() {
    let mut card = VirtualCard::with_default_layout(CardOptions::default());
    expect(&mut card, "01A4040007A0000005590010", 0x9000);
    let zeros = "00".repeat(32);
    let apdu = format!("814A000048D120{zeros}D520{zeros}91020001");
    assert_eq!(h(&apdu).len(), 77);
    let prk = h("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a");
    assert_eq!(expect(&mut card, &apdu, 0x9000), prk);
    assert_eq!(expect(&mut card, "814A000008D100D50091020001", 0x9000), prk);
    // RFC 5869 test case 1 (SHA-256) as an independent check of the extract step.
    let rfc = expect(
        &mut card,
        "814A00002B D116 0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b D50D 000102030405060708090a0b0c 91020001",
        0x9000,
    );
    assert_eq!(
        rfc,
        h("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    );
}

/// m33mu simulator checks (wolfSSL-shaped, 2-byte IDs): GET RANDOM and GET DATA C3 for a file size.
#[test]
fn wolfssl_shaped_checks() {
    let mut card = VirtualCard::with_default_layout(CardOptions::default());
    expect(&mut card, "01A4040007A0000005590010", 0x9000);
    assert_eq!(expect(&mut card, "8184000008", 0x9000).len(), 8);
    assert_eq!(expect(&mut card, "8184000000", 0x9000).len(), 256);
    let info = expect(&mut card, "81CBC300038301 02", 0x9000);
    assert_eq!(
        info,
        h("C3 1D 730B 6465766963652D63657274 830102 600101 4A0100 210102 20020000")
    );
}
