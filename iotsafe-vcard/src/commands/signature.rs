//! COMPUTE SIGNATURE and VERIFY SIGNATURE: Init opens a session (P1=00) or closes it (P1=01); Updates
//! carry the data (P1=00 more, P1=80 last) in one of three modes (`docs/protocol.md#compute-signature`, `#verify-signature`, `#signature-forms`).

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::sessions::{close_requested, open, update_session};
use super::{hash_algorithm, object_ref, parse_tlvs, require_bits, CommandResult, Outcome};
use crate::apdu::Command;
use crate::dispatch::Applet;
use crate::profile::{Operation, SignatureFormat};
use crate::session::{HashAlg, LastBlock, Mode, Session, SessionKind, MAX_MESSAGE};
use crate::store::{attr, KeyAttributes, ObjectRef};
use crate::sw;
use crate::tlv::{self, Tlv, ValueTooLong};

/// Shortest and longest final hash accepted in mode 03 (wolfSSL declares SHA-256 but may send 48 bytes).
const MIN_HASH: usize = 16;
const MAX_HASH: usize = 64;

/// COMPUTE SIGNATURE Init on a filled private key with the signature function.
pub(crate) fn sign_init(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    if close_requested(applet, cmd, number, SessionKind::Sign)? {
        return Ok(Outcome::ok());
    }
    let tlvs = parse_tlvs(cmd)?;
    let r = object_ref(&tlvs, 0x84, 0x74)?;
    let key = r.find_in(&applet.store.private_keys).ok_or(sw::NOT_FOUND)?;
    let (mode, hash) = session_parameters(&tlvs, &key.attributes)?;
    if key.scalar.is_none() {
        return Err(sw::CONDITIONS_NOT_SATISFIED);
    }
    let session = Session::new(SessionKind::Sign, cmd.p2, key.id.clone(), mode, hash);
    open(applet, number, session)
}

/// VERIFY SIGNATURE Init on a filled public key with the signature function.
pub(crate) fn verify_init(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    if close_requested(applet, cmd, number, SessionKind::Verify)? {
        return Ok(Outcome::ok());
    }
    let tlvs = parse_tlvs(cmd)?;
    let r = object_ref(&tlvs, 0x85, 0x75)?;
    let key = r.find_in(&applet.store.public_keys).ok_or(sw::NOT_FOUND)?;
    let (mode, hash) = session_parameters(&tlvs, &key.attributes)?;
    if key.point.is_none() {
        return Err(sw::CONDITIONS_NOT_SATISFIED);
    }
    let session = Session::new(SessionKind::Verify, cmd.p2, key.id.clone(), mode, hash);
    open(applet, number, session)
}

/// Mode (`A1`, mandatory), hash (`91`, default SHA-256) and algorithm (`92`, default ECDSA), checked
/// against what the card supports (`6A80`) and what the key allows (`6985`).
fn session_parameters(tlvs: &[Tlv<'_>], key: &KeyAttributes) -> Result<(Mode, HashAlg), u16> {
    require_bits(key.functions, attr::FUNCTION_SIGNATURE)?;
    let mode = match tlv::find(tlvs, 0xA1) {
        Some(&[b]) => Mode::from_byte(b).ok_or(sw::INCORRECT_DATA)?,
        _ => return Err(sw::INCORRECT_DATA),
    };
    let hash = hash_algorithm(tlvs)?;
    let algorithm = match tlv::find(tlvs, 0x92) {
        None => attr::SIGNATURE_ECDSA,
        Some(&[b]) => b,
        Some(_) => return Err(sw::INCORRECT_DATA),
    };
    if algorithm != attr::SIGNATURE_ECDSA {
        return Err(sw::INCORRECT_DATA);
    }
    if key.signature_algorithms.is_some_and(|m| m & algorithm == 0) {
        return Err(sw::CONDITIONS_NOT_SATISFIED);
    }
    if key.hash_algorithms.is_some_and(|m| m & hash.bitmask() == 0) {
        return Err(sw::CONDITIONS_NOT_SATISFIED);
    }
    if mode == Mode::LastBlock && hash != HashAlg::Sha256 {
        return Err(sw::INCORRECT_DATA);
    }
    Ok((mode, hash))
}

/// COMPUTE SIGNATURE Update; the last one answers the `33` signature TLV.
pub(crate) fn sign_update(applet: &mut Applet, cmd: &Command<'_>, number: usize) -> CommandResult {
    let format = applet.quirks.signature_format;
    let prefix = applet.quirks.signature_prefix;
    let (last, session) = update_session(applet, cmd, number, SessionKind::Sign)?;
    let tlvs = parse_tlvs(cmd)?;
    gather(session, &tlvs)?;
    if !last {
        return Ok(Outcome::ok());
    }
    session.finished = true;
    let digest = Zeroizing::new(final_digest(session)?);
    let key_id = session.key_id.clone();
    let key = ObjectRef::Id(&key_id)
        .find_in(&applet.store.private_keys)
        .ok_or(sw::NOT_FOUND)?;
    let scalar = key.scalar.as_ref().ok_or(sw::CONDITIONS_NOT_SATISFIED)?;
    let signature: Signature = match prefix {
        Some(prefix) => {
            crate::signer::sign_with_prefix(scalar.expose(), &digest, prefix.as_bytes())
                .ok_or(sw::UNKNOWN_ERROR)?
        }
        None => SigningKey::from_slice(scalar.expose())
            .map_err(|_| sw::CONDITIONS_NOT_SATISFIED)?
            .sign_prehash(&digest)
            .map_err(|_| sw::INCORRECT_DATA)?,
    };
    Ok(Outcome::data(encode_signature(&signature, format)?).with_op(Operation::Sign))
}

/// VERIFY SIGNATURE Update; the last one answers `9000` (valid) or `6D01` (does not match).
pub(crate) fn verify_update(
    applet: &mut Applet,
    cmd: &Command<'_>,
    number: usize,
) -> CommandResult {
    let (last, session) = update_session(applet, cmd, number, SessionKind::Verify)?;
    let tlvs = parse_tlvs(cmd)?;
    gather(session, &tlvs)?;
    if let Some(sig) = tlv::find(&tlvs, 0x33) {
        session.signature = sig.to_vec();
    }
    if !last {
        return Ok(Outcome::ok());
    }
    session.finished = true;
    if session.signature.is_empty() {
        return Err(sw::INCORRECT_DATA);
    }
    let digest = final_digest(session)?;
    let signature = decode_signature(&session.signature);
    let key_id = session.key_id.clone();
    let key = ObjectRef::Id(&key_id)
        .find_in(&applet.store.public_keys)
        .ok_or(sw::NOT_FOUND)?;
    let point = key.point.as_ref().ok_or(sw::CONDITIONS_NOT_SATISFIED)?;
    let verifying_key =
        VerifyingKey::from_sec1_bytes(point).map_err(|_| sw::CONDITIONS_NOT_SATISFIED)?;
    let valid = signature.is_some_and(|s| verifying_key.verify_prehash(&digest, &s).is_ok());
    if valid {
        Ok(Outcome::ok().with_op(Operation::Verify))
    } else {
        Err(sw::SIGNATURE_MISMATCH)
    }
}

/// Takes the mode's input TLVs from one Update.
///
/// A final hash (`9E`) is kept in every mode: ZARIOT cards are opened in full-text mode (`A1 01 01`)
/// by atsign, which then sends `9E <hash>`, and they sign that hash (the ZARIOT trace, `docs/protocol.md#traces`).
fn gather(session: &mut Session, tlvs: &[Tlv<'_>]) -> Result<(), u16> {
    if let Some(hash) = tlv::find(tlvs, 0x9E) {
        session.final_hash = Zeroizing::new(hash.to_vec());
    }
    match session.mode {
        Mode::FullText => {
            for chunk in tlvs.iter().filter(|t| t.tag == 0x9B) {
                if session.buffer.len() + chunk.value.len() > MAX_MESSAGE {
                    return Err(sw::NOT_ENOUGH_MEMORY);
                }
                session.buffer.extend_from_slice(chunk.value);
            }
        }
        Mode::FinalHash => {}
        Mode::LastBlock => {
            let block = tlv::find(tlvs, 0x9A);
            let intermediate = tlv::find(tlvs, 0x9C);
            let count = tlv::find(tlvs, 0x9D);
            if let (Some(block), Some(intermediate), Some(&[a, b, c, d])) =
                (block, intermediate, count)
            {
                session.last_block = Some(LastBlock {
                    block: Zeroizing::new(block.to_vec()),
                    intermediate: intermediate.to_vec(),
                    hashed_len: u64::from(u32::from_be_bytes([a, b, c, d])),
                });
            } else if block.is_some() || intermediate.is_some() || count.is_some() {
                return Err(sw::INCORRECT_DATA);
            }
        }
    }
    Ok(())
}

/// The digest to sign or verify, once the last Update came.
fn final_digest(session: &Session) -> Result<Vec<u8>, u16> {
    match session.mode {
        Mode::FullText if session.buffer.is_empty() && !session.final_hash.is_empty() => {
            checked_final_hash(session)
        }
        Mode::FullText => Ok(session.hash.digest(&session.buffer)),
        Mode::FinalHash => checked_final_hash(session),
        Mode::LastBlock => finish_sha256(session.last_block.as_ref().ok_or(sw::INCORRECT_DATA)?),
    }
}

/// The `9E` hash, if its length is plausible for ECDSA.
fn checked_final_hash(session: &Session) -> Result<Vec<u8>, u16> {
    let hash = session.final_hash.as_slice();
    if (MIN_HASH..=MAX_HASH).contains(&hash.len()) {
        Ok(hash.to_vec())
    } else {
        Err(sw::INCORRECT_DATA)
    }
}

/// Mode 02: continues SHA-256 from the host's intermediate state over the last block and the padding.
fn finish_sha256(input: &LastBlock) -> Result<Vec<u8>, u16> {
    const BLOCK: usize = 64;
    if input.intermediate.len() != 32
        || !input.hashed_len.is_multiple_of(64)
        || input.block.len() > BLOCK
    {
        return Err(sw::INCORRECT_DATA);
    }
    let mut state = [0u32; 8];
    for (word, bytes) in state.iter_mut().zip(input.intermediate.chunks_exact(4)) {
        let mut be = [0u8; 4];
        be.copy_from_slice(bytes);
        *word = u32::from_be_bytes(be);
    }
    let total_bits = (input.hashed_len + input.block.len() as u64) * 8;
    let mut tail = Zeroizing::new(input.block.to_vec());
    tail.push(0x80);
    while tail.len() % BLOCK != BLOCK - 8 {
        tail.push(0);
    }
    tail.extend_from_slice(&total_bits.to_be_bytes());
    for chunk in tail.chunks_exact(BLOCK) {
        compress_block(&mut state, chunk);
    }
    Ok(state.iter().flat_map(|w| w.to_be_bytes()).collect())
}

/// One SHA-256 compression of a 64-byte block.
fn compress_block(state: &mut [u32; 8], chunk: &[u8]) {
    let mut block = [0u8; 64];
    block.copy_from_slice(chunk);
    sha2::compress256(state, &[block.into()]);
}

/// The signature in the configured format (a `33` TLV, or bare `r‖s`).
pub(crate) fn encode_signature(
    signature: &Signature,
    format: SignatureFormat,
) -> Result<Vec<u8>, ValueTooLong> {
    Ok(match format {
        SignatureFormat::TwoByteLength => {
            let mut out = vec![0x33, 0x00, 0x40];
            out.extend_from_slice(&signature.to_bytes());
            out
        }
        SignatureFormat::OneByteLength => {
            let mut out = vec![0x33, 0x40];
            out.extend_from_slice(&signature.to_bytes());
            out
        }
        SignatureFormat::Bare => signature.to_bytes().to_vec(),
        SignatureFormat::Der => {
            let der = signature.to_der();
            let mut out = Vec::with_capacity(der.as_bytes().len() + 2);
            tlv::push(&mut out, 0x33, der.as_bytes())?;
            out
        }
    })
}

/// Raw `r‖s` (64 bytes) or DER; anything else cannot match.
fn decode_signature(bytes: &[u8]) -> Option<Signature> {
    if bytes.len() == 64 {
        Signature::from_slice(bytes).ok()
    } else if bytes.first() == Some(&0x30) {
        Signature::from_der(bytes).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn last_block_mode_matches_sha256() {
        let message: Vec<u8> = (0..180u8).collect();
        // The host hashed the first 128 bytes (two blocks) and kept the state.
        let mut state = [
            0x6a09e667u32,
            0xbb67ae85,
            0x3c6ef372,
            0xa54ff53a,
            0x510e527f,
            0x9b05688c,
            0x1f83d9ab,
            0x5be0cd19,
        ];
        for chunk in message[..128].chunks_exact(64) {
            compress_block(&mut state, chunk);
        }
        let input = LastBlock {
            block: Zeroizing::new(message[128..].to_vec()),
            intermediate: state.iter().flat_map(|w| w.to_be_bytes()).collect(),
            hashed_len: 128,
        };
        assert_eq!(
            finish_sha256(&input).unwrap(),
            sha2::Sha256::digest(&message).to_vec()
        );
    }
}
