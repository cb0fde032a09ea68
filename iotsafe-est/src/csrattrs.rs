//! What `/csrattrs` asks for (RFC 7030 §4.5.2: a SEQUENCE of OIDs and attributes), against what
//! the card can do. The card key is P-256 and signs ECDSA with SHA-256: a server that names key
//! types or signature algorithms and none of those cannot get a request it accepts from this
//! card, and is told so before anything is signed. Other attributes (a challenge password, an
//! extension request) cannot be honoured by the card's CSR and are logged.

use iotsafe_rustls::der::element;

/// ecdsa-with-SHA256, id-ecPublicKey, prime256v1: what the card does.
const CARD_CAN: [&[u8]; 3] = [
    &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02],
    &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01],
    &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
];

/// Key types and signature algorithms the card cannot do, by name.
const CARD_CANNOT: [(&[u8], &str); 6] = [
    (
        &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03],
        "ecdsa-with-SHA384",
    ),
    (
        &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04],
        "ecdsa-with-SHA512",
    ),
    (&[0x2B, 0x81, 0x04, 0x00, 0x22], "secp384r1"),
    (&[0x2B, 0x81, 0x04, 0x00, 0x23], "secp521r1"),
    (
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01],
        "rsaEncryption",
    ),
    (
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B],
        "sha256WithRSAEncryption",
    ),
];

/// Every OID in `der` (a `CsrAttrs`), at any depth.
fn oids(der: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), &'static str> {
    let mut rest = der;
    while !rest.is_empty() {
        let e = element(rest)?;
        match e.tag {
            0x06 => out.push(e.contents.to_vec()),
            // SEQUENCE and SET (constructed): their contents are elements too.
            0x30 | 0x31 => oids(e.contents, out)?,
            _ => {}
        }
        rest = e.rest;
    }
    Ok(())
}

/// Checks `csr_attrs` (DER) against the card: `Err` names what the server wants that the card
/// cannot do, when it wants nothing the card can.
pub fn check(csr_attrs: &[u8]) -> Result<(), String> {
    let mut found = Vec::new();
    oids(csr_attrs, &mut found).map_err(|why| format!("its CsrAttrs: {why}"))?;
    let can = found.iter().any(|o| CARD_CAN.contains(&o.as_slice()));
    let cannot: Vec<&str> = CARD_CANNOT
        .iter()
        .filter(|(oid, _)| found.iter().any(|o| o == oid))
        .map(|(_, name)| *name)
        .collect();
    if !can && !cannot.is_empty() {
        return Err(format!(
            "the EST server asks for {}; the card key is P-256 and signs ECDSA with SHA-256",
            cannot.join(", ")
        ));
    }
    if found.len() > usize::from(can) + cannot.len() {
        tracing::info!(
            "the EST server asks for CSR attributes the card's request does not carry; sending it without them"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(oids: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        for oid in oids {
            body.push(0x06);
            body.push(oid.len() as u8);
            body.extend_from_slice(oid);
        }
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn what_the_card_can_passes_what_it_cannot_is_named() {
        assert!(check(&seq(&[CARD_CAN[0]])).is_ok());
        assert!(check(&seq(&[])).is_ok());
        // A challenge password alone: logged, not refused.
        assert!(check(&seq(&[&[
            0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x07
        ]]))
        .is_ok());
        let refused = check(&seq(&[CARD_CANNOT[0].0, CARD_CANNOT[2].0])).unwrap_err();
        assert!(
            refused.contains("ecdsa-with-SHA384, secp384r1"),
            "{refused}"
        );
        // Either is fine when the card's own is among them.
        assert!(check(&seq(&[CARD_CANNOT[0].0, CARD_CAN[0]])).is_ok());
        assert!(check(&[0x30, 0x05, 0x06]).is_err());
    }
}
