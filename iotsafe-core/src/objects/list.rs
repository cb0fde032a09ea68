//! The object list (GET DATA P1=01): information structures `C1`..`C4`, one per object or
//! several objects per structure, fields in any order, lengths in BER or one plain byte.

use super::{ObjectInfo, ObjectKind};
use crate::error::{CommandKind, Error};
use crate::prelude::*;
use crate::tlv;

/// Parses an object list (GET DATA P1=01): a run of `C1`..`C4` structures in any order.
///
/// One structure per object is what the reference recommends, but a structure holding several
/// objects is accepted too (Thales PKCS#11 reads them), with the fields of each object in any
/// order: see [`split_objects`] for where one object ends and the next begins.
///
/// A card writes all its lengths one way. The structures are read with BER lengths first (the
/// standard); when the list does not parse that way, with one plain length byte each: a
/// structure of 129..=131 bytes written `C2 81 …` with more structures after it reads as BER
/// `81 xx` too, and only the whole list tells the two apart.
pub fn parse_object_list(data: &[u8]) -> Result<Vec<ObjectInfo>, Error> {
    let ber = tlv::parse_all(data)
        .map_err(|_| Error::malformed(CommandKind::GetData, "an object list", data))
        .and_then(|structures| objects_of(&structures, data));
    match ber {
        Ok(list) => Ok(list),
        Err(error) => match tlv::parse_all_one_byte(data) {
            Ok(structures) => objects_of(&structures, data).map_err(|_| error),
            Err(_) => Err(error),
        },
    }
}

/// The objects of a run of information structures.
fn objects_of(structures: &[tlv::Tlv<'_>], data: &[u8]) -> Result<Vec<ObjectInfo>, Error> {
    let mut out = Vec::new();
    for t in structures {
        let Some(kind) = ObjectKind::from_info_tag(t.tag) else {
            // Unknown structures are skipped: newer applets may list more kinds.
            continue;
        };
        for range in split_objects(t.value)
            .map_err(|_| Error::malformed(CommandKind::GetData, "an object list", data))?
        {
            out.push(ObjectInfo::parse_content(Some(kind), &t.value[range])?);
        }
    }
    Ok(out)
}

/// The fields an object carries at most once (the information structures of
/// `docs/protocol.md#object-list` list each once), as a bit index; `None` for tags that may repeat or are unknown.
fn single_field_bit(tag: u8) -> Option<u32> {
    Some(match tag {
        0x83..=0x86 => u32::from(tag - 0x83),     // IDs: bits 0..=3
        0x73..=0x76 => 4 + u32::from(tag - 0x73), // labels: bits 4..=7
        0x60 => 8,
        0x4A => 9,
        0x4B => 10,
        0x4E => 11,
        0x61 => 12,
        0x92 => 13,
        0x91 => 14,
        0x6F => 15,
        0x94 => 16,
        0x21 => 17,
        0x20 => 18,
        _ => return None,
    })
}

/// The whole of `content` as one object.
fn whole(content: &[u8]) -> Vec<core::ops::Range<usize>> {
    core::iter::once(0..content.len()).collect()
}

/// Splits the content of one information structure into the byte ranges of its objects.
///
/// Every object carries each of its fields (ID, label, access, state, …) at most once, so a field
/// that comes again belongs to a further object. Where the boundary lies between the first and the
/// second occurrence is chosen, over the whole structure at once, by:
/// 1. as few objects as the repeats allow;
/// 2. then objects that start with their ID or label, as in every layout the reference shows
///    (Orange: label then ID; Quantag: ID then label; Thales: label, ID, attributes);
/// 3. then objects whose ID and label, when both present, stand next to each other.
///
/// So `74 L1 84 I1 60 … 74 L2 84 I2 60 …` splits before `74 L2` (giving object 1 label L1), and
/// `84 I1 60 … 74 L2 84 I2 60 …` before `74 L2` too. Fields of unknown tags stay with the field
/// before them. The search is linear: an object holds at most 19 distinct known fields.
pub fn split_objects(content: &[u8]) -> Result<Vec<core::ops::Range<usize>>, tlv::TlvError> {
    // Byte start and known-field bit of every TLV.
    let mut fields: Vec<(usize, Option<u32>)> = Vec::new();
    let base = content.as_ptr() as usize;
    let mut pos = 0usize;
    for t in tlv::iter(content) {
        let t = t?;
        fields.push((pos, single_field_bit(t.tag)));
        // The value borrows from `content`: its end is where the next TLV starts.
        pos = t.value.as_ptr() as usize - base + t.value.len();
    }
    let known: Vec<(usize, u32)> = fields
        .iter()
        .filter_map(|&(start, bit)| bit.map(|b| (start, b)))
        .collect();
    let k = known.len();
    if k < 2 {
        return Ok(whole(content));
    }
    let is_ref = |bit: u32| bit < 8;
    let is_id = |bit: u32| bit < 4;
    // best[m]: the best split of known[..m] (score, start of its last object).
    type Score = (usize, usize, usize);
    let mut best: Vec<Option<(Score, usize)>> = vec![None; k + 1];
    best[0] = Some(((0, 0, 0), 0));
    for m in 0..k {
        let Some(((objects, late_refs, apart), _)) = best[m] else {
            continue;
        };
        let mut seen = 0u32;
        let (mut id_at, mut label_at, mut adjacent) = (None, None, false);
        for (e, &(_, bit)) in known.iter().enumerate().skip(m) {
            if seen & (1 << bit) != 0 {
                break;
            }
            seen |= 1 << bit;
            if is_ref(bit) {
                let other = if is_id(bit) { label_at } else { id_at };
                adjacent |= other == Some(e.wrapping_sub(1));
                if is_id(bit) {
                    id_at = Some(e);
                } else {
                    label_at = Some(e);
                }
            }
            let both_apart = id_at.is_some() && label_at.is_some() && !adjacent;
            let score = (
                objects + 1,
                late_refs + usize::from(!is_ref(known[m].1)),
                apart + usize::from(both_apart),
            );
            if best[e + 1].is_none_or(|(b, _)| score < b) {
                best[e + 1] = Some((score, m));
            }
        }
    }
    // Walk back from the end; every object starts at its first known field, except the first,
    // which also takes any unknown fields before it.
    let mut starts = Vec::new();
    let mut m = k;
    while m > 0 {
        let Some((_, from)) = best[m] else {
            // Unreachable (a single field always forms an object), but never panic on input.
            return Ok(whole(content));
        };
        starts.push(if from == 0 { 0 } else { known[from].0 });
        m = from;
    }
    starts.reverse();
    let mut ranges = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(content.len());
        ranges.push(start..end);
    }
    Ok(ranges)
}
