//! The key exchange itself, with no scheduling: [`generate`] makes the ephemeral key pair on the
//! card (GENERATE KEY PAIR, one APDU), [`agree`] validates the peer's point and runs PUT PUBLIC
//! KEY + COMPUTE DH under one card lock ([`Card::ephemeral_agreement`]).

use super::validate_peer_point;
use crate::error::{card_failure, KxError};
use iotsafe_core::{Card, EphemeralKey, ObjectRef};
use rustls::crypto::SharedSecret;

/// GENERATE KEY PAIR in `slot`; the card's point is checked to be on P-256.
pub(crate) fn generate(card: &Card, slot: &ObjectRef) -> Result<EphemeralKey, rustls::Error> {
    let key = card
        .generate_ephemeral(slot)
        .map_err(|e| card_failure(format_args!("GENERATE KEY PAIR in {slot}"), e))?;
    // A card answering a point off the curve would only fail later, at the peer.
    if p256::PublicKey::from_sec1_bytes(key.key_pair.point.as_bytes()).is_err() {
        return Err(rustls::Error::General(format!(
            "IoT SAFE card, GENERATE KEY PAIR in {slot}: the card returned a point not on P-256"
        )));
    }
    Ok(key)
}

/// The shared secret of `key` and the peer's share `peer`. A key replaced on the card since it
/// was made is [`KxError::Replaced`]; `queued` says whether the slot queue was on (it names the
/// cause in the error).
pub(crate) fn agree(
    card: &Card,
    key: &EphemeralKey,
    peer_slot: &ObjectRef,
    peer: &[u8],
    queued: bool,
) -> Result<SharedSecret, rustls::Error> {
    let peer = validate_peer_point(peer)?;
    let secret = match card.ephemeral_agreement(key, peer_slot, &peer) {
        Ok(secret) => secret,
        Err(iotsafe_core::Error::StaleEphemeral { started, current }) => {
            return Err(KxError::Replaced {
                started,
                current,
                queued,
            }
            .into())
        }
        Err(e) => {
            let step = format_args!("ECDHE (PUT PUBLIC KEY into {peer_slot} + COMPUTE DH)");
            return Err(card_failure(step, e));
        }
    };
    if secret.len() != 32 {
        return Err(rustls::Error::General(format!(
            "IoT SAFE card, COMPUTE DH: expected a 32-byte shared secret, got {} bytes",
            secret.len()
        )));
    }
    // `secret` is Zeroizing and SharedSecret zeroizes its own copy on drop.
    Ok(SharedSecret::from(&secret[..]))
}
