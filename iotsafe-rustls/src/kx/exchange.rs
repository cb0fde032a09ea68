//! The key exchange itself, with no scheduling: the key for a turn on a slot (the one made ahead
//! of time, confirmed on the card, or a fresh one: GENERATE KEY PAIR), and the agreement: the
//! peer's point checked on the host, then PUT PUBLIC KEY + COMPUTE DH in one card step
//! ([`Card::ephemeral_agreement`]).

use super::validate_peer_point;
use crate::error::{card_failure, KxError};
use crate::runtime::card_work;
use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use iotsafe_core::{Card, EphemeralKey, ObjectRef};
use rustls::crypto::{ActiveKeyExchange, SharedSecret};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::NamedGroup;

/// `key`, fresh from GENERATE KEY PAIR in `slot`, if its point is on P-256: a card answering a
/// point off the curve would only fail later, at the peer.
pub(crate) fn checked_key(
    slot: &ObjectRef,
    key: EphemeralKey,
) -> Result<EphemeralKey, rustls::Error> {
    if p256::PublicKey::from_sec1_bytes(key.key_pair.point.as_bytes()).is_err() {
        return Err(rustls::Error::General(format!(
            "IoT SAFE card, GENERATE KEY PAIR in {slot}: the card returned a point not on P-256"
        )));
    }
    Ok(key)
}

/// The turn an exchange holds on its slot (with `std`, the card's slot queue); without an OS
/// there is no queue, and never a turn.
#[cfg(feature = "std")]
type Turn = iotsafe_core::slots::SlotTurn;
#[cfg(not(feature = "std"))]
type Turn = core::convert::Infallible;

/// One key exchange in progress: the card's ephemeral key, and (queued) the turn on its slot,
/// released when the exchange completes or is dropped.
pub struct CardKeyExchange {
    card: Arc<Card>,
    peer_slot: ObjectRef,
    key: EphemeralKey,
    pub_key: Vec<u8>,
    turn: Option<Turn>,
}

impl CardKeyExchange {
    pub(crate) fn new(
        card: Arc<Card>,
        peer_slot: ObjectRef,
        key: EphemeralKey,
        turn: Option<Turn>,
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
