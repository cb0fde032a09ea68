//! The subject's common name of a DER certificate, with a few lines of DER walking instead of an
//! X.509 parser in flash (webpki checks the certificate itself; this only names the device).

/// `(tag, contents, rest)` of the DER element `input` starts with.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = match first {
        0..=0x7F => (usize::from(first), rest),
        0x81..=0x83 => {
            let n = usize::from(first & 0x7F);
            let (bytes, rest) = rest.split_at_checked(n)?;
            (
                bytes.iter().fold(0, |l, b| (l << 8) | usize::from(*b)),
                rest,
            )
        }
        _ => return None,
    };
    let (contents, rest) = rest.split_at_checked(length)?;
    Some((tag, contents, rest))
}

/// The contents of the SEQUENCE `input` starts with.
fn sequence(input: &[u8]) -> Option<&[u8]> {
    match element(input)? {
        (0x30, contents, _) => Some(contents),
        _ => None,
    }
}

/// The OID of the attribute type commonName (2.5.4.3).
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// The subject's first commonName, if it is a UTF8String or PrintableString.
pub fn subject_common_name(certificate: &[u8]) -> Option<&str> {
    let mut tbs = sequence(sequence(certificate)?)?;
    // TBSCertificate: [0] version (optional), serial, signature algorithm, issuer, validity,
    // subject.
    if tbs.first() == Some(&0xA0) {
        tbs = element(tbs)?.2;
    }
    for _ in 0..4 {
        tbs = element(tbs)?.2;
    }
    let mut names = sequence(tbs)?;
    while !names.is_empty() {
        let (_set, mut attributes, rest) = element(names)?;
        names = rest;
        while !attributes.is_empty() {
            let (_, attribute, rest) = element(attributes)?;
            attributes = rest;
            let (oid_tag, oid, value) = element(attribute)?;
            let (value_tag, value, _) = element(value)?;
            if oid_tag == 0x06 && oid == COMMON_NAME && matches!(value_tag, 0x0C | 0x13) {
                return core::str::from_utf8(value).ok();
            }
        }
    }
    None
}
