//! One module per group of IoT.05 commands. Each command takes the parsed APDU and the applet state
//! and returns the response data with its status word, or an error status word.

pub(crate) mod channel;
pub(crate) mod data;
pub(crate) mod derive;
pub(crate) mod keys;
pub(crate) mod sessions;
pub(crate) mod signature;

use crate::apdu::Command;
use crate::profile::Operation;
use crate::session::HashAlg;
use crate::store::ObjectRef;
use crate::sw;
use crate::tlv::{self, Tlv, ValueTooLong};

/// Largest ID (`8x`) and label (`7x`) lengths (`docs/protocol.md#object-references`).
const MAX_ID_LEN: usize = 20;
const MAX_LABEL_LEN: usize = 60;

/// A successful (or warning) answer: data, status word, and the operation whose latency applies.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub data: Vec<u8>,
    pub sw: u16,
    pub op: Option<Operation>,
}

impl Outcome {
    /// `9000` without data.
    pub fn ok() -> Outcome {
        Outcome {
            data: Vec::new(),
            sw: sw::OK,
            op: None,
        }
    }

    /// `9000` with data.
    pub fn data(data: Vec<u8>) -> Outcome {
        Outcome {
            data,
            sw: sw::OK,
            op: None,
        }
    }

    /// Marks the operation performed (for the latency model).
    pub fn with_op(mut self, op: Operation) -> Outcome {
        self.op = Some(op);
        self
    }
}

/// What a command returns: an [`Outcome`] or an error status word.
pub(crate) type CommandResult = Result<Outcome, u16>;

/// Parses the command data as TLVs; a length running past the end is `6700`.
pub(crate) fn parse_tlvs<'a>(cmd: &Command<'a>) -> Result<Vec<Tlv<'a>>, u16> {
    tlv::parse(cmd.data).map_err(|_| sw::WRONG_LENGTH)
}

/// The object reference in `tlvs`: exactly one of the ID tag and the label tag, else `6A80`.
pub(crate) fn object_ref<'a>(
    tlvs: &[Tlv<'a>],
    id_tag: u8,
    label_tag: u8,
) -> Result<ObjectRef<'a>, u16> {
    match (tlv::find(tlvs, id_tag), tlv::find(tlvs, label_tag)) {
        (Some(id), None) if !id.is_empty() && id.len() <= MAX_ID_LEN => Ok(ObjectRef::Id(id)),
        (None, Some(label)) if !label.is_empty() && label.len() <= MAX_LABEL_LEN => {
            Ok(ObjectRef::Label(label))
        }
        _ => Err(sw::INCORRECT_DATA),
    }
}

/// The hash algorithm of tag `91` (default SHA-256), else `6A80`. Orange builds tag `91` from a
/// one-byte value in places, so either width is taken.
pub(crate) fn hash_algorithm(tlvs: &[Tlv<'_>]) -> Result<HashAlg, u16> {
    let mask = match tlv::find(tlvs, 0x91) {
        None => return Ok(HashAlg::Sha256),
        Some(&[b]) => u16::from(b),
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        Some(_) => return Err(sw::INCORRECT_DATA),
    };
    HashAlg::from_bitmask(mask).ok_or(sw::INCORRECT_DATA)
}

/// `6A86` unless P1 and P2 are both zero.
pub(crate) fn require_p1p2_zero(cmd: &Command<'_>) -> Result<(), u16> {
    if cmd.p1 == 0 && cmd.p2 == 0 {
        Ok(())
    } else {
        Err(sw::WRONG_P1P2)
    }
}

/// `6985` unless `mask` has every bit of `needed`.
pub(crate) fn require_bits(mask: u8, needed: u8) -> Result<(), u16> {
    if mask & needed == needed {
        Ok(())
    } else {
        Err(sw::CONDITIONS_NOT_SATISFIED)
    }
}

/// The IoT.05 public key data object: `34 45 49 43 86 41 04‖X‖Y`.
pub(crate) fn public_key_data(point: &[u8]) -> Result<Vec<u8>, ValueTooLong> {
    let mut point_tlv = Vec::with_capacity(67);
    tlv::push(&mut point_tlv, 0x86, point)?;
    let mut ecc = Vec::with_capacity(69);
    tlv::push(&mut ecc, 0x49, &point_tlv)?;
    let mut out = Vec::with_capacity(71);
    tlv::push(&mut out, 0x34, &ecc)?;
    Ok(out)
}
