//! The TLS 1.3 record protection: AES-128-GCM and ChaCha20-Poly1305 as rustls's
//! [`Tls13AeadAlgorithm`], and the two cipher suites built on them with SHA-256.
//!
//! Each direction of a connection holds one cipher instance, keyed once. When it is dropped the
//! AES key schedule and the GHASH key are wiped, and so is the ChaCha20-Poly1305 key; the
//! per-record ChaCha20 and Poly1305 states are wiped after each record (the `zeroize` features
//! of `aes`, `ghash`, `polyval`, `poly1305` and `chacha20`, turned on in Cargo.toml). rustls wipes
//! the [`AeadKey`] it hands over. Both ciphers are constant-time software (fixsliced AES, no
//! table lookups).

use alloc::boxed::Box;

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes128Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use rustls::crypto::cipher::{
    make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter,
    MessageEncrypter, Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::{
    CipherSuite, CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion,
    SupportedCipherSuite, Tls13CipherSuite,
};

/// TLS_AES_128_GCM_SHA256 (RFC 8446, B.4).
pub static TLS13_AES_128_GCM_SHA256: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
            hash_provider: crate::hash::SHA256,
            // RFC 8446, 5.5: at most 2^24.5 full-size records under one AES-GCM key.
            confidentiality_limit: 1 << 24,
        },
        hkdf_provider: crate::hmac::HKDF_SHA256,
        aead_alg: AES_128_GCM,
        quic: None,
    });

/// TLS_CHACHA20_POLY1305_SHA256 (RFC 8446, B.4).
pub static TLS13_CHACHA20_POLY1305_SHA256: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            hash_provider: crate::hash::SHA256,
            // RFC 8446, 5.5: ChaCha20-Poly1305 has no practical limit.
            confidentiality_limit: u64::MAX,
        },
        hkdf_provider: crate::hmac::HKDF_SHA256,
        aead_alg: CHACHA20_POLY1305,
        quic: None,
    });

/// AES-128-GCM (NIST SP 800-38D) for TLS 1.3 records.
pub static AES_128_GCM: &dyn Tls13AeadAlgorithm = &Aes128GcmAead;

/// ChaCha20-Poly1305 (RFC 8439) for TLS 1.3 records.
pub static CHACHA20_POLY1305: &dyn Tls13AeadAlgorithm = &Chacha20Poly1305Aead;

/// What both ciphers are: keyed from a slice, sealing in place with a 96-bit nonce and a
/// 128-bit tag.
trait RecordCipher: KeyInit + AeadInPlace<NonceSize = U12, TagSize = U16> + Send + Sync {}

impl<C: KeyInit + AeadInPlace<NonceSize = U12, TagSize = U16> + Send + Sync> RecordCipher for C {}

const TAG_LEN: usize = 16;

struct Aes128GcmAead;

impl Tls13AeadAlgorithm for Aes128GcmAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        encrypter::<Aes128Gcm>(&key, iv)
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        decrypter::<Aes128Gcm>(&key, iv)
    }

    fn key_len(&self) -> usize {
        16
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(ConnectionTrafficSecrets::Aes128Gcm { key, iv })
    }
}

struct Chacha20Poly1305Aead;

impl Tls13AeadAlgorithm for Chacha20Poly1305Aead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        encrypter::<ChaCha20Poly1305>(&key, iv)
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        decrypter::<ChaCha20Poly1305>(&key, iv)
    }

    fn key_len(&self) -> usize {
        32
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv })
    }
}

fn encrypter<C: RecordCipher + 'static>(key: &AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
    match C::new_from_slice(key.as_ref()) {
        Ok(cipher) => Box::new(Tls13Record { cipher, iv }),
        // rustls always hands over `key_len()` bytes; should it not, the connection fails
        // instead of the firmware panicking.
        Err(_) => Box::new(WrongKeyLength),
    }
}

fn decrypter<C: RecordCipher + 'static>(key: &AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
    match C::new_from_slice(key.as_ref()) {
        Ok(cipher) => Box::new(Tls13Record { cipher, iv }),
        Err(_) => Box::new(WrongKeyLength),
    }
}

/// One direction of a connection: the keyed cipher and the static IV the per-record nonces are
/// made from (RFC 8446, 5.3).
struct Tls13Record<C> {
    cipher: C,
    iv: Iv,
}

impl<C: RecordCipher> MessageEncrypter for Tls13Record<C> {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        // TLSInnerPlaintext: content, then the real content type; no padding.
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());

        let nonce = Nonce::new(&self.iv, seq).0.into();
        let aad = make_tls13_aad(total_len);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce, &aad, payload.as_mut())
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);

        // Every TLS 1.3 protected record says application_data, TLS 1.2 (RFC 8446, 5.2).
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl<C: RecordCipher> MessageDecrypter for Tls13Record<C> {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        let Some(plain_len) = payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };

        let nonce = Nonce::new(&self.iv, seq).0.into();
        let aad = make_tls13_aad(payload.len());
        let (ciphertext, tag) = payload.split_at_mut(plain_len);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::DecryptError)?;
        self.cipher
            .decrypt_in_place_detached(&nonce, &aad, ciphertext, &tag.into())
            .map_err(|_| Error::DecryptError)?;

        payload.truncate(plain_len);
        // Strips the padding and reads the real content type.
        msg.into_tls13_unpadded_message()
    }
}

/// Stands in for a cipher that could not be keyed: every record fails.
struct WrongKeyLength;

impl MessageEncrypter for WrongKeyLength {
    fn encrypt(
        &mut self,
        _msg: OutboundPlainMessage<'_>,
        _seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        Err(Error::EncryptError)
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl MessageDecrypter for WrongKeyLength {
    fn decrypt<'a>(
        &mut self,
        _msg: InboundOpaqueMessage<'a>,
        _seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        Err(Error::DecryptError)
    }
}
