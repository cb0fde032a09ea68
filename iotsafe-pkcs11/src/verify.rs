//! Verification: `C_VerifyInit`, `C_Verify`, `C_VerifyUpdate`, `C_VerifyFinal`, with a public key
//! object of the token. A signature check needs no secret, so it runs on the host (p256), over
//! the same 32 bytes a signature of [`crate::sign`] covers: `CKM_ECDSA` takes the digest (cut or
//! padded as there), `CKM_ECDSA_SHA256` the message. Signatures are raw `r‖s`, 64 bytes.

use crate::error::{Error, Operation, P11Result};
use crate::mechanisms::Mechanism;
use crate::module::Module;
use crate::objects::Backing;
use crate::session::Verifying;
use crate::sign::{feed, start, to_sign, SIGNATURE_LEN};
use cryptoki_sys::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;

impl Module {
    /// `C_VerifyInit`.
    pub fn verify_init(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> P11Result<()> {
        self.with_session(session, |s| {
            if s.verify.is_some() {
                return Err(Error::Busy(Operation::Verification));
            }
            let input = start(mechanism)?;
            let object = s.token.object(key).map_err(|_| Error::NoKey(key))?;
            if !matches!(object.backing, Backing::PublicKey { .. }) {
                return Err(Error::KeyType("not a public key"));
            }
            if object.attributes.plain(CKA_VERIFY) != Some(&[CK_TRUE][..]) {
                return Err(Error::KeyFunction("verify"));
            }
            let point = object
                .attributes
                .plain(CKA_EC_POINT)
                .and_then(crate::der::peer_point)
                .ok_or(Error::KeyType("no P-256 point"))?;
            s.verify = Some(Verifying {
                point,
                input,
                multi_part: false,
            });
            Ok(())
        })
    }

    /// `C_Verify`: checks `signature` over `data` in one call; ends the operation, whatever the
    /// outcome.
    pub fn verify(
        &self,
        session: CK_SESSION_HANDLE,
        data: &[u8],
        signature: &[u8],
    ) -> P11Result<()> {
        self.with_session(session, |s| {
            let mut op = s
                .verify
                .take()
                .ok_or(Error::Idle(Operation::Verification))?;
            if op.multi_part {
                // C_VerifyUpdate started a multi-part verification, which C_Verify cannot end;
                // as any call to C_Verify, this one ends the operation.
                return Err(Error::MultiPart(Operation::Verification));
            }
            feed(&mut op.input, data)?;
            check(&op, signature)
        })
    }

    /// Ends the verification in progress after a call that failed before it reached the module
    /// (an argument it could not read): PKCS#11 v2.40 §5.13 ends the operation on every
    /// `C_Verify` and `C_VerifyFinal`, and on a failed `C_VerifyUpdate`.
    pub fn verify_failed(&self, session: CK_SESSION_HANDLE) {
        // A session that is not there has no operation to end.
        let _ = self.with_session(session, |s| {
            s.verify = None;
            Ok(())
        });
    }

    /// `C_VerifyUpdate`.
    pub fn verify_update(&self, session: CK_SESSION_HANDLE, part: &[u8]) -> P11Result<()> {
        self.with_session(session, |s| {
            let op = s
                .verify
                .as_mut()
                .ok_or(Error::Idle(Operation::Verification))?;
            op.multi_part = true;
            let fed = feed(&mut op.input, part);
            if fed.is_err() {
                s.verify = None;
            }
            fed
        })
    }

    /// `C_VerifyFinal`; ends the operation.
    pub fn verify_final(&self, session: CK_SESSION_HANDLE, signature: &[u8]) -> P11Result<()> {
        self.with_session(session, |s| {
            let op = s
                .verify
                .take()
                .ok_or(Error::Idle(Operation::Verification))?;
            check(&op, signature)
        })
    }
}

/// `Ok` when `signature` (`r‖s`) is the key's over the operation's input.
fn check(op: &Verifying, signature: &[u8]) -> P11Result<()> {
    if signature.len() != SIGNATURE_LEN {
        return Err(Error::SignatureLength(signature.len()));
    }
    let digest = to_sign(&op.input)?;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(op.point.as_bytes())
        .map_err(|_| Error::KeyType("no P-256 point"))?;
    let signature =
        p256::ecdsa::Signature::from_slice(signature).map_err(|_| Error::BadSignature)?;
    key.verify_prehash(&digest[..], &signature)
        .map_err(|_| Error::BadSignature)
}
