//! The subject's common name of a DER certificate, with a few lines of DER walking
//! (`iotsafe_rustls::der`) instead of an X.509 parser in flash (webpki checks the certificate
//! itself; this only names the device).

use iotsafe_rustls::der::{self, Element};

/// The element `input` starts with, if it is well-formed DER.
fn element(input: &[u8]) -> Option<Element<'_>> {
    der::element(input).ok()
}

/// The contents of the SEQUENCE `input` starts with.
fn sequence(input: &[u8]) -> Option<&[u8]> {
    element(input).filter(|e| e.tag == 0x30).map(|e| e.contents)
}

/// The OID of the attribute type commonName (2.5.4.3).
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// The subject's first commonName, if it is a UTF8String or PrintableString.
pub fn subject_common_name(certificate: &[u8]) -> Option<&str> {
    let mut tbs = sequence(sequence(certificate)?)?;
    // TBSCertificate: [0] version (optional), serial, signature algorithm, issuer, validity,
    // subject.
    if tbs.first() == Some(&0xA0) {
        tbs = element(tbs)?.rest;
    }
    for _ in 0..4 {
        tbs = element(tbs)?.rest;
    }
    let mut names = sequence(tbs)?;
    while !names.is_empty() {
        let set = element(names)?;
        names = set.rest;
        let mut attributes = set.contents;
        while !attributes.is_empty() {
            let attribute = element(attributes)?;
            attributes = attribute.rest;
            let oid = element(attribute.contents)?;
            let value = element(oid.rest)?;
            if oid.tag == 0x06 && oid.contents == COMMON_NAME && matches!(value.tag, 0x0C | 0x13) {
                return core::str::from_utf8(value.contents).ok();
            }
        }
    }
    None
}
