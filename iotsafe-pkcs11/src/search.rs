//! Objects through a session: searching (`C_FindObjects*`), reading attributes and sizes,
//! destroying the session objects a session made. Only the objects callers see
//! ([`crate::objects::Object::shown`]) are found or reached by handle.

use crate::attributes::{Attribute, Lookup};
use crate::error::{Error, Operation, P11Result};
use crate::module::Module;
use crate::objects::{Backing, Object};
use crate::session::Search;
use cryptoki_sys::*;

impl Module {
    /// `C_FindObjectsInit`: the objects whose attributes hold every value of `template`, fixed
    /// now (objects made later are not found by this search).
    pub fn find_init(&self, session: CK_SESSION_HANDLE, template: &[Attribute]) -> P11Result<()> {
        self.with_session(session, |s| {
            if s.find.is_some() {
                return Err(Error::Busy(Operation::Search));
            }
            let found = s
                .token
                .objects()
                .iter()
                .filter(|o| o.shown() && o.attributes.matches(template))
                .map(|o| o.handle)
                .collect();
            s.find = Some(Search { found, given: 0 });
            Ok(())
        })
    }

    /// `C_FindObjects`: up to `max` more handles.
    pub fn find_next(
        &self,
        session: CK_SESSION_HANDLE,
        max: usize,
    ) -> P11Result<Vec<CK_OBJECT_HANDLE>> {
        self.with_session(session, |s| {
            let search = s.find.as_mut().ok_or(Error::Idle(Operation::Search))?;
            let rest = &search.found[search.given..];
            let out = rest[..rest.len().min(max)].to_vec();
            search.given += out.len();
            Ok(out)
        })
    }

    /// `C_FindObjectsFinal`.
    pub fn find_final(&self, session: CK_SESSION_HANDLE) -> P11Result<()> {
        self.with_session(session, |s| {
            s.find
                .take()
                .map(|_| ())
                .ok_or(Error::Idle(Operation::Search))
        })
    }

    /// `C_GetAttributeValue`: what the object holds for each type asked.
    pub fn attributes(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> P11Result<Vec<Lookup>> {
        let token = self.session_token(session)?;
        let objects = token.objects();
        let o = &objects[shown(&objects, object)?];
        Ok(types.iter().map(|t| o.attributes.lookup(*t)).collect())
    }

    /// `C_GetObjectSize`: the bytes of the attribute values the module holds for the object
    /// ([`crate::attributes::Attributes::held_bytes`]). The card does not say how much of its
    /// memory an object takes, so this is the size the standard allows instead: an
    /// approximation, stable for an object until a key generation changes its point.
    pub fn object_size(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
    ) -> P11Result<usize> {
        let token = self.session_token(session)?;
        let objects = token.objects();
        Ok(objects[shown(&objects, object)?].attributes.held_bytes())
    }

    /// `C_DestroyObject`: only the session objects `C_DeriveKey` made; the card's objects are
    /// not destroyable (`CKR_ACTION_PROHIBITED`).
    pub fn destroy(&self, session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> P11Result<()> {
        let token = self.session_token(session)?;
        let mut objects = token.objects();
        let at = shown(&objects, object)?;
        match objects[at].backing {
            Backing::SessionSecret { .. } => {
                // The secret is wiped as the object drops.
                objects.remove(at);
                Ok(())
            }
            _ => Err(Error::NotDestroyable(object)),
        }
    }
}

/// Where the object with `handle` is in the table, if callers see it.
fn shown(objects: &[Object], handle: CK_OBJECT_HANDLE) -> P11Result<usize> {
    objects
        .iter()
        .position(|o| o.handle == handle && o.shown())
        .ok_or(Error::NoObject(handle))
}

/// The answer `C_GetAttributeValue` gives for one attribute, given what the object holds and the
/// room the caller gave (`None`: a null `pValue`, asking only for the length).
#[derive(Debug, PartialEq, Eq)]
pub enum Fill<'a> {
    /// Copy these bytes and set the length to theirs.
    Copy(&'a [u8]),
    /// Only set the length (a size query).
    Length(usize),
    /// Set the length to `CK_UNAVAILABLE_INFORMATION`; the call fails, for this reason or a
    /// weightier one of another attribute ([`overall`]).
    Unavailable(Unavailable),
}

/// Why an attribute gets no value, weightiest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Its value never leaves the token (`CKR_ATTRIBUTE_SENSITIVE`).
    Sensitive,
    /// The object has no such attribute (`CKR_ATTRIBUTE_TYPE_INVALID`).
    Unknown,
    /// The caller's buffer is shorter than the value (`CKR_BUFFER_TOO_SMALL`).
    TooSmall {
        /// The value's length.
        needed: usize,
    },
}

/// The [`Fill`] for one attribute.
pub fn fill(lookup: &Lookup, room: Option<usize>) -> Fill<'_> {
    match (lookup, room) {
        (Lookup::Value(v), None) => Fill::Length(v.len()),
        (Lookup::Value(v), Some(n)) if n >= v.len() => Fill::Copy(v),
        (Lookup::Value(v), Some(_)) => Fill::Unavailable(Unavailable::TooSmall { needed: v.len() }),
        (Lookup::Sensitive, _) => Fill::Unavailable(Unavailable::Sensitive),
        (Lookup::Invalid, _) => Fill::Unavailable(Unavailable::Unknown),
    }
}

/// The outcome of a whole `C_GetAttributeValue` from the [`Fill`] of each attribute type asked:
/// `Ok`, or one of the failures of its attributes (every attribute is still processed, as
/// PKCS#11 requires). A sensitive attribute is reported first, then an unknown one, then a short
/// buffer.
pub fn overall(fills: &[(CK_ATTRIBUTE_TYPE, Fill<'_>)]) -> P11Result<()> {
    let weight = |why: &Unavailable| match why {
        Unavailable::Sensitive => 0,
        Unavailable::Unknown => 1,
        Unavailable::TooSmall { .. } => 2,
    };
    let weightiest = fills
        .iter()
        .filter_map(|(kind, f)| match f {
            Fill::Unavailable(why) => Some((*kind, *why)),
            _ => None,
        })
        .min_by_key(|(_, why)| weight(why));
    match weightiest {
        None => Ok(()),
        Some((kind, Unavailable::Sensitive)) => Err(Error::AttributeSensitive(kind)),
        Some((kind, Unavailable::Unknown)) => Err(Error::AttributeType(kind)),
        Some((_, Unavailable::TooSmall { needed })) => Err(Error::BufferTooSmall { needed }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    #[test]
    fn fills() {
        let v = Lookup::Value(Zeroizing::new(vec![1, 2, 3]));
        assert_eq!(fill(&v, None), Fill::Length(3));
        assert_eq!(fill(&v, Some(3)), Fill::Copy(&[1, 2, 3]));
        assert_eq!(
            fill(&v, Some(2)),
            Fill::Unavailable(Unavailable::TooSmall { needed: 3 })
        );
        let all = [
            (CKA_VALUE, fill(&v, Some(8))),
            (CKA_MODULUS, fill(&Lookup::Invalid, None)),
            (CKA_LABEL, fill(&v, Some(0))),
        ];
        let rv = |fills: &[(CK_ATTRIBUTE_TYPE, Fill<'_>)]| overall(fills).map_err(|e| e.rv());
        assert_eq!(rv(&all), Err(CKR_ATTRIBUTE_TYPE_INVALID));
        assert_eq!(rv(&all[..1]), Ok(()));
        assert_eq!(
            rv(&[(CKA_VALUE, fill(&Lookup::Sensitive, Some(1)))]),
            Err(CKR_ATTRIBUTE_SENSITIVE)
        );
    }
}
