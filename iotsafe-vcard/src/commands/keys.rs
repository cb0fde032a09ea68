//! GENERATE KEY PAIR, READ PUBLIC KEY and PUT PUBLIC KEY (`docs/protocol.md#generate-key-pair`, `#read-public-key`, `#put-public-key`, `#public-key-data`).

use super::sessions::{close_requested, open, update_session};
use super::{
    object_ref, parse_tlvs, public_key_data, require_bits, require_p1p2_zero, CommandResult,
    Outcome,
};
use crate::apdu::Command;
use crate::dispatch::Applet;
use crate::profile::Operation;
use crate::session::{HashAlg, Mode, Session, SessionKind};
use crate::store::{attr, ObjectRef};
use crate::sw;
use crate::tlv::{self, push};

/// Largest amount of key data a PUT PUBLIC KEY session buffers.
const MAX_PUT_DATA: usize = 1024;

/// GENERATE KEY PAIR into a private key whose functions include key generation; answers
/// `84 L priv 85 L pub 34 45 49 43 86 41 04‖X‖Y`.
pub(crate) fn generate_key_pair(applet: &mut Applet, cmd: &Command<'_>) -> CommandResult {
    require_p1p2_zero(cmd)?;
    let tlvs = parse_tlvs(cmd)?;
    let r = object_ref(&tlvs, 0x84, 0x74)?;
    let index = applet.store.private_key_index(r).ok_or(sw::NOT_FOUND)?;
    let key = applet.store.private_keys.get(index).ok_or(sw::NOT_FOUND)?;
    require_bits(key.attributes.functions, attr::FUNCTION_KEY_GENERATION)?;
    if !matches!(
        key.attributes.key_type,
        attr::KEY_TYPE_P256_PERSISTENT | attr::KEY_TYPE_P256_VOLATILE
    ) {
        return Err(sw::CONDITIONS_NOT_SATISFIED);
    }
    let persistent = !key.attributes.is_volatile();
    let (private_id, public_id, point) = applet.store.generate_key_pair(r).ok_or(sw::NOT_FOUND)?;
    applet.store_changed |= persistent;
    let mut out = Vec::with_capacity(4 + private_id.len() + public_id.len() + 71);
    push(&mut out, 0x84, &private_id)?;
    push(&mut out, 0x85, &public_id)?;
    out.extend_from_slice(&public_key_data(&point)?);
    Ok(Outcome::data(out).with_op(Operation::KeyGen))
}

/// READ PUBLIC KEY: `34 45 49 43 86 41 04‖X‖Y` of a filled public key (a pair's public half or a slot).
pub(crate) fn read_public_key(applet: &Applet, cmd: &Command<'_>) -> CommandResult {
    require_p1p2_zero(cmd)?;
    let tlvs = parse_tlvs(cmd)?;
    let r = object_ref(&tlvs, 0x85, 0x75)?;
    let store = &applet.store;
    let key = r.find_in(&store.public_keys).ok_or(sw::NOT_FOUND)?;
    require_bits(key.access, attr::ACCESS_READ)?;
    let point = match &key.point {
        Some(point) => point.clone(),
        // A state file provisioned with only the private half: derive the public half of the pair.
        None => store
            .private_keys
            .iter()
            .find(|k| k.public_key_id.as_deref() == Some(key.id.as_slice()))
            .and_then(|k| store.public_point_of_private(ObjectRef::Id(&k.id)))
            .ok_or(sw::CONDITIONS_NOT_SATISFIED)?,
    };
    Ok(Outcome::data(public_key_data(&point)?))
}

/// PUT PUBLIC KEY Init: P1=00 opens session P2 on a public key with update access, P1=01 closes it.
pub(crate) fn put_public_key_init(
    applet: &mut Applet,
    cmd: &Command<'_>,
    number: usize,
) -> CommandResult {
    if close_requested(applet, cmd, number, SessionKind::PutKey)? {
        return Ok(Outcome::ok());
    }
    let tlvs = parse_tlvs(cmd)?;
    let r = object_ref(&tlvs, 0x85, 0x75)?;
    let key = r.find_in(&applet.store.public_keys).ok_or(sw::NOT_FOUND)?;
    require_bits(key.access, attr::ACCESS_UPDATE)?;
    // Mode and hash mean nothing to a put session; they are placeholders.
    let session = Session::new(
        SessionKind::PutKey,
        cmd.p2,
        key.id.clone(),
        Mode::FinalHash,
        HashAlg::Sha256,
    );
    open(applet, number, session)
}

/// PUT PUBLIC KEY Update: gathers `34 ...` data over chunks (P1=00), and on the last (P1=80) checks
/// the point lies on P-256 (`6A80` otherwise) and stores it.
pub(crate) fn put_public_key_update(
    applet: &mut Applet,
    cmd: &Command<'_>,
    number: usize,
) -> CommandResult {
    let (last, session) = update_session(applet, cmd, number, SessionKind::PutKey)?;
    if session.buffer.len() + cmd.data.len() > MAX_PUT_DATA {
        return Err(sw::NOT_ENOUGH_MEMORY);
    }
    session.buffer.extend_from_slice(cmd.data);
    if !last {
        return Ok(Outcome::ok());
    }
    session.finished = true;
    let point = extract_point(&session.buffer)?;
    let key_id = session.key_id.clone();
    let store = &mut applet.store;
    let index = store
        .public_key_index(ObjectRef::Id(&key_id))
        .ok_or(sw::NOT_FOUND)?;
    let key = store.public_keys.get_mut(index).ok_or(sw::NOT_FOUND)?;
    key.point = Some(point);
    applet.store_changed |= !key.attributes.is_volatile();
    Ok(Outcome::ok().with_op(Operation::PutKey))
}

/// The point `04‖X‖Y` inside `34 { 49 { 86 point } }`. Also accepts a bare `49` template and one
/// complete `34` TLV per chunk (Thales PKCS#11), whose values are joined.
fn extract_point(buffer: &[u8]) -> Result<Vec<u8>, u16> {
    let outer = tlv::parse(buffer).map_err(|_| sw::WRONG_LENGTH)?;
    let joined: Vec<u8> = outer
        .iter()
        .filter(|t| t.tag == 0x34)
        .flat_map(|t| t.value.iter().copied())
        .collect();
    let template_bytes = if joined.is_empty() { buffer } else { &joined };
    let template = tlv::parse(template_bytes).map_err(|_| sw::INCORRECT_DATA)?;
    let point = match tlv::find(&template, 0x49) {
        Some(inner) => {
            let inner = tlv::parse(inner).map_err(|_| sw::INCORRECT_DATA)?;
            tlv::find(&inner, 0x86)
        }
        None => tlv::find(&template, 0x86),
    }
    .ok_or(sw::INCORRECT_DATA)?;
    if point.len() != 65 || point.first() != Some(&0x04) {
        return Err(sw::INCORRECT_DATA);
    }
    p256::PublicKey::from_sec1_bytes(point).map_err(|_| sw::INCORRECT_DATA)?;
    Ok(point.to_vec())
}
