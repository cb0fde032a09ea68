//! The full client workout every real-peer path runs: select, object list, certificate read, sign
//! (checked in software), verify on the card, key generation and DH (checked against a software
//! ECDH), with the card's counters checked afterwards.

use iotsafe_core::{
    Card, CardSignature, CardStats, EcPoint, HashAlgorithm, ObjectKind, ObjectRef, Operation,
};
use iotsafe_vcard::ProvisionReport;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// The device key (`01`), certificate file (`02`), CA file (`03`), ephemeral slot (`04`) and peer
/// public key slot (`05`) of the default layout.
pub const DEVICE_KEY: [u8; 1] = [1];
/// The device certificate file.
pub const DEVICE_CERT: [u8; 1] = [2];
/// The CA certificate file.
pub const CA_CERT: [u8; 1] = [3];
/// The ephemeral key slot.
pub const EPHEMERAL: [u8; 1] = [4];
/// The peer public key slot.
pub const PEER_SLOT: [u8; 1] = [5];

/// Signs `message`'s SHA-256 on the card with the device key and returns `r‖s`, after checking
/// the signature in software against `public_key` (`04‖X‖Y`).
pub fn sign_and_check(card: &Card, public_key: &[u8], message: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(message);
    let signature = card
        .sign_digest(&ObjectRef::id(DEVICE_KEY), HashAlgorithm::Sha256, &digest)
        .expect("COMPUTE SIGNATURE on the card");
    let raw = match signature {
        CardSignature::RawRs(raw) => raw,
        CardSignature::Der(der) => Signature::from_der(&der)
            .expect("the card's DER signature parses")
            .to_bytes()
            .to_vec(),
    };
    let vk = VerifyingKey::from_sec1_bytes(public_key).expect("the card's public key parses");
    vk.verify_prehash(&digest, &Signature::from_slice(&raw).expect("64-byte r‖s"))
        .expect("the card's signature verifies in software with the provisioned public key");
    raw
}

/// Runs the whole workout on an open `card` whose state came from `report`, checks every result,
/// and returns the counters of the work (the card's stats since the workout started). Asserts
/// that each operation ran the expected number of times and none failed or reconnected.
pub fn full_workout(card: &Card, report: &ProvisionReport) -> CardStats {
    let before = card.stats();
    assert!(
        before.count(Operation::Select) >= 1,
        "the card was opened without a SELECT: {before:?}"
    );
    // Object list: the device key and both certificate files are there.
    let objects = card.objects().expect("GET DATA object list");
    for (kind, id) in [
        (ObjectKind::PrivateKey, &DEVICE_KEY[..]),
        (ObjectKind::File, &DEVICE_CERT[..]),
        (ObjectKind::File, &CA_CERT[..]),
    ] {
        assert!(
            objects
                .iter()
                .any(|o| o.kind == Some(kind) && o.id.as_deref() == Some(id)),
            "no {kind:?} {id:02X?} in {objects:?}"
        );
    }
    // The certificates are the ones the provisioning wrote.
    let cert = card
        .read_file(&ObjectRef::id(DEVICE_CERT))
        .expect("READ FILE device certificate");
    assert_eq!(cert, report.device_cert_der, "device certificate bytes");
    let ca = card
        .read_file(&ObjectRef::id(CA_CERT))
        .expect("READ FILE CA certificate");
    assert_eq!(ca, report.ca_cert_der, "CA certificate bytes");
    let point = card
        .read_public_key(&ObjectRef::id(DEVICE_KEY))
        .expect("READ PUBLIC KEY");
    assert_eq!(point.as_bytes(), &report.device_public_key[..]);

    // Sign on the card, verify in software; then verify on the card (good and tampered).
    let raw = sign_and_check(card, &report.device_public_key, b"real peers");
    let digest = Sha256::digest(b"real peers");
    card.put_public_key(&ObjectRef::id(PEER_SLOT), &point)
        .expect("PUT PUBLIC KEY");
    assert!(card
        .verify_digest(
            &ObjectRef::id(PEER_SLOT),
            HashAlgorithm::Sha256,
            &digest,
            &raw
        )
        .expect("VERIFY SIGNATURE"));
    let mut bad = raw.clone();
    bad[7] ^= 0x01;
    assert!(
        !card
            .verify_digest(
                &ObjectRef::id(PEER_SLOT),
                HashAlgorithm::Sha256,
                &digest,
                &bad
            )
            .expect("VERIFY SIGNATURE (tampered)"),
        "the card accepted a tampered signature"
    );

    // Key generation + DH against a software peer: both sides agree on the secret.
    let eph = card
        .generate_ephemeral(&ObjectRef::id(EPHEMERAL))
        .expect("GENERATE KEY PAIR");
    let peer = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
    let peer_point = EcPoint::from_slice(p256::EncodedPoint::from(peer.public_key()).as_bytes())
        .expect("software point");
    let on_card = card
        .ephemeral_agreement(&eph, &ObjectRef::id(PEER_SLOT), &peer_point)
        .expect("COMPUTE DH");
    let card_pub = p256::PublicKey::from_sec1_bytes(eph.key_pair.point.as_bytes())
        .expect("the card's ephemeral point is on P-256");
    let in_software = peer.diffie_hellman(&card_pub);
    assert_eq!(
        on_card.as_slice(),
        &in_software.raw_secret_bytes()[..],
        "card and software ECDH disagree"
    );

    let used = card.stats().since(&before);
    for (op, count) in [
        (Operation::ReadFile, 2),
        (Operation::ReadPublicKey, 1),
        (Operation::Sign, 1),
        // Once by hand, once inside the DH (the peer point goes into slot 05).
        (Operation::PutPublicKey, 2),
        (Operation::Verify, 2),
        (Operation::GenerateKeyPair, 1),
        (Operation::Dh, 1),
    ] {
        assert_eq!(used.count(op), count, "{op:?} in {used:?}");
    }
    assert!(used.count(Operation::ObjectInfo) >= 1, "{used:?}");
    for (op, stats) in &used.operations {
        assert_eq!(stats.failures, 0, "{op:?} failed: {used:?}");
        assert!(stats.apdus >= 1, "{op:?} sent no APDU: {used:?}");
    }
    assert_eq!(used.reconnects, 0, "{used:?}");
    assert_eq!(used.count(Operation::Select), 0, "re-selected: {used:?}");
    assert!(used.bytes_received > cert.len() as u64, "{used:?}");
    used
}
