//! The applet's object store: private, public and secret keys and files, with the attributes IoT.05
//! reports for them (`docs/protocol.md#get-data` and `#identifier-values`).
//!
//! IDs are unique per object type only, as on real cards: the device private key and its public half
//! both have ID `01`. Key material is held in [`SecretBytes`], which is wiped on drop, redacted in
//! `Debug`, and serialized only into the state file.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Attribute values (`docs/protocol.md#identifier-values`).
pub mod attr {
    /// Key type `4B`: NIST P-256, persistent.
    pub const KEY_TYPE_P256_PERSISTENT: u8 = 0x13;
    /// Key type `4B`: NIST P-256, volatile (not kept across a reload of the state file).
    pub const KEY_TYPE_P256_VOLATILE: u8 = 0x14;
    /// Key type `4B`: HMAC-capable secret.
    pub const KEY_TYPE_HMAC: u8 = 0xA0;
    /// Crypto function `61`: signature generation / verification.
    pub const FUNCTION_SIGNATURE: u8 = 0x01;
    /// Crypto function `61`: key generation.
    pub const FUNCTION_KEY_GENERATION: u8 = 0x02;
    /// Crypto function `61`: key agreement.
    pub const FUNCTION_KEY_AGREEMENT: u8 = 0x04;
    /// Crypto function `61`: key derivation.
    pub const FUNCTION_KEY_DERIVATION: u8 = 0x08;
    /// Key usage `4E`: general.
    pub const USAGE_GENERAL: u8 = 0x01;
    /// Key usage `4E`: TLS 1.2 CertificateVerify.
    pub const USAGE_TLS12_CERTIFICATE_VERIFY: u8 = 0x02;
    /// Key usage `4E`: TLS 1.3 CertificateVerify.
    pub const USAGE_TLS13_CERTIFICATE_VERIFY: u8 = 0x03;
    /// File usage `21`: general.
    pub const FILE_USAGE_GENERAL: u8 = 0x01;
    /// File usage `21`: X.509v3 certificate.
    pub const FILE_USAGE_CERTIFICATE: u8 = 0x02;
    /// Access condition `60`: read.
    pub const ACCESS_READ: u8 = 0x01;
    /// Access condition `60`: update.
    pub const ACCESS_UPDATE: u8 = 0x02;
    /// Signature algorithm `92`: ECDSA.
    pub const SIGNATURE_ECDSA: u8 = 0x04;
    /// Hash algorithm `91`: SHA-256.
    pub const HASH_SHA256: u16 = 0x0001;
    /// Hash algorithm `91`: SHA-384.
    pub const HASH_SHA384: u16 = 0x0002;
    /// Hash algorithm `91`: SHA-512.
    pub const HASH_SHA512: u16 = 0x0004;
    /// Key agreement `6F`: ECKA (DL/ECKAS-DH1).
    pub const KEY_AGREEMENT_ECKA: u8 = 0x01;
    /// Key derivation `94`: TLS 1.2 PRF with SHA-256.
    pub const DERIVATION_PRF_SHA256: u8 = 0x01;
    /// Key derivation `94`: HKDF.
    pub const DERIVATION_HKDF: u8 = 0x02;
    /// Object state `4A`: activated (filled).
    pub const STATE_ACTIVATED: u8 = 0x01;
    /// Object state `4A`: deactivated (empty).
    pub const STATE_DEACTIVATED: u8 = 0x00;
}

/// Secret bytes (a private scalar or a secret key): wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretBytes(#[serde(with = "hex_bytes")] Vec<u8>);

impl SecretBytes {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }
    /// The secret bytes; callers must not copy them anywhere a host can read.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// Policy attributes a key shares with its info structure (`C1`/`C2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttributes {
    /// Key type `4B` (`13` persistent P-256, `14` volatile P-256).
    pub key_type: u8,
    /// Key usage `4E`.
    pub usage: u8,
    /// Crypto functions `61` (bitmask; enforced by every command).
    pub functions: u8,
    /// Signature algorithms `92` (bitmask), if reported.
    pub signature_algorithms: Option<u8>,
    /// Hash algorithms `91` (bitmask), if reported.
    pub hash_algorithms: Option<u16>,
    /// Key agreement algorithms `6F`, if reported.
    pub key_agreement: Option<u8>,
}

impl KeyAttributes {
    /// True when the key is volatile (not persisted to the state file).
    pub fn is_volatile(&self) -> bool {
        self.key_type == attr::KEY_TYPE_P256_VOLATILE
    }
}

/// A private key (structure `C1`), optionally paired with a public key object (its public half).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateKeyObject {
    /// ID (`84`), 1..=20 bytes.
    #[serde(with = "hex_bytes")]
    pub id: Vec<u8>,
    /// Label (`74`), up to 60 bytes.
    pub label: Option<String>,
    /// Access conditions `60`.
    pub access: u8,
    /// Type, usage, functions and algorithms.
    pub attributes: KeyAttributes,
    /// ID of the public key object that GENERATE KEY PAIR fills with the public half.
    #[serde(with = "opt_hex_bytes", default)]
    pub public_key_id: Option<Vec<u8>>,
    /// The 32-byte scalar, once generated or provisioned.
    pub scalar: Option<SecretBytes>,
}

/// A public key (structure `C2`): the public half of a key pair, or a slot PUT PUBLIC KEY writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyObject {
    /// ID (`85`), 1..=20 bytes.
    #[serde(with = "hex_bytes")]
    pub id: Vec<u8>,
    /// Label (`75`).
    pub label: Option<String>,
    /// Access conditions `60`; PUT PUBLIC KEY needs update (`02`).
    pub access: u8,
    /// Type, usage, functions and algorithms.
    pub attributes: KeyAttributes,
    /// The uncompressed point `04‖X‖Y` (65 bytes), once filled.
    #[serde(with = "opt_hex_bytes", default)]
    pub point: Option<Vec<u8>>,
}

/// A secret key (structure `C4`) usable by COMPUTE PRF / HKDF through its ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKeyObject {
    /// ID (`86`).
    #[serde(with = "hex_bytes")]
    pub id: Vec<u8>,
    /// Label (`76`).
    pub label: Option<String>,
    /// Access conditions `60`.
    pub access: u8,
    /// Key type `4B` (`A0` HMAC-capable).
    pub key_type: u8,
    /// Crypto functions `61`; PRF/HKDF need key derivation (`08`).
    pub functions: u8,
    /// Key derivation algorithms `94`, if reported.
    pub key_derivation: Option<u8>,
    /// The secret.
    pub value: Option<SecretBytes>,
}

/// A binary file (structure `C3`), e.g. a DER certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileObject {
    /// ID (`83`).
    #[serde(with = "hex_bytes")]
    pub id: Vec<u8>,
    /// Label (`73`).
    pub label: Option<String>,
    /// Access conditions `60`; READ FILE needs read (`01`).
    pub access: u8,
    /// File usage `21`.
    pub usage: u8,
    /// Contents; the size (`20`) is their length.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
}

/// How a command names an object: by ID (`8x`) or by label (`7x`), never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRef<'a> {
    /// By ID.
    Id(&'a [u8]),
    /// By label.
    Label(&'a [u8]),
}

impl ObjectRef<'_> {
    fn matches(&self, object: &impl Named) -> bool {
        match self {
            ObjectRef::Id(wanted) => *wanted == object.id(),
            ObjectRef::Label(wanted) => object.label().is_some_and(|l| l.as_bytes() == *wanted),
        }
    }

    /// Where the object this reference names stands among `objects` (one type of object).
    pub(crate) fn position_in<T: Named>(&self, objects: &[T]) -> Option<usize> {
        objects.iter().position(|o| self.matches(o))
    }

    /// The object this reference names among `objects`.
    pub(crate) fn find_in<'s, T: Named>(&self, objects: &'s [T]) -> Option<&'s T> {
        objects.get(self.position_in(objects)?)
    }
}

/// What a command names an object by: its ID, and its label if it has one. Every object type has
/// both, so one lookup ([`ObjectRef::find_in`]) serves them all.
pub(crate) trait Named {
    /// The ID (`8x`).
    fn id(&self) -> &[u8];
    /// The label (`7x`), if any.
    fn label(&self) -> Option<&str>;
}

macro_rules! named_by_id_and_label {
    ($($object:ty),+) => {$(
        impl Named for $object {
            fn id(&self) -> &[u8] {
                &self.id
            }
            fn label(&self) -> Option<&str> {
                self.label.as_deref()
            }
        }
    )+};
}

named_by_id_and_label!(
    PrivateKeyObject,
    PublicKeyObject,
    SecretKeyObject,
    FileObject
);

/// Largest number of objects of each type (reported in GET DATA `B1`..`B4`).
pub const MAX_OBJECTS_PER_TYPE: usize = 16;

/// All objects on the card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectStore {
    /// Private keys, in list order.
    pub private_keys: Vec<PrivateKeyObject>,
    /// Public keys, in list order.
    pub public_keys: Vec<PublicKeyObject>,
    /// Secret keys, in list order.
    pub secret_keys: Vec<SecretKeyObject>,
    /// Files, in list order.
    pub files: Vec<FileObject>,
}

/// IDs of the default layout (`docs/architecture.md#default-layout`).
pub mod layout {
    /// Device key pair (private and public key ID).
    pub const DEVICE_KEY_ID: &[u8] = &[0x01];
    /// Device certificate file.
    pub const DEVICE_CERT_FILE_ID: &[u8] = &[0x02];
    /// CA certificate file.
    pub const CA_CERT_FILE_ID: &[u8] = &[0x03];
    /// Ephemeral ECDHE key pair.
    pub const EPHEMERAL_KEY_ID: &[u8] = &[0x04];
    /// Peer public key slot.
    pub const PEER_KEY_ID: &[u8] = &[0x05];
}

impl ObjectStore {
    /// The default layout (`docs/architecture.md#default-layout`), with a fresh P-256 device key generated here.
    ///
    /// Choices beyond that table:
    /// - the device private key `01` has functions signature + key generation (`03`) so that
    ///   `iotsafe keygen --key 01` can rotate it; usage TLS 1.3 CertificateVerify (`03`);
    /// - the ephemeral pair `04` is volatile (`14`) with key generation + key agreement (`06`);
    /// - the peer slot `05` allows signature verification and key agreement (`05`) and update access,
    ///   since the host puts the server's ECDHE share there (wolfSSL also puts certificate keys there
    ///   to verify them). It is volatile (`14`): what it holds lives for one handshake, and a persistent
    ///   slot would cost a state-file write (with fsync) on every handshake;
    /// - public halves of key pairs are readable but not updatable, so PUT PUBLIC KEY cannot desync them.
    pub fn default_layout() -> ObjectStore {
        use attr::*;
        let device = KeyAttributes {
            key_type: KEY_TYPE_P256_PERSISTENT,
            usage: USAGE_TLS13_CERTIFICATE_VERIFY,
            functions: FUNCTION_SIGNATURE | FUNCTION_KEY_GENERATION,
            signature_algorithms: Some(SIGNATURE_ECDSA),
            hash_algorithms: Some(HASH_SHA256),
            key_agreement: None,
        };
        let device_public = KeyAttributes {
            functions: FUNCTION_SIGNATURE,
            ..device.clone()
        };
        let ephemeral = KeyAttributes {
            key_type: KEY_TYPE_P256_VOLATILE,
            usage: USAGE_GENERAL,
            functions: FUNCTION_KEY_GENERATION | FUNCTION_KEY_AGREEMENT,
            signature_algorithms: None,
            hash_algorithms: None,
            key_agreement: Some(KEY_AGREEMENT_ECKA),
        };
        let ephemeral_public = KeyAttributes {
            functions: FUNCTION_KEY_AGREEMENT,
            ..ephemeral.clone()
        };
        let peer = KeyAttributes {
            key_type: KEY_TYPE_P256_VOLATILE,
            usage: USAGE_GENERAL,
            functions: FUNCTION_SIGNATURE | FUNCTION_KEY_AGREEMENT,
            signature_algorithms: Some(SIGNATURE_ECDSA),
            hash_algorithms: Some(HASH_SHA256),
            key_agreement: Some(KEY_AGREEMENT_ECKA),
        };
        let mut store = ObjectStore {
            private_keys: vec![
                PrivateKeyObject {
                    id: layout::DEVICE_KEY_ID.to_vec(),
                    label: Some("device".into()),
                    access: ACCESS_UPDATE,
                    attributes: device,
                    public_key_id: Some(layout::DEVICE_KEY_ID.to_vec()),
                    scalar: None,
                },
                PrivateKeyObject {
                    id: layout::EPHEMERAL_KEY_ID.to_vec(),
                    label: Some("ecdhe".into()),
                    access: ACCESS_UPDATE,
                    attributes: ephemeral,
                    public_key_id: Some(layout::EPHEMERAL_KEY_ID.to_vec()),
                    scalar: None,
                },
            ],
            public_keys: vec![
                PublicKeyObject {
                    id: layout::DEVICE_KEY_ID.to_vec(),
                    label: Some("device".into()),
                    access: ACCESS_READ,
                    attributes: device_public,
                    point: None,
                },
                PublicKeyObject {
                    id: layout::EPHEMERAL_KEY_ID.to_vec(),
                    label: Some("ecdhe".into()),
                    access: ACCESS_READ,
                    attributes: ephemeral_public,
                    point: None,
                },
                PublicKeyObject {
                    id: layout::PEER_KEY_ID.to_vec(),
                    label: Some("peer".into()),
                    access: ACCESS_READ | ACCESS_UPDATE,
                    attributes: peer,
                    point: None,
                },
            ],
            secret_keys: Vec::new(),
            files: vec![
                FileObject {
                    id: layout::DEVICE_CERT_FILE_ID.to_vec(),
                    label: Some("device-cert".into()),
                    access: ACCESS_READ,
                    usage: FILE_USAGE_CERTIFICATE,
                    data: Vec::new(),
                },
                FileObject {
                    id: layout::CA_CERT_FILE_ID.to_vec(),
                    label: Some("ca-cert".into()),
                    access: ACCESS_READ,
                    usage: FILE_USAGE_CERTIFICATE,
                    data: Vec::new(),
                },
            ],
        };
        // The device key is made inside the card object; only its public half is ever exported.
        let _ = store.generate_key_pair(ObjectRef::Id(layout::DEVICE_KEY_ID));
        store
    }

    /// Index of the private key `r` names.
    pub fn private_key_index(&self, r: ObjectRef<'_>) -> Option<usize> {
        r.position_in(&self.private_keys)
    }

    /// Index of the public key `r` names.
    pub fn public_key_index(&self, r: ObjectRef<'_>) -> Option<usize> {
        r.position_in(&self.public_keys)
    }

    /// Index of the secret key `r` names.
    pub fn secret_key_index(&self, r: ObjectRef<'_>) -> Option<usize> {
        r.position_in(&self.secret_keys)
    }

    /// Index of the file `r` names.
    pub fn file_index(&self, r: ObjectRef<'_>) -> Option<usize> {
        r.position_in(&self.files)
    }

    /// Generates a fresh P-256 key pair into the private key `r` names (and its public half, if any),
    /// without checking its functions. Returns the private ID, the public ID and the point `04‖X‖Y`.
    pub fn generate_key_pair(&mut self, r: ObjectRef<'_>) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let index = self.private_key_index(r)?;
        let secret = p256::SecretKey::random(&mut OsRng);
        let point = uncompressed_point(&secret);
        let key = self.private_keys.get_mut(index)?;
        key.scalar = Some(SecretBytes::new(secret.to_bytes().to_vec()));
        let private_id = key.id.clone();
        let public_id = key
            .public_key_id
            .clone()
            .unwrap_or_else(|| private_id.clone());
        if let Some(public) = self
            .public_keys
            .iter_mut()
            .find(|k| k.id == public_id.as_slice())
        {
            public.point = Some(point.clone());
        }
        Some((private_id, public_id, point))
    }

    /// The uncompressed public point of the private key `r` names, if it has been generated.
    pub fn public_point_of_private(&self, r: ObjectRef<'_>) -> Option<Vec<u8>> {
        let key = r.find_in(&self.private_keys)?;
        let secret = p256::SecretKey::from_slice(key.scalar.as_ref()?.expose()).ok()?;
        Some(uncompressed_point(&secret))
    }

    /// Replaces the contents of the file `r` names. Returns false if there is no such file.
    pub fn write_file(&mut self, r: ObjectRef<'_>, data: &[u8]) -> bool {
        match self.file_index(r).and_then(|i| self.files.get_mut(i)) {
            Some(file) => {
                file.data = data.to_vec();
                true
            }
            None => false,
        }
    }

    /// Empties every volatile key (and the public halves of volatile pairs), as after a reload.
    pub fn clear_volatile(&mut self) {
        for key in &mut self.private_keys {
            if key.attributes.is_volatile() {
                key.scalar = None;
            }
        }
        for key in &mut self.public_keys {
            if key.attributes.is_volatile() {
                key.point = None;
            }
        }
    }
}

/// The public point of `secret` as IoT.05 carries it: `04‖X‖Y`.
fn uncompressed_point(secret: &p256::SecretKey) -> Vec<u8> {
    secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    // The hex text of a secret is wiped as soon as it has been written or parsed.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode_lower(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = zeroize::Zeroizing::new(String::deserialize(d)?);
        crate::hex::decode_spaced(&text)
            .ok_or_else(|| serde::de::Error::custom("invalid hex string"))
    }
}

mod opt_hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(crate::hex::encode_lower(b).as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            crate::hex::decode_spaced(&t)
                .ok_or_else(|| serde::de::Error::custom("invalid hex string"))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_has_a_device_key_and_empty_slots() {
        let s = ObjectStore::default_layout();
        assert!(s.private_keys[0].scalar.is_some());
        assert_eq!(s.public_keys[0].point.as_ref().unwrap().len(), 65);
        assert!(s.private_keys[1].scalar.is_none());
        assert!(s.public_keys[2].point.is_none());
        assert_eq!(s.file_index(ObjectRef::Label(b"ca-cert")), Some(1));
        assert_eq!(
            s.public_point_of_private(ObjectRef::Id(&[1])),
            s.public_keys[0].point
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = ObjectStore::default_layout();
        let text = format!("{s:?}");
        let scalar = crate::hex::encode_lower(s.private_keys[0].scalar.as_ref().unwrap().expose());
        assert!(!text.to_lowercase().contains(scalar.as_str()));
        assert!(text.contains("redacted"));
    }
}
