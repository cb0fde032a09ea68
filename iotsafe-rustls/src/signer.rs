//! The device key on the card as a rustls [`SigningKey`]: the CertificateVerify of every full
//! handshake is signed by the card.
//!
//! rustls hands [`Signer::sign`] the whole, unhashed message (130 bytes in TLS 1.3 with a SHA-256
//! suite, 146 bytes with `TLS13_AES_256_GCM_SHA384`, the transcript in TLS 1.2). The scheme
//! `ECDSA_NISTP256_SHA256` always means SHA-256, so the host hashes with SHA-256 and the card signs
//! the digest (COMPUTE SIGNATURE mode 03: two APDUs, three with the session close). The signature
//! is verified on the host against the key's public point ([`Card::sign_digest_checked`]), then
//! becomes minimal DER ([`iotsafe_core::CardSignature::to_der`]).

use crate::error::{card_failure, Error, Result};
use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use iotsafe_core::{Card, EcPoint, HashAlgorithm, ObjectRef};
use rustls::pki_types::{alg_id, SubjectPublicKeyInfoDer};
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use sha2::{Digest, Sha256};

/// The one scheme a P-256 card key can serve.
const SCHEME: SignatureScheme = SignatureScheme::ECDSA_NISTP256_SHA256;

/// A P-256 private key that stays on the card. Cheap to clone (it shares the card session).
#[derive(Clone)]
pub struct CardSigningKey {
    card: Arc<Card>,
    key: ObjectRef,
    point: EcPoint,
    spki: SubjectPublicKeyInfoDer<'static>,
    after_sign: Option<AfterSign>,
}

/// Called after each signature, when the card is free again (wired to the key exchange group's
/// deferred pre-generation).
pub type AfterSign = Arc<dyn Fn() + Send + Sync>;

impl CardSigningKey {
    /// Uses private key `key` on the card; its public key is read once (READ PUBLIC KEY, one
    /// APDU) and checked to be a valid P-256 point.
    pub fn new(card: Arc<Card>, key: ObjectRef) -> Result<Self> {
        let point = card
            .read_public_key(&key)
            .map_err(|e| Error::card(format!("reading the public key of {key}"), e))?;
        Self::with_public_key(card, key, point)
    }

    /// Uses private key `key` whose public point is already known (no APDU).
    pub fn with_public_key(card: Arc<Card>, key: ObjectRef, point: EcPoint) -> Result<Self> {
        if p256::PublicKey::from_sec1_bytes(point.as_bytes()).is_err() {
            return Err(Error::InvalidPublicKey { key });
        }
        let spki = rustls::sign::public_key_to_spki(&alg_id::ECDSA_P256, point.as_bytes());
        Ok(CardSigningKey {
            card,
            key,
            point,
            spki,
            after_sign: None,
        })
    }

    /// Runs `hook` after every signature (successful or not): the card is free again then.
    pub fn with_after_sign(mut self, hook: AfterSign) -> Self {
        self.after_sign = Some(hook);
        self
    }

    /// The key reference on the card.
    pub fn key_ref(&self) -> &ObjectRef {
        &self.key
    }

    /// The public point `04 ‖ X ‖ Y`.
    pub fn public_point(&self) -> &EcPoint {
        &self.point
    }

    /// The DER SubjectPublicKeyInfo of the card key.
    pub fn spki(&self) -> &SubjectPublicKeyInfoDer<'static> {
        &self.spki
    }

    /// The card session.
    pub fn card(&self) -> &Arc<Card> {
        &self.card
    }

    /// ECDSA P-256 with SHA-256 over `message` (hashed here, signed on the card), as minimal DER.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let digest = Sha256::digest(message);
        // Checked against the public point before it goes to rustls: a misread answer fails
        // here, typed, instead of as a handshake the peer rejects.
        // Where it stalls no other task of an async runtime (`crate::runtime`).
        let signature = crate::runtime::card_work(|| {
            self.card
                .sign_digest_checked(&self.key, HashAlgorithm::Sha256, &digest, &self.point)
        });
        if let Some(hook) = &self.after_sign {
            hook();
        }
        let signature = signature
            .map_err(|e| card_failure(format_args!("COMPUTE SIGNATURE with {}", self.key), e))?;
        signature.to_der().map_err(|e| {
            rustls::Error::General(format!(
                "IoT SAFE card, signature from {} unusable: {e}",
                self.key
            ))
        })
    }
}

impl fmt::Debug for CardSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The public point is public; there is no secret on the host to leak.
        f.debug_struct("CardSigningKey")
            .field("key", &self.key)
            .field("scheme", &SCHEME)
            .finish_non_exhaustive()
    }
}

impl SigningKey for CardSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        if offered.contains(&SCHEME) {
            Some(Box::new(CardSigner { key: self.clone() }))
        } else {
            tracing::debug!(
                ?offered,
                "peer does not offer ECDSA_NISTP256_SHA256; the card key cannot sign"
            );
            None
        }
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(self.spki.clone())
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

/// One signing operation with the card key, for the scheme rustls chose.
pub struct CardSigner {
    key: CardSigningKey,
}

impl fmt::Debug for CardSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardSigner")
            .field("key", &self.key.key)
            .field("scheme", &SCHEME)
            .finish()
    }
}

impl Signer for CardSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key.sign_message(message)
    }

    fn scheme(&self) -> SignatureScheme {
        SCHEME
    }
}
