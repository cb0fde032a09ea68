//! Keys: generating pairs, reading and putting public keys, and the ephemeral key of a key
//! exchange with its agreement.

use super::{Closed, Op};
use crate::card::session::Session;
use crate::card::{Card, EphemeralKey, KeyPair};
use crate::commands::{self, GeneratedKeyPair};
use crate::error::{CommandKind, Error};
use crate::link::Secrecy;
use crate::objects::{EcPoint, ObjectRef};
use crate::prelude::*;
use crate::stats::Operation;
use zeroize::Zeroizing;

impl Card {
    /// GENERATE KEY PAIR on `key`. The IDs the card returns are authoritative; when the answer has
    /// no public key, it is read with READ PUBLIC KEY. An ephemeral key of a key exchange in
    /// progress in the same slot is retired (its agreement fails with [`Error::StaleEphemeral`]).
    ///
    /// For a volatile slot that key exchanges use, take a turn first and use
    /// [`Card::generate_ephemeral_in`]: this method does not queue.
    pub fn generate_key_pair(&self, key: &ObjectRef) -> Result<KeyPair, Error> {
        let mut s = self.lock();
        s.ephemeral.retire(key);
        let key_pair = s.generate(key)?;
        s.ephemeral.generated(&key_pair.private);
        Ok(key_pair)
    }

    /// READ PUBLIC KEY.
    pub fn read_public_key(&self, key: &ObjectRef) -> Result<EcPoint, Error> {
        let mut s = self.lock();
        if let Some(point) = s.preloaded.public_key(key) {
            return Ok(*point);
        }
        let point = s.run(Operation::ReadPublicKey, |op| op.read_public(key))?;
        // Kept only for a persistent key pair: a volatile one changes at every generation.
        if crate::card::public::is_persistent_key(s.objects.as_deref(), key) {
            s.public.remember_key(key, &point);
        }
        Ok(point)
    }

    /// PUT PUBLIC KEY: Init, Update, and close if configured. A low-level step: an agreement
    /// ([`Card::ephemeral_agreement`], [`Card::key_agreement`]) puts the peer's point and computes
    /// the DH in one step that no other user of the card can come between.
    pub fn put_public_key(&self, slot: &ObjectRef, point: &EcPoint) -> Result<(), Error> {
        let mut s = self.lock();
        let put = s.run(Operation::PutPublicKey, |op| op.put_public(slot, point))?;
        s.keep(put);
        Ok(())
    }

    /// Generates a fresh ephemeral key pair in `slot` at once, retiring the key the slot held.
    /// Keys in other slots stay usable: a card with several volatile key slots runs one key
    /// exchange in each at once.
    ///
    /// This does not wait for the slot: a key exchange of another thread or program holding it is
    /// taken over (its agreement then fails cleanly). Key exchanges that take turns wait for a
    /// [`SlotTurn`](crate::slots::SlotTurn) on [`Card::slots`] and use
    /// [`Card::generate_ephemeral_in`].
    pub fn generate_ephemeral(&self, slot: &ObjectRef) -> Result<EphemeralKey, Error> {
        #[cfg(feature = "std")]
        {
            let turn = self
                .slots
                .take_now(core::slice::from_ref(slot), crate::slots::DEFAULT_LEASE)?;
            // The turn ends here; the key stays good until the slot is granted to someone else.
            self.generate_ephemeral_in(&turn)
        }
        #[cfg(not(feature = "std"))]
        self.generate_ephemeral_now(slot)
    }

    /// Generates a fresh ephemeral key pair in the slot of `turn`, if the turn still holds it
    /// (else [`Error::SlotTakenOver`], nothing sent).
    #[cfg(feature = "std")]
    pub fn generate_ephemeral_in(
        &self,
        turn: &crate::slots::SlotTurn,
    ) -> Result<EphemeralKey, Error> {
        // Checking the turn and using the card are one step for every user of the slot.
        let _op = self.slots.op_lock()?;
        self.slots.check(turn.claim())?;
        let mut key = self.generate_ephemeral_now(turn.slot())?;
        key.claim = Some(turn.claim().clone());
        Ok(key)
    }

    fn generate_ephemeral_now(&self, slot: &ObjectRef) -> Result<EphemeralKey, Error> {
        let mut s = self.lock();
        // Before the command goes out: an answer cut short leaves the slot's old key unknown.
        s.ephemeral.retire(slot);
        let key_pair = s.generate(slot)?;
        let generation = s.ephemeral.generated(&key_pair.private);
        Ok(EphemeralKey {
            generation,
            key_pair,
            #[cfg(feature = "std")]
            claim: None,
        })
    }

    /// Whether `key` is still on the card: READ PUBLIC KEY of its public half answers its point
    /// (one APDU). For a key made ahead of time, before it goes to a peer: a card reset (one the
    /// session saw, or not) or another program may have replaced it. `Ok(false)` when the card
    /// no longer holds it; an error only when the card could not be asked.
    pub fn confirm_ephemeral(&self, key: &EphemeralKey) -> Result<bool, Error> {
        let mut s = self.lock();
        if s.ephemeral.check(key).is_err() {
            return Ok(false);
        }
        let read = s.run_guarded(
            Operation::ReadPublicKey,
            |slots| slots.check(key),
            |op| op.read_public(&key.key_pair.public),
        );
        match read {
            Ok(point) => Ok(point == key.key_pair.point),
            Err(Error::Status { .. } | Error::Malformed { .. } | Error::StaleEphemeral { .. }) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The session's ephemeral generation counter: it moves on at every key generation and at
    /// every reset or lost connection (which retire every ephemeral key).
    pub fn ephemeral_generation(&self) -> u64 {
        self.lock().ephemeral.counter()
    }

    /// Whether `key` is still the key of its slot: no key was generated in that slot since, and
    /// the card was not reset nor the connection lost.
    pub fn ephemeral_is_current(&self, key: &EphemeralKey) -> bool {
        self.lock().ephemeral.check(key).is_ok()
    }

    /// The ECDHE of one key exchange: puts the peer's point into `peer_slot` and computes DH with
    /// the ephemeral key, in one transaction under the operation lock, so no other user of the
    /// card comes between. Fails before anything is sent with [`Error::SlotTakenOver`] if the
    /// slot was granted to anyone else since the key was made, and with
    /// [`Error::StaleEphemeral`] if the key's slot was regenerated on this session or the card
    /// was reset or the connection lost (also when that is found while the agreement runs: it
    /// is never retried on a reset card).
    pub fn ephemeral_agreement(
        &self,
        key: &EphemeralKey,
        peer_slot: &ObjectRef,
        peer: &EcPoint,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        #[cfg(feature = "std")]
        let _op = self.slots.op_lock()?;
        #[cfg(feature = "std")]
        if let Some(claim) = &key.claim {
            self.slots.check(claim)?;
        }
        let private = &key.key_pair.private;
        self.lock().run_guarded(
            Operation::PutPublicKey,
            |slots| slots.check(key),
            |op| op.put_then_dh(private, peer_slot, peer),
        )
    }

    /// ECDH with a volatile key another process made and published for every program
    /// ([`SlotBook::publish`](crate::slots::SlotBook::publish): a PKCS#11 key pair generated by one
    /// run of a tool, used by the next), which this process knows only by its public half
    /// (`public`, point `point`). Under the operation lock: fails with [`Error::SlotTakenOver`]
    /// unless the key with that point was published on `slot` and nobody was granted the slot
    /// since; then, in one transaction, READ PUBLIC KEY confirms the card holds that point (a
    /// program outside the queue, or a reset, may have replaced it), PUT PUBLIC KEY and COMPUTE DH.
    #[cfg(feature = "std")]
    pub fn published_agreement(
        &self,
        slot: &ObjectRef,
        public: &ObjectRef,
        point: &EcPoint,
        peer_slot: &ObjectRef,
        peer: &EcPoint,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let _op = self.slots.op_lock()?;
        self.slots.check_published(slot, point)?;
        self.lock().run(Operation::ReadPublicKey, |op| {
            if op.read_public(public)? != *point {
                return Err(Error::SlotTakenOver {
                    slot: alloc::format!("{slot}"),
                });
            }
            op.begin(Operation::PutPublicKey);
            op.put_then_dh(slot, peer_slot, peer)
        })
    }

    /// ECDH with a key the card keeps (not an ephemeral one): puts the peer's point into
    /// `peer_slot` and computes DH with `private`, in one transaction under the operation lock.
    pub fn key_agreement(
        &self,
        private: &ObjectRef,
        peer_slot: &ObjectRef,
        peer: &EcPoint,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        #[cfg(feature = "std")]
        let _op = self.slots.op_lock()?;
        self.lock().run(Operation::PutPublicKey, |op| {
            op.put_then_dh(private, peer_slot, peer)
        })
    }
}

impl Session {
    /// GENERATE KEY PAIR, and READ PUBLIC KEY when the answer carries no public point.
    fn generate(&mut self, key: &ObjectRef) -> Result<KeyPair, Error> {
        self.run(Operation::GenerateKeyPair, |op| {
            let cmd = commands::generate_key_pair(op.cla, key, op.case4_le())?;
            let data = op.exchange_ok(&cmd, CommandKind::GenerateKeyPair, Secrecy::Public)?;
            let GeneratedKeyPair {
                private_id,
                public_id,
                point,
            } = commands::parse_generated_key_pair(&data)?;
            let private = private_id.map(ObjectRef::Id).unwrap_or_else(|| key.clone());
            // Without a reported public ID, the public half shares the private key's reference.
            let public = public_id
                .map(ObjectRef::Id)
                .unwrap_or_else(|| private.clone());
            let point = match point {
                Some(p) => p,
                None => op.read_public(&public)?,
            };
            Ok(KeyPair {
                private,
                public,
                point,
            })
        })
    }
}

impl Op<'_> {
    /// READ PUBLIC KEY.
    fn read_public(&mut self, key: &ObjectRef) -> Result<EcPoint, Error> {
        let cmd = commands::read_public_key(self.cla, key, self.case4_le())?;
        let data = self.exchange_ok(&cmd, CommandKind::ReadPublicKey, Secrecy::Public)?;
        EcPoint::parse_public_key_data(&data, CommandKind::ReadPublicKey)
    }

    /// PUT PUBLIC KEY into `peer_slot`, then COMPUTE DH of `private` with it: one transaction,
    /// counted as the two operations. A close refused by the card keeps the put (see
    /// [`Closed`]); a link lost at the close ends it (whether the card kept the point is unknown).
    fn put_then_dh(
        &mut self,
        private: &ObjectRef,
        peer_slot: &ObjectRef,
        peer: &EcPoint,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let Closed { close_error, .. } = self.put_public(peer_slot, peer)?;
        if let Some(e @ Error::Transport { .. }) = close_error {
            return Err(e);
        }
        self.begin(Operation::Dh);
        self.dh(private, peer_slot)
    }

    /// PUT PUBLIC KEY: Init, Update, then the session's end (also after a failed Update).
    fn put_public(&mut self, slot: &ObjectRef, point: &EcPoint) -> Result<Closed<()>, Error> {
        let sess = self.config.sessions.put_public_key;
        let init = commands::put_public_key_init(self.cla, sess, slot)?;
        self.open_session(&init, CommandKind::PutPublicKey)?;
        let update = commands::put_public_key_update(self.cla, sess, point);
        let result = self.exchange_ok(&update, CommandKind::PutPublicKey, Secrecy::Public);
        let close_error = self.end_session(CommandKind::PutPublicKey, sess);
        result?;
        Ok(Closed {
            value: (),
            close_error,
        })
    }
}
