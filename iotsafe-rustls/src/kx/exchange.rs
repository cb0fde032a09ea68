//! The key exchange itself, with no scheduling: the key for a turn on a slot (the one made ahead
//! of time, confirmed on the card, or a fresh one: GENERATE KEY PAIR), and the agreement: the
//! peer's point checked on the host, then PUT PUBLIC KEY + COMPUTE DH in one card step
//! ([`Card::ephemeral_agreement`]).

use super::validate_peer_point;
use crate::error::{card_failure, KxError};
use crate::runtime::card_work;
use iotsafe_core::slots::SlotTurn;
use iotsafe_core::{Card, EphemeralKey, ObjectRef};
use rustls::crypto::{ActiveKeyExchange, SharedSecret};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::NamedGroup;
use std::fmt;
use std::sync::Arc;

/// The key for this turn: the one made ahead of time if the card still holds it (one READ PUBLIC
/// KEY), else a fresh one.
pub(crate) fn key_for(card: &Card, turn: &mut SlotTurn) -> Result<EphemeralKey, rustls::Error> {
    if let Some(key) = turn.take_ready() {
        let step = "READ PUBLIC KEY (confirming the ephemeral key made ahead of time)";
        if card
            .confirm_ephemeral(&key)
            .map_err(|e| card_failure(step, e))?
        {
            return Ok(key);
        }
        tracing::debug!("the ephemeral key made ahead of time is gone (card reset, or replaced); generating a fresh one");
    }
    let slot = turn.slot().clone();
    let key = card
        .generate_ephemeral_in(turn)
        .map_err(|e| card_failure(format_args!("GENERATE KEY PAIR in {slot}"), e))?;
    // A card answering a point off the curve would only fail later, at the peer.
    if p256::PublicKey::from_sec1_bytes(key.key_pair.point.as_bytes()).is_err() {
        return Err(rustls::Error::General(format!(
            "IoT SAFE card, GENERATE KEY PAIR in {slot}: the card returned a point not on P-256"
        )));
    }
    Ok(key)
}

/// One key exchange in progress: the card's ephemeral key, and (queued) the turn on its slot,
/// released when the exchange completes or is dropped.
pub struct CardKeyExchange {
    card: Arc<Card>,
    peer_slot: ObjectRef,
    key: EphemeralKey,
    pub_key: Vec<u8>,
    turn: Option<SlotTurn>,
}

impl CardKeyExchange {
    pub(crate) fn new(
        card: Arc<Card>,
        peer_slot: ObjectRef,
        key: EphemeralKey,
        turn: Option<SlotTurn>,
    ) -> CardKeyExchange {
        CardKeyExchange {
            pub_key: key.key_pair.point.as_bytes().to_vec(),
            card,
            peer_slot,
            key,
            turn,
        }
    }

    /// The session's generation of this exchange's key.
    pub fn generation(&self) -> u64 {
        self.key.generation
    }
}

impl fmt::Debug for CardKeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardKeyExchange")
            .field("generation", &self.key.generation)
            .field("slot", &self.key.key_pair.private)
            .field("queued", &self.turn.is_some())
            .finish_non_exhaustive()
    }
}

impl ActiveKeyExchange for CardKeyExchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer = validate_peer_point(peer_pub_key)?;
        let queued = self.turn.is_some();
        let agreed = card_work(|| {
            self.card
                .ephemeral_agreement(&self.key, &self.peer_slot, &peer)
        });
        // Dropping `self` releases the turn: the next handshake may generate its key.
        let secret = agreed.map_err(|e| match e {
            iotsafe_core::Error::StaleEphemeral { started, current } => KxError::Replaced {
                started,
                current,
                queued,
            }
            .into(),
            iotsafe_core::Error::SlotTakenOver { slot } => {
                KxError::TakenOver { slot, queued }.into()
            }
            e => card_failure(
                format_args!(
                    "ECDHE (PUT PUBLIC KEY into {} + COMPUTE DH)",
                    self.peer_slot
                ),
                e,
            ),
        })?;
        if secret.len() != 32 {
            return Err(rustls::Error::General(format!(
                "IoT SAFE card, COMPUTE DH: expected a 32-byte shared secret, got {} bytes",
                secret.len()
            )));
        }
        // `secret` is Zeroizing and SharedSecret zeroizes its own copy on drop.
        Ok(SharedSecret::from(&secret[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.pub_key
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}
