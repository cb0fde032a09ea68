//! The client's TLV codec (`iotsafe_core::tlv`) and the virtual card's own (`iotsafe_vcard::tlv`)
//! run over one set of vectors, `tests/vectors/tlv.txt` (its header says how it is written).
//!
//! The two codecs are kept apart on purpose (the card never reuses the client's parsers), so
//! nothing but these vectors keeps them reading the length forms of `docs/protocol.md#tlv-forms`
//! the same way. A vector states what both must give, or what each must give and why they differ.

use iotsafe_core::tlv::{self as client, LengthForm};
use iotsafe_vcard::tlv as card;
use iotsafe_vcard::TlvLengths;
use proptest::prelude::*;

const VECTORS: &str = include_str!("../vectors/tlv.txt");

/// What a vector does.
#[derive(Debug)]
enum Action {
    /// Read the bytes as one run of TLVs.
    Decode(Vec<u8>),
    /// Write one TLV (tag, value) with a length form.
    Encode { tag: u8, value: Vec<u8>, form: Form },
}

#[derive(Debug, Clone, Copy)]
enum Form {
    Ber,
    OneByte,
}

/// One vector of the file.
#[derive(Debug)]
struct Vector {
    name: String,
    line: usize,
    action: Action,
    /// What the client's codec must give (the text after `both:` or `client:`).
    client: String,
    /// What the card's codec must give.
    card: String,
}

/// A TLV a decode vector expects.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    tag: u8,
    value: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Bytes(Vec<u8>),
    /// The value is itself a run of TLVs, read with the same codec.
    Run(Vec<Item>),
}

/// `XX` and `XX*N` tokens, separated by white space.
fn hex(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        let (byte, count) = match token.split_once('*') {
            Some((byte, count)) => (byte, count.parse::<usize>().expect("a repeat count")),
            None => (token, 1),
        };
        assert_eq!(byte.len(), 2, "{token:?} is not a hex byte");
        let byte = u8::from_str_radix(byte, 16).unwrap_or_else(|_| panic!("{token:?} is not hex"));
        out.extend(std::iter::repeat_n(byte, count));
    }
    out
}

/// A run of `TAG{value}` items (`none` is the empty run).
fn run(text: &str) -> Vec<Item> {
    let text = text.trim();
    if text == "none" {
        return Vec::new();
    }
    let mut items = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let open = rest
            .find('{')
            .unwrap_or_else(|| panic!("no value in {rest:?}"));
        let tag = u8::from_str_radix(rest[..open].trim(), 16)
            .unwrap_or_else(|_| panic!("bad tag in {rest:?}"));
        // The matching brace.
        let mut depth = 0;
        let close = rest[open..]
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(open + i)
            })
            .unwrap_or_else(|| panic!("unbalanced braces in {rest:?}"));
        let inner = &rest[open + 1..close];
        let value = if inner.contains('{') {
            Value::Run(run(inner))
        } else {
            Value::Bytes(hex(inner))
        };
        rest = &rest[close + 1..];
        let mut count = 1;
        if let Some(after) = rest.strip_prefix('*') {
            let digits = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            count = after[..digits].parse().expect("a repeat count");
            rest = &after[digits..];
        }
        for _ in 0..count {
            items.push(Item {
                tag,
                value: value.clone(),
            });
        }
        rest = rest.trim_start();
    }
    items
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let mut fields: Vec<(usize, &str, &str)> = Vec::new();
    let lines = VECTORS.lines().chain(std::iter::once(""));
    for (index, line) in lines.enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !fields.is_empty() {
                out.push(vector(&std::mem::take(&mut fields)));
            }
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("line {}: no `key:`", index + 1));
        fields.push((index + 1, key.trim(), value.trim()));
    }
    out
}

fn vector(fields: &[(usize, &str, &str)]) -> Vector {
    let line = fields[0].0;
    let get = |key: &str| {
        fields
            .iter()
            .find(|(_, k, _)| *k == key)
            .map(|(_, _, v)| *v)
    };
    for (at, key, _) in fields {
        assert!(
            [
                "name",
                "decode",
                "encode-ber",
                "encode-one-byte",
                "both",
                "client",
                "card",
                "why"
            ]
            .contains(key),
            "line {at}: unknown key {key:?}"
        );
    }
    let name = get("name")
        .unwrap_or_else(|| panic!("line {line}: no name"))
        .to_string();
    let encode = |text: &str, form| {
        let bytes = hex(text);
        let (&tag, value) = bytes.split_first().expect("a tag to write");
        Action::Encode {
            tag,
            value: value.to_vec(),
            form,
        }
    };
    let action = match (get("decode"), get("encode-ber"), get("encode-one-byte")) {
        (Some(bytes), None, None) => Action::Decode(hex(bytes)),
        (None, Some(text), None) => encode(text, Form::Ber),
        (None, None, Some(text)) => encode(text, Form::OneByte),
        _ => panic!("line {line} ({name}): exactly one of decode, encode-ber, encode-one-byte"),
    };
    let (client, card) = match (get("both"), get("client"), get("card"), get("why")) {
        (Some(both), None, None, None) => (both, both),
        (None, Some(client), Some(card), Some(why)) if !why.is_empty() => (client, card),
        _ => panic!("line {line} ({name}): `both:`, or `client:`, `card:` and `why:`"),
    };
    Vector {
        name,
        line,
        action,
        client: client.to_string(),
        card: card.to_string(),
    }
}

/// A codec's reading of a whole run: the TLVs, or `None` when it fails.
type Reader = fn(&[u8]) -> Option<Vec<(u8, &[u8])>>;

fn client_reads(data: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let tlvs = client::parse_all(data).ok()?;
    Some(tlvs.into_iter().map(|t| (t.tag, t.value)).collect())
}

fn card_reads(data: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let tlvs = card::parse(data).ok()?;
    Some(tlvs.into_iter().map(|t| (t.tag, t.value)).collect())
}

/// Where what `read` makes of `data` differs from `expected`, if anywhere.
fn check_run(read: Reader, data: &[u8], expected: &[Item], path: &str) -> Result<(), String> {
    let got =
        read(data).ok_or_else(|| format!("{path}: failed, expected {} TLVs", expected.len()))?;
    if got.len() != expected.len() {
        let tags: Vec<String> = got
            .iter()
            .map(|(t, v)| format!("{t:02X}({})", v.len()))
            .collect();
        return Err(format!(
            "{path}: {} TLVs [{}], expected {}",
            got.len(),
            tags.join(" "),
            expected.len()
        ));
    }
    for (i, ((tag, value), want)) in got.iter().zip(expected).enumerate() {
        let here = format!("{path}/{i}:{:02X}", want.tag);
        if *tag != want.tag {
            return Err(format!("{here}: tag {tag:02X}"));
        }
        match &want.value {
            Value::Bytes(bytes) if bytes.as_slice() != *value => {
                return Err(format!(
                    "{here}: {} value bytes, expected {}",
                    value.len(),
                    bytes.len()
                ))
            }
            Value::Bytes(_) => {}
            Value::Run(inner) => check_run(read, value, inner, &here)?,
        }
    }
    Ok(())
}

fn check_decode(read: Reader, data: &[u8], expected: &str) -> Result<(), String> {
    if expected.trim() == "error" {
        return match read(data) {
            None => Ok(()),
            Some(tlvs) => Err(format!("read {} TLVs, expected an error", tlvs.len())),
        };
    }
    check_run(read, data, &run(expected), "run")
}

/// A codec writing one TLV at the end of `out`; false when it failed.
type Writer = fn(&mut Vec<u8>, u8, &[u8], Form) -> bool;

const PREFIX: [u8; 3] = [0x84, 0x01, 0x01];

fn client_writes(out: &mut Vec<u8>, tag: u8, value: &[u8], form: Form) -> bool {
    let form = match form {
        Form::Ber => LengthForm::Ber,
        Form::OneByte => LengthForm::OneByte,
    };
    client::write(out, tag, value, form)
}

fn card_writes(out: &mut Vec<u8>, tag: u8, value: &[u8], form: Form) -> bool {
    match form {
        Form::Ber => card::push(out, tag, value).is_ok(),
        Form::OneByte => card::push_with(out, tag, value, TlvLengths::OneByte).is_ok(),
    }
}

fn check_encode(
    write: Writer,
    tag: u8,
    value: &[u8],
    form: Form,
    expected: &str,
) -> Result<(), String> {
    // Written after other bytes, as TLVs are: a writer must append, and leave them alone.
    let mut out = PREFIX.to_vec();
    let written = write(&mut out, tag, value, form);
    let (before, tlv) = out.split_at(PREFIX.len().min(out.len()));
    if before != PREFIX {
        return Err("the bytes before were changed".into());
    }
    match (expected.trim() == "error", written) {
        (true, false) if tlv.is_empty() => Ok(()),
        (true, false) => Err(format!("failed but wrote {} bytes", tlv.len())),
        (true, true) => Err(format!("wrote {} bytes, expected a failure", tlv.len())),
        (false, false) => Err("failed".into()),
        (false, true) => {
            let want = hex(expected);
            if tlv == want.as_slice() {
                Ok(())
            } else {
                let head = |b: &[u8]| format!("{:02X?}", &b[..b.len().min(6)]);
                Err(format!(
                    "wrote {} bytes starting {}, expected {} starting {}",
                    tlv.len(),
                    head(tlv),
                    want.len(),
                    head(&want)
                ))
            }
        }
    }
}

#[test]
fn both_codecs_give_what_every_vector_says() {
    let vectors = vectors();
    let mut failures = Vec::new();
    for v in &vectors {
        let sides: [(&str, &str, Reader, Writer); 2] = [
            ("client", &v.client, client_reads, client_writes),
            ("card", &v.card, card_reads, card_writes),
        ];
        for (side, expected, read, write) in sides {
            let result = match &v.action {
                Action::Decode(data) => check_decode(read, data, expected),
                Action::Encode { tag, value, form } => {
                    check_encode(write, *tag, value, *form, expected)
                }
            };
            if let Err(why) = result {
                failures.push(format!("line {} ({}), {side}: {why}", v.line, v.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn the_vector_file_covers_the_forms_it_is_for() {
    let vectors = vectors();
    let decodes: Vec<&[u8]> = vectors
        .iter()
        .filter_map(|v| match &v.action {
            Action::Decode(data) => Some(data.as_slice()),
            Action::Encode { .. } => None,
        })
        .collect();
    let has = |pattern: &[u8]| {
        decodes
            .iter()
            .any(|d| d.windows(pattern.len()).any(|w| w == pattern))
    };
    // The forms `docs/protocol.md#tlv-forms` names, and the two where the codecs once drifted.
    for (form, pattern) in [
        ("81 xx", &[0x81, 0x90][..]),
        ("82 xx xx", &[0x82, 0x01, 0x00]),
        ("83 xx xx xx", &[0x83, 0x00, 0x01, 0x00]),
        ("33 00 40", &[0x33, 0x00, 0x40]),
        ("33 01 00", &[0x33, 0x01, 0x00]),
        ("33 02 xx", &[0x33, 0x02]),
        ("81 <129 bytes> then more", &[0xD1, 0x81, 0x05]),
    ] {
        assert!(has(pattern), "no vector reads {form}");
    }
    let errors = vectors.iter().filter(|v| v.client == "error").count();
    let encodes = vectors.len() - decodes.len();
    assert!(errors >= 10, "only {errors} vectors expect an error");
    assert!(encodes >= 10, "only {encodes} vectors write");
    // The parser of the file itself: a nested run and a repeated TLV are read as written.
    assert_eq!(
        run("34{49{86{04 11*2}}} 00{}*2"),
        vec![
            Item {
                tag: 0x34,
                value: Value::Run(vec![Item {
                    tag: 0x49,
                    value: Value::Run(vec![Item {
                        tag: 0x86,
                        value: Value::Bytes(vec![0x04, 0x11, 0x11]),
                    }]),
                }]),
            },
            Item {
                tag: 0x00,
                value: Value::Bytes(vec![]),
            },
            Item {
                tag: 0x00,
                value: Value::Bytes(vec![]),
            },
        ]
    );
}

/// Runs whose lengths mix every form, written by the client's writer, then cut short or with one
/// byte changed now and then: the bytes where the length readings are ambiguous.
fn mixed_runs() -> impl Strategy<Value = Vec<u8>> {
    let tag = prop_oneof![
        Just(0x33u8),
        Just(0x9B),
        Just(0xD1),
        Just(0x00),
        any::<u8>()
    ];
    let len = prop_oneof![0usize..4, 0x7Eusize..0x86, 0xFEusize..0x103, 0usize..300];
    let form = prop_oneof![
        Just(LengthForm::Ber),
        Just(LengthForm::OneByte),
        Just(LengthForm::TwoBytes)
    ];
    let item = (tag, len, form, any::<u8>());
    let damage = prop_oneof![
        Just(None),
        (any::<prop::sample::Index>(), any::<Option<u8>>()).prop_map(Some)
    ];
    (prop::collection::vec(item, 0..5), damage).prop_map(|(items, damage)| {
        let mut out = Vec::new();
        for (tag, len, form, fill) in items {
            client::write(&mut out, tag, &vec![fill; len], form);
        }
        match damage {
            // Cut at some point, or change one byte.
            Some((at, None)) if !out.is_empty() => out.truncate(at.index(out.len())),
            Some((at, Some(byte))) if !out.is_empty() => {
                let i = at.index(out.len());
                out[i] = byte;
            }
            _ => {}
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Beyond the vectors: whatever the bytes, the two codecs read the same TLVs or both fail.
    #[test]
    fn both_codecs_read_any_run_alike(data in mixed_runs()) {
        prop_assert_eq!(client_reads(&data), card_reads(&data));
    }

    #[test]
    fn both_codecs_read_arbitrary_bytes_alike(
        data in prop::collection::vec(
            prop_oneof![any::<u8>(), Just(0x33u8), Just(0x81), Just(0x82), Just(0x00), Just(0x01)],
            0..64,
        )
    ) {
        prop_assert_eq!(client_reads(&data), card_reads(&data));
    }
}
