//! COMPUTE DH, COMPUTE HKDF (extract) and COMPUTE PRF (TLS 1.2, P_SHA256)
//! (`docs/protocol.md#compute-dh`, `#compute-prf`, `#compute-hkdf`; vectors in `#traces`).

use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use super::{
    hash_algorithm, object_ref, parse_tlvs, require_bits, require_p1p2_zero, CommandResult, Outcome,
};
use crate::apdu::Command;
use crate::dispatch::Applet;
use crate::profile::Operation;
use crate::quirks::DhOutput;
use crate::session::HashAlg;
use crate::store::{attr, ObjectRef};
use crate::sw;
use crate::tlv::{self, Tlv};

/// COMPUTE DH: `84`/`74` private key with key agreement, `85`/`75` filled public key → raw x (32 bytes),
/// or SHA-1 of x (20 bytes) with [`DhOutput::Sha1`]. An empty (never filled, or wiped) key is `6985`.
pub(crate) fn compute_dh(applet: &Applet, cmd: &Command<'_>) -> CommandResult {
    require_p1p2_zero(cmd)?;
    let tlvs = parse_tlvs(cmd)?;
    let private_ref = object_ref(&tlvs, 0x84, 0x74)?;
    let public_ref = object_ref(&tlvs, 0x85, 0x75)?;
    let store = &applet.store;
    let private = private_ref
        .find_in(&store.private_keys)
        .ok_or(sw::NOT_FOUND)?;
    let public = public_ref
        .find_in(&store.public_keys)
        .ok_or(sw::NOT_FOUND)?;
    require_bits(private.attributes.functions, attr::FUNCTION_KEY_AGREEMENT)?;
    require_bits(public.attributes.functions, attr::FUNCTION_KEY_AGREEMENT)?;
    let scalar = private
        .scalar
        .as_ref()
        .ok_or(sw::CONDITIONS_NOT_SATISFIED)?;
    let point = public.point.as_ref().ok_or(sw::CONDITIONS_NOT_SATISFIED)?;
    let secret =
        p256::SecretKey::from_slice(scalar.expose()).map_err(|_| sw::CONDITIONS_NOT_SATISFIED)?;
    let peer = p256::PublicKey::from_sec1_bytes(point).map_err(|_| sw::CONDITIONS_NOT_SATISFIED)?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    let x = shared.raw_secret_bytes();
    let out = match applet.quirks.dh_output {
        DhOutput::RawX => x.to_vec(),
        DhOutput::Sha1 => crate::sha1::digest(x).to_vec(),
    };
    Ok(Outcome::data(out).with_op(Operation::Dh))
}

/// COMPUTE HKDF (extract): PRK = HMAC-Hash(salt `D5`, IKM `D1` or secret key `86`/`76`); an empty salt or
/// IKM stands for hash-length zeros, as wolfSSL sends them.
pub(crate) fn compute_hkdf(applet: &Applet, cmd: &Command<'_>) -> CommandResult {
    require_p1p2_zero(cmd)?;
    let tlvs = parse_tlvs(cmd)?;
    let hash = hash_algorithm(&tlvs)?;
    let zeros = vec![0u8; hash.output_len()];
    let ikm = match tlv::find(&tlvs, 0xD1) {
        Some(ikm) => Zeroizing::new(ikm.to_vec()),
        None if has_secret_ref(&tlvs) => stored_secret(applet, &tlvs, attr::DERIVATION_HKDF)?,
        None => Zeroizing::new(Vec::new()),
    };
    let ikm = if ikm.is_empty() {
        Zeroizing::new(zeros.clone())
    } else {
        ikm
    };
    let salt = tlv::find(&tlvs, 0xD5)
        .filter(|s| !s.is_empty())
        .unwrap_or(&zeros);
    let prk = hmac(hash, salt, &[&ikm]);
    Ok(Outcome::data(prk).with_op(Operation::Hkdf))
}

/// COMPUTE PRF: TLS 1.2 PRF with SHA-256 over `D2` (label‖seed), `D3` bytes long. The secret is `D1`,
/// or a stored secret key (`86`/`76`). P1 is the Thales mode: `00` general, `01` PSK (the stored key is
/// the PSK, RFC 4279 §2 pre-master), `02` ECDHE-PSK (`D4` is the ECDHE secret, RFC 5489 §2).
pub(crate) fn compute_prf(applet: &Applet, cmd: &Command<'_>) -> CommandResult {
    if cmd.p2 != 0 || cmd.p1 > 0x02 {
        return Err(sw::WRONG_P1P2);
    }
    let tlvs = parse_tlvs(cmd)?;
    let label_and_seed = tlv::find(&tlvs, 0xD2).ok_or(sw::INCORRECT_DATA)?;
    let length = match tlv::find(&tlvs, 0xD3) {
        Some(&[n]) if n > 0 => usize::from(n),
        Some(&[hi, lo]) if u16::from_be_bytes([hi, lo]) > 0 => {
            usize::from(u16::from_be_bytes([hi, lo]))
        }
        _ => return Err(sw::INCORRECT_DATA),
    };
    if length > 256 {
        return Err(sw::INCORRECT_DATA);
    }
    let secret = match (tlv::find(&tlvs, 0xD1), cmd.p1) {
        (Some(secret), 0x00) => Zeroizing::new(secret.to_vec()),
        (None, 0x00) => stored_secret(applet, &tlvs, attr::DERIVATION_PRF_SHA256)?,
        (None, 0x01) => {
            let psk = stored_secret(applet, &tlvs, attr::DERIVATION_PRF_SHA256)?;
            psk_premaster(&Zeroizing::new(vec![0u8; psk.len()]), &psk)?
        }
        (None, _) => {
            let psk = stored_secret(applet, &tlvs, attr::DERIVATION_PRF_SHA256)?;
            let other = tlv::find(&tlvs, 0xD4).ok_or(sw::INCORRECT_DATA)?;
            psk_premaster(other, &psk)?
        }
        (Some(_), _) => return Err(sw::INCORRECT_DATA),
    };
    let out = p_sha256(&secret, label_and_seed, length);
    Ok(Outcome::data(out).with_op(Operation::Prf))
}

fn has_secret_ref(tlvs: &[Tlv<'_>]) -> bool {
    tlv::find(tlvs, 0x86).is_some() || tlv::find(tlvs, 0x76).is_some()
}

/// The value of the secret key referenced in `tlvs`, which must allow key derivation.
fn stored_secret(
    applet: &Applet,
    tlvs: &[Tlv<'_>],
    algorithm: u8,
) -> Result<Zeroizing<Vec<u8>>, u16> {
    let r: ObjectRef<'_> = object_ref(tlvs, 0x86, 0x76)?;
    let key = r.find_in(&applet.store.secret_keys).ok_or(sw::NOT_FOUND)?;
    require_bits(key.functions, attr::FUNCTION_KEY_DERIVATION)?;
    if key.key_derivation.is_some_and(|m| m & algorithm == 0) {
        return Err(sw::CONDITIONS_NOT_SATISFIED);
    }
    let value = key.value.as_ref().ok_or(sw::CONDITIONS_NOT_SATISFIED)?;
    Ok(Zeroizing::new(value.expose().to_vec()))
}

/// `uint16(len other) ‖ other ‖ uint16(len psk) ‖ psk` (RFC 4279 §2, RFC 5489 §2).
fn psk_premaster(other: &[u8], psk: &[u8]) -> Result<Zeroizing<Vec<u8>>, u16> {
    let other_len = u16::try_from(other.len()).map_err(|_| sw::INCORRECT_DATA)?;
    let psk_len = u16::try_from(psk.len()).map_err(|_| sw::INCORRECT_DATA)?;
    let mut out = Zeroizing::new(Vec::with_capacity(4 + other.len() + psk.len()));
    out.extend_from_slice(&other_len.to_be_bytes());
    out.extend_from_slice(other);
    out.extend_from_slice(&psk_len.to_be_bytes());
    out.extend_from_slice(psk);
    Ok(out)
}

/// HMAC with `hash` over the concatenation of `parts`.
fn hmac(hash: HashAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        // HMAC takes keys of any length, so this cannot fail.
        match <M as hmac::digest::KeyInit>::new_from_slice(key) {
            Ok(mut mac) => {
                for part in parts {
                    mac.update(part);
                }
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    match hash {
        HashAlg::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        HashAlg::Sha384 => run::<Hmac<sha2::Sha384>>(key, parts),
        HashAlg::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
    }
}

/// RFC 5246 §5 P_SHA256(secret, seed), truncated to `length` bytes.
fn p_sha256(secret: &[u8], seed: &[u8], length: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(length + 32);
    let mut a = hmac(HashAlg::Sha256, secret, &[seed]);
    while out.len() < length {
        out.extend_from_slice(&hmac(HashAlg::Sha256, secret, &[&a, seed]));
        a = hmac(HashAlg::Sha256, secret, &[&a]);
    }
    out.truncate(length);
    out
}
