//! The IoT SAFE object model: references, descriptors (GET DATA information structures), applet
//! information and EC points.

use crate::error::{CommandKind, Error};
use crate::hexutil;
use crate::prelude::*;
use crate::tlv;
use core::fmt;

mod list;
pub use list::{parse_object_list, split_objects};

/// The four kinds of objects an IoT SAFE applet stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A private key (or key pair), tags `84` ID / `74` label, information structure `C1`.
    PrivateKey,
    /// A public key, tags `85` ID / `75` label, information structure `C2`.
    PublicKey,
    /// A file, tags `83` ID / `73` label, information structure `C3`.
    File,
    /// A secret key, tags `86` ID / `76` label, information structure `C4`.
    SecretKey,
}

impl ObjectKind {
    /// Tag of the object's ID in commands and descriptors.
    pub fn id_tag(self) -> u8 {
        match self {
            ObjectKind::File => 0x83,
            ObjectKind::PrivateKey => 0x84,
            ObjectKind::PublicKey => 0x85,
            ObjectKind::SecretKey => 0x86,
        }
    }
    /// Tag of the object's label.
    pub fn label_tag(self) -> u8 {
        self.id_tag() - 0x10
    }
    /// Tag of the information structure (GET DATA P1).
    pub fn info_tag(self) -> u8 {
        match self {
            ObjectKind::PrivateKey => 0xC1,
            ObjectKind::PublicKey => 0xC2,
            ObjectKind::File => 0xC3,
            ObjectKind::SecretKey => 0xC4,
        }
    }
    /// The kind whose information structure has this tag.
    pub fn from_info_tag(tag: u8) -> Option<ObjectKind> {
        match tag {
            0xC1 => Some(ObjectKind::PrivateKey),
            0xC2 => Some(ObjectKind::PublicKey),
            0xC3 => Some(ObjectKind::File),
            0xC4 => Some(ObjectKind::SecretKey),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::PrivateKey => "private key",
            ObjectKind::PublicKey => "public key",
            ObjectKind::File => "file",
            ObjectKind::SecretKey => "secret key",
        })
    }
}

/// How a command names an object: by ID (any length, 1..=20 bytes) or by label (1..=60 bytes),
/// never both (`docs/protocol.md#object-references`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ObjectRef {
    /// An opaque ID, as it goes on the wire.
    Id(Vec<u8>),
    /// A label.
    Label(Vec<u8>),
}

impl ObjectRef {
    /// A reference by ID.
    pub fn id(id: impl Into<Vec<u8>>) -> Self {
        ObjectRef::Id(id.into())
    }
    /// A reference by label.
    pub fn label(label: impl AsRef<[u8]>) -> Self {
        ObjectRef::Label(label.as_ref().to_vec())
    }
    /// Parses `"01"`, `"0x3230"` (hex ID) or `"label:device"` / any non-hex text (label).
    pub fn parse(text: &str) -> Self {
        let t = text.trim();
        if let Some(l) = t.strip_prefix("label:") {
            return ObjectRef::label(l);
        }
        let h = t.strip_prefix("0x").unwrap_or(t);
        match crate::hexutil::decode(h) {
            Some(bytes) if !bytes.is_empty() => ObjectRef::Id(bytes),
            _ => ObjectRef::label(t),
        }
    }
    /// Appends the reference TLV for an object of `kind`.
    pub fn write_tlv(
        &self,
        kind: ObjectKind,
        out: &mut Vec<u8>,
        command: CommandKind,
    ) -> Result<(), Error> {
        let (tag, value, max) = match self {
            ObjectRef::Id(id) => (kind.id_tag(), id, 0x14),
            ObjectRef::Label(l) => (kind.label_tag(), l, 0x3C),
        };
        if value.is_empty() || value.len() > max {
            return Err(Error::InvalidRequest {
                command,
                reason: format!(
                    "an object reference must be 1..={max} bytes, got {}",
                    value.len()
                ),
            });
        }
        tlv::push(out, tag, value);
        Ok(())
    }
    /// Does this reference name `info`?
    pub fn matches(&self, info: &ObjectInfo) -> bool {
        match self {
            ObjectRef::Id(id) => info.id.as_deref() == Some(id.as_slice()),
            ObjectRef::Label(l) => info.label.as_deref() == Some(l.as_slice()),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::Id(id) => write!(f, "ID {}", hexutil::encode(id)),
            ObjectRef::Label(l) => write!(f, "label {:?}", String::from_utf8_lossy(l)),
        }
    }
}

impl fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Key types (tag `4B`).
pub mod key_type {
    /// RSA-2048.
    pub const RSA_2048: u8 = 0x03;
    /// NIST P-256, persistent.
    pub const P256_PERSISTENT: u8 = 0x13;
    /// NIST P-256, volatile (ephemeral key pairs).
    pub const P256_VOLATILE: u8 = 0x14;
    /// brainpoolP256r1, persistent.
    pub const BRAINPOOL_P256_PERSISTENT: u8 = 0x23;
    /// brainpoolP256r1, volatile.
    pub const BRAINPOOL_P256_VOLATILE: u8 = 0x24;
    /// HMAC-capable secret.
    pub const HMAC: u8 = 0xA0;
}

/// Crypto function bits (tags `61`, `90`).
pub mod functions {
    /// Signature generation and verification.
    pub const SIGNATURE: u8 = 0x01;
    /// Key generation.
    pub const KEY_GENERATION: u8 = 0x02;
    /// Key agreement.
    pub const KEY_AGREEMENT: u8 = 0x04;
    /// Key derivation.
    pub const KEY_DERIVATION: u8 = 0x08;
}

/// Key usage values (tag `4E`).
pub mod key_usage {
    /// General purpose.
    pub const GENERAL: u8 = 0x01;
    /// TLS 1.2 CertificateVerify.
    pub const TLS12_CERTIFICATE_VERIFY: u8 = 0x02;
    /// TLS 1.3 CertificateVerify.
    pub const TLS13_CERTIFICATE_VERIFY: u8 = 0x03;
}

/// File usage values (tag `21`).
pub mod file_usage {
    /// General purpose.
    pub const GENERAL: u8 = 0x01;
    /// X.509v3 certificate.
    pub const CERTIFICATE: u8 = 0x02;
}

/// One object's information structure (GET DATA `C1`..`C4`). Every attribute is optional: cards
/// differ in what they send, and unknown tags are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectInfo {
    /// Object kind (from the structure tag; `None` when a bare structure was parsed without one).
    pub kind: Option<ObjectKind>,
    /// ID (`8x`).
    pub id: Option<Vec<u8>>,
    /// Label (`7x`).
    pub label: Option<Vec<u8>>,
    /// Access conditions (`60`): `01` read, `02` update.
    pub access: Option<u8>,
    /// Object state (`4A`): `01` activated, `00` deactivated/empty.
    pub state: Option<u8>,
    /// Key type (`4B`).
    pub key_type: Option<u8>,
    /// Key specific usage (`4E`).
    pub key_usage: Option<u8>,
    /// Crypto functions (`61`).
    pub functions: Option<u8>,
    /// Signature algorithms (`92`).
    pub signature_algorithms: Option<u8>,
    /// Hash algorithms bitmask (`91`).
    pub hash_algorithms: Option<u16>,
    /// Key agreement algorithms (`6F`).
    pub key_agreement: Option<u8>,
    /// Key derivation algorithms (`94`).
    pub key_derivation: Option<u8>,
    /// File usage (`21`).
    pub file_usage: Option<u8>,
    /// File size (`20`, big-endian).
    pub file_size: Option<u32>,
    /// Tags this client does not interpret, kept as they came.
    pub other: Vec<(u8, Vec<u8>)>,
}

impl ObjectInfo {
    /// A reference to this object: by ID when it has one, else by label.
    pub fn reference(&self) -> Option<ObjectRef> {
        self.id
            .clone()
            .map(ObjectRef::Id)
            .or_else(|| self.label.clone().map(ObjectRef::Label))
    }
    /// The label as text (lossy).
    pub fn label_text(&self) -> Option<String> {
        self.label
            .as_ref()
            .map(|l| String::from_utf8_lossy(l).into_owned())
    }
    /// Whether the crypto functions include all bits of `f`.
    pub fn has_functions(&self, f: u8) -> bool {
        self.functions.is_some_and(|x| x & f == f)
    }

    /// Parses the content of one information structure (without its `Cx LL` wrapper).
    pub fn parse_content(kind: Option<ObjectKind>, content: &[u8]) -> Result<ObjectInfo, Error> {
        let mut info = ObjectInfo {
            kind,
            ..Default::default()
        };
        for t in tlv::iter(content) {
            let t = t.map_err(|_| {
                Error::malformed(
                    CommandKind::GetData,
                    "an object information structure",
                    content,
                )
            })?;
            let byte = t.value.first().copied();
            match t.tag {
                0x83..=0x86 => {
                    info.id = Some(t.value.to_vec());
                    info.kind = info.kind.or(match t.tag {
                        0x83 => Some(ObjectKind::File),
                        0x84 => Some(ObjectKind::PrivateKey),
                        0x85 => Some(ObjectKind::PublicKey),
                        _ => Some(ObjectKind::SecretKey),
                    });
                }
                0x73..=0x76 => info.label = Some(t.value.to_vec()),
                0x60 => info.access = byte,
                0x4A => info.state = byte,
                0x4B => info.key_type = byte,
                0x4E => info.key_usage = byte,
                0x61 => info.functions = byte,
                0x92 => info.signature_algorithms = byte,
                0x91 => info.hash_algorithms = Some(be_uint(t.value) as u16),
                0x6F => info.key_agreement = byte,
                0x94 => info.key_derivation = byte,
                0x21 => info.file_usage = byte,
                0x20 => info.file_size = Some(be_uint(t.value)),
                tag => info.other.push((tag, t.value.to_vec())),
            }
        }
        Ok(info)
    }

    /// Parses the answer to GET DATA for one object: the structure with its `Cx LL` wrapper, or
    /// only its content (both are seen, `docs/protocol.md#object-information`).
    pub fn parse_single(kind: ObjectKind, data: &[u8]) -> Result<ObjectInfo, Error> {
        if let Ok((t, used)) = tlv::read_one(data, 0) {
            if t.tag == kind.info_tag() && used == data.len() {
                return ObjectInfo::parse_content(Some(kind), t.value);
            }
        }
        ObjectInfo::parse_content(Some(kind), data)
    }
}

fn be_uint(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .rev()
        .take(4)
        .rev()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

/// Applet information (GET DATA P1=00, `docs/protocol.md#applet-information`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppletInfo {
    /// Version (`10`).
    pub version: Option<u8>,
    /// Proprietary applet identifier (`11`).
    pub proprietary_id: Option<Vec<u8>>,
    /// Maximum number of files (`B1`).
    pub max_files: Option<u8>,
    /// Maximum number of private keys (`B2`).
    pub max_private_keys: Option<u8>,
    /// Maximum number of public keys (`B3`).
    pub max_public_keys: Option<u8>,
    /// Maximum number of secret keys (`B4`).
    pub max_secret_keys: Option<u8>,
    /// Crypto functions (`90`).
    pub functions: Option<u8>,
    /// Hash algorithms (`91`), one or two bytes (a known applet bug sends one).
    pub hash_algorithms: Option<u16>,
    /// Signature algorithms (`92`).
    pub signature_algorithms: Option<u8>,
    /// Key agreement algorithms (`93`).
    pub key_agreement: Option<u8>,
    /// Key derivation algorithms (`94`).
    pub key_derivation: Option<u8>,
    /// Maximum number of sessions (`B7`).
    pub max_sessions: Option<u8>,
}

impl AppletInfo {
    /// Parses the applet information TLVs generically (in any order; unknown tags ignored).
    pub fn parse(data: &[u8]) -> Result<AppletInfo, Error> {
        let mut info = AppletInfo::default();
        for t in tlv::iter(data) {
            let t = t.map_err(|_| {
                Error::malformed(CommandKind::GetData, "applet information TLVs", data)
            })?;
            let b = t.value.first().copied();
            match t.tag {
                0x10 => info.version = b,
                0x11 => info.proprietary_id = Some(t.value.to_vec()),
                0xB1 => info.max_files = b,
                0xB2 => info.max_private_keys = b,
                0xB3 => info.max_public_keys = b,
                0xB4 => info.max_secret_keys = b,
                0x90 => info.functions = b,
                0x91 => info.hash_algorithms = Some(be_uint(t.value) as u16),
                0x92 => info.signature_algorithms = b,
                0x93 => info.key_agreement = b,
                0x94 => info.key_derivation = b,
                0xB7 => info.max_sessions = b,
                _ => {}
            }
        }
        Ok(info)
    }
}

/// The DER of a P-256 SubjectPublicKeyInfo up to its BIT STRING's content (algorithm
/// id-ecPublicKey, named curve prime256v1); the 65-byte point follows.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A,
    0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// An uncompressed P-256 point `04 ‖ X ‖ Y` (65 bytes), as cards exchange them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EcPoint(pub [u8; 65]);

impl EcPoint {
    /// Takes a 65-byte `04 ‖ X ‖ Y`; anything else is refused (shape only; curve membership is the
    /// caller's check, with a curve library).
    pub fn from_slice(bytes: &[u8]) -> Option<EcPoint> {
        let arr: [u8; 65] = bytes.try_into().ok()?;
        (arr[0] == 0x04).then_some(EcPoint(arr))
    }
    /// The 65 bytes.
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }
    /// The IoT SAFE public key data TLV `34 45 49 43 86 41 04 X Y` (`docs/protocol.md#public-key-data`).
    pub fn to_public_key_tlv(&self) -> Vec<u8> {
        let mut inner = Vec::with_capacity(69);
        tlv::push(&mut inner, 0x86, &self.0);
        let mut wrapped = Vec::with_capacity(71);
        tlv::push(&mut wrapped, 0x49, &inner);
        let mut out = Vec::with_capacity(73);
        tlv::push(&mut out, 0x34, &wrapped);
        out
    }
    /// The DER SubjectPublicKeyInfo of this point as a P-256 key: [`P256_SPKI_PREFIX`], then the
    /// point (91 bytes).
    pub fn to_p256_spki(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(P256_SPKI_PREFIX.len() + self.0.len());
        out.extend_from_slice(&P256_SPKI_PREFIX);
        out.extend_from_slice(&self.0);
        out
    }
    /// Parses public key data: `34 [49 [86 point]]`, `49 [86 point]`, `86 point` or a bare point
    /// (Thales PKCS#11 accepts a bare point, `docs/protocol.md#read-public-key`).
    pub fn parse_public_key_data(data: &[u8], command: CommandKind) -> Result<EcPoint, Error> {
        let bad = || Error::malformed(command, "public key data 34 45 49 43 86 41 04‖X‖Y", data);
        if let Some(p) = EcPoint::from_slice(data) {
            return Ok(p);
        }
        let mut level = data;
        for tag in [0x34u8, 0x49, 0x86] {
            if let Ok(Some(v)) = tlv::find(level, tag) {
                level = v;
            } else if level.first() == Some(&tag) {
                return Err(bad());
            }
        }
        EcPoint::from_slice(level).ok_or_else(bad)
    }
}

impl fmt::Debug for EcPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EcPoint({}…)", hexutil::encode(&self.0[..9]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs() {
        assert_eq!(ObjectRef::parse("01"), ObjectRef::Id(vec![1]));
        assert_eq!(ObjectRef::parse("0x3230"), ObjectRef::Id(vec![0x32, 0x30]));
        assert_eq!(ObjectRef::parse("device"), ObjectRef::label("device"));
        assert_eq!(ObjectRef::parse("label:01"), ObjectRef::label("01"));
        let mut out = vec![];
        ObjectRef::id([0x30, 0x30, 0x36])
            .write_tlv(ObjectKind::PrivateKey, &mut out, CommandKind::Raw)
            .unwrap();
        assert_eq!(out, [0x84, 3, 0x30, 0x30, 0x36]);
        out.clear();
        ObjectRef::label("11")
            .write_tlv(ObjectKind::PublicKey, &mut out, CommandKind::Raw)
            .unwrap();
        assert_eq!(out, [0x75, 2, 0x31, 0x31]);
        assert!(ObjectRef::Id(vec![0; 21])
            .write_tlv(ObjectKind::File, &mut out, CommandKind::Raw)
            .is_err());
        assert!(ObjectRef::Id(vec![])
            .write_tlv(ObjectKind::File, &mut out, CommandKind::Raw)
            .is_err());
    }

    #[test]
    fn quantag_descriptors() {
        let file = [
            0xC3, 0x12, 0x83, 0x02, 0x00, 0x01, 0x73, 0x02, 0x30, 0x31, 0x60, 0x01, 0x01, 0x21,
            0x01, 0x01, 0x20, 0x02, 0x00, 0x40,
        ];
        let list = parse_object_list(&file).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].kind, Some(ObjectKind::File));
        assert_eq!(list[0].id.as_deref(), Some(&[0, 1][..]));
        assert_eq!(list[0].label_text().as_deref(), Some("01"));
        assert_eq!(list[0].file_size, Some(0x40));
        assert_eq!(list[0].file_usage, Some(1));
        // With and without the wrapper (`docs/protocol.md#object-information`).
        assert_eq!(
            ObjectInfo::parse_single(ObjectKind::File, &file).unwrap(),
            list[0]
        );
        assert_eq!(
            ObjectInfo::parse_single(ObjectKind::File, &file[2..]).unwrap(),
            list[0]
        );
    }

    #[test]
    fn one_structure_holding_two_keys_is_split() {
        let data = [
            0xC1, 0x0C, 0x84, 0x01, 0x01, 0x4B, 0x01, 0x13, 0x84, 0x01, 0x04, 0x4B, 0x01, 0x14,
        ];
        let list = parse_object_list(&data).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].key_type, Some(0x13));
        assert_eq!(list[1].id.as_deref(), Some(&[4][..]));
        assert_eq!(list[1].key_type, Some(0x14));
    }

    #[test]
    fn applet_info_generic_and_buggy() {
        // Orange's applet bug: `91` with one byte; parsed generically anyway.
        let data = [0x10, 0x01, 0x01, 0x91, 0x01, 0x01, 0xB7, 0x01, 0x04];
        let i = AppletInfo::parse(&data).unwrap();
        assert_eq!(i.version, Some(1));
        assert_eq!(i.hash_algorithms, Some(1));
        assert_eq!(i.max_sessions, Some(4));
        assert!(AppletInfo::parse(&[0x10, 0x05]).is_err());
    }

    #[test]
    fn public_key_data_forms() {
        let mut point = [0x11u8; 65];
        point[0] = 4;
        let p = EcPoint(point);
        let t = p.to_public_key_tlv();
        assert_eq!(&t[..7], &[0x34, 0x45, 0x49, 0x43, 0x86, 0x41, 0x04]);
        assert_eq!(t.len(), 71);
        for data in [&t[..], &t[2..], &t[4..], &point[..]] {
            assert_eq!(
                EcPoint::parse_public_key_data(data, CommandKind::Raw).unwrap(),
                p
            );
        }
        assert!(EcPoint::parse_public_key_data(&t[..70], CommandKind::Raw).is_err());
        assert!(EcPoint::parse_public_key_data(&[], CommandKind::Raw).is_err());
    }

    #[test]
    fn p256_spki_is_the_der_p256_writes() {
        use p256::pkcs8::DecodePublicKey as _;
        let secret = p256::SecretKey::from_slice(&[7; 32]).unwrap();
        let encoded = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        let point = EcPoint::from_slice(encoded.as_bytes()).unwrap();
        let spki = point.to_p256_spki();
        assert_eq!(spki.len(), 91);
        assert_eq!(
            p256::PublicKey::from_public_key_der(&spki).unwrap(),
            secret.public_key()
        );
    }
}
