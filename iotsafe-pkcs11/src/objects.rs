//! The PKCS#11 objects a token shows, and the attributes of each class: IoT SAFE private keys,
//! public keys, certificate files, other files, and the secrets `C_DeriveKey` makes.

use crate::attributes::{bool_value, ulong, ulongs, Attributes, Value};
use crate::cert::CertificateFields;
use crate::der;
use cryptoki_sys::*;
use iotsafe_core::{EcPoint, ObjectRef};
use zeroize::Zeroizing;

/// Where an object lives and what operations reach it.
#[derive(Debug, Clone)]
pub enum Backing {
    /// An IoT SAFE private key on the card.
    PrivateKey(KeyOnCard),
    /// An IoT SAFE public key on the card.
    PublicKey {
        /// How commands name it.
        reference: ObjectRef,
    },
    /// An IoT SAFE file (certificate or data), read at load time.
    File,
    /// A secret `C_DeriveKey` made, owned by one session.
    SessionSecret {
        /// The session that made it; closing it destroys the secret.
        session: CK_SESSION_HANDLE,
    },
}

/// A private key on the card and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOnCard {
    /// How commands name the key.
    pub reference: ObjectRef,
    /// Its public point, when known (from its public key object, or after generation): each
    /// signature is checked against it before it leaves the module.
    pub point: Option<EcPoint>,
    /// The key may sign (IoT SAFE function `01`).
    pub sign: bool,
    /// The key may take part in a key agreement (function `04`).
    pub derive: bool,
    /// The card may generate a new pair into it (function `02`).
    pub generate: bool,
    /// The key is volatile (key type `14`): an ephemeral slot.
    pub volatile: bool,
}

/// One object of a token.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its handle.
    pub handle: CK_OBJECT_HANDLE,
    /// Every attribute.
    pub attributes: Attributes,
    /// Where it lives.
    pub backing: Backing,
}

impl Object {
    /// Whether callers see the object. All do but the private key of a volatile key slot whose
    /// pair was never generated (no public point): it has no public half to pair with and nothing
    /// to sign or agree with, and OpenSC's p11test (`usage_test`) rightly refuses a private key
    /// that derives without a public key that does. `C_GenerateKeyPair` still finds the slot, and
    /// the pair it makes shows under the same handle.
    pub fn shown(&self) -> bool {
        !matches!(&self.backing, Backing::PrivateKey(k) if k.volatile && k.point.is_none())
    }
}

/// What a key object is called: `CKA_ID`, `CKA_LABEL` and the `CKA_SUBJECT` of its certificate.
#[derive(Debug, Clone, Default)]
pub struct Naming {
    /// `CKA_ID`: the IoT SAFE object ID.
    pub id: Vec<u8>,
    /// `CKA_LABEL`: the IoT SAFE label.
    pub label: Vec<u8>,
    /// `CKA_SUBJECT`: the subject of the certificate for this key, when the card has one.
    pub subject: Vec<u8>,
}

/// The attributes every object of the card has.
fn storage(class: CK_OBJECT_CLASS, label: &[u8], token: bool) -> Attributes {
    let mut a = Attributes::default();
    a.set(CKA_CLASS, ulong(class))
        .set(CKA_TOKEN, bool_value(token))
        .set(CKA_PRIVATE, bool_value(false))
        .set(CKA_MODIFIABLE, bool_value(false))
        .set(CKA_COPYABLE, bool_value(false))
        .set(CKA_DESTROYABLE, bool_value(!token))
        .set(CKA_LABEL, label.to_vec());
    a
}

/// The attributes every key has.
fn key_common(a: &mut Attributes, key_type: CK_KEY_TYPE, naming: &Naming, derive: bool) {
    a.set(CKA_KEY_TYPE, ulong(key_type))
        .set(CKA_ID, naming.id.clone())
        .set(CKA_START_DATE, Vec::new())
        .set(CKA_END_DATE, Vec::new())
        .set(CKA_DERIVE, bool_value(derive))
        .set(CKA_LOCAL, bool_value(false))
        .set(CKA_KEY_GEN_MECHANISM, ulong(CK_UNAVAILABLE_INFORMATION));
}

/// The mechanisms a card key allows.
fn allowed_mechanisms(key: &KeyOnCard) -> Vec<CK_MECHANISM_TYPE> {
    let mut m = Vec::new();
    if key.sign {
        m.extend_from_slice(&[CKM_ECDSA, CKM_ECDSA_SHA256]);
    }
    if key.derive {
        m.push(CKM_ECDH1_DERIVE);
    }
    m
}

/// A `CKO_PRIVATE_KEY` for an IoT SAFE private key. Its scalar never leaves the card, so
/// `CKA_VALUE` is an attribute that always answers `CKR_ATTRIBUTE_SENSITIVE`.
pub fn private_key(handle: CK_OBJECT_HANDLE, key: KeyOnCard, naming: &Naming) -> Object {
    let mut a = storage(CKO_PRIVATE_KEY, &naming.label, true);
    key_common(&mut a, CKK_EC, naming, key.derive);
    a.set(CKA_SUBJECT, naming.subject.clone())
        .set(CKA_SENSITIVE, bool_value(true))
        .set(CKA_ALWAYS_SENSITIVE, bool_value(true))
        .set(CKA_EXTRACTABLE, bool_value(false))
        .set(CKA_NEVER_EXTRACTABLE, bool_value(true))
        .set(CKA_DECRYPT, bool_value(false))
        .set(CKA_SIGN, bool_value(key.sign))
        .set(CKA_SIGN_RECOVER, bool_value(false))
        .set(CKA_UNWRAP, bool_value(false))
        .set(CKA_WRAP_WITH_TRUSTED, bool_value(false))
        .set(CKA_ALWAYS_AUTHENTICATE, bool_value(false))
        .set(CKA_ALLOWED_MECHANISMS, ulongs(&allowed_mechanisms(&key)))
        .set(CKA_EC_PARAMS, der::P256_PARAMS.to_vec())
        .put(CKA_VALUE, Value::OnCardOnly);
    set_private_point(&mut a, key.point.as_ref());
    Object {
        handle,
        attributes: a,
        backing: Backing::PrivateKey(key),
    }
}

/// The public parts a private key object shows once its point is known: `CKA_PUBLIC_KEY_INFO`
/// (the standard place), and `CKA_EC_POINT`, which libp11 and others read from the private key
/// to build its public half.
pub fn set_private_point(a: &mut Attributes, point: Option<&EcPoint>) {
    let (info, ec_point) = match point {
        Some(p) => (p.to_p256_spki(), der::ec_point_attribute(p)),
        None => (Vec::new(), Vec::new()),
    };
    a.set(CKA_PUBLIC_KEY_INFO, info).set(CKA_EC_POINT, ec_point);
}

/// What a public key may be used for: verifying (IoT SAFE function `01`, done on the host by
/// `C_Verify`), key agreement (function `04`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicUse {
    /// `CKA_VERIFY`.
    pub verify: bool,
    /// `CKA_DERIVE`.
    pub derive: bool,
}

/// A `CKO_PUBLIC_KEY` for an IoT SAFE public key with a known point.
pub fn public_key(
    handle: CK_OBJECT_HANDLE,
    reference: ObjectRef,
    point: &EcPoint,
    naming: &Naming,
    usage: PublicUse,
) -> Object {
    let mut a = storage(CKO_PUBLIC_KEY, &naming.label, true);
    key_common(&mut a, CKK_EC, naming, usage.derive);
    a.set(CKA_SUBJECT, naming.subject.clone())
        .set(CKA_ENCRYPT, bool_value(false))
        .set(CKA_VERIFY, bool_value(usage.verify))
        .set(CKA_VERIFY_RECOVER, bool_value(false))
        .set(CKA_WRAP, bool_value(false))
        .set(CKA_TRUSTED, bool_value(false))
        .set(CKA_EC_PARAMS, der::P256_PARAMS.to_vec());
    set_public_point(&mut a, point);
    Object {
        handle,
        attributes: a,
        backing: Backing::PublicKey { reference },
    }
}

/// The point attributes of a public key object (set again after a key generation).
pub fn set_public_point(a: &mut Attributes, point: &EcPoint) {
    a.set(CKA_EC_POINT, der::ec_point_attribute(point))
        .set(CKA_PUBLIC_KEY_INFO, point.to_p256_spki());
}

/// `CKA_CERTIFICATE_CATEGORY` values (PKCS#11 v2.40 §4.6.2).
const CATEGORY_UNSPECIFIED: CK_ULONG = 0;
const CATEGORY_TOKEN_USER: CK_ULONG = 1;
const CATEGORY_AUTHORITY: CK_ULONG = 2;

/// A `CKO_CERTIFICATE` (X.509) for a file holding a certificate. `id` is the `CKA_ID` of the
/// card key it certifies when there is one (so that OpenSSL's engine pairs them), else the file's.
pub fn certificate(
    handle: CK_OBJECT_HANDLE,
    der: Vec<u8>,
    fields: &CertificateFields,
    id: Vec<u8>,
    label: &[u8],
    paired: bool,
) -> Object {
    let category = if paired {
        CATEGORY_TOKEN_USER
    } else if fields.is_ca {
        CATEGORY_AUTHORITY
    } else {
        CATEGORY_UNSPECIFIED
    };
    let mut a = storage(CKO_CERTIFICATE, label, true);
    a.set(CKA_CERTIFICATE_TYPE, ulong(CKC_X_509))
        .set(CKA_TRUSTED, bool_value(false))
        .set(CKA_CERTIFICATE_CATEGORY, ulong(category))
        .set(CKA_START_DATE, Vec::new())
        .set(CKA_END_DATE, Vec::new())
        .set(CKA_PUBLIC_KEY_INFO, fields.spki.clone())
        .set(CKA_SUBJECT, fields.subject.clone())
        .set(CKA_ID, id)
        .set(CKA_ISSUER, fields.issuer.clone())
        .set(CKA_SERIAL_NUMBER, fields.serial.clone())
        .set(CKA_VALUE, der)
        .set(CKA_URL, Vec::new())
        .set(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Vec::new())
        .set(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Vec::new())
        .set(CKA_JAVA_MIDP_SECURITY_DOMAIN, ulong(0))
        .set(CKA_NAME_HASH_ALGORITHM, ulong(CKM_SHA_1));
    Object {
        handle,
        attributes: a,
        backing: Backing::File,
    }
}

/// A `CKO_DATA` object for any other file.
pub fn data(handle: CK_OBJECT_HANDLE, value: Vec<u8>, id: Vec<u8>, label: &[u8]) -> Object {
    let mut a = storage(CKO_DATA, label, true);
    a.set(CKA_APPLICATION, b"IoT SAFE".to_vec())
        .set(CKA_OBJECT_ID, Vec::new())
        .set(CKA_ID, id)
        .set(CKA_VALUE, value);
    Object {
        handle,
        attributes: a,
        backing: Backing::File,
    }
}

/// The usage flags of a derived secret that its template may set (recorded as given).
pub const SECRET_USAGE: [CK_ATTRIBUTE_TYPE; 6] = [
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_WRAP,
    CKA_UNWRAP,
];

/// How a caller asked a derived secret to be kept.
#[derive(Debug, Clone, Default)]
pub struct SecretOptions {
    /// `CKA_LABEL`.
    pub label: Vec<u8>,
    /// `CKA_ID`.
    pub id: Vec<u8>,
    /// `CKA_SENSITIVE` (default false).
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE` (default true).
    pub extractable: bool,
    /// The usage flags the caller set (`CKA_ENCRYPT`, `CKA_DECRYPT`, …), recorded as given: this
    /// module has no mechanism that uses them.
    pub usage: Vec<(CK_ATTRIBUTE_TYPE, bool)>,
}

/// A `CKO_SECRET_KEY` (`CKK_GENERIC_SECRET`) session object holding a shared secret. The value is
/// wiped when the object is dropped.
pub fn session_secret(
    handle: CK_OBJECT_HANDLE,
    session: CK_SESSION_HANDLE,
    value: Zeroizing<Vec<u8>>,
    options: &SecretOptions,
) -> Object {
    let naming = Naming {
        id: options.id.clone(),
        label: options.label.clone(),
        subject: Vec::new(),
    };
    let mut a = storage(CKO_SECRET_KEY, &options.label, false);
    key_common(&mut a, CKK_GENERIC_SECRET, &naming, false);
    a.set(CKA_SENSITIVE, bool_value(options.sensitive))
        .set(CKA_ALWAYS_SENSITIVE, bool_value(options.sensitive))
        .set(CKA_EXTRACTABLE, bool_value(options.extractable))
        .set(CKA_NEVER_EXTRACTABLE, bool_value(!options.extractable))
        .set(CKA_VALUE_LEN, ulong(value.len() as CK_ULONG))
        .set(CKA_KEY_GEN_MECHANISM, ulong(CKM_ECDH1_DERIVE));
    for kind in SECRET_USAGE {
        let given = options.usage.iter().rev().find(|(k, _)| *k == kind);
        a.set(kind, bool_value(given.is_some_and(|(_, v)| *v)));
    }
    a.put(
        CKA_VALUE,
        Value::Secret {
            value,
            readable: !options.sensitive && options.extractable,
        },
    );
    Object {
        handle,
        attributes: a,
        backing: Backing::SessionSecret { session },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::Lookup;

    fn key() -> KeyOnCard {
        KeyOnCard {
            reference: ObjectRef::id([1]),
            point: None,
            sign: true,
            derive: false,
            generate: false,
            volatile: false,
        }
    }

    #[test]
    fn private_key_never_shows_its_value() {
        let naming = Naming {
            id: vec![1],
            label: b"device".to_vec(),
            subject: Vec::new(),
        };
        let o = private_key(5, key(), &naming);
        assert_eq!(o.attributes.lookup(CKA_VALUE), Lookup::Sensitive);
        assert_eq!(o.attributes.plain(CKA_SENSITIVE), Some(&[CK_TRUE][..]));
        assert_eq!(o.attributes.plain(CKA_EXTRACTABLE), Some(&[CK_FALSE][..]));
        assert_eq!(o.attributes.plain(CKA_PRIVATE), Some(&[CK_FALSE][..]));
        assert_eq!(o.attributes.plain(CKA_LABEL), Some(&b"device"[..]));
        assert_eq!(o.attributes.plain(CKA_EC_POINT), Some(&[][..]));
    }

    #[test]
    fn secret_readability_follows_the_template() {
        let value = Zeroizing::new(vec![3u8; 32]);
        let open = SecretOptions {
            extractable: true,
            ..SecretOptions::default()
        };
        let o = session_secret(9, 1, value.clone(), &open);
        assert_eq!(o.attributes.lookup(CKA_VALUE), Lookup::Value(value.clone()));
        assert_eq!(o.attributes.plain(CKA_TOKEN), Some(&[CK_FALSE][..]));
        let closed = SecretOptions {
            sensitive: true,
            extractable: true,
            ..SecretOptions::default()
        };
        let o = session_secret(9, 1, value, &closed);
        assert_eq!(o.attributes.lookup(CKA_VALUE), Lookup::Sensitive);
    }
}
