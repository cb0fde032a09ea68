//! Cards with several ephemeral key slots: the key exchange finds them, holds one key exchange in
//! each at once, and never takes a key that is not a volatile key pair for key agreement.
#![forbid(unsafe_code)]

use iotsafe_core::{Card, CardConfig, ObjectRef};
use iotsafe_rustls::{ephemeral_slots, CardKxGroup, KxOptions};
use iotsafe_vcard::store::attr;
use iotsafe_vcard::{CardOptions, InProcessTransport, VirtualCard};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rustls::crypto::{ActiveKeyExchange, SupportedKxGroup};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A card with the default layout plus `extra` volatile key pairs (IDs `06`, `07`, …).
fn card_with(extra: usize, edit: impl FnOnce(&mut iotsafe_vcard::ObjectStore)) -> Arc<Card> {
    let mut vcard = VirtualCard::with_default_layout(CardOptions::default());
    vcard.store_mut().add_ephemeral_slots(extra).unwrap();
    edit(vcard.store_mut());
    Arc::new(Card::open(InProcessTransport::new(vcard), CardConfig::default()).unwrap())
}

fn peer(seed: u8) -> (p256::SecretKey, Vec<u8>) {
    let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
    let point = secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    (secret, point)
}

/// Completes `kx` with a peer key from `seed` and checks the secret against software ECDH.
fn complete_and_check(kx: Box<dyn ActiveKeyExchange>, seed: u8) {
    let (peer_secret, peer_point) = peer(seed);
    let card_point = p256::PublicKey::from_sec1_bytes(kx.pub_key()).unwrap();
    let secret = kx.complete(&peer_point).expect("the agreement succeeds");
    let expected =
        p256::ecdh::diffie_hellman(peer_secret.to_nonzero_scalar(), card_point.as_affine());
    assert_eq!(secret.secret_bytes(), &expected.raw_secret_bytes()[..]);
}

#[test]
fn every_volatile_key_agreement_pair_is_found_in_list_order() {
    let card = card_with(2, |_| {});
    let slots = ephemeral_slots(&card, &KxOptions::default()).unwrap();
    assert_eq!(
        slots,
        [ObjectRef::id([4]), ObjectRef::id([6]), ObjectRef::id([7])]
    );
    let one = KxOptions {
        every_ephemeral_slot: false,
        ..KxOptions::default()
    };
    assert_eq!(ephemeral_slots(&card, &one).unwrap(), [ObjectRef::id([4])]);
}

#[test]
fn persistent_keys_and_keys_without_key_agreement_are_never_taken() {
    let card = card_with(0, |store| {
        // A persistent P-256 pair allowing key generation and agreement: generating a key there
        // would destroy a long-lived key, so it is no ephemeral slot.
        let mut persistent = store.private_keys[1].clone();
        persistent.id = vec![0x30];
        persistent.label = Some("persistent-ka".into());
        persistent.attributes.key_type = attr::KEY_TYPE_P256_PERSISTENT;
        store.private_keys.push(persistent);
        // A volatile pair without key agreement.
        let mut signing = store.private_keys[1].clone();
        signing.id = vec![0x31];
        signing.label = Some("volatile-sign".into());
        signing.attributes.functions = attr::FUNCTION_SIGNATURE | attr::FUNCTION_KEY_GENERATION;
        store.private_keys.push(signing);
    });
    let slots = ephemeral_slots(&card, &KxOptions::default()).unwrap();
    assert_eq!(slots, [ObjectRef::id([4])]);
}

#[test]
fn two_slots_hold_two_key_exchanges_at_once_and_both_secrets_are_right() {
    let card = card_with(1, |_| {});
    let group = CardKxGroup::for_card(&card, KxOptions::default());
    assert_eq!(group.slots(), [ObjectRef::id([4]), ObjectRef::id([6])]);
    // One thread, two exchanges in flight: with one slot the second start() would wait out the
    // first's lease (10 s) and the first would then fail as replaced.
    let asked = Instant::now();
    let first = group.start().unwrap();
    let second = group.start().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(5), "nobody waited");
    assert_ne!(first.pub_key(), second.pub_key());
    let stats = group.queue_stats();
    assert_eq!((stats.slots, stats.turns, stats.waited), (2, 2, 0));
    // Completed in the other order than started: each slot's key is still its own.
    complete_and_check(second, 11);
    complete_and_check(first, 12);
    let used = card.stats();
    assert_eq!(used.count(iotsafe_core::Operation::GenerateKeyPair), 2);
    assert_eq!(used.count(iotsafe_core::Operation::Dh), 2);
}

#[test]
fn a_key_generated_in_one_slot_does_not_retire_the_key_of_another() {
    let card = card_with(1, |_| {});
    let a = card.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    let b = card.generate_ephemeral(&ObjectRef::id([6])).unwrap();
    assert!(card.ephemeral_is_current(&a) && card.ephemeral_is_current(&b));
    let a2 = card.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    assert!(
        !card.ephemeral_is_current(&a),
        "its own slot was regenerated"
    );
    assert!(card.ephemeral_is_current(&a2) && card.ephemeral_is_current(&b));
    // Any GENERATE KEY PAIR in the slot retires it too, not only the key exchange's own.
    card.generate_key_pair(&ObjectRef::id([6])).unwrap();
    assert!(!card.ephemeral_is_current(&b));
    let (_, point) = peer(3);
    let point = iotsafe_core::EcPoint::from_slice(&point).unwrap();
    assert!(matches!(
        card.ephemeral_agreement(&b, &ObjectRef::id([5]), &point),
        Err(iotsafe_core::Error::StaleEphemeral { .. })
    ));
    card.ephemeral_agreement(&a2, &ObjectRef::id([5]), &point)
        .expect("slot 04's key is still there");
}
