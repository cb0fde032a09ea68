#![no_main]
//! The TLV codec on arbitrary bytes: no panic, values inside the input, re-encoding round-trips.
use iotsafe_core::tlv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = tlv::parse_all(data) {
        let mut out = Vec::new();
        for t in &items {
            assert!(t.value.len() <= data.len());
            if t.tag != tlv::TAG_SIGNATURE {
                assert!(tlv::write(&mut out, t.tag, t.value, tlv::LengthForm::Ber));
            }
        }
        if items.iter().all(|t| t.tag != tlv::TAG_SIGNATURE) {
            let again = tlv::parse_all(&out).expect("our own encoding parses");
            assert_eq!(again.len(), items.len());
        }
    }
});
