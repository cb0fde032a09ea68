//! `C_GenerateKeyPair` with `CKM_EC_KEY_PAIR_GEN`: GENERATE KEY PAIR into one of the card's key
//! slots. The card has a fixed set of key objects, so the templates choose the slot (`CKA_ID`,
//! else `CKA_LABEL`, else the card's only volatile key that may be generated: its ephemeral slot)
//! and are then checked against what that slot is. The generated pair takes the place of the old
//! one under the same handles.

use crate::attributes::{read_bool, Attribute, Attributes, Template, Value};
use crate::error::{Error, P11Result};
use crate::mechanisms::{Mechanism, Params};
use crate::module::Module;
use crate::objects::{self, Backing, KeyOnCard, Naming, Object};
use crate::token::{Generated, Token};
use cryptoki_sys::*;
use iotsafe_core::ObjectRef;

/// Attributes a template may carry that this token takes without effect: there is no login (so
/// nothing is private), the card keeps no usage restrictions, dates or subjects of its own.
const IGNORED: [CK_ATTRIBUTE_TYPE; 6] = [
    CKA_PRIVATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_SUBJECT,
    CKA_EC_PARAMS,
];

/// `CK_BBOOL` attributes of key objects (compared as C reads them: any non-zero byte is true).
const FLAGS: [CK_ATTRIBUTE_TYPE; 22] = [
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_DERIVE,
    CKA_LOCAL,
    CKA_SENSITIVE,
    CKA_ALWAYS_SENSITIVE,
    CKA_EXTRACTABLE,
    CKA_NEVER_EXTRACTABLE,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_UNWRAP,
    CKA_WRAP_WITH_TRUSTED,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_ENCRYPT,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_WRAP,
    CKA_TRUSTED,
];

impl Module {
    /// `C_GenerateKeyPair`; returns the public and the private key's handles.
    pub fn generate_key_pair(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        public: &[Attribute],
        private: &[Attribute],
    ) -> P11Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let (token, read_write) =
            self.with_session(session, |s| Ok((s.token.clone(), s.read_write)))?;
        if mechanism.kind != CKM_EC_KEY_PAIR_GEN {
            return Err(Error::Mechanism(mechanism.kind));
        }
        if mechanism.params != Params::None {
            return Err(Error::MechanismParams("CKM_EC_KEY_PAIR_GEN takes none"));
        }
        if !read_write {
            return Err(Error::ReadOnlySession);
        }
        match Template(public).bytes(CKA_EC_PARAMS) {
            None => return Err(Error::TemplateIncomplete("no CKA_EC_PARAMS")),
            Some(p) if p == crate::der::P256_PARAMS => {}
            Some(_) => return Err(Error::Curve),
        }
        if Template(private)
            .bytes(CKA_EC_PARAMS)
            .is_some_and(|p| p != crate::der::P256_PARAMS)
        {
            return Err(Error::TemplateInconsistent(
                "the private key's CKA_EC_PARAMS are not P-256's",
            ));
        }
        let (private_object, key) = choose(&token.objects(), public, private)?;
        check(&private_object.attributes, private)?;
        let naming = naming_of(&private_object.attributes);
        let existing_public = token
            .objects()
            .iter()
            .find(|o| is_public_of(o, &key.reference, &naming.id))
            .cloned();
        let public_attributes = match &existing_public {
            Some(o) => o.attributes.clone(),
            // Not on the token yet (an ephemeral slot never generated): what it will be.
            None => would_be_public(&key, &naming),
        };
        check(&public_attributes, public)?;

        // The generation lock, from the card's answer to the table's update.
        let (pair, _generating) = if key.volatile {
            generate_in_turn(&token, &key.reference)?
        } else {
            let generating = token.generation();
            (token.card.generate_key_pair(&key.reference)?, generating)
        };
        let mut objects = token.objects();
        if let Some(o) = objects
            .iter_mut()
            .find(|o| o.handle == private_object.handle)
        {
            if let Backing::PrivateKey(k) = &mut o.backing {
                k.point = Some(pair.point);
            }
            objects::set_private_point(&mut o.attributes, Some(&pair.point));
            // A certificate on the card was for the old key.
            o.attributes.set(CKA_SUBJECT, Vec::new());
        }
        let public_id = match &pair.public {
            ObjectRef::Id(id) => id.clone(),
            ObjectRef::Label(_) => naming.id.clone(),
        };
        let public_handle = match objects
            .iter_mut()
            .find(|o| is_public_of(o, &pair.public, &public_id))
        {
            Some(o) => {
                objects::set_public_point(&mut o.attributes, &pair.point);
                o.attributes.set(CKA_SUBJECT, Vec::new());
                o.handle
            }
            None => {
                let handle = self.object_handle();
                let naming = Naming {
                    id: public_id,
                    ..naming
                };
                objects.push(objects::public_key(
                    handle,
                    pair.public.clone(),
                    &pair.point,
                    &naming,
                    public_use(&key),
                ));
                handle
            }
        };
        Ok((public_handle, private_object.handle))
    }
}

/// GENERATE KEY PAIR in a volatile slot that key exchanges share: a turn on the slot first (this
/// module's own earlier turn on it given back), then the key, kept with the turn for the
/// derivation (see [`Generated`]). Returns the pair and the generation lock, taken for the card
/// work and held by the caller until the object table shows the new key.
fn generate_in_turn<'t>(
    token: &'t Token,
    slot: &ObjectRef,
) -> P11Result<(iotsafe_core::KeyPair, std::sync::MutexGuard<'t, ()>)> {
    // Taken first: a concurrent generation of this module into the slot has put its key (and
    // turn) in the list before this one gives that turn back.
    let generating = token.generation();
    drop(token.forget_generated(slot));
    let card = &token.card;
    let turn = card.slots().wait(
        std::slice::from_ref(slot),
        iotsafe_core::slots::DEFAULT_LEASE,
    )?;
    let key = card.generate_ephemeral_in(&turn)?;
    let pair = key.key_pair.clone();
    // Another run of the application (pkcs11-tool --keypairgen, then --derive) may derive with
    // it, as long as nobody takes the slot meanwhile.
    card.slots().publish(turn.claim(), &pair.point)?;
    token.generated().push(Generated {
        key,
        turn: Some(turn),
    });
    Ok((pair, generating))
}

/// The key slot the templates name.
fn choose(
    objects: &[Object],
    public: &[Attribute],
    private: &[Attribute],
) -> P11Result<(Object, KeyOnCard)> {
    let pick = |kind| {
        Template(private)
            .bytes(kind)
            .or(Template(public).bytes(kind))
    };
    let keys = objects.iter().filter_map(|o| match &o.backing {
        Backing::PrivateKey(k) => Some((o, k)),
        _ => None,
    });
    let chosen = if let Some(id) = pick(CKA_ID) {
        keys.clone()
            .find(|(o, _)| o.attributes.plain(CKA_ID) == Some(id))
            .ok_or(Error::TemplateInconsistent("no key slot has this CKA_ID"))?
    } else if let Some(label) = pick(CKA_LABEL) {
        keys.clone()
            .find(|(o, _)| o.attributes.plain(CKA_LABEL) == Some(label))
            .ok_or(Error::TemplateInconsistent(
                "no key slot has this CKA_LABEL",
            ))?
    } else {
        let mut ephemeral = keys.clone().filter(|(_, k)| k.generate && k.volatile);
        match (ephemeral.next(), ephemeral.next()) {
            (Some(only), None) => only,
            _ => {
                return Err(Error::TemplateIncomplete(
                    "no CKA_ID or CKA_LABEL, and not exactly one ephemeral key slot",
                ))
            }
        }
    };
    if !chosen.1.generate {
        return Err(Error::TemplateInconsistent(
            "the card does not generate into this key slot",
        ));
    }
    Ok((chosen.0.clone(), chosen.1.clone()))
}

/// Whether `o` is the public key object of a pair: named by `reference`, or with that ID.
fn is_public_of(o: &Object, reference: &ObjectRef, id: &[u8]) -> bool {
    match &o.backing {
        Backing::PublicKey { reference: r } => {
            r == reference || (!id.is_empty() && o.attributes.plain(CKA_ID) == Some(id))
        }
        _ => false,
    }
}

fn naming_of(a: &Attributes) -> Naming {
    let get = |k| a.plain(k).unwrap_or_default().to_vec();
    Naming {
        id: get(CKA_ID),
        label: get(CKA_LABEL),
        subject: Vec::new(),
    }
}

/// The attributes a public key object made by generation into `key` will have (its point
/// aside).
fn would_be_public(key: &KeyOnCard, naming: &Naming) -> Attributes {
    let placeholder = iotsafe_core::EcPoint([0x04; 65]);
    objects::public_key(
        0,
        key.reference.clone(),
        &placeholder,
        naming,
        public_use(key),
    )
    .attributes
}

/// The uses of a generated key's public half: those of the private key.
fn public_use(key: &KeyOnCard) -> objects::PublicUse {
    objects::PublicUse {
        verify: key.sign,
        derive: key.derive,
    }
}

/// Every attribute of `template` the object shows must have the value asked; ones it does not
/// have at all are `CKR_ATTRIBUTE_TYPE_INVALID`.
fn check(attributes: &Attributes, template: &[Attribute]) -> P11Result<()> {
    for a in template.iter().filter(|a| !IGNORED.contains(&a.kind)) {
        let same = match attributes.value(a.kind) {
            None => return Err(Error::AttributeType(a.kind)),
            Some(Value::Plain(have)) if FLAGS.contains(&a.kind) => {
                let wanted = read_bool(&a.value).ok_or(Error::AttributeValue(a.kind))?;
                read_bool(have) == Some(wanted)
            }
            Some(Value::Plain(have)) => have.as_slice() == a.value.as_slice(),
            // The key's value: only the card makes it.
            Some(_) => return Err(Error::AttributeReadOnly(a.kind)),
        };
        if !same {
            return Err(Error::AttributeMismatch(a.kind));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{bool_value, ulong};

    fn ephemeral() -> Object {
        let key = KeyOnCard {
            reference: ObjectRef::id([4]),
            point: None,
            sign: false,
            derive: true,
            generate: true,
            volatile: true,
        };
        let naming = Naming {
            id: vec![4],
            label: b"ecdhe".to_vec(),
            subject: Vec::new(),
        };
        objects::private_key(7, key, &naming)
    }

    #[test]
    fn chooses_the_ephemeral_slot() {
        let objects = [ephemeral()];
        assert_eq!(choose(&objects, &[], &[]).unwrap().0.handle, 7);
        let by_id = [Attribute::new(CKA_ID, vec![4])];
        assert_eq!(choose(&objects, &by_id, &[]).unwrap().0.handle, 7);
        let other = [Attribute::new(CKA_ID, vec![9])];
        assert_eq!(
            choose(&objects, &[], &other).unwrap_err().rv(),
            CKR_TEMPLATE_INCONSISTENT
        );
        assert_eq!(
            choose(&[], &[], &[]).unwrap_err().rv(),
            CKR_TEMPLATE_INCOMPLETE
        );
    }

    #[test]
    fn checks_templates_against_the_slot() {
        let o = ephemeral();
        // pkcs11-tool --keypairgen --usage-derive: the private template.
        let ok = [
            Attribute::new(CKA_CLASS, ulong(CKO_PRIVATE_KEY)),
            Attribute::new(CKA_TOKEN, bool_value(true)),
            Attribute::new(CKA_PRIVATE, bool_value(true)),
            Attribute::new(CKA_SENSITIVE, bool_value(true)),
            Attribute::new(CKA_DERIVE, vec![0x01]),
            Attribute::new(CKA_KEY_TYPE, ulong(CKK_EC)),
            Attribute::new(CKA_ID, vec![4]),
        ];
        assert_eq!(check(&o.attributes, &ok).map_err(|e| e.rv()), Ok(()));
        for (bad, rv) in [
            (
                Attribute::new(CKA_SIGN, bool_value(true)),
                CKR_TEMPLATE_INCONSISTENT,
            ),
            (
                Attribute::new(CKA_EXTRACTABLE, bool_value(true)),
                CKR_TEMPLATE_INCONSISTENT,
            ),
            (
                Attribute::new(CKA_KEY_TYPE, ulong(CKK_RSA)),
                CKR_TEMPLATE_INCONSISTENT,
            ),
            (
                Attribute::new(CKA_SIGN, vec![1, 0]),
                CKR_ATTRIBUTE_VALUE_INVALID,
            ),
            (
                Attribute::new(CKA_MODULUS_BITS, ulong(2048)),
                CKR_ATTRIBUTE_TYPE_INVALID,
            ),
            (
                Attribute::new(CKA_VALUE, vec![1; 32]),
                CKR_ATTRIBUTE_READ_ONLY,
            ),
        ] {
            assert_eq!(check(&o.attributes, &[bad]).map_err(|e| e.rv()), Err(rv));
        }
    }
}
