//! Every parser of card answers, fed arbitrary bytes: no panic, and what is encoded round-trips.

use iotsafe_core::apdu::{Command, Le, Response};
use iotsafe_core::commands::{parse_generated_key_pair, parse_shared_secret, parse_signature};
use iotsafe_core::objects::parse_object_list;
use iotsafe_core::{AppletInfo, CommandKind, EcPoint, ObjectInfo, ObjectKind};
use proptest::prelude::*;

proptest! {
    #[test]
    fn answer_parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Response::parse(&data, CommandKind::Raw);
        let _ = parse_object_list(&data);
        let _ = AppletInfo::parse(&data);
        for kind in [ObjectKind::PrivateKey, ObjectKind::PublicKey, ObjectKind::File, ObjectKind::SecretKey] {
            let _ = ObjectInfo::parse_single(kind, &data);
        }
        let _ = parse_generated_key_pair(&data);
        let _ = parse_signature(&data);
        let _ = parse_shared_secret(&data, 32);
        let _ = EcPoint::parse_public_key_data(&data, CommandKind::Raw);
    }

    #[test]
    fn response_round_trips(data in proptest::collection::vec(any::<u8>(), 0..300), sw in any::<u16>()) {
        let mut raw = data.clone();
        raw.extend_from_slice(&sw.to_be_bytes());
        let r = Response::parse(&raw, CommandKind::Raw).unwrap();
        prop_assert_eq!(r.data.as_slice(), data.as_slice());
        prop_assert_eq!(r.sw.0, sw);
    }

    #[test]
    fn short_commands_encode_as_iso_cases(cla in any::<u8>(), ins in any::<u8>(),
                                          data in proptest::collection::vec(any::<u8>(), 0..=255),
                                          le in proptest::option::of(1u32..=256)) {
        let cmd = Command::new(cla, ins, 1, 2).with_data(data.clone());
        let cmd = match le { Some(n) => cmd.with_le(Le::Ne(n)), None => cmd };
        let e = cmd.encode(false, CommandKind::Raw).unwrap();
        prop_assert_eq!(&e[..4], &[cla, ins, 1, 2]);
        let lc_len = usize::from(!data.is_empty());
        prop_assert_eq!(e.len(), 4 + lc_len + data.len() + usize::from(le.is_some()));
        if !data.is_empty() {
            prop_assert_eq!(usize::from(e[4]), data.len());
        }
    }

    #[test]
    fn public_key_tlv_round_trips(xy in proptest::collection::vec(any::<u8>(), 64)) {
        let mut p = [4u8; 65];
        p[1..].copy_from_slice(&xy);
        let point = EcPoint(p);
        let tlv = point.to_public_key_tlv();
        prop_assert_eq!(EcPoint::parse_public_key_data(&tlv, CommandKind::Raw).unwrap(), point);
        let mut keygen = vec![0x84, 1, 4, 0x85, 1, 4];
        keygen.extend_from_slice(&tlv);
        prop_assert_eq!(parse_generated_key_pair(&keygen).unwrap().point, Some(point));
    }
}
