//! Builders for every IoT.05 command (`docs/protocol.md#commands`); the answers are parsed in
//! [`crate::answers`] (re-exported here).
//!
//! Builders take the class byte (channel bits included) and return a [`Command`]; they never talk to
//! a card.

use crate::apdu::{Command, Le};
use crate::error::{CommandKind, Error};
use crate::objects::{EcPoint, ObjectKind, ObjectRef};
use crate::prelude::*;
use crate::tlv::{self, LengthForm};

/// Instruction bytes.
pub mod ins {
    /// SELECT.
    pub const SELECT: u8 = 0xA4;
    /// MANAGE CHANNEL.
    pub const MANAGE_CHANNEL: u8 = 0x70;
    /// GET RESPONSE.
    pub const GET_RESPONSE: u8 = 0xC0;
    /// GET DATA.
    pub const GET_DATA: u8 = 0xCB;
    /// READ FILE.
    pub const READ_FILE: u8 = 0xB0;
    /// GET RANDOM.
    pub const GET_RANDOM: u8 = 0x84;
    /// GENERATE KEY PAIR.
    pub const GENERATE_KEY_PAIR: u8 = 0xB9;
    /// READ PUBLIC KEY.
    pub const READ_PUBLIC_KEY: u8 = 0xCD;
    /// PUT PUBLIC KEY Init.
    pub const PUT_PUBLIC_KEY_INIT: u8 = 0x24;
    /// PUT PUBLIC KEY Update.
    pub const PUT_PUBLIC_KEY_UPDATE: u8 = 0xD8;
    /// COMPUTE SIGNATURE Init.
    pub const COMPUTE_SIGNATURE_INIT: u8 = 0x2A;
    /// COMPUTE SIGNATURE Update.
    pub const COMPUTE_SIGNATURE_UPDATE: u8 = 0x2B;
    /// VERIFY SIGNATURE Init.
    pub const VERIFY_SIGNATURE_INIT: u8 = 0x2C;
    /// VERIFY SIGNATURE Update.
    pub const VERIFY_SIGNATURE_UPDATE: u8 = 0x2D;
    /// COMPUTE DH.
    pub const COMPUTE_DH: u8 = 0x46;
    /// COMPUTE PRF.
    pub const COMPUTE_PRF: u8 = 0x48;
    /// COMPUTE HKDF.
    pub const COMPUTE_HKDF: u8 = 0x4A;
}

/// The standard IoT SAFE AID.
pub const AID_STANDARD: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10];
/// Thales "MVP" applet AID.
pub const AID_THALES_MVP: &[u8] = &[
    0xA0, 0x00, 0x00, 0x00, 0x30, 0x53, 0xF1, 0x24, 0x01, 0x77, 0x01, 0x01, 0x49, 0x53, 0x41,
];
/// NTT docomo applet AID.
pub const AID_NTT: &[u8] = &[
    0xA0, 0x00, 0x00, 0x01, 0x15, 0x70, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x49, 0x53, 0x41, 0x02,
];
/// Earlier Thales/partner applet AID (Orange custom).
pub const AID_LEGACY_THALES: &[u8] = &[0xA0, 0x00, 0x00, 0x02, 0x48, 0x04, 0x00];
/// The four AIDs seen in the wild, in probing order.
pub const KNOWN_AIDS: [&[u8]; 4] = [AID_STANDARD, AID_THALES_MVP, AID_NTT, AID_LEGACY_THALES];

/// Hash algorithm (tag `91` bitmask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The two-byte bitmask value.
    pub fn mask(self) -> u16 {
        match self {
            HashAlgorithm::Sha256 => 0x0001,
            HashAlgorithm::Sha384 => 0x0002,
            HashAlgorithm::Sha512 => 0x0004,
        }
    }
    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }
}

/// Signature algorithm (tag `92`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5.
    RsaPkcs1,
    /// RSA PSS.
    RsaPss,
    /// ECDSA.
    Ecdsa,
}

impl SignatureAlgorithm {
    /// The bitmask value.
    pub fn mask(self) -> u8 {
        match self {
            SignatureAlgorithm::RsaPkcs1 => 0x01,
            SignatureAlgorithm::RsaPss => 0x02,
            SignatureAlgorithm::Ecdsa => 0x04,
        }
    }
}

/// Mode of operation of COMPUTE / VERIFY SIGNATURE (tag `A1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMode {
    /// `01`: the applet hashes the full text sent in `9B` chunks.
    FullText,
    /// `03`: the host supplies the final hash in `9E`.
    Digest,
}

impl SignMode {
    fn byte(self) -> u8 {
        match self {
            SignMode::FullText => 0x01,
            SignMode::Digest => 0x03,
        }
    }
}

/// SELECT by AID (`CLA A4 04 00 Lc AID [Le]`).
pub fn select(cla: u8, aid: &[u8], le: Option<u8>) -> Command {
    let cmd = Command::new(cla, ins::SELECT, 0x04, 0x00).with_data(aid.to_vec());
    match le {
        Some(n) => cmd.with_le(Le::Ne(if n == 0 { 256 } else { u32::from(n) })),
        None => cmd,
    }
}

/// MANAGE CHANNEL open, card assigns the number (`00 70 00 00 01`, or `00 70 00 00 00`).
pub fn open_channel(le: u8) -> Command {
    let ne = if le == 0 { 256 } else { u32::from(le) };
    Command::new(0x00, ins::MANAGE_CHANNEL, 0x00, 0x00).with_le(Le::Ne(ne))
}

/// MANAGE CHANNEL close of `channel`, sent from the basic channel (`00 70 80 0n 00`).
pub fn close_channel(channel: u8) -> Command {
    Command::new(0x00, ins::MANAGE_CHANNEL, 0x80, channel).with_le(Le::P3Zero)
}

/// GET RESPONSE for `available` bytes (`00` = up to 256).
pub fn get_response(cla: u8, available: u8) -> Command {
    let ne = if available == 0 {
        256
    } else {
        u32::from(available)
    };
    Command::new(cla, ins::GET_RESPONSE, 0, 0).with_le(Le::Ne(ne))
}

/// GET DATA applet information (`CLA CB 00 00 44`, the structure's spec size).
pub fn get_applet_info(cla: u8) -> Command {
    Command::new(cla, ins::GET_DATA, 0x00, 0x00).with_le(Le::Ne(0x44))
}

/// GET DATA object list (`CLA CB 01 00 00`; P2=01 asks for the next part after `6300`).
pub fn get_object_list(cla: u8, continuation: bool) -> Command {
    Command::new(cla, ins::GET_DATA, 0x01, u8::from(continuation)).with_le(Le::Ne(256))
}

/// GET DATA for one object (`CLA CB Cx 00 Lc <ref>`, Le per `le`).
pub fn get_object_info(
    cla: u8,
    kind: ObjectKind,
    object: &ObjectRef,
    le: Le,
) -> Result<Command, Error> {
    let mut data = Vec::new();
    object.write_tlv(kind, &mut data, CommandKind::GetData)?;
    Ok(Command::new(cla, ins::GET_DATA, kind.info_tag(), 0x00)
        .with_data(data)
        .with_le(le))
}

/// READ FILE from `offset` (`CLA B0 off_hi off_lo Lc <83|73 ref> [Le]`).
pub fn read_file(cla: u8, file: &ObjectRef, offset: u16, le: Le) -> Result<Command, Error> {
    let mut data = Vec::new();
    file.write_tlv(ObjectKind::File, &mut data, CommandKind::ReadFile)?;
    let [hi, lo] = offset.to_be_bytes();
    Ok(Command::new(cla, ins::READ_FILE, hi, lo)
        .with_data(data)
        .with_le(le))
}

/// GET RANDOM of `len` bytes (1..=256).
pub fn get_random(cla: u8, len: u16) -> Result<Command, Error> {
    if !(1..=256).contains(&len) {
        return Err(Error::InvalidRequest {
            command: CommandKind::GetRandom,
            reason: format!("one GET RANDOM returns 1..=256 bytes, asked {len}"),
        });
    }
    Ok(Command::new(cla, ins::GET_RANDOM, 0, 0).with_le(Le::Ne(u32::from(len))))
}

/// GENERATE KEY PAIR on a private key (`CLA B9 00 00 Lc <84|74 ref> [Le]`).
pub fn generate_key_pair(cla: u8, key: &ObjectRef, le: Le) -> Result<Command, Error> {
    let mut data = Vec::new();
    key.write_tlv(
        ObjectKind::PrivateKey,
        &mut data,
        CommandKind::GenerateKeyPair,
    )?;
    Ok(Command::new(cla, ins::GENERATE_KEY_PAIR, 0, 0)
        .with_data(data)
        .with_le(le))
}

/// READ PUBLIC KEY (`CLA CD 00 00 Lc <85|75 ref> [Le]`).
pub fn read_public_key(cla: u8, key: &ObjectRef, le: Le) -> Result<Command, Error> {
    let mut data = Vec::new();
    key.write_tlv(ObjectKind::PublicKey, &mut data, CommandKind::ReadPublicKey)?;
    Ok(Command::new(cla, ins::READ_PUBLIC_KEY, 0, 0)
        .with_data(data)
        .with_le(le))
}

/// PUT PUBLIC KEY Init (open) on a public key slot.
pub fn put_public_key_init(cla: u8, session: u8, slot: &ObjectRef) -> Result<Command, Error> {
    let mut data = Vec::new();
    slot.write_tlv(ObjectKind::PublicKey, &mut data, CommandKind::PutPublicKey)?;
    Ok(Command::new(cla, ins::PUT_PUBLIC_KEY_INIT, 0x00, session).with_data(data))
}

/// PUT PUBLIC KEY Update, last (and only) part: `CLA D8 80 <sess> 47 34 45 49 43 86 41 04 X Y`.
pub fn put_public_key_update(cla: u8, session: u8, point: &EcPoint) -> Command {
    Command::new(cla, ins::PUT_PUBLIC_KEY_UPDATE, 0x80, session)
        .with_data(point.to_public_key_tlv())
}

/// PUT PUBLIC KEY close (`CLA 24 01 <sess> 00`).
pub fn put_public_key_close(cla: u8, session: u8) -> Command {
    Command::new(cla, ins::PUT_PUBLIC_KEY_INIT, 0x01, session).with_le(Le::P3Zero)
}

/// What tells COMPUTE SIGNATURE Init from VERIFY SIGNATURE Init; the rest of the two is the same.
struct CryptoInit {
    /// `2A` or `2C`.
    ins: u8,
    /// The kind of key the command names (`84`/`74` private, `85`/`75` public).
    key_kind: ObjectKind,
    /// The command errors name.
    command: CommandKind,
}

const SIGN_INIT: CryptoInit = CryptoInit {
    ins: ins::COMPUTE_SIGNATURE_INIT,
    key_kind: ObjectKind::PrivateKey,
    command: CommandKind::ComputeSignature,
};

const VERIFY_INIT: CryptoInit = CryptoInit {
    ins: ins::VERIFY_SIGNATURE_INIT,
    key_kind: ObjectKind::PublicKey,
    command: CommandKind::VerifySignature,
};

fn crypto_init(
    init: &CryptoInit,
    cla: u8,
    session: u8,
    key: &ObjectRef,
    mode: SignMode,
    hash: HashAlgorithm,
    alg: SignatureAlgorithm,
) -> Result<Command, Error> {
    let CryptoInit {
        ins,
        key_kind,
        command,
    } = *init;
    let mut data = Vec::new();
    key.write_tlv(key_kind, &mut data, command)?;
    tlv::push(&mut data, 0xA1, &[mode.byte()]);
    tlv::push(&mut data, 0x91, &hash.mask().to_be_bytes());
    tlv::push(&mut data, 0x92, &[alg.mask()]);
    Ok(Command::new(cla, ins, 0x00, session).with_data(data))
}

/// COMPUTE SIGNATURE Init: `CLA 2A 00 <sess> Lc <84|74 ref> A1 01 <mode> 91 02 <hash> 92 01 <alg>`.
pub fn sign_init(
    cla: u8,
    session: u8,
    key: &ObjectRef,
    mode: SignMode,
    hash: HashAlgorithm,
    alg: SignatureAlgorithm,
) -> Result<Command, Error> {
    crypto_init(&SIGN_INIT, cla, session, key, mode, hash, alg)
}

/// COMPUTE SIGNATURE Update with the final hash (mode 03): `CLA 2B 80 <sess> Lc 9E L <hash> [Le]`.
pub fn sign_update_digest(cla: u8, session: u8, digest: &[u8], le: Le) -> Result<Command, Error> {
    if digest.is_empty() || digest.len() > 0x40 {
        return Err(Error::InvalidRequest {
            command: CommandKind::ComputeSignature,
            reason: format!("a digest is 1..=64 bytes, got {}", digest.len()),
        });
    }
    let mut data = Vec::new();
    tlv::push(&mut data, 0x9E, digest);
    Ok(
        Command::new(cla, ins::COMPUTE_SIGNATURE_UPDATE, 0x80, session)
            .with_data(data)
            .with_le(le),
    )
}

/// COMPUTE SIGNATURE Updates for full text (mode 01): `9B` chunks, P1=00 then P1=80 on the last.
///
/// Each chunk fills one short APDU: `max_data` bytes of data field including the `9B` header.
/// `length_form` is how `9B` lengths are written (ZARIOT and Orange write one plain byte, `9B FD`;
/// Thales BER).
pub fn sign_update_full_text(
    cla: u8,
    session: u8,
    message: &[u8],
    max_data: usize,
    length_form: LengthForm,
    last_le: Le,
) -> Result<Vec<Command>, Error> {
    let header = match length_form {
        LengthForm::OneByte => 2,
        _ => 3,
    };
    let chunk = max_data.saturating_sub(header).clamp(1, 0xFF);
    let mut out = Vec::new();
    let mut parts = message.chunks(chunk).peekable();
    if message.is_empty() {
        let mut data = Vec::new();
        tlv::write(&mut data, 0x9B, &[], length_form);
        out.push(
            Command::new(cla, ins::COMPUTE_SIGNATURE_UPDATE, 0x80, session)
                .with_data(data)
                .with_le(last_le),
        );
    }
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let mut data = Vec::with_capacity(part.len() + 3);
        tlv::write(&mut data, 0x9B, part, length_form);
        let cmd = Command::new(
            cla,
            ins::COMPUTE_SIGNATURE_UPDATE,
            if last { 0x80 } else { 0x00 },
            session,
        )
        .with_data(data);
        out.push(if last { cmd.with_le(last_le) } else { cmd });
    }
    Ok(out)
}

/// COMPUTE SIGNATURE close (`CLA 2A 01 <sess> 00`).
pub fn sign_close(cla: u8, session: u8) -> Command {
    Command::new(cla, ins::COMPUTE_SIGNATURE_INIT, 0x01, session).with_le(Le::P3Zero)
}

/// VERIFY SIGNATURE Init: `CLA 2C 00 <sess> Lc <85|75 ref> A1 01 <mode> 91 02 <hash> 92 01 <alg>`.
pub fn verify_init(
    cla: u8,
    session: u8,
    key: &ObjectRef,
    mode: SignMode,
    hash: HashAlgorithm,
    alg: SignatureAlgorithm,
) -> Result<Command, Error> {
    crypto_init(&VERIFY_INIT, cla, session, key, mode, hash, alg)
}

/// VERIFY SIGNATURE Update with the hash and the signature:
/// `CLA 2D 80 <sess> Lc 9E L <hash> 33 <len> <r‖s>`; `signature_length` is `33 00 40` (two bytes)
/// or `33 40` (one byte).
pub fn verify_update_digest(
    cla: u8,
    session: u8,
    digest: &[u8],
    signature: &[u8],
    signature_length: LengthForm,
) -> Result<Command, Error> {
    let mut data = Vec::new();
    if digest.is_empty()
        || digest.len() > 0x40
        || !tlv::write(&mut Vec::new(), 0x33, signature, signature_length)
    {
        return Err(Error::InvalidRequest {
            command: CommandKind::VerifySignature,
            reason: format!(
                "digest of {} bytes / signature of {} bytes do not fit",
                digest.len(),
                signature.len()
            ),
        });
    }
    tlv::push(&mut data, 0x9E, digest);
    tlv::write(&mut data, 0x33, signature, signature_length);
    Ok(Command::new(cla, ins::VERIFY_SIGNATURE_UPDATE, 0x80, session).with_data(data))
}

/// VERIFY SIGNATURE close (`CLA 2C 01 <sess> 00`).
pub fn verify_close(cla: u8, session: u8) -> Command {
    Command::new(cla, ins::VERIFY_SIGNATURE_INIT, 0x01, session).with_le(Le::P3Zero)
}

/// COMPUTE DH: `CLA 46 00 00 Lc <84|74 private> <85|75 public> [Le]`.
pub fn compute_dh(
    cla: u8,
    private: &ObjectRef,
    public: &ObjectRef,
    le: Le,
) -> Result<Command, Error> {
    let mut data = Vec::new();
    private.write_tlv(ObjectKind::PrivateKey, &mut data, CommandKind::ComputeDh)?;
    public.write_tlv(ObjectKind::PublicKey, &mut data, CommandKind::ComputeDh)?;
    Ok(Command::new(cla, ins::COMPUTE_DH, 0, 0)
        .with_data(data)
        .with_le(le))
}

/// COMPUTE HKDF (extract): `CLA 4A 00 00 Lc D1 L <IKM> D5 L <salt> 91 02 <hash> [Le]`.
///
/// An empty IKM or salt is sent as zeros of the hash length, as wolfSSL does (RFC 5869 §2.2).
pub fn hkdf_extract(
    cla: u8,
    ikm: &[u8],
    salt: &[u8],
    hash: HashAlgorithm,
    le: Le,
) -> Result<Command, Error> {
    let zeros = vec![0u8; hash.digest_len()];
    let ikm = if ikm.is_empty() { &zeros[..] } else { ikm };
    let salt = if salt.is_empty() { &zeros[..] } else { salt };
    let mut data = Vec::with_capacity(ikm.len() + salt.len() + 10);
    let fits = tlv::write(&mut data, 0xD1, ikm, LengthForm::Ber)
        && tlv::write(&mut data, 0xD5, salt, LengthForm::Ber);
    if !fits || data.len() + 4 > 255 {
        return Err(Error::InvalidRequest {
            command: CommandKind::ComputeHkdf,
            reason: format!(
                "IKM of {} and salt of {} bytes do not fit one APDU",
                ikm.len(),
                salt.len()
            ),
        });
    }
    tlv::push(&mut data, 0x91, &hash.mask().to_be_bytes());
    Ok(Command::new(cla, ins::COMPUTE_HKDF, 0, 0)
        .with_data(data)
        .with_le(le))
}

/// COMPUTE PRF (TLS 1.2 P_SHA256), general mode:
/// `CLA 48 00 00 Lc D1 L <secret> D2 L <label‖seed> D3 01 <length> [Le]`.
pub fn prf(
    cla: u8,
    secret: &[u8],
    label_and_seed: &[u8],
    length: u8,
    le: Le,
) -> Result<Command, Error> {
    // Sized up front: a growing Vec frees its old block, secret included, without wiping it.
    let mut data = Vec::with_capacity(secret.len() + label_and_seed.len() + 16);
    let fits = tlv::write(&mut data, 0xD1, secret, LengthForm::Ber)
        && tlv::write(&mut data, 0xD2, label_and_seed, LengthForm::Ber);
    if !fits || data.len() + 3 > 255 || length == 0 {
        return Err(Error::InvalidRequest {
            command: CommandKind::ComputePrf,
            reason: format!(
                "secret of {} and label+seed of {} bytes (output {length}) do not fit one APDU",
                secret.len(),
                label_and_seed.len()
            ),
        });
    }
    tlv::push(&mut data, 0xD3, &[length]);
    Ok(Command::new(cla, ins::COMPUTE_PRF, 0, 0)
        .with_data(data)
        .with_le(le))
}

pub use crate::answers::{
    parse_generated_key_pair, parse_shared_secret, parse_signature, parse_signature_for,
    CardSignature, GeneratedKeyPair, ParsedSignature, SignatureForm, P256_FIELD_LEN,
};
