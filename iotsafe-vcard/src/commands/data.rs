//! GET DATA (applet information, object list, one object), READ FILE and GET RANDOM
//! (`docs/protocol.md#get-random`, `#read-file`, `#get-data`).

use rand_core::{OsRng, RngCore};

use super::{object_ref, parse_tlvs, require_bits, require_p1p2_zero, CommandResult, Outcome};
use crate::apdu::Command;
use crate::dispatch::Applet;
use crate::profile::{Operation, TransportMode};
use crate::quirks::{InfoFieldOrder, ObjectListLayout, Quirks, TlvLengths};
use crate::store::{
    attr, FileObject, KeyAttributes, Named, ObjectStore, PrivateKeyObject, PublicKeyObject,
    SecretKeyObject, MAX_OBJECTS_PER_TYPE,
};
use crate::sw;
use crate::tlv::{push, push_with, Tlv, ValueTooLong};

/// Size of the applet information structure (`docs/protocol.md#applet-information`).
pub(crate) const APPLET_INFO_LEN: usize = 0x44;

/// The 32-byte applet proprietary identifier (tag `11`), ASCII padded with spaces.
const PROPRIETARY_ID: &[u8; 32] = b"iotsafe-rs virtual card 0.1     ";

/// GET DATA: P1=00 applet information, P1=01 object list (P2=01 for the next part), P1=C1..C4 one
/// object, wrapped in its structure tag.
pub(crate) fn get_data(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    match cmd.p1 {
        0x00 => applet_information(applet, cmd),
        0x01 => object_list(applet, cmd, number),
        0xC1..=0xC4 => one_object(&applet.store, &applet.quirks, cmd),
        _ => Err(sw::WRONG_P1P2),
    }
}

fn applet_information(applet: &Applet, cmd: &Command<'_>) -> CommandResult {
    if cmd.p2 != 0 {
        return Err(sw::WRONG_P1P2);
    }
    if cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    if applet.transport == TransportMode::T0
        && matches!(cmd.le, Some(n) if n != APPLET_INFO_LEN && n != 256)
    {
        return Err(sw::wrong_le(APPLET_INFO_LEN));
    }
    let max = u8::try_from(MAX_OBJECTS_PER_TYPE).unwrap_or(u8::MAX);
    let mut out = Vec::with_capacity(APPLET_INFO_LEN);
    push(&mut out, 0x10, &[0x01])?;
    push(&mut out, 0x11, PROPRIETARY_ID)?;
    push(&mut out, 0xB1, &[max])?;
    push(&mut out, 0xB2, &[max])?;
    push(&mut out, 0xB3, &[max])?;
    push(&mut out, 0xB4, &[max])?;
    let functions = attr::FUNCTION_SIGNATURE
        | attr::FUNCTION_KEY_GENERATION
        | attr::FUNCTION_KEY_AGREEMENT
        | attr::FUNCTION_KEY_DERIVATION;
    push(&mut out, 0x90, &[functions])?;
    let hashes = attr::HASH_SHA256 | attr::HASH_SHA384 | attr::HASH_SHA512;
    push(&mut out, 0x91, &hashes.to_be_bytes())?;
    push(&mut out, 0x92, &[attr::SIGNATURE_ECDSA])?;
    push(&mut out, 0x93, &[attr::KEY_AGREEMENT_ECKA])?;
    push(
        &mut out,
        0x94,
        &[attr::DERIVATION_PRF_SHA256 | attr::DERIVATION_HKDF],
    )?;
    push(&mut out, 0xB7, &[applet.quirks.max_sessions])?;
    Ok(Outcome::data(out))
}

/// The object list in parts no longer than Le (256 without Le), cut at structure boundaries;
/// `6300` says more parts follow.
fn object_list(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    if cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    let structures = all_structures(&applet.store, &applet.quirks)?;
    let channel = applet
        .channels
        .get_mut(number)
        .ok_or(sw::CHANNEL_NOT_SUPPORTED)?;
    let start = match cmd.p2 {
        0x00 => 0,
        0x01 => channel.list_cursor,
        _ => return Err(sw::WRONG_P1P2),
    };
    let limit = cmd.max_response();
    let whole: Vec<u8> = structures.concat();
    // A cursor left by a longer list (objects changed between parts) restarts nothing: it ends here.
    let start = start.min(whole.len());
    // End of the part: as many whole structures as fit, or a raw cut if not even one does.
    let mut end = start;
    let mut boundary = 0;
    for s in &structures {
        boundary += s.len();
        if boundary <= start {
            continue;
        }
        if boundary - start > limit {
            break;
        }
        end = boundary;
    }
    if end == start {
        end = (start + limit).min(whole.len());
    }
    let part = whole.get(start..end).unwrap_or_default().to_vec();
    if end < whole.len() {
        channel.list_cursor = end;
        Ok(Outcome {
            data: part,
            sw: sw::MORE_DATA,
            op: None,
        })
    } else {
        channel.list_cursor = 0;
        Ok(Outcome::data(part))
    }
}

/// The information structures of the object list, in the order `C1* C2* C4* C3*` Orange's parser
/// needs: one per object, or one per object type holding all its objects
/// ([`ObjectListLayout`]). Fails when an object's fields are too long to encode.
pub(crate) fn all_structures(
    store: &ObjectStore,
    quirks: &Quirks,
) -> Result<Vec<Vec<u8>>, ValueTooLong> {
    let groups: [Vec<Info>; 4] = [
        infos(&store.private_keys, private_key_info)?,
        infos(&store.public_keys, public_key_info)?,
        infos(&store.secret_keys, secret_key_info)?,
        infos(&store.files, file_info)?,
    ];
    let order = quirks.info_field_order;
    let style = quirks.tlv_lengths;
    match quirks.object_list_layout {
        ObjectListLayout::PerObject => groups
            .iter()
            .flatten()
            .map(|info| info.structure(order, style))
            .collect(),
        ObjectListLayout::Grouped => {
            let mut out = Vec::new();
            for group in &groups {
                let Some(first) = group.first() else {
                    continue;
                };
                let inner: Vec<u8> = group.iter().flat_map(|info| info.inner(order)).collect();
                let mut structure = Vec::with_capacity(inner.len() + 4);
                push_with(&mut structure, first.tag, &inner, style)?;
                out.push(structure);
            }
            Ok(out)
        }
    }
}

/// The information structures of the objects of one type, in list order.
fn infos<T>(
    objects: &[T],
    info: fn(&T) -> Result<Info, ValueTooLong>,
) -> Result<Vec<Info>, ValueTooLong> {
    objects.iter().map(info).collect()
}

fn one_object(store: &ObjectStore, quirks: &Quirks, cmd: &Command<'_>) -> CommandResult {
    if cmd.p2 != 0 {
        return Err(sw::WRONG_P1P2);
    }
    if !cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    let tlvs = parse_tlvs(cmd)?;
    let info = match cmd.p1 {
        0xC1 => private_key_info(found(&tlvs, 0x84, 0x74, &store.private_keys)?),
        0xC2 => public_key_info(found(&tlvs, 0x85, 0x75, &store.public_keys)?),
        0xC4 => secret_key_info(found(&tlvs, 0x86, 0x76, &store.secret_keys)?),
        _ => file_info(found(&tlvs, 0x83, 0x73, &store.files)?),
    }?;
    Ok(Outcome::data(
        info.structure(quirks.info_field_order, quirks.tlv_lengths)?,
    ))
}

/// The object of one type that the ID tag or the label tag of `tlvs` names: `6A80` without
/// exactly one of them, `6A82` when there is no such object.
fn found<'s, T: Named>(
    tlvs: &[Tlv<'_>],
    id_tag: u8,
    label_tag: u8,
    objects: &'s [T],
) -> Result<&'s T, u16> {
    object_ref(tlvs, id_tag, label_tag)?
        .find_in(objects)
        .ok_or(sw::NOT_FOUND)
}

fn state_byte(filled: bool) -> u8 {
    if filled {
        attr::STATE_ACTIVATED
    } else {
        attr::STATE_DEACTIVATED
    }
}

/// One object's information structure in parts, so the fields can be put in any order.
struct Info {
    /// The structure tag (`C1`..`C4`).
    tag: u8,
    /// The label TLV (`7x`), empty when the object has none.
    label: Vec<u8>,
    /// The ID TLV (`8x`).
    id: Vec<u8>,
    /// The attribute TLVs in their usual order.
    attributes: Vec<u8>,
}

impl Info {
    /// The structure `tag` of `object`, named by `label_tag` and `id_tag`, without attributes yet.
    fn new(tag: u8, label_tag: u8, id_tag: u8, object: &impl Named) -> Result<Info, ValueTooLong> {
        let mut info = Info {
            tag,
            label: Vec::new(),
            id: Vec::new(),
            attributes: Vec::new(),
        };
        if let Some(label) = object.label() {
            push(&mut info.label, label_tag, label.as_bytes())?;
        }
        push(&mut info.id, id_tag, object.id())?;
        Ok(info)
    }

    fn attribute(&mut self, tag: u8, value: &[u8]) -> Result<(), ValueTooLong> {
        push(&mut self.attributes, tag, value)
    }

    /// The attributes private and public keys share: `60`, `4A`, `4B`, `4E`, `61`, `92`, `91`, `6F`.
    fn with_key(
        mut self,
        access: u8,
        filled: bool,
        a: &KeyAttributes,
    ) -> Result<Info, ValueTooLong> {
        self.attribute(0x60, &[access])?;
        self.attribute(0x4A, &[state_byte(filled)])?;
        self.attribute(0x4B, &[a.key_type])?;
        self.attribute(0x4E, &[a.usage])?;
        self.attribute(0x61, &[a.functions])?;
        if let Some(sig) = a.signature_algorithms {
            self.attribute(0x92, &[sig])?;
        }
        if let Some(hash) = a.hash_algorithms {
            self.attribute(0x91, &hash.to_be_bytes())?;
        }
        if let Some(ka) = a.key_agreement {
            self.attribute(0x6F, &[ka])?;
        }
        Ok(self)
    }

    /// The fields in `order`, without the structure tag.
    fn inner(&self, order: InfoFieldOrder) -> Vec<u8> {
        let (label, id, attributes) = (
            self.label.as_slice(),
            self.id.as_slice(),
            self.attributes.as_slice(),
        );
        let parts: [&[u8]; 3] = match order {
            InfoFieldOrder::LabelFirst => [label, id, attributes],
            InfoFieldOrder::IdFirst => [id, label, attributes],
            InfoFieldOrder::AttributesFirst => [attributes, label, id],
        };
        parts.concat()
    }

    /// The whole structure: tag, length, fields.
    fn structure(&self, order: InfoFieldOrder, style: TlvLengths) -> Result<Vec<u8>, ValueTooLong> {
        let inner = self.inner(order);
        let mut out = Vec::with_capacity(inner.len() + 4);
        push_with(&mut out, self.tag, &inner, style)?;
        Ok(out)
    }
}

/// `C1`: `74` label, `84` ID, `60`, `4A`, `4B`, `4E`, `61`, `92`, `91`, `6F` (Orange's order).
fn private_key_info(key: &PrivateKeyObject) -> Result<Info, ValueTooLong> {
    let filled = key.scalar.is_some();
    Info::new(0xC1, 0x74, 0x84, key)?.with_key(key.access, filled, &key.attributes)
}

/// `C2`: as `C1` with `75`/`85`.
fn public_key_info(key: &PublicKeyObject) -> Result<Info, ValueTooLong> {
    let filled = key.point.is_some();
    Info::new(0xC2, 0x75, 0x85, key)?.with_key(key.access, filled, &key.attributes)
}

/// `C4`: `76`, `86`, `60`, `4A`, `4B`, `61`, `94`.
fn secret_key_info(key: &SecretKeyObject) -> Result<Info, ValueTooLong> {
    let mut info = Info::new(0xC4, 0x76, 0x86, key)?;
    info.attribute(0x60, &[key.access])?;
    info.attribute(0x4A, &[state_byte(key.value.is_some())])?;
    info.attribute(0x4B, &[key.key_type])?;
    info.attribute(0x61, &[key.functions])?;
    if let Some(kd) = key.key_derivation {
        info.attribute(0x94, &[kd])?;
    }
    Ok(info)
}

/// `C3`: `73`, `83`, `60`, `4A`, `21`, `20` (the order Thales documents).
fn file_info(file: &FileObject) -> Result<Info, ValueTooLong> {
    let mut info = Info::new(0xC3, 0x73, 0x83, file)?;
    info.attribute(0x60, &[file.access])?;
    info.attribute(0x4A, &[state_byte(!file.data.is_empty())])?;
    info.attribute(0x21, &[file.usage])?;
    let size = u16::try_from(file.data.len()).unwrap_or(u16::MAX);
    info.attribute(0x20, &size.to_be_bytes())?;
    Ok(info)
}

/// READ FILE at offset P1‖P2: up to Le (256 without Le) bytes, and no more than
/// [`Quirks::read_file_max`]; reading at the end returns no data, past it the configured status word
/// (`6A86` or `6981`).
pub(crate) fn read_file(applet: &Applet, cmd: &Command<'_>) -> CommandResult {
    if !cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    let tlvs = parse_tlvs(cmd)?;
    let file = found(&tlvs, 0x83, 0x73, &applet.store.files)?;
    require_bits(file.access, attr::ACCESS_READ)?;
    let offset = usize::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
    let rest = file
        .data
        .get(offset..)
        .ok_or(applet.quirks.read_past_end_sw)?;
    let most = applet.quirks.read_file_max.map_or(usize::MAX, usize::from);
    let chunk = rest
        .get(..cmd.max_response().min(most).min(rest.len()))
        .unwrap_or(rest);
    Ok(Outcome::data(chunk.to_vec()).with_op(Operation::Read))
}

/// GET RANDOM: Le bytes (`00` = 256).
pub(crate) fn get_random(cmd: &Command<'_>) -> CommandResult {
    require_p1p2_zero(cmd)?;
    if cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    let n = cmd.le.ok_or(sw::WRONG_LENGTH)?;
    let mut out = vec![0u8; n];
    OsRng.fill_bytes(&mut out);
    Ok(Outcome::data(out).with_op(Operation::Random))
}
