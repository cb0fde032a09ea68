//! Objects through a session: searching (`C_FindObjects*`), reading attributes and sizes,
//! destroying the session objects a session made. Only the objects callers see
//! ([`crate::objects::Object::shown`]) are found or reached by handle.

use crate::attributes::{Attribute, Lookup};
use crate::error::P11Result;
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
                return Err(CKR_OPERATION_ACTIVE);
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
            let search = s.find.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
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
                .ok_or(CKR_OPERATION_NOT_INITIALIZED)
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
            _ => Err(CKR_ACTION_PROHIBITED),
        }
    }
}

/// Where the object with `handle` is in the table, if callers see it.
fn shown(objects: &[Object], handle: CK_OBJECT_HANDLE) -> P11Result<usize> {
    objects
        .iter()
        .position(|o| o.handle == handle && o.shown())
        .ok_or(CKR_OBJECT_HANDLE_INVALID)
}

/// The answer `C_GetAttributeValue` gives for one attribute, given what the object holds and the
/// room the caller gave (`None`: a null `pValue`, asking only for the length).
#[derive(Debug, PartialEq, Eq)]
pub enum Fill<'a> {
    /// Copy these bytes and set the length to theirs.
    Copy(&'a [u8]),
    /// Only set the length (a size query).
    Length(usize),
    /// Set the length to `CK_UNAVAILABLE_INFORMATION`; the call returns this `CKR_*`.
    Unavailable(CK_RV),
}

/// The [`Fill`] for one attribute.
pub fn fill(lookup: &Lookup, room: Option<usize>) -> Fill<'_> {
    match (lookup, room) {
        (Lookup::Value(v), None) => Fill::Length(v.len()),
        (Lookup::Value(v), Some(n)) if n >= v.len() => Fill::Copy(v),
        (Lookup::Value(_), Some(_)) => Fill::Unavailable(CKR_BUFFER_TOO_SMALL),
        (Lookup::Sensitive, _) => Fill::Unavailable(CKR_ATTRIBUTE_SENSITIVE),
        (Lookup::Invalid, _) => Fill::Unavailable(CKR_ATTRIBUTE_TYPE_INVALID),
    }
}

/// The return value of a whole `C_GetAttributeValue`: `CKR_OK`, or one of the failures of its
/// attributes (every attribute is still processed, as PKCS#11 requires). A sensitive attribute
/// is reported first, then an unknown one, then a short buffer.
pub fn overall(fills: &[Fill<'_>]) -> CK_RV {
    let failed = |rv| fills.contains(&Fill::Unavailable(rv));
    [
        CKR_ATTRIBUTE_SENSITIVE,
        CKR_ATTRIBUTE_TYPE_INVALID,
        CKR_BUFFER_TOO_SMALL,
    ]
    .into_iter()
    .find(|rv| failed(*rv))
    .unwrap_or(CKR_OK)
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
        assert_eq!(fill(&v, Some(2)), Fill::Unavailable(CKR_BUFFER_TOO_SMALL));
        let all = [
            fill(&v, Some(8)),
            fill(&Lookup::Invalid, None),
            fill(&v, Some(0)),
        ];
        assert_eq!(overall(&all), CKR_ATTRIBUTE_TYPE_INVALID);
        assert_eq!(overall(&all[..1]), CKR_OK);
        assert_eq!(
            overall(&[fill(&Lookup::Sensitive, Some(1))]),
            CKR_ATTRIBUTE_SENSITIVE
        );
    }
}
