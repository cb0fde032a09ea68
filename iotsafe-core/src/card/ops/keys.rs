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
    pub fn generate_key_pair(&self, key: &ObjectRef) -> Result<KeyPair, Error> {
        let mut s = self.lock();
        let key_pair = s.generate(key)?;
        s.ephemeral.generated(&key_pair.private);
        Ok(key_pair)
    }

    /// READ PUBLIC KEY.
    pub fn read_public_key(&self, key: &ObjectRef) -> Result<EcPoint, Error> {
        self.lock()
            .run(Operation::ReadPublicKey, |op| op.read_public(key))
    }

    /// PUT PUBLIC KEY: Init, Update, and close if configured.
    pub fn put_public_key(&self, slot: &ObjectRef, point: &EcPoint) -> Result<(), Error> {
        let mut s = self.lock();
        let put = s.run(Operation::PutPublicKey, |op| op.put_public(slot, point))?;
        s.keep(put);
        Ok(())
    }

    /// Generates a fresh ephemeral key pair in `slot`, retiring the key the slot held. Keys in
    /// other slots stay usable: a card with several volatile key slots runs one key exchange in
    /// each at once.
    pub fn generate_ephemeral(&self, slot: &ObjectRef) -> Result<EphemeralKey, Error> {
        let mut s = self.lock();
        let key_pair = s.generate(slot)?;
        let generation = s.ephemeral.generated(&key_pair.private);
        Ok(EphemeralKey {
            generation,
            key_pair,
        })
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
    /// the ephemeral key, under one lock. Fails with [`Error::StaleEphemeral`] if the key's slot
    /// was regenerated since `key` was made, or the card reset or the connection lost.
    pub fn ephemeral_agreement(
        &self,
        key: &EphemeralKey,
        peer_slot: &ObjectRef,
        peer: &EcPoint,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut s = self.lock();
        s.ephemeral.check(key)?;
        let Closed { value, close_error } =
            s.run(Operation::PutPublicKey, |op| op.put_public(peer_slot, peer))?;
        if let Some(Error::Transport { command, source }) = close_error {
            // The link dropped at the put's session close: whether the card kept the key is
            // unknown, and the DH cannot run on this connection. Report the drop itself.
            s.connection_lost(&source);
            return Err(Error::Transport { command, source });
        }
        s.keep(Closed { value, close_error });
        // A reset found while putting the peer's key (the card had forgotten the session's
        // channel, and the retried put succeeded on a new one) took the ephemeral key with it.
        s.ephemeral.check(key)?;
        s.run(Operation::Dh, |op| op.dh(&key.key_pair.private, peer_slot))
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

    /// PUT PUBLIC KEY: Init, Update, then the close (also after a failed Update).
    fn put_public(&mut self, slot: &ObjectRef, point: &EcPoint) -> Result<Closed<()>, Error> {
        let sess = self.config.sessions.put_public_key;
        let init = commands::put_public_key_init(self.cla, sess, slot)?;
        self.exchange_ok(&init, CommandKind::PutPublicKey, Secrecy::Public)?;
        let update = commands::put_public_key_update(self.cla, sess, point);
        let result = self.exchange_ok(&update, CommandKind::PutPublicKey, Secrecy::Public);
        let close_error = self.close_session(
            commands::put_public_key_close(self.cla, sess),
            CommandKind::PutPublicKey,
        );
        result?;
        Ok(Closed {
            value: (),
            close_error,
        })
    }
}
