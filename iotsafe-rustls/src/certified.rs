//! The card key with its certificate, for client authentication, without `x509-parser`: what a
//! microcontroller needs (it builds without `std`). The certificate is read from a given file,
//! cut to its DER element (cards pad files), and rustls itself checks that it certifies the card
//! key ([`CertifiedKey::keys_match`]: webpki reads the certificate's public key). The host's
//! [`crate::CardCertResolver`] finds the certificate among the card's files and can add the CA.

use crate::error::{Error, Result};
use crate::signer::CardSigningKey;
use alloc::format;
use alloc::string::ToString;
use alloc::sync::Arc;
use alloc::vec;
use core::fmt;
use iotsafe_core::ObjectRef;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

/// The card key and its certificate, served to rustls as the client certificate.
pub struct CardCertifiedKey {
    certified: Arc<CertifiedKey>,
    certificate_file: ObjectRef,
}

impl CardCertifiedKey {
    /// Reads the certificate in `certificate_file` (READ FILE) and checks that it certifies
    /// `signing_key`.
    pub fn read(signing_key: CardSigningKey, certificate_file: ObjectRef) -> Result<Self> {
        let bytes = signing_key
            .card()
            .read_file(&certificate_file)
            .map_err(|e| Error::card(format!("reading certificate file {certificate_file}"), e))?;
        let der = certificate_der(&bytes)
            .map_err(|why| Error::Certificate(format!("file {certificate_file}: {why}")))?;
        let key = signing_key.key_ref().to_string();
        let certified = CertifiedKey::new(
            vec![CertificateDer::from(der.to_vec())],
            Arc::new(signing_key),
        );
        certified.keys_match().map_err(|_| Error::KeyMismatch {
            file: certificate_file.to_string(),
            key,
        })?;
        Ok(CardCertifiedKey {
            certified: Arc::new(certified),
            certificate_file,
        })
    }

    /// The certificate and key, as rustls holds them.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }

    /// The device certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certified.cert[0]
    }
}

/// The DER element a certificate file starts with: cards pad their files (with `FF` or zeros)
/// past the certificate. Says what is wrong when the file does not start with a complete
/// SEQUENCE with a definite, minimal length.
pub fn certificate_der(file: &[u8]) -> core::result::Result<&[u8], &'static str> {
    match file.first() {
        None => Err("empty"),
        Some(0x30) => Ok(crate::der::element(file)?.whole),
        Some(_) => Err("does not start with a DER SEQUENCE (tag 30)"),
    }
}

/// The certificate for a peer that accepts `offered` signature schemes: only a peer accepting
/// ECDSA P-256 with SHA-256 (the only scheme the card key has) gets it.
pub(crate) fn serve(
    certified: &Arc<CertifiedKey>,
    offered: &[SignatureScheme],
    role: &str,
) -> Option<Arc<CertifiedKey>> {
    if offered.contains(&SignatureScheme::ECDSA_NISTP256_SHA256) {
        Some(Arc::clone(certified))
    } else {
        tracing::warn!(
            ?offered,
            role,
            "peer accepts no ECDSA_NISTP256_SHA256 signature: the card certificate is not sent"
        );
        None
    }
}

impl fmt::Debug for CardCertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardCertifiedKey")
            .field("certificate_file", &self.certificate_file)
            .finish_non_exhaustive()
    }
}

impl ResolvesClientCert for CardCertifiedKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        serve(&self.certified, sigschemes, "client")
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_a_padded_file_to_its_der_element() {
        let mut file = vec![0x30, 0x03, 1, 2, 3];
        assert_eq!(certificate_der(&file), Ok(&file[..5]));
        file.extend([0xFF; 20]);
        assert_eq!(certificate_der(&file).unwrap().len(), 5);
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend([0u8; 0x100]);
        long.extend([0xFF; 3]);
        assert_eq!(certificate_der(&long).unwrap().len(), 4 + 0x100);
    }

    #[test]
    fn refuses_what_is_not_a_complete_der_sequence() {
        for bad in [
            &[][..],
            &[0x31, 0x00],
            &[0x30],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x81, 0x10],
            &[0x30, 0x82, 0x00, 0x10],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x05, 1, 2],
            &[0x30, 0x82, 0xFF],
        ] {
            assert!(certificate_der(bad).is_err(), "{bad:02X?}");
        }
    }
}
