//! Reading a token's objects off the card: the object list, each public key's point, each file,
//! then PKCS#11 objects built from them, certificates paired with the keys they certify.

use crate::cert::{self, CertificateFields};
use crate::objects::{self, KeyOnCard, Naming, Object, PublicUse};
use cryptoki_sys::CK_OBJECT_HANDLE;
use iotsafe_core::objects::{functions, key_type};
use iotsafe_core::{Card, EcPoint, Error, ObjectInfo, ObjectKind, ObjectRef};
use sha2::{Digest, Sha256};

/// What the token shows about itself, read with its objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFacts {
    /// The token label (configured, or made from the card).
    pub label: String,
    /// A serial number: 16 hex digits of SHA-256 over the first key's public point.
    pub serial: String,
    /// The applet version (GET DATA `10`).
    pub version: Option<u8>,
    /// The public key slot `C_DeriveKey` puts the peer's point into: updatable, with the key
    /// agreement function.
    pub peer_slot: Option<ObjectRef>,
}

/// A token's content as loaded.
#[derive(Debug, Clone)]
pub struct TokenContent {
    /// What the token says about itself.
    pub facts: TokenFacts,
    /// Its objects.
    pub objects: Vec<Object>,
}

/// Whether a key descriptor is a P-256 key (the only curve this module offers; a descriptor
/// without a key type is taken as one, the type most cards carry).
fn is_p256(info: &ObjectInfo) -> bool {
    matches!(
        info.key_type,
        None | Some(key_type::P256_PERSISTENT) | Some(key_type::P256_VOLATILE)
    )
}

/// Access condition bits (tag `60`).
const ACCESS_READ: u8 = 0x01;
const ACCESS_UPDATE: u8 = 0x02;

/// A failure the token can live with: the card refused to show one object (an empty key slot, a
/// file it will not read). Anything else (a lost connection, a malformed answer) fails the load.
fn refused(error: &Error) -> bool {
    matches!(error, Error::Status { .. })
}

/// A file as read.
struct FileRead {
    info: ObjectInfo,
    bytes: Vec<u8>,
    cert: Option<CertificateFields>,
}

/// Reads everything the token shows and builds its objects; `next` hands out object handles.
/// `label` overrides the token label made from the card.
pub fn load(
    card: &Card,
    label: Option<&str>,
    mut next: impl FnMut() -> CK_OBJECT_HANDLE,
) -> Result<TokenContent, Error> {
    let version = match card.applet_info() {
        Ok(info) => info.version,
        Err(e) if refused(&e) => None,
        Err(e) => return Err(e),
    };
    let list = card.objects()?;
    let of_kind = |kind| list.iter().filter(move |o| o.kind == Some(kind));

    let mut publics: Vec<(&ObjectInfo, ObjectRef, EcPoint)> = Vec::new();
    for info in of_kind(ObjectKind::PublicKey).filter(|o| is_p256(o)) {
        let Some(reference) = info.reference() else {
            continue;
        };
        match card.read_public_key(&reference) {
            Ok(point) => publics.push((info, reference, point)),
            Err(e) if refused(&e) => tracing::debug!("{reference} left out: {e}"),
            Err(e) => return Err(e),
        }
    }
    let mut files = Vec::new();
    for info in of_kind(ObjectKind::File) {
        let Some(reference) = info.reference() else {
            continue;
        };
        if info.access.is_some_and(|a| a & ACCESS_READ == 0) {
            continue;
        }
        match card.read_file(&reference) {
            Ok(bytes) => files.push(FileRead {
                cert: cert::parse(&bytes),
                info: info.clone(),
                bytes,
            }),
            Err(e) if refused(&e) => tracing::debug!("{reference} left out: {e}"),
            Err(e) => return Err(e),
        }
    }

    let keys: Vec<(&ObjectInfo, KeyOnCard)> = of_kind(ObjectKind::PrivateKey)
        .filter(|o| is_p256(o))
        .filter_map(|info| {
            let reference = info.reference()?;
            let point = publics
                .iter()
                .find(|(p, _, _)| same_pair(info, p))
                .map(|(_, _, point)| *point);
            Some((info, key_on_card(info, reference, point)))
        })
        .collect();
    // The certificate of each key: the first file whose certificate holds the key's point.
    let cert_of = |point: Option<EcPoint>| {
        let point = point?;
        files.iter().find(|f| {
            f.cert
                .as_ref()
                .and_then(|c| crate::der::point_of_spki(&c.spki))
                == Some(point)
        })
    };

    let mut objects = Vec::new();
    for (info, key) in &keys {
        let subject = cert_of(key.point)
            .and_then(|f| f.cert.as_ref())
            .map(|c| c.subject.clone());
        let naming = naming(info, subject.clone());
        objects.push(objects::private_key(next(), key.clone(), &naming));
    }
    for (info, reference, point) in &publics {
        let subject = cert_of(Some(*point))
            .and_then(|f| f.cert.as_ref())
            .map(|c| c.subject.clone());
        let usage = PublicUse {
            verify: info.has_functions(functions::SIGNATURE),
            derive: info.has_functions(functions::KEY_AGREEMENT),
        };
        objects.push(objects::public_key(
            next(),
            reference.clone(),
            point,
            &naming(info, subject),
            usage,
        ));
    }
    for file in &files {
        let label = file.info.label.clone().unwrap_or_default();
        let own_id = file.info.id.clone().unwrap_or_default();
        objects.push(match &file.cert {
            Some(fields) => {
                let key = keys.iter().find(|(_, k)| {
                    k.point.is_some() && crate::der::point_of_spki(&fields.spki) == k.point
                });
                let id = key.and_then(|(i, _)| i.id.clone()).unwrap_or(own_id);
                objects::certificate(
                    next(),
                    file.bytes.clone(),
                    fields,
                    id,
                    &label,
                    key.is_some(),
                )
            }
            None => objects::data(next(), file.bytes.clone(), own_id, &label),
        });
    }

    let first_point = keys.iter().find_map(|(_, k)| k.point);
    let common_name = keys
        .iter()
        .find_map(|(_, k)| cert_of(k.point))
        .and_then(|f| f.cert.as_ref())
        .and_then(|c| c.common_name.clone());
    let peer_slot = of_kind(ObjectKind::PublicKey)
        .filter(|o| is_p256(o))
        .find(|o| {
            o.access.is_some_and(|a| a & ACCESS_UPDATE != 0)
                && o.has_functions(functions::KEY_AGREEMENT)
        })
        .and_then(ObjectInfo::reference);
    let facts = TokenFacts {
        label: label
            .map(str::to_owned)
            .unwrap_or_else(|| default_label(common_name.as_deref())),
        serial: serial(first_point.as_ref()),
        version,
        peer_slot,
    };
    Ok(TokenContent { facts, objects })
}

/// Whether a public key descriptor is the public half of a private key: the same ID (IoT SAFE
/// key pairs share it), or, for cards that name keys by label only, the same label.
fn same_pair(private: &ObjectInfo, public: &ObjectInfo) -> bool {
    match (&private.id, &public.id) {
        (Some(a), Some(b)) => a == b,
        _ => private.label.is_some() && private.label == public.label,
    }
}

/// A private key's capabilities from its descriptor. A card that sends no function bits gets the
/// one every IoT SAFE key has: signing.
fn key_on_card(info: &ObjectInfo, reference: ObjectRef, point: Option<EcPoint>) -> KeyOnCard {
    let has = |f| {
        info.functions
            .map_or(f == functions::SIGNATURE, |x| x & f == f)
    };
    KeyOnCard {
        reference,
        point,
        sign: has(functions::SIGNATURE),
        derive: has(functions::KEY_AGREEMENT),
        generate: has(functions::KEY_GENERATION),
        volatile: info.key_type == Some(key_type::P256_VOLATILE),
    }
}

fn naming(info: &ObjectInfo, subject: Option<Vec<u8>>) -> Naming {
    Naming {
        id: info.id.clone().unwrap_or_default(),
        label: info.label.clone().unwrap_or_default(),
        subject: subject.unwrap_or_default(),
    }
}

/// "IoT SAFE" and the common name of the card's certificate, cut to the 32 bytes of a token label.
pub fn default_label(common_name: Option<&str>) -> String {
    let mut label = String::from("IoT SAFE");
    if let Some(cn) = common_name.filter(|c| !c.is_empty()) {
        label.push(' ');
        label.push_str(cn);
    }
    truncate_utf8(&label, 32).to_owned()
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// 16 hex digits of SHA-256 over the first key's public point: stable for a card until that key
/// is generated again, and different between cards.
fn serial(point: Option<&EcPoint>) -> String {
    match point {
        Some(p) => Sha256::digest(p.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect(),
        None => String::from("0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(default_label(None), "IoT SAFE");
        assert_eq!(default_label(Some("device-0001")), "IoT SAFE device-0001");
        let long = default_label(Some("ééééééééééééééééééééééé"));
        assert!(long.len() <= 32 && long.starts_with("IoT SAFE é"));
        assert_eq!(serial(None), "0");
    }
}
