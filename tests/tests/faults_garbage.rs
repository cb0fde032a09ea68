//! Property tests: a card (or a link) that answers garbage. Whatever bytes come back, every `Card`
//! operation ends in a value or a typed error, never a panic and never an endless exchange; and the
//! virtual card's dispatcher, fed command sequences in every profile, never answers with a private
//! scalar.

use std::sync::{Arc, Mutex};

use iotsafe_core::Transaction;
use iotsafe_core::{
    Card, CardConfig, EcPoint, HashAlgorithm, ObjectKind, ObjectRef, Transport, TransportError,
};
use iotsafe_vcard::{CardHandler, CardProfile, VirtualCard};
use proptest::prelude::*;

/// Past this many APDUs in one test case the client is looping.
const MAX_APDUS: usize = 5_000;

/// Answers from a script of arbitrary responses, round and round; the first answers (to MANAGE
/// CHANNEL and SELECT) may be made valid so that the session opens and the operations run.
struct Garbage {
    answers: Vec<Vec<u8>>,
    next: usize,
    sent: Arc<Mutex<usize>>,
}

impl Transaction for Garbage {
    fn transmit(&mut self, _command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut sent = self.sent.lock().unwrap();
        *sent += 1;
        if *sent > MAX_APDUS {
            return Err(TransportError::Disconnected);
        }
        let answer = self.answers[self.next % self.answers.len()].clone();
        self.next += 1;
        Ok(answer)
    }
}

impl Transport for Garbage {
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        Ok(Box::new(self))
    }
}

/// Answers that look like a card's: status words (procedure bytes included), TLV-ish data, or
/// bytes of any kind and length (empty and one-byte answers included).
fn answer() -> impl Strategy<Value = Vec<u8>> {
    let sw = prop::sample::select(vec![
        0x9000u16, 0x6100, 0x6110, 0x61FF, 0x6C00, 0x6C10, 0x9F10, 0x6300, 0x9100, 0x6A82, 0x6985,
        0x6D01, 0x6881, 0x6B00, 0x6700,
    ]);
    let tag = prop::sample::select(vec![
        0x33u8, 0x34, 0x45, 0x49, 0x86, 0x84, 0x85, 0x74, 0x75, 0xC1, 0xC2, 0xC3, 0xC4, 0xB1, 0x30,
        0x02, 0x9B,
    ]);
    let tlvs = prop::collection::vec(
        (tag, prop::collection::vec(any::<u8>(), 0..70)).prop_map(|(t, v)| {
            let mut out = vec![t];
            if v.len() > 0x7F {
                out.push(0x81);
            }
            out.push(v.len() as u8);
            out.extend(v);
            out
        }),
        0..4,
    );
    prop_oneof![
        sw.clone().prop_map(|sw| sw.to_be_bytes().to_vec()),
        (tlvs, sw).prop_map(|(t, sw)| {
            let mut out = t.concat();
            out.extend_from_slice(&sw.to_be_bytes());
            out
        }),
        prop::collection::vec(any::<u8>(), 0..300),
    ]
}

fn every_operation(card: &Card) {
    let key = ObjectRef::id([1]);
    let digest = [7u8; 32];
    let point = {
        let mut p = vec![0x04];
        p.extend_from_slice(&[1u8; 64]);
        EcPoint::from_slice(&p).unwrap()
    };
    // Only termination and typing matter: every result is dropped.
    let _ = card.objects();
    let _ = card.applet_info();
    let _ = card.refresh();
    let _ = card.find(ObjectKind::File, &ObjectRef::id([2]));
    let _ = card.object_info(ObjectKind::PrivateKey, &key);
    let _ = card.read_file(&ObjectRef::id([2]));
    let _ = card.get_random(40);
    let _ = card.generate_key_pair(&ObjectRef::id([4]));
    let _ = card.read_public_key(&key);
    let _ = card.put_public_key(&ObjectRef::id([5]), &point);
    let _ = card.sign_digest(&key, HashAlgorithm::Sha256, &digest);
    let _ = card.sign_message(&key, HashAlgorithm::Sha256, &[1u8; 300]);
    let _ = card.verify_digest(
        &ObjectRef::id([5]),
        HashAlgorithm::Sha256,
        &digest,
        &[2u8; 64],
    );
    let _ = card.compute_dh(&ObjectRef::id([4]), &ObjectRef::id([5]));
    if let Ok(eph) = card.generate_ephemeral(&ObjectRef::id([4])) {
        let _ = card.ephemeral_agreement(&eph, &ObjectRef::id([5]), &point);
    }
    let _ = card.hkdf_extract(&[1u8; 32], &[2u8; 32], HashAlgorithm::Sha256);
    let _ = card.prf(&[1u8; 48], b"label", 32);
    let _ = card.transmit_raw(&[0x80, 0xCB, 0x00, 0x00, 0x00]);
    let _ = card.close();
    // The error of any operation is typed and printable.
    if let Err(e) = card.read_public_key(&key) {
        assert!(!e.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn a_card_answering_garbage_never_panics_nor_loops(
        answers in prop::collection::vec(answer(), 1..24),
        valid_open in any::<bool>(),
        thales in any::<bool>(),
    ) {
        let mut answers = answers;
        if valid_open {
            // MANAGE CHANNEL → channel 1, SELECT → 9000, then garbage.
            answers.insert(0, vec![0x90, 0x00]);
            answers.insert(0, vec![0x01, 0x90, 0x00]);
        }
        let sent = Arc::new(Mutex::new(0));
        let transport = Garbage { answers, next: 0, sent: Arc::clone(&sent) };
        let config = if thales { CardConfig::thales_style() } else { CardConfig::default() };
        if let Ok(card) = Card::open(transport, config) {
            every_operation(&card);
        }
        let n = *sent.lock().unwrap();
        prop_assert!(n < MAX_APDUS, "the client kept exchanging: {} APDUs", n);
    }

    #[test]
    fn the_dispatcher_never_answers_a_private_scalar(
        profile in 0usize..5,
        apdus in prop::collection::vec(
            (
                prop::sample::select(vec![0x00u8, 0x01, 0x80, 0x81]),
                prop::sample::select(vec![
                    0x24u8, 0x2A, 0x2B, 0x2C, 0x2D, 0x46, 0x48, 0x4A, 0x70, 0x84, 0xB0, 0xB9,
                    0xC0, 0xCB, 0xCD, 0xD8,
                ]),
                prop::sample::select(vec![0x00u8, 0x01, 0x80, 0x81, 0xC1, 0xC3]),
                prop::sample::select(vec![0x00u8, 0x01, 0x02]),
                prop::sample::select(vec![
                    vec![], vec![0x84, 1, 1], vec![0x84, 1, 4], vec![0x85, 1, 1], vec![0x85, 1, 5],
                    vec![0x84, 1, 1, 0x85, 1, 5], vec![0x84, 1, 4, 0x85, 1, 5],
                    vec![0x84, 1, 1, 0xA1, 1, 3, 0x91, 2, 0, 1, 0x92, 1, 4],
                ]),
                any::<bool>(),
            ),
            1..20,
        ),
    ) {
        let profiles = [
            CardProfile::Standard, CardProfile::Ntt, CardProfile::Zariot,
            CardProfile::ThalesMvp, CardProfile::StrictUicc,
        ];
        let mut card = VirtualCard::with_default_layout(profiles[profile].options());
        card.process(&[0x00, 0x70, 0x00, 0x00, 0x01]);
        card.process(&[0x01, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10]);
        for (cla, ins, p1, p2, body, le) in apdus {
            let mut apdu = vec![cla, ins, p1, p2];
            if !body.is_empty() {
                apdu.push(body.len() as u8);
                apdu.extend(&body);
            }
            if le {
                apdu.push(0);
            }
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut collect = |card: &VirtualCard| {
                for k in &card.store().private_keys {
                    if let Some(s) = &k.scalar {
                        keys.push(s.expose().to_vec());
                    }
                }
            };
            collect(&card);
            let response = card.process(&apdu);
            let fetched = card.process(&[cla, 0xC0, 0, 0, 0]);
            collect(&card);
            prop_assert!(response.len() >= 2);
            for key in &keys {
                prop_assert!(!response.windows(key.len()).any(|w| w == &key[..]));
                prop_assert!(!fetched.windows(key.len()).any(|w| w == &key[..]));
            }
        }
    }
}
