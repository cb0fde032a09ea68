//! The card signs its own certificate signing request (proof of possession), through rcgen.
//!
//! [`CardSigningKey`] implements [`rcgen::PublicKeyData`] (the card's point, algorithm
//! ECDSA P-256 SHA-256) and [`rcgen::SigningKey`] (full message in, SHA-256 on the host, the card
//! signs the digest, minimal DER out), so it can be passed wherever rcgen takes a key:
//! `CertificateParams::serialize_request(&key)` for a CSR, or `signed_by(&key, ..)` for a CA that
//! certifies the card key directly.

use crate::error::{Error, Result};
use crate::signer::CardSigningKey;
use iotsafe_core::{Card, ObjectRef};
use std::sync::Arc;

impl rcgen::PublicKeyData for CardSigningKey {
    fn der_bytes(&self) -> &[u8] {
        self.public_point().as_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for CardSigningKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_message(msg).map_err(|e| {
            tracing::warn!(error = %e, "card signature for rcgen failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

/// A PEM CSR for `subject_cn`, signed by private key `key` on the card (one signature; reads the
/// public key first).
pub fn card_csr(card: Arc<Card>, key: &ObjectRef, subject_cn: &str) -> Result<String> {
    let signing_key = CardSigningKey::new(card, key.clone())?;
    csr_for(&signing_key, subject_cn)
}

/// A PEM CSR for `subject_cn` signed by an existing card key.
pub fn csr_for(signing_key: &CardSigningKey, subject_cn: &str) -> Result<String> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| Error::Csr(format!("parameters: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject_cn);
    let csr = params.serialize_request(signing_key).map_err(|e| {
        Error::Csr(format!(
            "signing with {} on the card: {e}",
            signing_key.key_ref()
        ))
    })?;
    csr.pem()
        .map_err(|e| Error::Csr(format!("PEM encoding: {e}")))
}
