//! The mechanisms a token offers, from what its keys may do, and what `C_GetMechanismInfo` says
//! of each.

use crate::objects::{Backing, Object};
use cryptoki_sys::*;

/// A mechanism as a caller passed it, its parameters decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    /// `CKM_*`.
    pub kind: CK_MECHANISM_TYPE,
    /// Its parameters.
    pub params: Params,
}

impl Mechanism {
    /// A mechanism without parameters (for tests: callers' mechanisms come through the C ABI).
    #[cfg(test)]
    pub fn plain(kind: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism {
            kind,
            params: Params::None,
        }
    }
}

/// Mechanism parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Params {
    /// None given (null pointer, zero length).
    None,
    /// `CK_ECDH1_DERIVE_PARAMS` of an ECDH mechanism.
    Ecdh(EcdhParams),
    /// Something this module does not read (parameters for a mechanism that takes none, or of
    /// the wrong size): `CKR_MECHANISM_PARAM_INVALID` wherever it is used.
    Unreadable,
}

/// `CK_ECDH1_DERIVE_PARAMS`, copied out of the caller's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdhParams {
    /// `kdf`: only `CKD_NULL` is offered.
    pub kdf: CK_EC_KDF_TYPE,
    /// `pSharedData`: must be empty with `CKD_NULL`.
    pub shared_data: Vec<u8>,
    /// `pPublicData`: the peer's point.
    pub public_data: Vec<u8>,
}

/// What `C_GetMechanismInfo` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MechanismInfo {
    /// Smallest key size, in bits.
    pub min_key_bits: CK_ULONG,
    /// Largest key size, in bits.
    pub max_key_bits: CK_ULONG,
    /// `CKF_*`.
    pub flags: CK_FLAGS,
}

/// P-256 only, named curve, uncompressed points; every mechanism runs on the card.
const EC_FLAGS: CK_FLAGS = CKF_HW | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

/// The mechanisms of a token whose objects are `objects`: the signatures when a key signs,
/// ECDH when a key agrees and the card has a slot for the peer's key, key pair generation when a
/// key slot allows it.
pub fn offered(objects: &[Object], has_peer_slot: bool) -> Vec<CK_MECHANISM_TYPE> {
    let keys = || {
        objects.iter().filter_map(|o| match &o.backing {
            Backing::PrivateKey(k) => Some(k),
            _ => None,
        })
    };
    let mut out = Vec::new();
    if keys().any(|k| k.sign) {
        out.extend_from_slice(&[CKM_ECDSA, CKM_ECDSA_SHA256]);
    }
    if has_peer_slot && keys().any(|k| k.derive) {
        out.push(CKM_ECDH1_DERIVE);
    }
    if keys().any(|k| k.generate) {
        out.push(CKM_EC_KEY_PAIR_GEN);
    }
    out
}

/// What a mechanism of [`offered`] can do; `None` for any other.
pub fn info(mechanism: CK_MECHANISM_TYPE) -> Option<MechanismInfo> {
    let flags = match mechanism {
        CKM_ECDSA | CKM_ECDSA_SHA256 => CKF_SIGN | CKF_VERIFY,
        CKM_ECDH1_DERIVE => CKF_DERIVE,
        CKM_EC_KEY_PAIR_GEN => CKF_GENERATE_KEY_PAIR,
        _ => return None,
    };
    Some(MechanismInfo {
        min_key_bits: 256,
        max_key_bits: 256,
        flags: EC_FLAGS | flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_mechanism_has_info() {
        for m in [
            CKM_ECDSA,
            CKM_ECDSA_SHA256,
            CKM_ECDH1_DERIVE,
            CKM_EC_KEY_PAIR_GEN,
        ] {
            assert!(info(m).is_some());
        }
        assert_eq!(info(CKM_RSA_PKCS), None);
        assert!(offered(&[], true).is_empty());
    }
}
