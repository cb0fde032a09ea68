//! The fields of an X.509 certificate that PKCS#11 puts in attributes, read with x509-parser.

use x509_parser::prelude::{FromDer, X509Certificate};

/// What a certificate object shows besides its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFields {
    /// DER of the subject Name (`CKA_SUBJECT`).
    pub subject: Vec<u8>,
    /// DER of the issuer Name (`CKA_ISSUER`).
    pub issuer: Vec<u8>,
    /// DER of the serial number INTEGER, tag and length included (`CKA_SERIAL_NUMBER`).
    pub serial: Vec<u8>,
    /// DER of the SubjectPublicKeyInfo (`CKA_PUBLIC_KEY_INFO`).
    pub spki: Vec<u8>,
    /// The subject's common name, for a readable token label.
    pub common_name: Option<String>,
    /// Whether basic constraints say it is a CA (`CKA_CERTIFICATE_CATEGORY` authority).
    pub is_ca: bool,
}

/// The fields of `der` when it is exactly one X.509 certificate (nothing after it); `None` for
/// anything else, which the token then shows as a data object.
pub fn parse(der: &[u8]) -> Option<CertificateFields> {
    let (rest, cert) = X509Certificate::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let tbs = &cert.tbs_certificate;
    let common_name = tbs
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    Some(CertificateFields {
        subject: tbs.subject.as_raw().to_vec(),
        issuer: tbs.issuer.as_raw().to_vec(),
        serial: serial_der(tbs.raw_serial()),
        spki: tbs.subject_pki.raw.to_vec(),
        common_name,
        is_ca,
    })
}

/// A serial number's content bytes as a DER INTEGER.
fn serial_der(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_lengths() {
        assert_eq!(serial_der(&[0x01]), [0x02, 0x01, 0x01]);
        assert_eq!(&serial_der(&[0; 200])[..3], &[0x02, 0x81, 200]);
    }

    #[test]
    fn not_a_certificate() {
        assert_eq!(parse(b"hello"), None);
        assert_eq!(parse(&[]), None);
    }
}
