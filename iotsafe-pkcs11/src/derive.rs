//! `C_DeriveKey` with `CKM_ECDH1_DERIVE`: ECDH on the card between one of its keys and a peer's
//! point. The point goes into the card's peer key slot (PUT PUBLIC KEY), COMPUTE DH returns the
//! shared x coordinate, and the module keeps it as a `CKO_SECRET_KEY` session object
//! (`CKK_GENERIC_SECRET`, `CKD_NULL`: the raw shared secret, or its leftmost `CKA_VALUE_LEN`
//! bytes), wiped when destroyed or when its session closes.

use crate::attributes::{Attribute, Template};
use crate::error::{Error, P11Result};
use crate::mechanisms::{Mechanism, Params};
use crate::module::Module;
use crate::objects::{self, Backing, KeyOnCard, Object, SecretOptions, SECRET_USAGE};
use crate::token::Token;
use cryptoki_sys::*;
use iotsafe_core::{EcPoint, Error as CardError, ObjectRef};
use zeroize::Zeroizing;

impl Module {
    /// `C_DeriveKey`.
    pub fn derive(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        base: CK_OBJECT_HANDLE,
        template: &[Attribute],
    ) -> P11Result<CK_OBJECT_HANDLE> {
        let token = self.session_token(session)?;
        let peer_slot = match (&mechanism.kind, &token.facts.peer_slot) {
            (&CKM_ECDH1_DERIVE, Some(slot)) => slot.clone(),
            (kind, _) => return Err(Error::Mechanism(*kind)),
        };
        let Params::Ecdh(params) = &mechanism.params else {
            return Err(Error::MechanismParams("no CK_ECDH1_DERIVE_PARAMS"));
        };
        if params.kdf != CKD_NULL || !params.shared_data.is_empty() {
            return Err(Error::MechanismParams("only CKD_NULL, without shared data"));
        }
        let peer = crate::der::peer_point(&params.public_data)
            .ok_or(Error::MechanismParams("the peer's key is no P-256 point"))?;
        let object = token.object(base).map_err(|_| Error::NoKey(base))?;
        let Backing::PrivateKey(key) = &object.backing else {
            return Err(Error::KeyType("not a private key"));
        };
        if !key.derive {
            return Err(Error::KeyFunction("derive"));
        }
        let (options, length) = secret_template(template)?;
        let mut secret = if key.volatile {
            let public = public_half(&token, &object);
            agree_with_generated(&token, key, &public, &peer_slot, &peer)?
        } else {
            token
                .card
                .key_agreement(&key.reference, &peer_slot, &peer)?
        };
        if let Some(n) = length {
            if n > secret.len() {
                return Err(Error::TemplateInconsistent(
                    "CKA_VALUE_LEN is longer than the shared secret",
                ));
            }
            secret.truncate(n);
        }
        let handle = self.object_handle();
        let object = objects::session_secret(handle, session, secret, &options);
        // Inserted under the session's lock: a session closed meanwhile gets no orphan object
        // (it is dropped here, and its secret wiped).
        self.with_session(session, |s| {
            s.token.insert(object);
            Ok(handle)
        })
    }
}

/// ECDH with the key in a volatile slot that key exchanges share, never with a key that is not
/// the one the handle stands for: the key this module generated (its claim on the slot checked:
/// nobody was granted the slot since), else the key another run of the application generated
/// and published (`iotsafe_core::Card::published_agreement`: the same check, and the card's
/// public point compared with the one the object shows). A key taken over by another program,
/// or none ever generated, is `CKR_KEY_HANDLE_INVALID`: the key the handle stood for is gone.
fn agree_with_generated(
    token: &Token,
    key: &KeyOnCard,
    public: &ObjectRef,
    peer_slot: &ObjectRef,
    peer: &EcPoint,
) -> P11Result<Zeroizing<Vec<u8>>> {
    let slot = &key.reference;
    let mine = {
        let generated = token.generated();
        let found = generated.iter().find(|g| g.key.key_pair.private == *slot);
        found.map(|g| g.key.clone())
    };
    let agreed = match (&mine, key.point) {
        (Some(mine), _) => token.card.ephemeral_agreement(mine, peer_slot, peer),
        (None, Some(point)) => {
            let card = &token.card;
            card.published_agreement(slot, public, &point, peer_slot, peer)
        }
        (None, None) => return Err(Error::NotGenerated(slot.clone())),
    };
    match agreed {
        Ok(secret) => {
            // The first derivation ends the turn; the key stays usable until the slot is
            // granted to someone else.
            if let Some(g) = token
                .generated()
                .iter_mut()
                .find(|g| Some(&g.key) == mine.as_ref())
            {
                g.turn = None;
            }
            Ok(secret)
        }
        Err(e @ (CardError::SlotTakenOver { .. } | CardError::StaleEphemeral { .. })) => {
            drop(token.forget_generated(slot));
            Err(Error::KeyReplaced(e))
        }
        Err(e) => Err(Error::Card(e)),
    }
}

/// How the card names the public half of `private`'s pair: the public key object with its
/// `CKA_ID`, else the private key's own reference (a pair shares it).
fn public_half(token: &Token, private: &Object) -> ObjectRef {
    let id = private.attributes.plain(CKA_ID);
    let objects = token.objects();
    let found = objects.iter().find_map(|o| match &o.backing {
        Backing::PublicKey { reference } if id.is_some() && o.attributes.plain(CKA_ID) == id => {
            Some(reference.clone())
        }
        _ => None,
    });
    match (found, &private.backing) {
        (Some(r), _) => r,
        (None, Backing::PrivateKey(k)) => k.reference.clone(),
        (None, _) => ObjectRef::Id(Vec::new()),
    }
}

/// The derived key's template: how to keep it, and `CKA_VALUE_LEN` if given.
fn secret_template(template: &[Attribute]) -> P11Result<(SecretOptions, Option<usize>)> {
    let t = Template(template);
    if t.number(CKA_CLASS)?.is_some_and(|c| c != CKO_SECRET_KEY)
        || t.number(CKA_KEY_TYPE)?
            .is_some_and(|k| k != CKK_GENERIC_SECRET)
        || t.flag(CKA_TOKEN)? == Some(true)
        || t.flag(CKA_DERIVE)? == Some(true)
        || t.bytes(CKA_VALUE).is_some()
    {
        // A token object would have to live on the card, which keeps no such secrets; a value
        // cannot be both given and derived.
        return Err(Error::TemplateInconsistent(
            "only a generic secret session object, without CKA_DERIVE or CKA_VALUE",
        ));
    }
    let length = match t.number(CKA_VALUE_LEN)? {
        None => None,
        Some(0) => return Err(Error::AttributeValue(CKA_VALUE_LEN)),
        Some(n) => Some(usize::try_from(n).map_err(|_| {
            Error::TemplateInconsistent("CKA_VALUE_LEN is longer than the shared secret")
        })?),
    };
    // Accepted and not kept: this token's session objects have fixed storage flags.
    const IGNORED: [CK_ATTRIBUTE_TYPE; 9] = [
        CKA_PRIVATE,
        CKA_MODIFIABLE,
        CKA_COPYABLE,
        CKA_DESTROYABLE,
        CKA_ALLOWED_MECHANISMS,
        CKA_START_DATE,
        CKA_END_DATE,
        CKA_LOCAL,
        CKA_TRUSTED,
    ];
    const HANDLED: [CK_ATTRIBUTE_TYPE; 9] = [
        CKA_CLASS,
        CKA_KEY_TYPE,
        CKA_TOKEN,
        CKA_DERIVE,
        CKA_VALUE_LEN,
        CKA_SENSITIVE,
        CKA_EXTRACTABLE,
        CKA_LABEL,
        CKA_ID,
    ];
    let mut usage = Vec::new();
    for a in template {
        if SECRET_USAGE.contains(&a.kind) {
            usage.push((a.kind, t.flag(a.kind)?.unwrap_or(false)));
        } else if !IGNORED.contains(&a.kind) && !HANDLED.contains(&a.kind) {
            return Err(Error::AttributeType(a.kind));
        }
    }
    let options = SecretOptions {
        label: t.bytes(CKA_LABEL).unwrap_or_default().to_vec(),
        id: t.bytes(CKA_ID).unwrap_or_default().to_vec(),
        sensitive: t.flag(CKA_SENSITIVE)?.unwrap_or(false),
        extractable: t.flag(CKA_EXTRACTABLE)?.unwrap_or(true),
        usage,
    };
    Ok((options, length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{bool_value, ulong};

    fn check(template: &[Attribute]) -> P11Result<(SecretOptions, Option<usize>)> {
        secret_template(template)
    }

    #[test]
    fn templates() {
        // pkcs11-tool --derive's template.
        let ok = [
            Attribute::new(CKA_TOKEN, bool_value(false)),
            Attribute::new(CKA_CLASS, ulong(CKO_SECRET_KEY)),
            Attribute::new(CKA_KEY_TYPE, ulong(CKK_GENERIC_SECRET)),
            Attribute::new(CKA_SENSITIVE, bool_value(false)),
            Attribute::new(CKA_EXTRACTABLE, bool_value(true)),
            Attribute::new(CKA_ENCRYPT, bool_value(true)),
            Attribute::new(CKA_VALUE_LEN, ulong(32)),
        ];
        let (options, len) = check(&ok).unwrap();
        assert_eq!(len, Some(32));
        assert!(!options.sensitive && options.extractable);
        assert_eq!(options.usage, vec![(CKA_ENCRYPT, true)]);
        for (bad, rv) in [
            (
                Attribute::new(CKA_TOKEN, bool_value(true)),
                CKR_TEMPLATE_INCONSISTENT,
            ),
            (
                Attribute::new(CKA_KEY_TYPE, ulong(CKK_AES)),
                CKR_TEMPLATE_INCONSISTENT,
            ),
            (
                Attribute::new(CKA_CLASS, vec![1]),
                CKR_ATTRIBUTE_VALUE_INVALID,
            ),
            (
                Attribute::new(CKA_VALUE_LEN, ulong(0)),
                CKR_ATTRIBUTE_VALUE_INVALID,
            ),
            (
                Attribute::new(CKA_VALUE, vec![1; 32]),
                CKR_TEMPLATE_INCONSISTENT,
            ),
            (
                Attribute::new(CKA_MODULUS, vec![1]),
                CKR_ATTRIBUTE_TYPE_INVALID,
            ),
        ] {
            assert_eq!(check(&[bad]).unwrap_err().rv(), rv);
        }
        assert!(check(&[]).unwrap().0.extractable);
    }
}
