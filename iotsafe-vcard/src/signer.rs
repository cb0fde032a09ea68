//! ECDSA P-256 signing with a nonce the card picks so that `r‖s` begins with given bytes
//! ([`crate::Quirks::signature_prefix`]): a valid signature that is just unlucky, e.g. one whose bare
//! `r‖s` starts like a DER header (`30 3E`) or a `33` TLV (`33 3E`).
//!
//! The search keeps a batch of candidate points `k·G, (k+1)·G, …, (k+B−1)·G` in affine
//! coordinates and moves the whole batch on by `B·G` each round: B independent affine additions of
//! the same point, whose B field inversions are shared by Montgomery's trick (one inversion and
//! three multiplications each). A two-byte prefix takes about 65 000 candidates, well under a second
//! even in a debug build. A card for tests only: a real card must never bias its nonces.

use p256::ecdsa::Signature;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::elliptic_curve::Field;
use p256::{AffinePoint, FieldBytes, FieldElement, ProjectivePoint, Scalar, U256};
use rand_core::OsRng;

/// Candidates moved on together (one inversion per round).
const BATCH: usize = 256;
/// Give up after this many candidates: 256 times the expected count for a two-byte prefix, so a
/// failure (answered `6F00`) is practically impossible.
const MAX_CANDIDATES: u64 = 1 << 24;

/// A point in affine coordinates as two field elements.
#[derive(Clone, Copy)]
struct Affine {
    x: FieldElement,
    y: FieldElement,
}

impl Affine {
    /// `None` for the point at infinity.
    fn from_point(point: &AffinePoint) -> Option<Affine> {
        let encoded = point.to_encoded_point(false);
        let x = Option::from(FieldElement::from_bytes(encoded.x()?))?;
        let y = Option::from(FieldElement::from_bytes(encoded.y()?))?;
        Some(Affine { x, y })
    }
}

/// Signs `digest` (16..=64 bytes, the leftmost 32 used as ECDSA's `z`) with the scalar `secret`,
/// choosing the nonce so that `r‖s` begins with `prefix`. `None` if `secret` is not a valid scalar
/// or no nonce was found.
pub(crate) fn sign_with_prefix(secret: &[u8], digest: &[u8], prefix: &[u8]) -> Option<Signature> {
    let d = *p256::SecretKey::from_slice(secret)
        .ok()?
        .to_nonzero_scalar()
        .as_ref();
    let z = digest_scalar(digest)?;
    let step =
        Affine::from_point(&(ProjectivePoint::GENERATOR * Scalar::from(BATCH as u64)).into())?;
    let mut tried = 0u64;
    // A round that meets a degenerate addition (probability about 2^-240) starts over elsewhere.
    'restart: while tried < MAX_CANDIDATES {
        let k = Scalar::random(&mut OsRng);
        let mut batch = first_batch(k)?;
        let mut base = k;
        while tried < MAX_CANDIDATES {
            let mut nonce = base;
            for point in &batch {
                let x = point.x.to_bytes();
                if x.starts_with(prefix) {
                    if let Some(signature) = finish(d, z, nonce, &x, prefix) {
                        return Some(signature);
                    }
                }
                nonce += Scalar::ONE;
            }
            base = nonce;
            tried += BATCH as u64;
            if !advance(&mut batch, &step) {
                continue 'restart;
            }
        }
    }
    None
}

/// `k·G … (k+B−1)·G` in affine coordinates.
fn first_batch(k: Scalar) -> Option<Vec<Affine>> {
    let mut point = ProjectivePoint::GENERATOR * k;
    let mut out = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        out.push(Affine::from_point(&point.to_affine())?);
        point += AffinePoint::GENERATOR;
    }
    Some(out)
}

/// Adds `step` to every point of `batch` (affine addition, inversions batched). False when some
/// point equals ±`step` (the shared inversion fails); the batch is then garbage.
fn advance(batch: &mut [Affine], step: &Affine) -> bool {
    // Montgomery's trick: prefix products of the denominators, one inversion, then back.
    let mut prefix = Vec::with_capacity(batch.len());
    let mut acc = FieldElement::ONE;
    for point in batch.iter() {
        prefix.push(acc);
        acc *= step.x - point.x;
    }
    let Some(mut inv) = Option::<FieldElement>::from(acc.invert()) else {
        return false;
    };
    for (point, before) in batch.iter_mut().zip(prefix).rev() {
        let denominator = step.x - point.x;
        let inv_this = inv * before;
        inv *= denominator;
        let lambda = (step.y - point.y) * inv_this;
        let x = lambda.square() - point.x - step.x;
        let y = lambda * (point.x - x) - point.y;
        *point = Affine { x, y };
    }
    true
}

/// The signature for nonce `k` whose point has x-coordinate `x`, if `r` keeps the prefix (it does
/// unless x ≥ n) and neither `r` nor `s` is zero.
fn finish(d: Scalar, z: Scalar, k: Scalar, x: &FieldBytes, prefix: &[u8]) -> Option<Signature> {
    let r = <Scalar as Reduce<U256>>::reduce_bytes(x);
    if !r.to_bytes().starts_with(prefix) {
        return None;
    }
    let k_inv = Option::<Scalar>::from(k.invert())?;
    let s = k_inv * (z + r * d);
    Signature::from_scalars(r, s).ok()
}

/// ECDSA's `z`: the leftmost 256 bits of the digest (left-padded when shorter), reduced mod n.
fn digest_scalar(digest: &[u8]) -> Option<Scalar> {
    if !(16..=64).contains(&digest.len()) {
        return None;
    }
    let mut bytes = FieldBytes::default();
    let take = digest.len().min(32);
    let src = digest.get(..take)?;
    bytes.get_mut(32 - take..)?.copy_from_slice(src);
    Some(<Scalar as Reduce<U256>>::reduce_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::ecdsa::VerifyingKey;

    #[test]
    fn prefixed_signatures_verify() {
        let secret = p256::SecretKey::random(&mut OsRng);
        let key = VerifyingKey::from(secret.public_key());
        for (digest, prefix) in [
            (vec![0x11u8; 32], vec![0x30, 0x3E]),
            (vec![0x22u8; 48], vec![0x33]),
            (vec![0x33u8; 20], vec![0x00, 0x01]),
        ] {
            let sig = sign_with_prefix(&secret.to_bytes(), &digest, &prefix).unwrap();
            assert!(sig.to_bytes().starts_with(&prefix));
            key.verify_prehash(&digest, &sig).unwrap();
        }
        assert!(sign_with_prefix(&[0u8; 32], &[0u8; 32], &[0x30]).is_none());
        assert!(sign_with_prefix(&secret.to_bytes(), &[0u8; 8], &[0x30]).is_none());
    }
}
