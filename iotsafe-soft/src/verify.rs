//! ECDSA P-256 signature verification for webpki (the server's certificate chain) and for the
//! server's TLS 1.3 CertificateVerify.
//!
//! Only NIST P-256 keys: a chain of P-256 ECDSA certificates is what the firmware verifies.
//! Certificates signed with SHA-256 by default, and with SHA-384 on request
//! ([`SUPPORTED_SIG_ALGS_WITH_SHA384`]); in CertificateVerify, TLS 1.3 binds P-256 to SHA-256
//! (`ecdsa_secp256r1_sha256`), the only scheme offered. Every malformed key or signature is an
//! [`InvalidSignature`], never a panic.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};
use rustls::SignatureScheme;
use sha2::{Digest, Sha256, Sha384};

/// ECDSA with a P-256 key over SHA-256 (`ecdsa-with-SHA256`): certificates and CertificateVerify.
pub static ECDSA_P256_SHA256: &dyn SignatureVerificationAlgorithm = &EcdsaP256Sha256;

/// ECDSA with a P-256 key over SHA-384 (`ecdsa-with-SHA384`), for certificates.
///
/// Not in [`SUPPORTED_SIG_ALGS`]: SHA-384 is SHA-512's compression function in software, about
/// 28 KB of Cortex-M code at `opt-level = "s"`, for a combination (a P-256 CA signing with
/// SHA-384) few chains use. A firmware whose CA does that uses [`SUPPORTED_SIG_ALGS_WITH_SHA384`]
/// instead; left unused, neither costs anything.
pub static ECDSA_P256_SHA384: &dyn SignatureVerificationAlgorithm = &EcdsaP256Sha384;

/// What [`crate::provider`] verifies: P-256 certificates signed with SHA-256, and
/// `ecdsa_secp256r1_sha256`, the only signature scheme offered to the server.
pub static SUPPORTED_SIG_ALGS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[ECDSA_P256_SHA256],
    mapping: &[(SignatureScheme::ECDSA_NISTP256_SHA256, &[ECDSA_P256_SHA256])],
};

/// [`SUPPORTED_SIG_ALGS`] and P-256 certificates signed with SHA-384: set it as the provider's
/// `signature_verification_algorithms` when the server's CA signs that way.
pub static SUPPORTED_SIG_ALGS_WITH_SHA384: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[ECDSA_P256_SHA256, ECDSA_P256_SHA384],
    mapping: &[(SignatureScheme::ECDSA_NISTP256_SHA256, &[ECDSA_P256_SHA256])],
};

#[derive(Debug)]
struct EcdsaP256Sha256;

impl SignatureVerificationAlgorithm for EcdsaP256Sha256 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        verify_p256::<Sha256>(public_key, message, signature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA256
    }
}

#[derive(Debug)]
struct EcdsaP256Sha384;

impl SignatureVerificationAlgorithm for EcdsaP256Sha384 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        verify_p256::<Sha384>(public_key, message, signature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA384
    }
}

/// `public_key` is the subjectPublicKey of a P-256 SubjectPublicKeyInfo: an uncompressed SEC1
/// point (compressed points are refused, as webpki's own ECDSA does); `signature` is the DER
/// `Ecdsa-Sig-Value`.
fn verify_p256<D: Digest>(
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), InvalidSignature> {
    if public_key.len() != 65 || public_key[0] != 0x04 {
        return Err(InvalidSignature);
    }
    // Refuses points that are not on the curve, and the identity.
    let key = VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
    // Refuses r or s that are zero or not below the group order, and bad DER.
    let signature = Signature::from_der(signature).map_err(|_| InvalidSignature)?;
    // A digest longer than the group order is cut to its leftmost 256 bits (FIPS 186-5).
    key.verify_prehash(&D::digest(message), &signature)
        .map_err(|_| InvalidSignature)
}
