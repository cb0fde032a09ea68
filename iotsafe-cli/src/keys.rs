//! Card-held keys as the rest of the world wants them: DER signatures, SubjectPublicKeyInfo,
//! default object choices.

use crate::error::CliError;
use iotsafe_core::objects::{functions, key_type};
use iotsafe_core::{Card, EcPoint, HashAlgorithm, ObjectKind, ObjectRef};
use sha2::{Digest, Sha256};

/// The reference the user gave, or the card's signing key: the first persistent P-256 private key
/// with the signature function, else ID `01`.
pub fn signing_key_or_default(card: &Card, given: Option<&str>) -> ObjectRef {
    if let Some(text) = given {
        return ObjectRef::parse(text);
    }
    card.objects()
        .ok()
        .and_then(|list| {
            list.into_iter().find(|o| {
                o.kind == Some(ObjectKind::PrivateKey)
                    && o.has_functions(functions::SIGNATURE)
                    && o.key_type != Some(key_type::P256_VOLATILE)
            })
        })
        .and_then(|o| o.reference())
        .unwrap_or_else(|| ObjectRef::id([0x01]))
}

/// The reference the user gave (`--file` ID or `--label`), or the device certificate: the file
/// labelled `device-cert`, else the first certificate file, else ID `02`.
pub fn certificate_file_or_default(
    card: &Card,
    id: Option<&str>,
    label: Option<&str>,
) -> ObjectRef {
    if let Some(id) = id {
        return ObjectRef::parse(id);
    }
    if let Some(label) = label {
        return ObjectRef::label(label);
    }
    let files: Vec<_> = card
        .objects()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.kind == Some(ObjectKind::File))
        .collect();
    files
        .iter()
        .find(|o| o.label.as_deref() == Some(b"device-cert"))
        .or_else(|| {
            files
                .iter()
                .find(|o| o.file_usage == Some(iotsafe_core::objects::file_usage::CERTIFICATE))
        })
        .and_then(|o| o.reference())
        .unwrap_or_else(|| ObjectRef::id([0x02]))
}

/// Signs `message` with the card key `key`: SHA-256 on the host, ECDSA on the card, minimal DER out.
pub fn sign_message_der(card: &Card, key: &ObjectRef, message: &[u8]) -> Result<Vec<u8>, CliError> {
    let digest = Sha256::digest(message);
    let signature = card
        .sign_digest(key, HashAlgorithm::Sha256, &digest)
        .map_err(|e| CliError::card(format!("signing with {key}"), &e))?;
    signature
        .to_der()
        .map_err(|why| CliError::new(format!("signing with {key}"), why))
}

/// Reads the public key of `key` from the card.
pub fn public_key(card: &Card, key: &ObjectRef) -> Result<EcPoint, CliError> {
    card.read_public_key(key)
        .map_err(|e| CliError::card(format!("reading the public key {key}"), &e))
}
