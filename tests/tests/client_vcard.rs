//! The core client against the virtual card, in-process: both sides were pinned to the reference
//! bytes independently; here they must work together, in every card profile.

use iotsafe_core::config::{ChannelStrategy, GetResponseLe};
use iotsafe_core::{
    Card, CardConfig, CardSignature, EcPoint, HashAlgorithm, ObjectKind, ObjectRef, Operation,
};
use iotsafe_vcard::{CardOptions, CardProfile, InProcessTransport, TransportMode, VirtualCard};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

fn card_with(options: CardOptions, config: CardConfig) -> Card {
    let vcard = VirtualCard::with_default_layout(options);
    Card::open(InProcessTransport::new(vcard), config).expect("open the virtual card")
}

fn check_sign_verify_keygen_dh(card: &Card) {
    let device = ObjectRef::id([1]);
    // Sign on the card, verify in software with the card's public key.
    let point = card.read_public_key(&device).unwrap();
    let digest = Sha256::digest(b"hello");
    let raw = match card
        .sign_digest(&device, HashAlgorithm::Sha256, &digest)
        .unwrap()
    {
        CardSignature::RawRs(raw) => raw,
        CardSignature::Der(der) => Signature::from_der(&der).unwrap().to_bytes().to_vec(),
    };
    let vk = VerifyingKey::from_sec1_bytes(point.as_bytes()).unwrap();
    vk.verify_prehash(&digest, &Signature::from_slice(&raw).unwrap())
        .expect("the card's signature verifies in software");
    // And on the card, with the key put into the peer slot.
    card.put_public_key(&ObjectRef::id([5]), &point).unwrap();
    assert!(card
        .verify_digest(&ObjectRef::id([5]), HashAlgorithm::Sha256, &digest, &raw)
        .unwrap());
    let mut bad = raw.clone();
    bad[10] ^= 1;
    assert!(!card
        .verify_digest(&ObjectRef::id([5]), HashAlgorithm::Sha256, &digest, &bad)
        .unwrap());
    // ECDHE: card ephemeral key with a software peer; both sides agree.
    let eph = card.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    let peer = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
    let peer_point =
        EcPoint::from_slice(p256::EncodedPoint::from(peer.public_key()).as_bytes()).unwrap();
    let on_card = card
        .ephemeral_agreement(&eph, &ObjectRef::id([5]), &peer_point)
        .unwrap();
    let card_pub = p256::PublicKey::from_sec1_bytes(eph.key_pair.point.as_bytes()).unwrap();
    let in_software = peer.diffie_hellman(&card_pub);
    assert_eq!(on_card.as_slice(), &in_software.raw_secret_bytes()[..]);
}

#[test]
fn standard_profile_t1_with_default_client() {
    let card = card_with(CardOptions::default(), CardConfig::default());
    let objects = card.objects().unwrap();
    assert!(objects
        .iter()
        .any(|o| o.kind == Some(ObjectKind::PrivateKey) && o.id.as_deref() == Some(&[1][..])));
    let info = card.applet_info().unwrap();
    assert!(info.max_sessions.unwrap_or(0) >= 1);
    assert_eq!(card.get_random(300).unwrap().len(), 300);
    check_sign_verify_keygen_dh(&card);
    card.close().unwrap();
}

#[test]
fn t0_profile_needs_get_response_everywhere() {
    let options = CardOptions {
        transport: TransportMode::T0,
        ..CardOptions::default()
    };
    let card = card_with(options, CardConfig::default());
    let before = card.stats();
    check_sign_verify_keygen_dh(&card);
    let used = card.stats().since(&before);
    // Every data-bearing answer came through GET RESPONSE.
    assert!(used.apdus > 12, "{used:?}");
}

#[test]
fn every_card_profile_with_its_matching_host_style() {
    let cases: Vec<(CardProfile, CardConfig)> = vec![
        (CardProfile::Standard, CardConfig::wolfssl_compatible()),
        (CardProfile::Standard, CardConfig::thales_style()),
        (
            CardProfile::Ntt,
            CardConfig {
                get_response_le: GetResponseLe::Zero,
                ..CardConfig::default()
            }
            .probing_known_aids(),
        ),
        (CardProfile::Zariot, CardConfig::default()),
        (CardProfile::ThalesMvp, CardConfig::thales_style()),
        (
            CardProfile::StrictUicc,
            CardConfig {
                channel: ChannelStrategy::ManageChannel,
                ..CardConfig::default()
            },
        ),
    ];
    for (profile, config) in cases {
        let card = card_with(profile.options(), config.clone());
        check_sign_verify_keygen_dh(&card);
        assert!(
            card.stats().count(Operation::Sign) == 1,
            "{profile:?} {config:?}"
        );
    }
}

#[test]
fn a_sim_without_the_applet_is_reported_as_such() {
    let vcard = VirtualCard::with_default_layout(CardProfile::NoApplet.options());
    let err = Card::open(
        InProcessTransport::new(vcard),
        CardConfig::default().probing_known_aids(),
    )
    .unwrap_err();
    assert!(
        matches!(err, iotsafe_core::Error::AppletNotFound { .. }),
        "{err}"
    );
}

#[test]
fn provisioned_certificate_is_read_from_the_card_and_matches_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    let report =
        iotsafe_vcard::provision(&state, &dir.path().join("pki"), CardOptions::default()).unwrap();
    let vcard = VirtualCard::open_state(&state, CardOptions::default()).unwrap();
    let card = Card::open(InProcessTransport::new(vcard), CardConfig::default()).unwrap();
    let cert = card.read_file(&ObjectRef::id([2])).unwrap();
    assert_eq!(cert, report.device_cert_der);
    let by_label = card.read_file(&ObjectRef::label("ca-cert")).unwrap();
    assert_eq!(by_label, report.ca_cert_der);
    let point = card.read_public_key(&ObjectRef::id([1])).unwrap();
    assert_eq!(point.as_bytes().to_vec(), report.device_public_key);
    let file = card.find(ObjectKind::File, &ObjectRef::id([2])).unwrap();
    assert_eq!(file.file_size, Some(cert.len() as u32));
}
