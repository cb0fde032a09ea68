//! The APDUs wolfSSL's IoT-SAFE port sends for one TLS 1.3 mutual-auth handshake
//! (`docs/protocol.md#wolfssl-handshake-sequence`), over a T=0 AT+CSIM path: CLA 81, channel 1 opened by SELECT, one
//! GET RESPONSE with CLA 01 after each `61xx`. The server side is computed with p256 on the host.

mod common;

use common::*;
use iotsafe_vcard::{CardHandler, CardProfile, VirtualCard};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::elliptic_curve::sec1::ToEncodedPoint;

/// Sends a command; on `61xx` fetches the answer with wolfSSL's `01 C0 00 00 xx`.
fn exchange(card: &mut VirtualCard, apdu: &str) -> Vec<u8> {
    let r = card.process(&h(apdu));
    if r.len() == 2 && r[0] == 0x61 {
        let fetched = card.process(&[0x01, 0xC0, 0x00, 0x00, r[1]]);
        assert_eq!(sw(&fetched), 0x9000, "GET RESPONSE after {apdu}");
        return data(&fetched).to_vec();
    }
    assert_eq!(sw(&r), 0x9000, "{apdu} answered {}", hex(&r));
    data(&r).to_vec()
}

fn put_peer_key(card: &mut VirtualCard, point: &[u8]) {
    exchange(card, "8124000203850105");
    exchange(card, &format!("81D8800247344549438641{}", hex(point)));
    exchange(card, "8124010200");
}

#[test]
fn tls13_client_handshake_as_wolfssl_sends_it() {
    let mut card = VirtualCard::with_default_layout(CardProfile::Zariot.options());
    assert_eq!(card.process(&h("01A4040007A0000005590010")), h("9000"));
    let start = card.apdu_count();
    let zeros = "00".repeat(32);

    // 1. ClientHello key share.
    let keygen = exchange(&mut card, "81B9000003840104");
    assert_eq!(&keygen[..13], &h("840104 850104 34454943864104")[..]);
    let client_share = keygen[12..].to_vec();
    // 2. Early secret.
    let early = exchange(
        &mut card,
        &format!("814A000048D120{zeros}D520{zeros}91020001"),
    );
    assert_eq!(
        early,
        h("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
    );
    // 3. ServerHello key share → ECDHE secret.
    let server_ephemeral = p256::SecretKey::random(&mut rand_core::OsRng);
    let server_share = server_ephemeral
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    put_peer_key(&mut card, &server_share);
    let ecdhe = exchange(&mut card, "8146000006840104850105");
    let expected = p256::ecdh::diffie_hellman(
        server_ephemeral.to_nonzero_scalar(),
        p256::PublicKey::from_sec1_bytes(&client_share)
            .unwrap()
            .as_affine(),
    );
    assert_eq!(ecdhe, expected.raw_secret_bytes().to_vec());
    // 4. Handshake secret.
    let derived = "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba";
    let hs = exchange(
        &mut card,
        &format!("814A000048D120{}D520{derived}91020001", hex(&ecdhe)),
    );
    assert_eq!(hs.len(), 32);
    // 5. Server CertificateVerify, verified on the card with the server's leaf key in slot 05.
    let server_key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let server_point = server_key
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let transcript_hash = h(&"3C".repeat(32));
    let server_sig: p256::ecdsa::Signature = server_key.sign_prehash(&transcript_hash).unwrap();
    put_peer_key(&mut card, &server_point);
    exchange(&mut card, "812C00010D850105A1010391020001920104");
    exchange(
        &mut card,
        &format!(
            "812D8001659E20{}330040{}",
            hex(&transcript_hash),
            hex(&server_sig.to_bytes())
        ),
    );
    exchange(&mut card, "812C010100");
    // 6. Master secret.
    assert_eq!(
        exchange(
            &mut card,
            &format!("814A000048D120{zeros}D520{derived}91020001")
        )
        .len(),
        32
    );
    // 7. Client CertificateVerify with the device key 01.
    exchange(&mut card, "812A00010D840101A1010391020001920104");
    let client_hash = h(&"A5".repeat(32));
    let sig = exchange(&mut card, &format!("812B8001229E20{}", hex(&client_hash)));
    assert_eq!(&sig[..3], &h("330040")[..]);
    assert!(verify_raw(&device_point(&card), &client_hash, &sig[3..]));
    exchange(&mut card, "812A010100");

    // wolfSSL's 17 commands plus 6 GET RESPONSEs on this T=0 path (it sends 17–25 by the number of
    // server signatures, `docs/protocol.md#wolfssl-handshake-sequence`).
    assert_eq!(card.apdu_count() - start, 17 + 6);
    // The volatile ephemeral key stays usable for the next handshake's keygen.
    assert_eq!(
        &exchange(&mut card, "81B9000003840104")[..6],
        &h("840104850104")[..]
    );
    // A card reset ends the implicit channel.
    card.reset();
    assert_eq!(card.process(&h("81B9000003840104")), h("6881"));
}
