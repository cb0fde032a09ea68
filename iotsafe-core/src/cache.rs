//! The card's public data kept on the host between runs, so that a one-shot program (one
//! `iotsafe connect`, one MQTT publish) does not read the object list, the device's public key
//! and its certificate again through a slow modem every time.
//!
//! One file per card identity ([`Card::identity`]: the modem's port, the PC/SC reader, or
//! [`CardConfig::card_identity`](crate::CardConfig::card_identity)) and applet, in
//! `$IOTSAFE_CACHE_DIR`, else `$XDG_CACHE_HOME/iotsafe`, else `~/.cache/iotsafe`. Before an entry
//! is used it is checked against the card with one short APDU: the last 16 bytes of the cached
//! certificate (the end of its signature, which no other certificate shares), read again from
//! the card, or, with no certificate cached, the device's public key. A swapped SIM, or one
//! provisioned again with a new key and certificate, or only a new certificate, answers
//! something else, and the entry is dropped: the run reads everything from the card, as without
//! a cache. What the check cannot see: an object list changed while the certificate stayed byte
//! for byte the same (IoT SAFE cards are provisioned with the key and its certificate together).
//!
//! The entry also remembers whether the card wants its sessions closed
//! ([`Card::sessions_need_closing`]), so that the next run does not find it out again.

use crate::card::{Card, PublicData};
use crate::hexutil;
use crate::objects::{EcPoint, ObjectRef};
use crate::prelude::*;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// The format line every entry starts with.
const HEADER: &str = "iotsafe-public-cache 1";
/// The format line of a port's facts.
const PORT_HEADER: &str = "iotsafe-port-facts 1";
/// Bytes of the certificate's end compared with the card: the last 128 bits of its signature,
/// which no other certificate shares (and few bytes to carry over a modem's UART).
const TAIL: usize = 16;

/// A folder of cached public card data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicCache {
    dir: PathBuf,
}

/// What [`PublicCache::load`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// The entry matched the card and was handed to the session.
    Warm,
    /// Nothing usable: the run reads from the card. Says why.
    Cold(String),
}

/// How an entry is checked against the card.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    /// These bytes at this offset of this file.
    FileTail(ObjectRef, u16, Vec<u8>),
    /// This point for this key.
    Key(ObjectRef, EcPoint),
}

/// One card's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    identity: String,
    aid: Vec<u8>,
    closes: bool,
    data: PublicData,
    check: Check,
}

impl PublicCache {
    /// A cache in `dir` (made when first written).
    pub fn at(dir: impl Into<PathBuf>) -> PublicCache {
        PublicCache { dir: dir.into() }
    }

    /// The user's cache: `$IOTSAFE_CACHE_DIR`, else `$XDG_CACHE_HOME/iotsafe`, else
    /// `$HOME/.cache/iotsafe`; `None` when none of them is set.
    pub fn from_env() -> Option<PublicCache> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("IOTSAFE_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("iotsafe")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("iotsafe")))
            .map(PublicCache::at)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finds `card`'s entry, checks it against the card (one short APDU), and hands it to the
    /// session. An entry that does not match is removed. Never fails: anything unusable is a cold
    /// start, which reads from the card as if there were no cache.
    pub fn load(&self, card: &Card) -> CacheUse {
        let Some(path) = self.path_for(card) else {
            return CacheUse::Cold("the card has no identity on this host".into());
        };
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return CacheUse::Cold("no entry yet".into())
            }
            Err(e) => return CacheUse::Cold(format!("reading {}: {e}", path.display())),
        };
        let entry = match Entry::parse(&text) {
            Some(entry) if Some(entry.identity.as_str()) == card.identity() => entry,
            _ => return self.drop_entry(&path, "an entry of another card or format".into()),
        };
        if Some(entry.aid.as_slice()) != card.selection().as_ref().map(|(aid, _)| aid.as_slice()) {
            return self.drop_entry(&path, "another applet answered".into());
        }
        if let Err(why) = entry.check_against(card) {
            return self.drop_entry(&path, why);
        }
        if let Err(e) = card.preload_public_data(entry.data) {
            return self.drop_entry(&path, format!("the cached object list: {e}"));
        }
        if entry.closes {
            card.assume_sessions_need_closing();
        }
        CacheUse::Warm
    }

    /// Writes what `card`'s session has read (see [`Card::public_data`]) as its entry, with its
    /// check; nothing when the card has no identity or nothing was read, or when the entry is
    /// already what it would write. Written to a temporary file and renamed, so a reader never
    /// sees half an entry.
    pub fn store(&self, card: &Card) -> io::Result<()> {
        let (Some(path), Some(identity)) = (self.path_for(card), card.identity()) else {
            return Ok(());
        };
        let data = card.public_data();
        let Some((aid, _)) = card.selection() else {
            return Ok(());
        };
        let Some(check) = Check::for_data(&data) else {
            return Ok(());
        };
        let entry = Entry {
            identity: identity.to_string(),
            aid,
            closes: card.sessions_need_closing(),
            data,
            check,
        };
        self.write_atomically(&path, &entry.to_text())
    }

    /// Writes `text` to a temporary file beside `path` and renames it over `path`, unless `path`
    /// already holds it (a warm run): that spares a device's flash a write and an fsync per run.
    fn write_atomically(&self, path: &Path, text: &str) -> io::Result<()> {
        if fs::read_to_string(path).is_ok_and(|old| old == text) {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)?;
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, path)
    }

    /// What an earlier program learned about the link to `port` (e.g. a modem's quirks and
    /// command families: [`Transport::learned`](crate::Transport::learned)), kept by
    /// [`PublicCache::remember_port`]. Nothing about the card: used before a card is opened, and
    /// a stale answer only costs the transport's own fallbacks.
    pub fn port_facts(&self, port: &str) -> Option<String> {
        let text = fs::read_to_string(self.file_for(port, "port")).ok()?;
        let mut lines = text.lines();
        if lines.next()? != PORT_HEADER {
            return None;
        }
        let named =
            String::from_utf8(hexutil::decode(lines.next()?.strip_prefix("port ")?)?).ok()?;
        let facts =
            String::from_utf8(hexutil::decode(lines.next()?.strip_prefix("facts ")?)?).ok()?;
        (named == port && lines.next().is_none()).then_some(facts)
    }

    /// Keeps `facts` about `port` for [`PublicCache::port_facts`] (written only when they
    /// changed).
    pub fn remember_port(&self, port: &str, facts: &str) -> io::Result<()> {
        let text = format!(
            "{PORT_HEADER}\nport {}\nfacts {}\n",
            hexutil::encode(port.as_bytes()),
            hexutil::encode(facts.as_bytes())
        );
        self.write_atomically(&self.file_for(port, "port"), &text)
    }

    fn drop_entry(&self, path: &Path, why: String) -> CacheUse {
        tracing::debug!(path = %path.display(), %why, "cached card data not used");
        let _ = fs::remove_file(path);
        CacheUse::Cold(why)
    }

    /// The entry's file: the card's identity as [`PublicCache::file_for`] names it.
    fn path_for(&self, card: &Card) -> Option<PathBuf> {
        Some(self.file_for(card.identity()?, "card"))
    }

    /// `name` with every character but letters, digits, `.` and `-` made `_`, and `extension`
    /// (the name inside the file tells two that collide apart).
    fn file_for(&self, name: &str, extension: &str) -> PathBuf {
        let name: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
                _ => '_',
            })
            .take(120)
            .collect();
        self.dir.join(format!("{name}.{extension}"))
    }
}

impl Check {
    /// The certificate's last bytes if a cached file is one DER element (its padding would not
    /// tell cards apart), else a cached public key; `None`: nothing to check by, nothing kept.
    fn for_data(data: &PublicData) -> Option<Check> {
        let tail = data.files.iter().find_map(|(file, content)| {
            let end = der_element_len(content)?;
            let start = end.checked_sub(TAIL)?;
            let offset = u16::try_from(start).ok()?;
            Some(Check::FileTail(
                file.clone(),
                offset,
                content[start..end].to_vec(),
            ))
        });
        tail.or_else(|| {
            let (key, point) = data.public_keys.first()?;
            Some(Check::Key(key.clone(), *point))
        })
    }
}

impl Entry {
    /// One short APDU: the card answers what the entry holds, or the reason it does not.
    fn check_against(&self, card: &Card) -> Result<(), String> {
        match &self.check {
            Check::FileTail(file, offset, bytes) => {
                let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
                match card.read_file_at(file, *offset, len) {
                    Ok(read) if read == *bytes => Ok(()),
                    Ok(_) => Err(format!("the certificate in {file} changed")),
                    Err(e) => Err(format!("reading the end of {file}: {e}")),
                }
            }
            Check::Key(key, point) => match card.read_public_key(key) {
                Ok(read) if read == *point => Ok(()),
                Ok(_) => Err(format!("the public key {key} changed")),
                Err(e) => Err(format!("reading the public key {key}: {e}")),
            },
        }
    }

    fn to_text(&self) -> String {
        let mut out = String::from(HEADER);
        let mut line = |parts: &[&str]| {
            out.push('\n');
            out.push_str(&parts.join(" "));
        };
        line(&["identity", &hexutil::encode(self.identity.as_bytes())]);
        line(&["aid", &hexutil::encode(&self.aid)]);
        line(&["closes", if self.closes { "1" } else { "0" }]);
        if let Some(list) = &self.data.object_list {
            line(&["objects", &hexutil::encode(list)]);
        }
        for (key, point) in &self.data.public_keys {
            line(&["key", &ref_text(key), &hexutil::encode(point.as_bytes())]);
        }
        for (file, content) in &self.data.files {
            line(&["file", &ref_text(file), &hexutil::encode(content)]);
        }
        match &self.check {
            Check::FileTail(file, offset, bytes) => line(&[
                "check-file",
                &ref_text(file),
                &offset.to_string(),
                &hexutil::encode(bytes),
            ]),
            Check::Key(key, point) => line(&[
                "check-key",
                &ref_text(key),
                &hexutil::encode(point.as_bytes()),
            ]),
        }
        out.push('\n');
        out
    }

    /// The entry in `text`, or `None` for anything malformed (a cache file is untrusted input).
    fn parse(text: &str) -> Option<Entry> {
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let (mut identity, mut aid, mut closes, mut check) = (None, None, false, None);
        let mut data = PublicData::default();
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["identity", hex] => {
                    identity = Some(String::from_utf8(hexutil::decode(hex)?).ok()?)
                }
                ["aid", hex] => aid = Some(hexutil::decode(hex)?),
                ["closes", flag] => closes = *flag == "1",
                ["objects", hex] => data.object_list = Some(hexutil::decode(hex)?),
                ["key", r, hex] => data.public_keys.push((parse_ref(r)?, point(hex)?)),
                ["file", r, hex] => data.files.push((parse_ref(r)?, hexutil::decode(hex)?)),
                ["check-file", r, offset, hex] => {
                    check = Some(Check::FileTail(
                        parse_ref(r)?,
                        offset.parse().ok()?,
                        hexutil::decode(hex)?,
                    ))
                }
                ["check-key", r, hex] => check = Some(Check::Key(parse_ref(r)?, point(hex)?)),
                _ => return None,
            }
        }
        Some(Entry {
            identity: identity?,
            aid: aid?,
            closes,
            data,
            check: check?,
        })
    }
}

fn point(hex: &str) -> Option<EcPoint> {
    EcPoint::from_slice(&hexutil::decode(hex)?)
}

fn ref_text(r: &ObjectRef) -> String {
    match r {
        ObjectRef::Id(id) => format!("id:{}", hexutil::encode(id)),
        ObjectRef::Label(label) => format!("label:{}", hexutil::encode(label)),
    }
}

fn parse_ref(text: &str) -> Option<ObjectRef> {
    if let Some(hex) = text.strip_prefix("id:") {
        return Some(ObjectRef::Id(hexutil::decode(hex)?));
    }
    Some(ObjectRef::Label(hexutil::decode(
        text.strip_prefix("label:")?,
    )?))
}

/// The length of the DER element `bytes` starts with (header included), when it is a SEQUENCE
/// that fits in `bytes`.
fn der_element_len(bytes: &[u8]) -> Option<usize> {
    if bytes.first() != Some(&0x30) {
        return None;
    }
    let first = *bytes.get(1)?;
    let (header, len) = match first {
        0..=0x7F => (2, usize::from(first)),
        0x81 => (3, usize::from(*bytes.get(2)?)),
        0x82 => (
            4,
            usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
        ),
        _ => return None,
    };
    let total = header + len;
    (total <= bytes.len()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let point = EcPoint::from_slice(&[4; 65]).unwrap_or_else(|| unreachable!());
        Entry {
            identity: "tcp://127.0.0.1:5000".into(),
            aid: vec![0xA0, 0, 0, 5, 0x59, 0, 0x10],
            closes: true,
            data: PublicData {
                object_list: Some(vec![0xC1, 0]),
                public_keys: vec![(ObjectRef::id([1]), point)],
                files: vec![(ObjectRef::label("device cert"), vec![0x30, 1, 0])],
            },
            check: Check::Key(ObjectRef::id([1]), point),
        }
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        let e = entry();
        assert_eq!(Entry::parse(&e.to_text()), Some(e));
    }

    #[test]
    fn anything_malformed_is_no_entry() {
        let text = entry().to_text();
        for broken in [
            String::new(),
            text.replace(HEADER, "iotsafe-public-cache 2"),
            text.replace("closes 1", "closes"),
            text.replace("aid A0", "aid Z0"),
            text.replace("id:01", "id:0"),
            text.lines()
                .filter(|l| !l.starts_with("check"))
                .collect::<Vec<_>>()
                .join("\n"),
            format!("{text}unknown line\n"),
        ] {
            assert_eq!(Entry::parse(&broken), None, "{broken:?}");
        }
    }

    #[test]
    fn the_check_is_the_end_of_the_certificate_not_its_padding() {
        let mut cert = vec![0x30, 0x82, 0x00, 0x40];
        cert.extend((0..0x40u8).map(|b| b.wrapping_mul(7)));
        let mut padded = cert.clone();
        padded.extend([0xFF; 20]);
        let data = PublicData {
            files: vec![(ObjectRef::id([2]), padded)],
            ..PublicData::default()
        };
        let Some(Check::FileTail(_, offset, bytes)) = Check::for_data(&data) else {
            panic!("a file tail check");
        };
        assert_eq!(usize::from(offset), cert.len() - TAIL);
        assert_eq!(bytes, cert[cert.len() - TAIL..]);
        // A file that is no DER element gives no tail to check by.
        let data = PublicData {
            files: vec![(ObjectRef::id([2]), vec![0xFF; 100])],
            ..PublicData::default()
        };
        assert_eq!(Check::for_data(&data), None);
        assert_eq!(der_element_len(&[0x30, 0x81, 0x05, 1, 2]), None);
        assert_eq!(der_element_len(&[0x30, 0x02, 1, 2, 9]), Some(4));
    }
}
