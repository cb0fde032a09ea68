//! Signatures on the card: `C_SignInit`, `C_Sign`, `C_SignUpdate`, `C_SignFinal`.
//!
//! `CKM_ECDSA` takes a digest the caller made; `CKM_ECDSA_SHA256` takes the message and hashes it
//! here. Either way the card signs a 32-byte value with COMPUTE SIGNATURE in its digest mode, the
//! same APDUs as `iotsafe sign`, and the signature is checked against the key's public point
//! before it is handed out as raw `r‖s` (64 bytes), as PKCS#11 lays out ECDSA signatures.
//!
//! Digests of other lengths (`CKM_ECDSA`): ECDSA over P-256 uses the leftmost 256 bits of the
//! value signed, so a longer digest (SHA-384, SHA-512) is cut to its first 32 bytes and a
//! shorter one (SHA-1, SHA-224) is left-padded with zeros to the same integer. The signature then
//! verifies as the standard defines it for that digest. Empty input and input longer than 64 bytes
//! (no digest is) answer `CKR_DATA_LEN_RANGE`.

use crate::error::{Error, Operation, P11Result};
use crate::mechanisms::{Mechanism, Params};
use crate::module::Module;
use crate::objects::Backing;
use crate::session::{SignInput, Signing};
use cryptoki_sys::*;
use iotsafe_core::HashAlgorithm;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Length of a P-256 signature as PKCS#11 returns it: `r‖s`.
pub const SIGNATURE_LEN: usize = 64;
/// The longest digest `CKM_ECDSA` takes (SHA-512's).
const MAX_DIGEST: usize = 64;
/// What the card signs: a P-256-sized value.
const SIGNED_LEN: usize = 32;

/// What a signing call hands back.
#[derive(Debug, PartialEq, Eq)]
pub enum Signed {
    /// A size query: the signature will be this long; the operation goes on.
    Length(usize),
    /// The signature, `r‖s`; the operation is over.
    Signature(Vec<u8>),
}

impl Module {
    /// `C_SignInit`.
    pub fn sign_init(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> P11Result<()> {
        self.with_session(session, |s| {
            if s.sign.is_some() {
                return Err(Error::Busy(Operation::Signature));
            }
            let input = start(mechanism)?;
            let object = s.token.object(key).map_err(|_| Error::NoKey(key))?;
            let Backing::PrivateKey(key) = object.backing else {
                return Err(Error::KeyType("not a private key"));
            };
            if !key.sign {
                return Err(Error::KeyFunction("sign"));
            }
            s.sign = Some(Signing {
                key,
                input,
                multi_part: false,
            });
            Ok(())
        })
    }

    /// `C_Sign`: signs `data` in one call. `room` is the caller's buffer size (`None`: a null
    /// buffer, asking for the length).
    pub fn sign(
        &self,
        session: CK_SESSION_HANDLE,
        data: &[u8],
        room: Option<usize>,
    ) -> P11Result<Signed> {
        self.finish(session, room, |op| {
            if op.multi_part {
                // C_SignUpdate started a multi-part signature, which C_Sign cannot end; as any
                // failed C_Sign, this one ends the operation.
                return Err(Error::MultiPart(Operation::Signature));
            }
            feed(&mut op.input, data)
        })
    }

    /// `C_SignUpdate`.
    pub fn sign_update(&self, session: CK_SESSION_HANDLE, part: &[u8]) -> P11Result<()> {
        self.with_session(session, |s| {
            let op = s.sign.as_mut().ok_or(Error::Idle(Operation::Signature))?;
            op.multi_part = true;
            let fed = feed(&mut op.input, part);
            if fed.is_err() {
                s.sign = None;
            }
            fed
        })
    }

    /// `C_SignFinal`.
    pub fn sign_final(&self, session: CK_SESSION_HANDLE, room: Option<usize>) -> P11Result<Signed> {
        self.finish(session, room, |_| Ok(()))
    }

    /// Ends the signature in progress after a call that failed before it reached the module (an
    /// argument it could not read): PKCS#11 v2.40 §5.12 ends the operation on every failed
    /// `C_Sign`, `C_SignUpdate` or `C_SignFinal`.
    pub fn sign_failed(&self, session: CK_SESSION_HANDLE) {
        // A session that is not there has no operation to end.
        let _ = self.with_session(session, |s| {
            s.sign = None;
            Ok(())
        });
    }

    /// Ends a signature: `last` adds the final input to a copy of the operation, then comes the
    /// size check, then the card. A size query that succeeds and `CKR_BUFFER_TOO_SMALL` leave
    /// the operation as it was; everything else ends it, failures included (PKCS#11 v2.40
    /// §5.12).
    fn finish(
        &self,
        session: CK_SESSION_HANDLE,
        room: Option<usize>,
        last: impl FnOnce(&mut Signing) -> P11Result<()>,
    ) -> P11Result<Signed> {
        let ready = self.with_session(session, |s| {
            let mut op = s.sign.clone().ok_or(Error::Idle(Operation::Signature))?;
            let digest = last(&mut op).and_then(|()| to_sign(&op.input));
            match (&digest, room) {
                (Ok(_), None) => return Ok(None),
                (Ok(_), Some(n)) if n < SIGNATURE_LEN => {
                    return Err(Error::BufferTooSmall {
                        needed: SIGNATURE_LEN,
                    })
                }
                _ => s.sign = None,
            }
            Ok(Some((op, digest?, s.token.clone())))
        })?;
        let Some((op, digest, token)) = ready else {
            return Ok(Signed::Length(SIGNATURE_LEN));
        };
        let key = &op.key;
        let signed = match &key.point {
            Some(point) => token.card.sign_digest_checked(
                &key.reference,
                HashAlgorithm::Sha256,
                &digest[..],
                point,
            ),
            None => token
                .card
                .sign_digest(&key.reference, HashAlgorithm::Sha256, &digest[..]),
        };
        let signature = signed?;
        // PKCS#11 ECDSA signatures are `r‖s`, whichever form the card answered in.
        let rs = signature.to_rs().map_err(|_| Error::UnreadableSignature)?;
        Ok(Signed::Signature(rs))
    }
}

/// The empty input of a signature (or verification) with `mechanism`.
pub(crate) fn start(mechanism: &Mechanism) -> P11Result<SignInput> {
    let input = match mechanism.kind {
        CKM_ECDSA => SignInput::Digest(Zeroizing::new(Vec::new())),
        CKM_ECDSA_SHA256 => SignInput::Message(Sha256::new()),
        other => return Err(Error::Mechanism(other)),
    };
    if mechanism.params != Params::None {
        return Err(Error::MechanismParams("ECDSA takes none"));
    }
    Ok(input)
}

/// Adds input to a signature (or verification) in progress.
pub(crate) fn feed(input: &mut SignInput, data: &[u8]) -> P11Result<()> {
    match input {
        SignInput::Digest(d) => {
            if d.len() + data.len() > MAX_DIGEST {
                return Err(Error::DigestLength(d.len() + data.len()));
            }
            d.extend_from_slice(data);
        }
        SignInput::Message(h) => h.update(data),
    }
    Ok(())
}

/// The 32 bytes the card signs (and a verification checks).
pub(crate) fn to_sign(input: &SignInput) -> P11Result<Zeroizing<[u8; SIGNED_LEN]>> {
    let mut out = Zeroizing::new([0u8; SIGNED_LEN]);
    match input {
        SignInput::Message(h) => out.copy_from_slice(&h.clone().finalize()),
        SignInput::Digest(d) if d.is_empty() || d.len() > MAX_DIGEST => {
            return Err(Error::DigestLength(d.len()))
        }
        SignInput::Digest(d) if d.len() >= SIGNED_LEN => out.copy_from_slice(&d[..SIGNED_LEN]),
        SignInput::Digest(d) => out[SIGNED_LEN - d.len()..].copy_from_slice(d),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_every_length() {
        let d = |bytes: &[u8]| to_sign(&SignInput::Digest(Zeroizing::new(bytes.to_vec())));
        assert_eq!(d(&[]).unwrap_err().rv(), CKR_DATA_LEN_RANGE);
        assert_eq!(d(&[0; 65]).unwrap_err().rv(), CKR_DATA_LEN_RANGE);
        let long: Vec<u8> = (0..48).collect();
        assert_eq!(&d(&long).unwrap()[..], &long[..32]);
        let short = [0xAB; 20];
        let padded = d(&short).unwrap();
        assert_eq!(&padded[..12], &[0; 12]);
        assert_eq!(&padded[12..], &short);
    }

    #[test]
    fn message_is_hashed() {
        let mut h = Sha256::new();
        h.update(b"abc");
        let out = to_sign(&SignInput::Message(h)).unwrap();
        assert_eq!(&out[..], &Sha256::digest(b"abc")[..]);
    }
}
