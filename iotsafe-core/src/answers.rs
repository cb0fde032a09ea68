//! Parsers of the card's answers to IoT.05 commands: key pairs, signatures in their wire forms,
//! shared secrets. They take the response data (status word already checked), never panic, and
//! never put secret bytes into an error.

use crate::error::{CommandKind, Error};
use crate::objects::EcPoint;
use crate::prelude::*;
use crate::signature::{der_to_rs, MAX_FIELD_LEN};
use crate::tlv;

/// The answer to GENERATE KEY PAIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKeyPair {
    /// The private key ID the card reports (authoritative: it may differ from the one asked).
    pub private_id: Option<Vec<u8>>,
    /// The public key ID the card reports.
    pub public_id: Option<Vec<u8>>,
    /// The new public key, when the answer carries it.
    pub point: Option<EcPoint>,
}

/// Parses a GENERATE KEY PAIR answer: `[84 L id] [85 L id] [34 45 49 43 86 41 04 X Y]`, any part
/// optional (`docs/protocol.md#generate-key-pair`).
pub fn parse_generated_key_pair(data: &[u8]) -> Result<GeneratedKeyPair, Error> {
    let bad = || {
        Error::malformed(
            CommandKind::GenerateKeyPair,
            "84 ID, 85 ID, 34 public key data",
            data,
        )
    };
    let mut out = GeneratedKeyPair {
        private_id: None,
        public_id: None,
        point: None,
    };
    if data.is_empty() {
        return Ok(out);
    }
    if let Some(p) = EcPoint::from_slice(data) {
        out.point = Some(p);
        return Ok(out);
    }
    for t in tlv::iter(data) {
        let t = t.map_err(|_| bad())?;
        match t.tag {
            0x84 => out.private_id = Some(t.value.to_vec()),
            0x85 => out.public_id = Some(t.value.to_vec()),
            0x34 | 0x49 => {
                out.point = Some(
                    EcPoint::parse_public_key_data(t.value, CommandKind::GenerateKeyPair)
                        .or_else(|_| {
                            EcPoint::parse_public_key_data(data, CommandKind::GenerateKeyPair)
                        })
                        .map_err(|_| bad())?,
                )
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A signature as the card returned it. [`CardSignature::to_rs`] and [`CardSignature::to_der`]
/// give it in the other shape ([`crate::signature`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardSignature {
    /// Raw `r ‖ s`, each half the curve size (the IoT.05 format).
    RawRs(Vec<u8>),
    /// ASN.1 DER `SEQUENCE { r, s }` (some applets, per Orange's comments), already checked to be
    /// strict DER: two positive minimal INTEGERs no longer than the curve size, nothing after.
    Der(Vec<u8>),
}

/// The wire form a signature answer came in (`docs/protocol.md#signature-forms`). Kept next to the signature
/// so that a later check against the public key can say which reading it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureForm {
    /// `33 00 40 r‖s`: tag `33` with a two-byte length (wolfSSL, ZARIOT, newer Thales).
    TwoByteLength,
    /// `33 40 r‖s`: tag `33` with a one-byte length (NTT, older Thales).
    OneByteLength,
    /// `r‖s` with no tag.
    Bare,
    /// A DER `SEQUENCE { r, s }` with no tag.
    Der,
    /// A DER `SEQUENCE { r, s }` inside a `33` TLV (one-byte, two-byte or BER length).
    DerWrapped,
}

impl core::fmt::Display for SignatureForm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SignatureForm::TwoByteLength => "33 with a two-byte length, r‖s",
            SignatureForm::OneByteLength => "33 with a one-byte length, r‖s",
            SignatureForm::Bare => "bare r‖s",
            SignatureForm::Der => "bare DER",
            SignatureForm::DerWrapped => "DER inside 33",
        })
    }
}

/// A signature answer, classified: the signature and the form it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// The signature.
    pub signature: CardSignature,
    /// How it was written on the wire.
    pub form: SignatureForm,
}

/// Field length of P-256 (and of brainpoolP256r1), in bytes.
pub const P256_FIELD_LEN: usize = 32;

/// Parses the answer to the last COMPUTE SIGNATURE Update for a P-256 key: see
/// [`parse_signature_for`] (with a field length of 32), whose form this drops.
pub fn parse_signature(data: &[u8]) -> Result<CardSignature, Error> {
    parse_signature_for(data, P256_FIELD_LEN).map(|p| p.signature)
}

/// Parses the answer to the last COMPUTE SIGNATURE Update for a key whose field is `field_len`
/// bytes long (32 for P-256; at most [`MAX_FIELD_LEN`]).
///
/// The one reader of the card's signature answers. The raw forms are recognised by their exact shape first, since they are what IoT.05 cards send:
/// `33 00 <2n> r‖s`, `33 <2n> r‖s` and a bare `r‖s` of `2n` bytes (`n` = `field_len`). Their
/// lengths differ, so a raw answer has exactly one reading, whatever bytes `r` starts with (a
/// random `r` starts `30 3E`, like a DER header, once in 65 536 signatures). Anything else must be
/// DER, bare or inside a `33` TLV, and strict ([`der_to_rs`]): a SEQUENCE of exactly two
/// positive, minimally encoded INTEGERs of at most `n` significant bytes, lengths consistent,
/// nothing after it.
pub fn parse_signature_for(data: &[u8], field_len: usize) -> Result<ParsedSignature, Error> {
    let bad = || Error::Malformed {
        command: CommandKind::ComputeSignature,
        expected: "33 00 <2n> r‖s, 33 <2n> r‖s or bare r‖s (n = field length), or strict DER \
                   SEQUENCE { r, s }, bare or in 33",
        got: format!(
            "{} for a {field_len}-byte field",
            shown_bytes(data, "signature")
        ),
    };
    if !(1..=MAX_FIELD_LEN).contains(&field_len) {
        return Err(bad());
    }
    let raw_len = 2 * field_len;
    let raw = |rs: &[u8], form| {
        Ok(ParsedSignature {
            signature: CardSignature::RawRs(rs.to_vec()),
            form,
        })
    };
    match data {
        [0x33, hi, lo, rs @ ..]
            if rs.len() == raw_len && usize::from(*hi) << 8 | usize::from(*lo) == raw_len =>
        {
            return raw(rs, SignatureForm::TwoByteLength)
        }
        [0x33, len, rs @ ..] if rs.len() == raw_len && usize::from(*len) == raw_len => {
            return raw(rs, SignatureForm::OneByteLength)
        }
        rs if rs.len() == raw_len => return raw(rs, SignatureForm::Bare),
        _ => {}
    }
    let der = |der: &[u8], form| {
        Ok(ParsedSignature {
            signature: CardSignature::Der(der.to_vec()),
            form,
        })
    };
    if der_to_rs(data, field_len).is_ok() {
        return der(data, SignatureForm::Der);
    }
    if data.first() == Some(&tlv::TAG_SIGNATURE) {
        // Every length form a `33` TLV may carry, as long as it spans the rest exactly.
        let rest = data.len().saturating_sub(2);
        let mut candidates: Vec<&[u8]> = Vec::new();
        if data.len() >= 2 && usize::from(data[1]) == rest {
            candidates.push(&data[2..]);
        }
        if data.len() >= 3 {
            let two = usize::from(data[1]) << 8 | usize::from(data[2]);
            if two == data.len() - 3 || (data[1] == 0x81 && usize::from(data[2]) == data.len() - 3)
            {
                candidates.push(&data[3..]);
            }
        }
        if let Some(inner) = candidates
            .into_iter()
            .find(|inner| der_to_rs(inner, field_len).is_ok())
        {
            return der(inner, SignatureForm::DerWrapped);
        }
    }
    Err(bad())
}

/// `"<n> bytes: <hex>"` for public data, abbreviated past 48 bytes.
fn shown_bytes(data: &[u8], what: &str) -> String {
    if data.is_empty() {
        return format!("no {what} bytes");
    }
    let shown = if data.len() > 48 {
        format!("{}…", crate::hexutil::encode(&data[..48]))
    } else {
        crate::hexutil::encode(data)
    };
    format!("{} bytes: {shown}", data.len())
}

/// The P-256 field prime p = 2^256 − 2^224 + 2^192 + 2^96 − 1, big-endian.
const P256_PRIME: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];

/// `x < P256_PRIME`, without a data-dependent branch (x is a shared secret).
fn below_p256_prime(x: &[u8; 32]) -> bool {
    // Subtract p from x byte by byte; x < p exactly when the subtraction borrows at the top.
    let mut borrow = 0u16;
    for (a, b) in x.iter().zip(P256_PRIME.iter()).rev() {
        let diff = u16::from(*a)
            .wrapping_sub(u16::from(*b))
            .wrapping_sub(borrow);
        borrow = (diff >> 15) & 1;
    }
    borrow == 1
}

/// Takes the shared secret from a COMPUTE DH answer.
///
/// Accepted: exactly `field_len` bytes (the x coordinate of d·Q, IoT.05's raw form), or one TLV
/// whose value is exactly `field_len` bytes and which spans the whole answer. For a 32-byte field
/// the value must also be below the P-256 prime (which is above brainpoolP256r1's, so a
/// brainpool x passes too).
///
/// Refused, with [`Error::Malformed`] (sizes only; the bytes are secret and never shown):
/// - anything shorter. A 20-byte answer is what a Java Card applet built on `ALG_EC_SVDP_DH`
///   returns: SHA-1 of x, not x, and padding it would make a wrong secret silently. A 31-byte
///   answer would be x with a leading zero byte stripped, but no card in the reference strips
///   (every source returns the full 32 bytes), and taking it would also take an answer cut short;
///   a card that stripped would fail 1 handshake in 256, visibly, with this error.
/// - anything longer that is not one TLV around exactly `field_len` bytes.
pub fn parse_shared_secret(data: &[u8], field_len: usize) -> Result<Vec<u8>, Error> {
    let refuse = |expected: &'static str, why: String| Error::Malformed {
        command: CommandKind::ComputeDh,
        expected,
        got: why,
    };
    if data.len() < field_len {
        let hint = if data.len() == 20 {
            "; 20 bytes is a SHA-1 digest: the applet may hash the secret (Java Card \
             ALG_EC_SVDP_DH) instead of returning x"
        } else if data.is_empty() {
            ""
        } else {
            "; a short answer is not padded: a cut or hashed secret would pass for x"
        };
        return Err(refuse(
            "the shared secret: the raw x coordinate, exactly the field length",
            format!(
                "{} bytes for a {field_len}-byte field (content redacted){hint}",
                data.len()
            ),
        ));
    }
    let raw = if data.len() == field_len {
        data
    } else {
        match tlv::read_one(data, 0) {
            Ok((t, used)) if used == data.len() && t.value.len() == field_len => t.value,
            _ => {
                return Err(refuse(
                    "the shared secret: the raw x coordinate, or one TLV wrapping exactly the \
                     field length",
                    format!(
                        "{} bytes for a {field_len}-byte field, not one such TLV (content \
                         redacted)",
                        data.len()
                    ),
                ))
            }
        }
    };
    if let Ok(x) = <&[u8; 32]>::try_from(raw) {
        if !below_p256_prime(x) {
            return Err(refuse(
                "the shared secret: an x coordinate below the field prime",
                String::from("32 bytes not below the P-256 prime (content redacted)"),
            ));
        }
    }
    Ok(raw.to_vec())
}
