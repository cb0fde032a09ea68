//! Signatures: COMPUTE SIGNATURE over a digest or a message, the host-side check of the card's
//! signature, and VERIFY SIGNATURE.

use super::{Closed, Op};
use crate::apdu::Command;
use crate::card::Card;
use crate::commands::{
    self, CardSignature, HashAlgorithm, ParsedSignature, SignMode, SignatureAlgorithm,
};
use crate::error::{CommandKind, Error};
use crate::link::{success, Secrecy};
use crate::objects::{EcPoint, ObjectRef};
use crate::prelude::*;
use crate::stats::Operation;
use crate::sw::Meaning;

impl Card {
    /// COMPUTE SIGNATURE in mode 03: the host hashed, the card pads and signs `digest`.
    pub fn sign_digest(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
    ) -> Result<CardSignature, Error> {
        Ok(self.sign_digest_parsed(key, hash, digest)?.signature)
    }

    /// [`Card::sign_digest`], with the wire form the card's answer came in.
    fn sign_digest_parsed(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
    ) -> Result<ParsedSignature, Error> {
        let mut s = self.lock();
        let signed = s.run(Operation::Sign, |op| {
            let update = [commands::sign_update_digest(
                op.cla,
                op.config.sessions.sign,
                digest,
                op.case4_le(),
            )?];
            op.sign(key, SignMode::Digest, hash, &update)
        })?;
        Ok(s.keep(signed))
    }

    /// [`Card::sign_digest`], then a check on the host that the signature verifies against
    /// `public`, the key's public point (from its certificate, or READ PUBLIC KEY once). A
    /// signature that does not verify (its answer misread, or made with another key) is never
    /// returned: it is counted in [`CardStats::bad_signatures`](crate::CardStats::bad_signatures)
    /// and fails as [`Error::SignatureCheck`], naming the form the answer was read as.
    pub fn sign_digest_checked(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
        public: &EcPoint,
    ) -> Result<CardSignature, Error> {
        let ParsedSignature { signature, form } = self.sign_digest_parsed(key, hash, digest)?;
        if crate::signature::verifies_p256(&signature, public, digest) {
            return Ok(signature);
        }
        self.lock().stats.bad_signatures += 1;
        Err(Error::SignatureCheck {
            key: key.to_string(),
            form: form.to_string(),
        })
    }

    /// COMPUTE SIGNATURE in mode 01: the card hashes `message`, sent in `9B` chunks.
    pub fn sign_message(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        message: &[u8],
    ) -> Result<CardSignature, Error> {
        let mut s = self.lock();
        let max = s.max_command_data().min(255);
        let signed = s.run(Operation::Sign, |op| {
            let updates = commands::sign_update_full_text(
                op.cla,
                op.config.sessions.sign,
                message,
                max,
                op.config.full_text_length,
                op.case4_le(),
            )?;
            op.sign(key, SignMode::FullText, hash, &updates)
        })?;
        Ok(s.keep(signed).signature)
    }

    /// VERIFY SIGNATURE in mode 03 with a public key on the card. `raw_rs` is `r ‖ s`, each half
    /// the curve size (as [`CardSignature::to_rs`] gives it), sent as it is. `Ok(false)` is the
    /// card's `6D01`.
    pub fn verify_digest(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
        raw_rs: &[u8],
    ) -> Result<bool, Error> {
        let mut s = self.lock();
        let verified = s.run(Operation::Verify, |op| op.verify(key, hash, digest, raw_rs))?;
        Ok(s.keep(verified))
    }
}

impl Op<'_> {
    /// COMPUTE SIGNATURE: Init, the Updates (the last one returns the signature), then the
    /// session's end (also after a failed step).
    fn sign(
        &mut self,
        key: &ObjectRef,
        mode: SignMode,
        hash: HashAlgorithm,
        updates: &[Command],
    ) -> Result<Closed<ParsedSignature>, Error> {
        let kind = CommandKind::ComputeSignature;
        let sess = self.config.sessions.sign;
        let init = commands::sign_init(self.cla, sess, key, mode, hash, SignatureAlgorithm::Ecdsa)?;
        self.open_session(&init, kind)?;
        let mut result = Err(Error::malformed(kind, "a signature", &[]));
        for update in updates {
            result = self.exchange_ok(update, kind, Secrecy::Public);
            if result.is_err() {
                break;
            }
        }
        let close_error = self.end_session(kind, sess);
        Ok(Closed {
            value: commands::parse_signature_for(&result?, commands::P256_FIELD_LEN)?,
            close_error,
        })
    }

    /// VERIFY SIGNATURE: Init, one Update with the digest and the signature, then the close.
    fn verify(
        &mut self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
        raw_rs: &[u8],
    ) -> Result<Closed<bool>, Error> {
        let kind = CommandKind::VerifySignature;
        let sess = self.config.sessions.verify;
        let init = commands::verify_init(
            self.cla,
            sess,
            key,
            SignMode::Digest,
            hash,
            SignatureAlgorithm::Ecdsa,
        )?;
        self.open_session(&init, kind)?;
        let update = commands::verify_update_digest(
            self.cla,
            sess,
            digest,
            raw_rs,
            self.config.signature_length,
        )?;
        let result = self.exchange(&update, kind, Secrecy::Public);
        let close_error = self.end_session(kind, sess);
        let r = result?;
        let verdict = match r.sw.meaning() {
            Meaning::SignatureMismatch => false,
            _ => {
                success(r, kind)?;
                true
            }
        };
        Ok(Closed {
            value: verdict,
            close_error,
        })
    }
}
