//! HMAC-SHA256 as rustls's [`Hmac`], and HKDF-SHA256 built on it by rustls's own
//! [`HkdfUsingHmac`] (RFC 5869), which the TLS 1.3 key schedule runs on.
//!
//! The `hmac` crate keeps the keyed inner and outer hash states and offers no zeroizing; they
//! live as long as rustls holds the key (one key-schedule step, or a connection's traffic secret).

use alloc::boxed::Box;

use ::hmac::{Hmac as HmacOf, Mac};
use rustls::crypto::hmac::{Hmac, Key, Tag};
use rustls::crypto::tls13::{Hkdf, HkdfUsingHmac};
use sha2::Sha256;

/// HMAC-SHA256 (RFC 2104).
pub static HMAC_SHA256: &dyn Hmac = &HmacSha256;

/// HKDF-SHA256 (RFC 5869): rustls's HKDF over [`HMAC_SHA256`].
pub static HKDF_SHA256: &dyn Hkdf = &HkdfUsingHmac(&HmacSha256);

struct HmacSha256;

impl Hmac for HmacSha256 {
    fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
        // HMAC takes a key of any length (longer ones are hashed first): this never fails.
        let mac = <HmacOf<Sha256> as Mac>::new_from_slice(key)
            .expect("HMAC accepts keys of every length");
        Box::new(HmacSha256Key(mac))
    }

    fn hash_output_len(&self) -> usize {
        32
    }
}

struct HmacSha256Key(HmacOf<Sha256>);

impl Key for HmacSha256Key {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut mac = self.0.clone();
        mac.update(first);
        for part in middle {
            mac.update(part);
        }
        mac.update(last);
        Tag::new(&mac.finalize().into_bytes())
    }

    fn tag_len(&self) -> usize {
        32
    }
}
