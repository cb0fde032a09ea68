//! Attribute values as PKCS#11 lays them out in memory, an object's attribute set, and the
//! templates callers pass in (search, key generation, derivation).
//!
//! Every value is kept as the bytes a caller receives: `CK_ULONG` in the platform's byte order and
//! width, `CK_BBOOL` as one byte, arrays of `CK_ULONG` back to back.

use cryptoki_sys::{CK_ATTRIBUTE_TYPE, CK_BBOOL, CK_FALSE, CK_TRUE, CK_ULONG};
use zeroize::Zeroizing;

/// The bytes of a `CK_ULONG` value.
pub fn ulong(value: CK_ULONG) -> Vec<u8> {
    value.to_ne_bytes().to_vec()
}

/// The bytes of a `CK_BBOOL` value.
pub fn bool_value(value: bool) -> Vec<u8> {
    vec![if value { CK_TRUE } else { CK_FALSE }]
}

/// The bytes of an array of `CK_ULONG` (e.g. `CKA_ALLOWED_MECHANISMS`).
pub fn ulongs(values: &[CK_ULONG]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Reads a `CK_ULONG` value; `None` when the bytes are not exactly one.
pub fn read_ulong(bytes: &[u8]) -> Option<CK_ULONG> {
    Some(CK_ULONG::from_ne_bytes(bytes.try_into().ok()?))
}

/// Reads a `CK_BBOOL` value; `None` when the bytes are not exactly one byte. Any non-zero byte is
/// true, as C reads it.
pub fn read_bool(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [b] => Some(*b as CK_BBOOL != CK_FALSE),
        _ => None,
    }
}

/// What an object holds for one attribute.
#[derive(Clone)]
pub enum Value {
    /// A value anyone may read.
    Plain(Vec<u8>),
    /// A secret the module holds (a derived key): readable only when `readable` (not sensitive,
    /// extractable); wiped when dropped.
    Secret {
        /// The secret bytes.
        value: Zeroizing<Vec<u8>>,
        /// Whether `C_GetAttributeValue` may return it.
        readable: bool,
    },
    /// A value that exists only on the card (a private key's scalar): never readable.
    OnCardOnly,
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Plain(v) => write!(f, "Plain({} bytes)", v.len()),
            Value::Secret { readable, .. } => write!(f, "Secret(readable: {readable})"),
            Value::OnCardOnly => f.write_str("OnCardOnly"),
        }
    }
}

/// The answer for one attribute of `C_GetAttributeValue`.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The value (wiped when dropped: it may be a readable secret).
    Value(Zeroizing<Vec<u8>>),
    /// The attribute is sensitive or unextractable (`CKR_ATTRIBUTE_SENSITIVE`).
    Sensitive,
    /// The object has no such attribute (`CKR_ATTRIBUTE_TYPE_INVALID`).
    Invalid,
}

/// An object's attributes, in the order they were set.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    entries: Vec<(CK_ATTRIBUTE_TYPE, Value)>,
}

impl Attributes {
    /// Sets (or replaces) a readable attribute.
    pub fn set(&mut self, kind: CK_ATTRIBUTE_TYPE, bytes: Vec<u8>) -> &mut Self {
        self.put(kind, Value::Plain(bytes))
    }

    /// Sets (or replaces) an attribute with any kind of value.
    pub fn put(&mut self, kind: CK_ATTRIBUTE_TYPE, value: Value) -> &mut Self {
        match self.entries.iter_mut().find(|(k, _)| *k == kind) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((kind, value)),
        }
        self
    }

    /// The stored value of an attribute.
    pub fn value(&self, kind: CK_ATTRIBUTE_TYPE) -> Option<&Value> {
        self.entries
            .iter()
            .find_map(|(k, v)| (*k == kind).then_some(v))
    }

    /// A readable attribute's bytes.
    pub fn plain(&self, kind: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        match self.value(kind)? {
            Value::Plain(v) => Some(v),
            _ => None,
        }
    }

    /// What `C_GetAttributeValue` answers for `kind`.
    pub fn lookup(&self, kind: CK_ATTRIBUTE_TYPE) -> Lookup {
        match self.value(kind) {
            Some(Value::Plain(v)) => Lookup::Value(Zeroizing::new(v.clone())),
            Some(Value::Secret {
                value,
                readable: true,
            }) => Lookup::Value(value.clone()),
            Some(Value::Secret { .. } | Value::OnCardOnly) => Lookup::Sensitive,
            None => Lookup::Invalid,
        }
    }

    /// Whether every attribute of `template` is here with exactly that value. Secrets and values
    /// kept on the card never match: a search must not reveal them byte by byte.
    pub fn matches(&self, template: &[Attribute]) -> bool {
        template
            .iter()
            .all(|a| self.plain(a.kind) == Some(a.value.as_slice()))
    }

    /// The bytes of every value held here: readable values and secrets; a value that only the
    /// card holds counts for nothing (`C_GetObjectSize`).
    pub fn held_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, v)| match v {
                Value::Plain(bytes) => bytes.len(),
                Value::Secret { value, .. } => value.len(),
                Value::OnCardOnly => 0,
            })
            .sum()
    }

    /// The attribute types present (for tests: the module reads attributes by type).
    #[cfg(test)]
    pub fn types(&self) -> impl Iterator<Item = CK_ATTRIBUTE_TYPE> + '_ {
        self.entries.iter().map(|(k, _)| *k)
    }
}

/// One attribute of a template a caller passed in.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `CKA_*`.
    pub kind: CK_ATTRIBUTE_TYPE,
    /// The value bytes (wiped when dropped: templates may carry key material).
    pub value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attribute({:#x}, {} bytes)", self.kind, self.value.len())
    }
}

impl Attribute {
    /// An attribute of a template.
    pub fn new(kind: CK_ATTRIBUTE_TYPE, value: impl Into<Vec<u8>>) -> Attribute {
        Attribute {
            kind,
            value: Zeroizing::new(value.into()),
        }
    }
}

/// A template's view of one attribute: absent, or its value read as the expected type.
#[derive(Debug, Clone, Copy)]
pub struct Template<'a>(pub &'a [Attribute]);

/// A template attribute whose value has the wrong size for its type (`CKR_ATTRIBUTE_VALUE_INVALID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadValue(pub CK_ATTRIBUTE_TYPE);

impl From<BadValue> for crate::error::Error {
    fn from(BadValue(kind): BadValue) -> crate::error::Error {
        crate::error::Error::AttributeValue(kind)
    }
}

impl<'a> Template<'a> {
    /// The bytes given for `kind` (the last one, if given twice).
    pub fn bytes(&self, kind: CK_ATTRIBUTE_TYPE) -> Option<&'a [u8]> {
        self.0
            .iter()
            .rev()
            .find(|a| a.kind == kind)
            .map(|a| a.value.as_slice())
    }

    /// A `CK_BBOOL` attribute.
    pub fn flag(&self, kind: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>, BadValue> {
        self.bytes(kind)
            .map(|b| read_bool(b).ok_or(BadValue(kind)))
            .transpose()
    }

    /// A `CK_ULONG` attribute.
    pub fn number(&self, kind: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>, BadValue> {
        self.bytes(kind)
            .map(|b| read_ulong(b).ok_or(BadValue(kind)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki_sys::{CKA_CLASS, CKA_ID, CKA_LABEL, CKA_TOKEN, CKA_VALUE, CKO_DATA};

    #[test]
    fn values_round_trip_in_platform_layout() {
        assert_eq!(read_ulong(&ulong(0x1234)), Some(0x1234));
        assert_eq!(ulong(1).len(), std::mem::size_of::<CK_ULONG>());
        assert_eq!(read_bool(&bool_value(true)), Some(true));
        assert_eq!(read_bool(&[7]), Some(true));
        assert_eq!(read_bool(&[0, 0]), None);
        assert_eq!(read_ulong(&[1, 2, 3]), None);
        assert_eq!(ulongs(&[1, 2]).len(), 2 * std::mem::size_of::<CK_ULONG>());
    }

    #[test]
    fn lookups_and_matches() {
        let mut a = Attributes::default();
        a.set(CKA_CLASS, ulong(CKO_DATA))
            .set(CKA_LABEL, b"x".to_vec())
            .put(
                CKA_VALUE,
                Value::Secret {
                    value: Zeroizing::new(vec![9; 4]),
                    readable: false,
                },
            );
        assert_eq!(
            a.lookup(CKA_LABEL),
            Lookup::Value(Zeroizing::new(b"x".to_vec()))
        );
        assert_eq!(a.lookup(CKA_VALUE), Lookup::Sensitive);
        assert_eq!(a.lookup(CKA_ID), Lookup::Invalid);
        assert!(a.matches(&[]));
        assert!(a.matches(&[Attribute::new(CKA_CLASS, ulong(CKO_DATA))]));
        assert!(!a.matches(&[Attribute::new(CKA_LABEL, b"y".to_vec())]));
        // A secret never matches, even with the right bytes.
        assert!(!a.matches(&[Attribute::new(CKA_VALUE, vec![9; 4])]));
        a.set(CKA_LABEL, b"y".to_vec());
        assert_eq!(a.types().count(), 3);
    }

    #[test]
    fn template_reads_types_strictly() {
        let t = [
            Attribute::new(CKA_TOKEN, vec![1]),
            Attribute::new(CKA_CLASS, vec![1, 2]),
        ];
        let t = Template(&t);
        assert_eq!(t.flag(CKA_TOKEN), Ok(Some(true)));
        assert_eq!(t.number(CKA_CLASS), Err(BadValue(CKA_CLASS)));
        assert_eq!(t.flag(CKA_LABEL), Ok(None));
    }
}
