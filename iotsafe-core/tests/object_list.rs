//! GET DATA object lists in every layout the reference allows: fields in any order, one or several
//! objects per information structure, and both mixed in one list.

use iotsafe_core::hexutil::decode;
use iotsafe_core::objects::{parse_object_list, split_objects};
use iotsafe_core::{ObjectInfo, ObjectKind};
use proptest::prelude::*;

fn h(s: &str) -> Vec<u8> {
    decode(s).unwrap()
}

/// `tag len value` with a one-byte length.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag, value.len() as u8];
    out.extend_from_slice(value);
    out
}

/// ID, label, access conditions and key type of one object.
type Summary = (Option<Vec<u8>>, Option<String>, Option<u8>, Option<u8>);

fn summary(list: &[ObjectInfo]) -> Vec<Summary> {
    list.iter()
        .map(|o| (o.id.clone(), o.label_text(), o.access, o.key_type))
        .collect()
}

fn key(id: u8, label: &str, access: u8, key_type: u8) -> Summary {
    (
        Some(vec![id]),
        Some(label.to_string()),
        Some(access),
        Some(key_type),
    )
}

/// The reported bug: in `C1 { 74 L1 84 I1 … 74 L2 84 I2 … }` object 1 took label L2.
#[test]
fn label_first_several_per_structure() {
    let data = tlv(
        0xC1,
        &h("7402 6B31 8401 01 6001 01 4B01 13  7402 6B32 8401 02 6001 02 4B01 14"),
    );
    let list = parse_object_list(&data).unwrap();
    assert_eq!(
        summary(&list),
        vec![key(1, "k1", 1, 0x13), key(2, "k2", 2, 0x14)]
    );
    assert!(list.iter().all(|o| o.kind == Some(ObjectKind::PrivateKey)));
}

#[test]
fn id_first_several_per_structure() {
    let data = tlv(
        0xC1,
        &h("8401 01 7402 6B31 6001 01 4B01 13  8401 02 7402 6B32 6001 02 4B01 14"),
    );
    assert_eq!(
        summary(&parse_object_list(&data).unwrap()),
        vec![key(1, "k1", 1, 0x13), key(2, "k2", 2, 0x14)]
    );
}

#[test]
fn attributes_between_label_and_id() {
    // Label, attributes, then the ID: the second label starts the second object.
    let data = tlv(
        0xC1,
        &h("7402 6B31 6001 01 4B01 13 8401 01  7402 6B32 6001 02 4B01 14 8401 02"),
    );
    assert_eq!(
        summary(&parse_object_list(&data).unwrap()),
        vec![key(1, "k1", 1, 0x13), key(2, "k2", 2, 0x14)]
    );
    // ID, attributes, then the label.
    let data = tlv(
        0xC1,
        &h("8401 01 6001 01 4B01 13 7402 6B31  8401 02 6001 02 4B01 14 7402 6B32"),
    );
    assert_eq!(
        summary(&parse_object_list(&data).unwrap()),
        vec![key(1, "k1", 1, 0x13), key(2, "k2", 2, 0x14)]
    );
}

#[test]
fn optional_label_missing_from_one_object() {
    // Object 2 has no label (Orange's layout: label optional, first).
    let data = tlv(0xC1, &h("7402 6B31 8401 01 6001 01  8401 02 6001 02"));
    let list = parse_object_list(&data).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0].id.as_deref(), list[0].label_text(), list[0].access),
        (Some(&[1u8][..]), Some("k1".into()), Some(1))
    );
    assert_eq!(
        (
            list[1].id.as_deref(),
            list[1].label.as_deref(),
            list[1].access
        ),
        (Some(&[2u8][..]), None, Some(2))
    );
    // Object 1 has no label, object 2 starts with its label: the label goes with its ID.
    let data = tlv(0xC1, &h("8401 01 6001 01  7402 6B32 8401 02 6001 02"));
    let list = parse_object_list(&data).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].label, None);
    assert_eq!(list[1].label_text().as_deref(), Some("k2"));
    assert_eq!(list[1].id.as_deref(), Some(&[2u8][..]));
}

#[test]
fn one_object_per_structure_in_any_order() {
    let data = [
        tlv(0xC1, &h("6001 01 8401 01 4B01 13 7402 6B31")),
        tlv(0xC1, &h("4B01 14 7402 6B32 6001 02 8401 02")),
        tlv(0xC3, &h("2002 012C 8301 03 7302 6631 6001 01")),
    ]
    .concat();
    let list = parse_object_list(&data).unwrap();
    assert_eq!(
        summary(&list[..2]),
        vec![key(1, "k1", 1, 0x13), key(2, "k2", 2, 0x14)]
    );
    assert_eq!(list[2].kind, Some(ObjectKind::File));
    assert_eq!(list[2].file_size, Some(300));
    assert_eq!(list[2].label_text().as_deref(), Some("f1"));
}

#[test]
fn mixed_structures_and_unknown_fields() {
    // A two-key C1 with an unknown field (`E0`) in each key, a one-key C2, a two-file C3.
    let data = [
        tlv(
            0xC1,
            &h("7402 6B31 8401 01 E001 AA 6001 01  7402 6B32 8401 02 E001 BB 6001 02"),
        ),
        tlv(0xC2, &h("8501 01 7502 7031 6001 01")),
        tlv(
            0xC3,
            &h("8301 05 7302 6635 2002 0010  8301 06 7302 6636 2002 0020"),
        ),
    ]
    .concat();
    let list = parse_object_list(&data).unwrap();
    let ids: Vec<_> = list
        .iter()
        .map(|o| {
            (
                o.kind.unwrap(),
                o.id.clone().unwrap(),
                o.label_text().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (ObjectKind::PrivateKey, vec![1], "k1".to_string()),
            (ObjectKind::PrivateKey, vec![2], "k2".to_string()),
            (ObjectKind::PublicKey, vec![1], "p1".to_string()),
            (ObjectKind::File, vec![5], "f5".to_string()),
            (ObjectKind::File, vec![6], "f6".to_string()),
        ]
    );
    assert_eq!(list[0].other, vec![(0xE0, vec![0xAA])]);
    assert_eq!(list[1].other, vec![(0xE0, vec![0xBB])]);
    assert_eq!((list[3].file_size, list[4].file_size), (Some(16), Some(32)));
}

#[test]
fn split_ranges_cover_the_content() {
    let content = h("7402 6B31 8401 01 6001 01  7402 6B32 8401 02 6001 02");
    assert_eq!(split_objects(&content).unwrap(), vec![0..10, 10..20]);
    let empty = split_objects(&[]).unwrap();
    assert_eq!((empty.len(), empty[0].clone()), (1, 0..0));
    assert!(split_objects(&[0x84, 0x05, 0x01]).is_err());
}

/// Field orders a card might use; each object of a structure is written in the same order.
const ORDERS: &[&[u8]] = &[
    &[0x74, 0x84, 0x60, 0x4A, 0x4B],
    &[0x84, 0x74, 0x60, 0x4A, 0x4B],
    &[0x74, 0x60, 0x4A, 0x84, 0x4B],
    &[0x84, 0x60, 0x4A, 0x4B, 0x74],
    &[0x60, 0x84, 0x74, 0x4B, 0x4A],
];

proptest! {
    #[test]
    fn several_objects_per_structure_read_back(order in 0..ORDERS.len(),
                                               keys in proptest::collection::vec((1u8..=255, any::<u8>()), 1..6)) {
        let mut content = Vec::new();
        for (i, (id, attr)) in keys.iter().enumerate() {
            for &tag in ORDERS[order] {
                let value = match tag {
                    0x84 => vec![*id],
                    0x74 => format!("key{i}").into_bytes(),
                    _ => vec![*attr],
                };
                content.extend(tlv(tag, &value));
            }
        }
        let list = parse_object_list(&tlv(0xC1, &content)).unwrap();
        prop_assert_eq!(list.len(), keys.len());
        for (i, (o, (id, attr))) in list.iter().zip(&keys).enumerate() {
            prop_assert_eq!(o.id.as_deref(), Some(&[*id][..]));
            prop_assert_eq!(o.label_text(), Some(format!("key{i}")));
            prop_assert_eq!((o.access, o.state, o.key_type), (Some(*attr), Some(*attr), Some(*attr)));
        }
    }

    #[test]
    fn splitting_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(ranges) = split_objects(&data) {
            let mut at = 0;
            for r in ranges {
                prop_assert_eq!(r.start, at);
                at = r.end;
            }
            prop_assert_eq!(at, data.len());
        }
    }
}

/// A card writing every length as one plain byte: a grouped `C2` of exactly 129..=131 bytes is
/// `C2 81 …` (or `82`, `83`) with `C3` after it, which also reads as a BER long form.
#[test]
fn one_byte_lengths_81_to_83_before_more_structures() {
    for extra in 0..3usize {
        let mut keys = Vec::new();
        let mut expected = Vec::new();
        let mut id = 1u8;
        // Public keys of 21 bytes (the last one longer) until the structure is 129 + extra bytes.
        while keys.len() < 129 + extra {
            let left = 129 + extra - keys.len();
            let label_len = if left >= 42 { 10 } else { left - 11 };
            let label: String = "k".repeat(label_len);
            let mut content = tlv(0x75, label.as_bytes());
            content.extend(tlv(0x85, &[id]));
            content.extend(tlv(0x60, &[0x01]));
            content.extend(tlv(0x4B, &[0x13]));
            keys.extend(content);
            expected.push(key(id, &label, 0x01, 0x13));
            id += 1;
        }
        assert_eq!(keys.len(), 129 + extra);
        let mut list = vec![0xC2, keys.len() as u8];
        list.extend(&keys);
        let file = [
            tlv(0x73, b"cert"),
            tlv(0x83, &[0x02]),
            tlv(0x20, &[0x01, 0x00]),
        ]
        .concat();
        list.extend(tlv(0xC3, &file));
        let parsed = parse_object_list(&list).unwrap_or_else(|e| panic!("C2 {:02X}: {e}", list[1]));
        let public: Vec<_> = parsed
            .iter()
            .filter(|o| o.kind == Some(ObjectKind::PublicKey))
            .cloned()
            .collect();
        assert_eq!(summary(&public), expected, "C2 {:02X}", list[1]);
        let files: Vec<_> = parsed
            .iter()
            .filter(|o| o.kind == Some(ObjectKind::File))
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].file_size, Some(256));
    }
}
