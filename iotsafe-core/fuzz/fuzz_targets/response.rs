#![no_main]
//! Every parser of card answers on arbitrary bytes: no panic.
use iotsafe_core::apdu::Response;
use iotsafe_core::commands::{parse_generated_key_pair, parse_shared_secret, parse_signature};
use iotsafe_core::objects::parse_object_list;
use iotsafe_core::{AppletInfo, CommandKind, EcPoint, ObjectInfo, ObjectKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Response::parse(data, CommandKind::Raw);
    let _ = parse_object_list(data);
    let _ = AppletInfo::parse(data);
    let _ = ObjectInfo::parse_single(ObjectKind::File, data);
    let _ = parse_generated_key_pair(data);
    let _ = parse_signature(data);
    let _ = parse_shared_secret(data, 32);
    let _ = EcPoint::parse_public_key_data(data, CommandKind::Raw);
});
