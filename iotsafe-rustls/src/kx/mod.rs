//! ECDHE on the card: a rustls [`SupportedKxGroup`] for secp256r1 whose ephemeral key pair lives in
//! the card's volatile key slot and whose shared secret is computed by the card.
//!
//! Three small parts:
//! * the key exchange itself (`exchange.rs`): [`SupportedKxGroup::start`] takes the key for its
//!   turn (GENERATE KEY PAIR, one APDU, inside `ClientConnection::new`, or the key made ahead of
//!   time), [`ActiveKeyExchange::complete`] validates the server's point, then PUT PUBLIC KEY
//!   (Init, Update, close) and COMPUTE DH run as one card step;
//! * the turns (`turns.rs`): how `start()` gets its turn on a slot, wherever rustls calls it from
//!   ([`crate::runtime`]); the queue itself is the card's ([`iotsafe_core::slots`]), shared by
//!   every thread, async task and program that uses the card;
//! * the pool (`pool.rs`): one `'static` group per card, reused across `build()` calls.
//!
//! # Slots, many handshakes
//! A card has one ephemeral key slot, or a few, and every key generation in a slot replaces its
//! key. By default ([`KxOptions::queue_for_slot`] = `Some(`[`DEFAULT_SLOT_LEASE`]`)`), a key
//! exchange holds a slot from `start()` until it completes or is dropped, and a `start()` that
//! finds every slot held waits its turn: first come, first served across every user of the card
//! (other programs included), so every concurrent handshake succeeds and none starves. A holder
//! that keeps its slot past the lease (a handshake stuck on a silent peer) is overtaken by the
//! next in line, so the wait is bounded; the stuck handshake then fails with
//! [`KxError::TakenOver`].
//!
//! A slot is held across the network round trip between the ClientHello and the server's answer.
//! With one slot, that round trip idles the card for every handshake waiting behind it; with
//! several ([`KxOptions::every_ephemeral_slot`], on by default, takes every volatile key pair the
//! card lists for key generation and key agreement) the card generates the next handshake's key
//! meanwhile (`docs/performance.md`, row 4s).
//!
//! Where `start()` waits depends on where rustls runs it ([`crate::runtime`]): on an OS thread it
//! blocks; on a multi-thread tokio runtime it blocks in place (the runtime moves its other tasks
//! away); on a `current_thread` runtime it never waits: it takes a free slot or a key made ahead
//! of time, else makes that one handshake's ECDHE key on the host
//! ([`KxOptions::host_ecdhe_when_busy`]; the signature stays on the card). The async connector
//! ([`crate::CardConnector`], feature `tokio`) waits without blocking any thread and runs the card
//! work on the blocking pool, so it never needs that. With `queue_for_slot: None`
//! ([`KxOptions::unqueued`]) nothing waits, and a handshake whose slot another one took fails with
//! [`KxError::TakenOver`].
//!
//! Two checks back all this up, before anything is sent: the slot's epoch in the card's queue
//! (nobody, in any program, was granted the slot since the key was made:
//! [`iotsafe_core::Error::SlotTakenOver`]), and the session's generations (no key generation in
//! the slot on this session, no reset or lost connection since: [`iotsafe_core::Error::StaleEphemeral`],
//! [`Card::ephemeral_is_current`]).
//!
//! # Pre-generation
//! With [`KxOptions::pregenerate`], the next key is generated in a background thread when the
//! card is idle: when the group is set up, and after each handshake's CertificateVerify was
//! signed ([`CardKxGroup::pregenerate_in_background`], wired by [`crate::IotSafeTls`] to its card
//! signer). Started right after the DH instead, it would hold the card while the signature waits
//! (`docs/performance.md`, row 2c). The background generation takes a turn like a key exchange,
//! but only when nobody (in any program) holds or waits for a slot; a key made ahead is handed
//! out only if nobody was granted its slot since, and after one READ PUBLIC KEY confirms the card
//! still holds it (a reset by another program, or one the session never saw, wipes it). A
//! handshake that signs nothing (no CertificateRequest, resumption) leaves the next one to
//! generate its own key.
//!
//! # `'static` without a leak per config
//! rustls wants `&'static dyn SupportedKxGroup`. [`CardKxGroup::for_card`] returns the group of a
//! card from a process-wide pool: the same group for every `build()` on the same `Arc<Card>`, a
//! group whose card was dropped is re-targeted (with fresh scheduling state) to the next card,
//! and only otherwise is a new one leaked. A group holds only a `Weak<Card>`, so it never keeps
//! a card (and its logical channel) alive; the configs do, through the card signer.
//!
//! [`SupportedKxGroup`]: rustls::crypto::SupportedKxGroup
//! [`SupportedKxGroup::start`]: rustls::crypto::SupportedKxGroup::start
//! [`ActiveKeyExchange::complete`]: rustls::crypto::ActiveKeyExchange::complete
//! [`KxError::TakenOver`]: crate::KxError::TakenOver
//! [`Card::ephemeral_is_current`]: iotsafe_core::Card::ephemeral_is_current

mod exchange;
#[cfg(feature = "std")]
mod group;
mod plain;
#[cfg(feature = "std")]
mod pool;
#[cfg(feature = "std")]
mod turns;

pub use exchange::CardKeyExchange;
#[cfg(feature = "std")]
pub use group::*;
pub use plain::PlainCardKxGroup;
#[cfg(feature = "tokio")]
pub(crate) use turns::with_prepared;

use iotsafe_core::EcPoint;
use rustls::PeerMisbehaved;

/// Checks a peer's secp256r1 key share: exactly 65 bytes, uncompressed (`04`), on the curve.
/// Anything else is [`PeerMisbehaved::InvalidKeyShare`] (rustls answers `illegal_parameter`), and
/// nothing is sent to the card.
pub fn validate_peer_point(peer: &[u8]) -> Result<EcPoint, rustls::Error> {
    let point = EcPoint::from_slice(peer).ok_or(PeerMisbehaved::InvalidKeyShare)?;
    p256::PublicKey::from_sec1_bytes(point.as_bytes())
        .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
    Ok(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator_point() -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        p256::AffinePoint::GENERATOR
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    fn is_invalid_share(r: Result<EcPoint, rustls::Error>) -> bool {
        matches!(
            r,
            Err(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::InvalidKeyShare
            ))
        )
    }

    #[test]
    fn accepts_an_uncompressed_point_on_the_curve() {
        let g = generator_point();
        assert_eq!(g.len(), 65);
        assert_eq!(validate_peer_point(&g).unwrap().as_bytes()[..], g[..]);
    }

    #[test]
    fn refuses_wrong_length_compressed_and_off_curve_points() {
        let g = generator_point();
        assert!(is_invalid_share(validate_peer_point(&g[..64])));
        let mut long = g.clone();
        long.push(0);
        assert!(is_invalid_share(validate_peer_point(&long)));
        assert!(is_invalid_share(validate_peer_point(&[])));
        // Compressed form of G (33 bytes) is legal SEC1 but not a TLS 1.3 secp256r1 share.
        let mut compressed = vec![0x02 | (g[64] & 1)];
        compressed.extend_from_slice(&g[1..33]);
        assert!(p256::PublicKey::from_sec1_bytes(&compressed).is_ok());
        assert!(is_invalid_share(validate_peer_point(&compressed)));
        // Hybrid prefix 06/07 and a wrong prefix.
        let mut hybrid = g.clone();
        hybrid[0] = 0x06 | (g[64] & 1);
        assert!(is_invalid_share(validate_peer_point(&hybrid)));
        // Off the curve: flip one bit of Y.
        let mut off = g.clone();
        off[64] ^= 1;
        assert!(is_invalid_share(validate_peer_point(&off)));
        // All-zero X and Y.
        let mut zero = vec![0u8; 65];
        zero[0] = 4;
        assert!(is_invalid_share(validate_peer_point(&zero)));
    }
}
