//! GET DATA (applet information, object list, one object), READ FILE and GET RANDOM
//! (`iotsafe-apdu.md` §3.1–§3.3).

use rand_core::{OsRng, RngCore};

use super::{object_ref, parse_tlvs, require_bits, require_p1p2_zero, CommandResult, Outcome};
use crate::apdu::Command;
use crate::dispatch::Applet;
use crate::profile::{Operation, TransportMode};
use crate::store::{
    attr, FileObject, ObjectStore, PrivateKeyObject, PublicKeyObject, SecretKeyObject,
    MAX_OBJECTS_PER_TYPE,
};
use crate::sw;
use crate::tlv::push;

/// Size of the applet information structure (`iotsafe-apdu.md` §3.3a).
pub(crate) const APPLET_INFO_LEN: usize = 0x44;

/// The 32-byte applet proprietary identifier (tag `11`), ASCII padded with spaces.
const PROPRIETARY_ID: &[u8; 32] = b"iotsafe-rs virtual card 0.1     ";

/// GET DATA: P1=00 applet information, P1=01 object list (P2=01 for the next part), P1=C1..C4 one
/// object, wrapped in its structure tag.
pub(crate) fn get_data(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    match cmd.p1 {
        0x00 => applet_information(applet, cmd),
        0x01 => object_list(applet, cmd, number),
        0xC1..=0xC4 => one_object(&applet.store, cmd),
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
    push(&mut out, 0x10, &[0x01]);
    push(&mut out, 0x11, PROPRIETARY_ID);
    push(&mut out, 0xB1, &[max]);
    push(&mut out, 0xB2, &[max]);
    push(&mut out, 0xB3, &[max]);
    push(&mut out, 0xB4, &[max]);
    let functions = attr::FUNCTION_SIGNATURE
        | attr::FUNCTION_KEY_GENERATION
        | attr::FUNCTION_KEY_AGREEMENT
        | attr::FUNCTION_KEY_DERIVATION;
    push(&mut out, 0x90, &[functions]);
    let hashes = attr::HASH_SHA256 | attr::HASH_SHA384 | attr::HASH_SHA512;
    push(&mut out, 0x91, &hashes.to_be_bytes());
    push(&mut out, 0x92, &[attr::SIGNATURE_ECDSA]);
    push(&mut out, 0x93, &[attr::KEY_AGREEMENT_ECKA]);
    push(
        &mut out,
        0x94,
        &[attr::DERIVATION_PRF_SHA256 | attr::DERIVATION_HKDF],
    );
    push(&mut out, 0xB7, &[applet.quirks.max_sessions]);
    Ok(Outcome::data(out))
}

/// The object list in parts no longer than Le (256 without Le), cut at structure boundaries;
/// `6300` says more parts follow.
fn object_list(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    if cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    let structures = all_structures(&applet.store);
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

/// One information structure per object, in the order `C1* C2* C4* C3*` Orange's parser needs.
pub(crate) fn all_structures(store: &ObjectStore) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    out.extend(store.private_keys.iter().map(private_key_info));
    out.extend(store.public_keys.iter().map(public_key_info));
    out.extend(store.secret_keys.iter().map(secret_key_info));
    out.extend(store.files.iter().map(file_info));
    out
}

fn one_object(store: &ObjectStore, cmd: &Command<'_>) -> CommandResult {
    if cmd.p2 != 0 {
        return Err(sw::WRONG_P1P2);
    }
    if !cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    let tlvs = parse_tlvs(cmd)?;
    let structure = match cmd.p1 {
        0xC1 => {
            let r = object_ref(&tlvs, 0x84, 0x74)?;
            store
                .private_keys
                .get(store.private_key_index(r).ok_or(sw::NOT_FOUND)?)
                .map(private_key_info)
        }
        0xC2 => {
            let r = object_ref(&tlvs, 0x85, 0x75)?;
            store
                .public_keys
                .get(store.public_key_index(r).ok_or(sw::NOT_FOUND)?)
                .map(public_key_info)
        }
        0xC4 => {
            let r = object_ref(&tlvs, 0x86, 0x76)?;
            store
                .secret_keys
                .get(store.secret_key_index(r).ok_or(sw::NOT_FOUND)?)
                .map(secret_key_info)
        }
        _ => {
            let r = object_ref(&tlvs, 0x83, 0x73)?;
            store
                .files
                .get(store.file_index(r).ok_or(sw::NOT_FOUND)?)
                .map(file_info)
        }
    };
    structure.map(Outcome::data).ok_or(sw::NOT_FOUND)
}

fn state_byte(filled: bool) -> u8 {
    if filled {
        attr::STATE_ACTIVATED
    } else {
        attr::STATE_DEACTIVATED
    }
}

fn wrap(tag: u8, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len() + 2);
    push(&mut out, tag, inner);
    out
}

/// `C1`: `74` label, `84` ID, `60`, `4A`, `4B`, `4E`, `61`, `92`, `91`, `6F` (Orange's order).
pub(crate) fn private_key_info(key: &PrivateKeyObject) -> Vec<u8> {
    let a = &key.attributes;
    let mut inner = Vec::new();
    if let Some(label) = &key.label {
        push(&mut inner, 0x74, label.as_bytes());
    }
    push(&mut inner, 0x84, &key.id);
    push(&mut inner, 0x60, &[key.access]);
    push(&mut inner, 0x4A, &[state_byte(key.scalar.is_some())]);
    push(&mut inner, 0x4B, &[a.key_type]);
    push(&mut inner, 0x4E, &[a.usage]);
    push(&mut inner, 0x61, &[a.functions]);
    key_algorithms(&mut inner, a);
    wrap(0xC1, &inner)
}

/// `C2`: as `C1` with `75`/`85`.
pub(crate) fn public_key_info(key: &PublicKeyObject) -> Vec<u8> {
    let a = &key.attributes;
    let mut inner = Vec::new();
    if let Some(label) = &key.label {
        push(&mut inner, 0x75, label.as_bytes());
    }
    push(&mut inner, 0x85, &key.id);
    push(&mut inner, 0x60, &[key.access]);
    push(&mut inner, 0x4A, &[state_byte(key.point.is_some())]);
    push(&mut inner, 0x4B, &[a.key_type]);
    push(&mut inner, 0x4E, &[a.usage]);
    push(&mut inner, 0x61, &[a.functions]);
    key_algorithms(&mut inner, a);
    wrap(0xC2, &inner)
}

fn key_algorithms(inner: &mut Vec<u8>, a: &crate::store::KeyAttributes) {
    if let Some(sig) = a.signature_algorithms {
        push(inner, 0x92, &[sig]);
    }
    if let Some(hash) = a.hash_algorithms {
        push(inner, 0x91, &hash.to_be_bytes());
    }
    if let Some(ka) = a.key_agreement {
        push(inner, 0x6F, &[ka]);
    }
}

/// `C4`: `76`, `86`, `60`, `4A`, `4B`, `61`, `94`.
pub(crate) fn secret_key_info(key: &SecretKeyObject) -> Vec<u8> {
    let mut inner = Vec::new();
    if let Some(label) = &key.label {
        push(&mut inner, 0x76, label.as_bytes());
    }
    push(&mut inner, 0x86, &key.id);
    push(&mut inner, 0x60, &[key.access]);
    push(&mut inner, 0x4A, &[state_byte(key.value.is_some())]);
    push(&mut inner, 0x4B, &[key.key_type]);
    push(&mut inner, 0x61, &[key.functions]);
    if let Some(kd) = key.key_derivation {
        push(&mut inner, 0x94, &[kd]);
    }
    wrap(0xC4, &inner)
}

/// `C3`: `73`, `83`, `60`, `4A`, `21`, `20` (the order Thales documents).
pub(crate) fn file_info(file: &FileObject) -> Vec<u8> {
    let mut inner = Vec::new();
    if let Some(label) = &file.label {
        push(&mut inner, 0x73, label.as_bytes());
    }
    push(&mut inner, 0x83, &file.id);
    push(&mut inner, 0x60, &[file.access]);
    push(&mut inner, 0x4A, &[state_byte(!file.data.is_empty())]);
    push(&mut inner, 0x21, &[file.usage]);
    let size = u16::try_from(file.data.len()).unwrap_or(u16::MAX);
    push(&mut inner, 0x20, &size.to_be_bytes());
    wrap(0xC3, &inner)
}

/// READ FILE at offset P1‖P2: up to Le (256 without Le) bytes; reading at the end returns no data,
/// past it the configured status word (`6A86` or `6981`).
pub(crate) fn read_file(applet: &Applet, cmd: &Command<'_>) -> CommandResult {
    if !cmd.has_data {
        return Err(sw::WRONG_LENGTH);
    }
    let tlvs = parse_tlvs(cmd)?;
    let r = object_ref(&tlvs, 0x83, 0x73)?;
    let store = &applet.store;
    let file = store
        .files
        .get(store.file_index(r).ok_or(sw::NOT_FOUND)?)
        .ok_or(sw::NOT_FOUND)?;
    require_bits(file.access, attr::ACCESS_READ)?;
    let offset = usize::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
    let rest = file
        .data
        .get(offset..)
        .ok_or(applet.quirks.read_past_end_sw)?;
    let chunk = rest
        .get(..cmd.max_response().min(rest.len()))
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
