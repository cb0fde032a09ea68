//! A software check of each signature the card returns, against the key's known public point.
//!
//! The card's answer comes in several wire forms (`33 00 40 r‖s`, `33 40 r‖s`, bare `r‖s`, DER),
//! and a misread form gives a signature that the peer rejects much later, as a failed handshake
//! with no hint of the cause. Verifying here costs one ECDSA verification on the host (measured
//! in `docs/performance.md`) and turns any misreading, or a card that signed with another key,
//! into a typed error at the card boundary.

use crate::commands::CardSignature;
use crate::objects::EcPoint;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};

/// True when `signature` is a valid P-256 ECDSA signature of `digest` under `public`.
///
/// `digest` is the hash the card signed (COMPUTE SIGNATURE mode 03, or the hash the card computed
/// in mode 01); a digest longer than 32 bytes is truncated as ECDSA prescribes. A signature that
/// is not a P-256 signature at all (wrong size, bad DER) is simply not valid.
pub fn verifies_p256(signature: &CardSignature, public: &EcPoint, digest: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_sec1_bytes(public.as_bytes()) else {
        return false;
    };
    let parsed = match signature {
        CardSignature::RawRs(rs) => Signature::from_slice(rs),
        CardSignature::Der(der) => Signature::from_der(der),
    };
    parsed.is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok())
}
