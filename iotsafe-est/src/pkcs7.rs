//! The certificates of an EST answer: base64 of a CMS SignedData "certs-only" (RFC 7030 §4.1.3,
//! §4.2.3; RFC 5652 §5): `ContentInfo { id-signedData, [0] SignedData { version,
//! digestAlgorithms, encapContentInfo, [0] IMPLICIT certificates, … } }`. Only the certificates
//! are taken; each is checked later (key, chain), not here.

use base64::Engine as _;
use iotsafe_rustls::der::element;
use rustls::pki_types::CertificateDer;

/// id-signedData, 1.2.840.113549.1.7.2.
const SIGNED_DATA: [u8; 9] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];

/// The contents of the element `input` starts with, which must have `tag`.
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), &'static str> {
    match element(input)? {
        e if e.tag == tag => Ok((e.contents, e.rest)),
        _ => Err(what),
    }
}

/// The certificates in the base64 body of an `application/pkcs7-mime` answer.
pub fn certificates(body: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let der = decode_base64(body)?;
    certificates_der(&der).map_err(|why| format!("not a CMS certs-only SignedData: {why}"))
}

/// The bytes of an EST body in base64 (RFC 7030 §4: `Content-Transfer-Encoding: base64`),
/// which servers break into lines.
pub(crate) fn decode_base64(body: &[u8]) -> Result<Vec<u8>, String> {
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))
}

fn certificates_der(der: &[u8]) -> Result<Vec<CertificateDer<'static>>, &'static str> {
    let (content_info, _) = expect(der, 0x30, "no ContentInfo SEQUENCE")?;
    let (oid, rest) = expect(content_info, 0x06, "no content type")?;
    if oid != SIGNED_DATA {
        return Err("the content type is not id-signedData");
    }
    let (explicit, _) = expect(rest, 0xA0, "no [0] content")?;
    let (signed_data, _) = expect(explicit, 0x30, "no SignedData SEQUENCE")?;
    let (_version, rest) = expect(signed_data, 0x02, "no version")?;
    let (_digests, rest) = expect(rest, 0x31, "no digestAlgorithms SET")?;
    let (_encap, rest) = expect(rest, 0x30, "no encapContentInfo")?;
    let (mut certs, _) = expect(rest, 0xA0, "no certificates")?;
    let mut out = Vec::new();
    while !certs.is_empty() {
        let certificate = element(certs)?;
        // Other certificate formats (attribute certificates, [1]…[3]) are not X.509: skipped.
        if certificate.tag == 0x30 {
            out.push(CertificateDer::from(certificate.whole.to_vec()));
        }
        certs = certificate.rest;
    }
    if out.is_empty() {
        return Err("no X.509 certificate in it");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certs-only SignedData holding `certs` (written independently, as a server would).
    fn signed_data(certs: &[&[u8]]) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let n = content.len();
            if n < 0x80 {
                out.push(n as u8);
            } else {
                out.extend([0x82, (n >> 8) as u8, n as u8]);
            }
            out.extend_from_slice(content);
            out
        }
        let set: Vec<u8> = certs.concat();
        let inner = [
            tlv(0x02, &[1]),
            tlv(0x31, &[]),
            tlv(
                0x30,
                &tlv(
                    0x06,
                    &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01],
                ),
            ),
            tlv(0xA0, &set),
            tlv(0x31, &[]),
        ]
        .concat();
        tlv(
            0x30,
            &[tlv(0x06, &SIGNED_DATA), tlv(0xA0, &tlv(0x30, &inner))].concat(),
        )
    }

    #[test]
    fn reads_the_certificates_of_base64_with_line_breaks() {
        let (a, b) = ([0x30, 0x01, 0xAA], [0x30, 0x02, 0xBB, 0xCC]);
        let der = signed_data(&[&a, &b]);
        let mut text = base64::engine::general_purpose::STANDARD.encode(&der);
        text.insert_str(10, "\r\n");
        let certs = certificates(text.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!((certs[0].as_ref(), certs[1].as_ref()), (&a[..], &b[..]));
    }

    #[test]
    fn refuses_what_is_not_a_certs_only_signed_data() {
        assert!(certificates(b"%%%").is_err());
        let empty = signed_data(&[]);
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        assert!(certificates(b64(&empty).as_bytes()).is_err());
        let good = signed_data(&[&[0x30, 0x01, 0xAA]]);
        for cut in 0..good.len() {
            assert!(
                certificates(b64(&good[..cut]).as_bytes()).is_err(),
                "cut at {cut}"
            );
        }
        let mut other = good.clone();
        other[12] ^= 1; // inside the content type OID
        assert!(certificates(b64(&other).as_bytes()).is_err());
    }
}
