//! Reading what the applet holds: applet information, the object list, one object's attributes,
//! and files.

use super::Op;
use crate::apdu::Le;
use crate::card::session::Session;
use crate::card::Card;
use crate::commands;
use crate::error::{CommandKind, Error};
use crate::link::{success, Secrecy};
use crate::objects::{AppletInfo, ObjectInfo, ObjectKind, ObjectRef};
use crate::prelude::*;
use crate::stats::Operation;
use crate::sw::{Meaning, StatusWord};

impl Card {
    /// Applet information (GET DATA P1=00), read once and cached.
    pub fn applet_info(&self) -> Result<AppletInfo, Error> {
        let mut s = self.lock();
        if let Some(info) = &s.applet_info {
            return Ok(info.clone());
        }
        let info = s.run(Operation::AppletInfo, |op| {
            let data = op.exchange_ok(
                &commands::get_applet_info(op.cla),
                CommandKind::GetData,
                Secrecy::Public,
            )?;
            AppletInfo::parse(&data)
        })?;
        s.applet_info = Some(info.clone());
        Ok(info)
    }

    /// The object list (GET DATA P1=01 with `6300` continuations), read once and cached.
    pub fn objects(&self) -> Result<Vec<ObjectInfo>, Error> {
        self.lock().objects_cached()
    }

    /// Forgets the cached object list, applet information and public data (after provisioning
    /// changes).
    pub fn refresh(&self) -> Result<(), Error> {
        let mut s = self.lock();
        s.objects = None;
        s.applet_info = None;
        s.public = Default::default();
        s.preloaded = Default::default();
        Ok(())
    }

    /// The descriptor of one object from the cached list.
    pub fn find(&self, kind: ObjectKind, object: &ObjectRef) -> Result<ObjectInfo, Error> {
        self.objects()?
            .into_iter()
            .find(|o| o.kind == Some(kind) && object.matches(o))
            .ok_or_else(|| Error::UnknownObject(format!("{kind} {object}")))
    }

    /// GET DATA for one object (`CB Cx`), answer with or without its wrapper.
    pub fn object_info(&self, kind: ObjectKind, object: &ObjectRef) -> Result<ObjectInfo, Error> {
        self.lock().run(Operation::ObjectInfo, |op| {
            let cmd = commands::get_object_info(op.cla, kind, object, op.case4_le())?;
            let data = op.exchange_ok(&cmd, CommandKind::GetData, Secrecy::Public)?;
            ObjectInfo::parse_single(kind, &data)
        })
    }

    /// Reads a whole file. Its size comes from the cached object list, else from GET DATA `C3`; when
    /// the card has neither, chunks are read until an end-of-file status or an empty answer (a short
    /// chunk is not the end: some modems and cards return fewer bytes than asked).
    pub fn read_file(&self, file: &ObjectRef) -> Result<Vec<u8>, Error> {
        let mut s = self.lock();
        if let Some(content) = s.preloaded.file(file) {
            return Ok(content.to_vec());
        }
        // Only a list already read is consulted: reading it here would cost APDUs per file.
        let listed = s
            .objects
            .as_ref()
            .and_then(|l| {
                l.iter()
                    .find(|o| o.kind == Some(ObjectKind::File) && file.matches(o))
            })
            .and_then(|o| o.file_size);
        let content = s.run(Operation::ReadFile, |op| {
            let size = match listed {
                Some(n) => Some(n as usize),
                None => op.file_size(file)?,
            };
            op.read_chunks(file, size)
        })?;
        s.public.remember_file(file, &content);
        Ok(content)
    }

    /// READ FILE of `len` bytes (1..=256) at `offset`: one APDU, whatever the card answers with
    /// success (fewer bytes at the end of the file). Never answered from memory.
    pub fn read_file_at(&self, file: &ObjectRef, offset: u16, len: u16) -> Result<Vec<u8>, Error> {
        let le = crate::apdu::Le::Ne(u32::from(len.clamp(1, 256)));
        self.lock().run(Operation::ReadFile, |op| {
            let cmd = commands::read_file(op.cla, file, offset, le)?;
            Ok(op
                .exchange_ok(&cmd, CommandKind::ReadFile, Secrecy::Public)?
                .to_vec())
        })
    }
}

impl Session {
    /// The object list, from the cache or read from the card.
    fn objects_cached(&mut self) -> Result<Vec<ObjectInfo>, Error> {
        if let Some(list) = &self.objects {
            return Ok(list.clone());
        }
        let (list, raw) = self.run(Operation::ObjectInfo, |op| {
            let mut data = Vec::new();
            let mut continuation = false;
            for _ in 0..op.config.max_rounds {
                let r = op.exchange(
                    &commands::get_object_list(op.cla, continuation),
                    CommandKind::GetData,
                    Secrecy::Public,
                )?;
                data.extend_from_slice(&r.data);
                match r.sw.meaning() {
                    Meaning::MoreData => continuation = true,
                    _ => {
                        success(r, CommandKind::GetData)?;
                        return Ok((crate::objects::parse_object_list(&data)?, data));
                    }
                }
            }
            Err(Error::Runaway {
                command: CommandKind::GetData,
                rounds: op.config.max_rounds,
            })
        })?;
        self.objects = Some(list.clone());
        self.public.object_list = Some(raw);
        Ok(list)
    }
}

impl Op<'_> {
    /// A file's size from GET DATA `C3`; `None` when the card has no GET DATA for it.
    fn file_size(&mut self, file: &ObjectRef) -> Result<Option<usize>, Error> {
        let cmd = commands::get_object_info(self.cla, ObjectKind::File, file, self.case4_le())?;
        let r = self.exchange(&cmd, CommandKind::GetData, Secrecy::Public)?;
        if r.sw.is_success() {
            let info = ObjectInfo::parse_single(ObjectKind::File, &r.data)?;
            return Ok(info.file_size.map(|n| n as usize));
        }
        if r.sw.meaning() == Meaning::NotFound {
            return Err(Error::Status {
                command: CommandKind::ReadFile,
                sw: r.sw,
            });
        }
        // No GET DATA on this card: read until the end.
        Ok(None)
    }

    /// Reads a file in chunks: `size` bytes when known, else until the card reports the end.
    ///
    /// A chunk shorter than asked is not the end: some modems and cards return fewer bytes than
    /// Le (a modem cutting long AT answers, a card with a smaller buffer). The end is the announced
    /// size, an end-of-file status (`6282` with the last bytes, `6A86`/`6B00` offset beyond the
    /// file, `6981`), or an empty answer.
    fn read_chunks(&mut self, file: &ObjectRef, size: Option<usize>) -> Result<Vec<u8>, Error> {
        const MAX_FILE: usize = 0x1_0000;
        /// `6282`: end of file reached before Le bytes were read; the data that came is valid.
        const END_OF_FILE: StatusWord = StatusWord(0x6282);
        let chunk = usize::from(self.config.read_chunk.clamp(1, 256));
        let target = size.unwrap_or(MAX_FILE).min(MAX_FILE);
        let mut out = Vec::with_capacity(size.unwrap_or(1024).min(MAX_FILE));
        while out.len() < target {
            let want = chunk.min(target - out.len());
            let offset = u16::try_from(out.len()).map_err(|_| Error::InvalidRequest {
                command: CommandKind::ReadFile,
                reason: String::from("files beyond 64 KiB cannot be addressed"),
            })?;
            let cmd = commands::read_file(self.cla, file, offset, Le::Ne(want as u32))?;
            let r = self.exchange(&cmd, CommandKind::ReadFile, Secrecy::Public)?;
            let past_end = matches!(
                r.sw.meaning(),
                Meaning::IncorrectP1P2 | Meaning::IncompatibleFileStructure
            ) || r.sw.sw1() == 0x6B;
            if size.is_none() && past_end && !out.is_empty() {
                break;
            }
            let at_end = r.sw == END_OF_FILE;
            let data = if at_end {
                r.data
            } else {
                success(r, CommandKind::ReadFile)?
            };
            let take = data.len().min(target - out.len());
            out.extend_from_slice(&data[..take]);
            if data.is_empty() || at_end {
                break;
            }
        }
        if let Some(size) = size {
            if out.len() < size.min(MAX_FILE) {
                return Err(Error::Malformed {
                    command: CommandKind::ReadFile,
                    expected: "file bytes up to the size in the object's attributes",
                    got: format!("the file ended after {} of {size} bytes", out.len()),
                });
            }
        }
        Ok(out)
    }
}
