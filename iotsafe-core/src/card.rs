//! The card session: one channel, the selected applet, cached object list and applet information,
//! one lock around every multi-APDU operation, reconnection after a reset, and counters.

use crate::apdu::{class_byte, ClassStyle, Command, Le};
use crate::commands::{
    self, CardSignature, GeneratedKeyPair, HashAlgorithm, ParsedSignature, SignMode,
    SignatureAlgorithm,
};
use crate::config::{CardConfig, ChannelStrategy};
use crate::error::{hex, CommandKind, Error};
use crate::link::{success, Link, Secrecy, TraceSink};
use crate::objects::{AppletInfo, EcPoint, ObjectInfo, ObjectKind, ObjectRef};
use crate::stats::{CardStats, Operation};
use crate::sw::{Meaning, StatusWord};
use crate::transport::{DirectTransaction, Transaction, Transport, TransportError};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use zeroize::Zeroizing;

/// Where the session stands with the applet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selected {
    /// Channel number used in class bytes (0 when the transport routes channels itself).
    channel: u8,
    /// Whether the session opened the channel with MANAGE CHANNEL (and closes it at the end).
    opened_by_us: bool,
    /// Whether the transport opened it (AT+CCHO).
    opened_by_transport: bool,
    /// The AID that answered.
    aid: Vec<u8>,
}

/// Whether the session's channel can be used as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelState {
    /// The channel in `selected` is open and the applet selected on it.
    Up,
    /// The connection dropped, and nothing says the card was reset: a modem's port that went away
    /// leaves the SIM powered, with the session's channel still open on it.
    Lost,
    /// The card was reset or powered down: its channels, sessions and volatile keys are gone.
    LostWithReset,
    /// The connection is fine, but the card was reset behind the transport's back: it answered
    /// `6881` on the session's channel.
    ChannelClosed,
}

struct Session {
    transport: Box<dyn Transport + Send>,
    config: CardConfig,
    /// The channel the applet was last selected on; kept across a lost connection so that it can
    /// be reused (or closed) instead of leaked.
    selected: Option<Selected>,
    state: ChannelState,
    objects: Option<Vec<ObjectInfo>>,
    applet_info: Option<AppletInfo>,
    ephemeral_generation: u64,
    stats: CardStats,
    trace: Option<TraceSink>,
}

/// A key pair the card generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The private key, by the ID the card reported (or the reference asked, if it reported none).
    pub private: ObjectRef,
    /// The public key.
    pub public: ObjectRef,
    /// The public point.
    pub point: EcPoint,
}

/// An ephemeral key generated for one key exchange. Its generation number ties it to the slot's
/// content: if the slot is regenerated before the agreement, the agreement fails cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralKey {
    /// Generation of the ephemeral slot this key belongs to.
    pub generation: u64,
    /// The key pair.
    pub key_pair: KeyPair,
}

/// A session with an IoT SAFE applet. `Send + Sync`: share it with an `Arc`; operations are
/// serialized behind one lock, so a multi-APDU operation is never interleaved with another.
///
/// # Recovery
/// When an operation fails because the connection was lost (card removed or reset, reader or
/// modem gone, pcscd restarted, timeout), the error goes to the caller and the next operation
/// reconnects first. Three cases are retried at once instead, because the card cannot have acted
/// on the command: the connection was found dead before the operation's first APDU went out, the
/// card reported a reset, or it answered `6881` on the session's own channel (a reset the
/// transport never saw: the modem restarted the SIM, a SIM REFRESH, a brown-out). Nothing else is
/// ever re-sent.
///
/// # Channels
/// The session's logical channel is never leaked: after a loss that need not have reset the card
/// (a modem port that dropped, a timeout) the next operation selects the applet again on the same
/// channel, and opens a new one only when the card refuses it. After a reset (reported, or seen as
/// `6881`) a new channel is opened. Dropping a `Card` closes its channel as [`Card::close`] does.
/// When the card opens no channel, the session fails with [`Error::NoLogicalChannel`] rather
/// than take the basic channel, unless [`CardConfig::allow_basic_channel`] says so.
///
/// # Volatile state
/// Any reset or lost connection retires the ephemeral key: the slot's generation moves on, so a
/// key generated before it fails cleanly ([`Error::StaleEphemeral`]) instead of reaching COMPUTE
/// DH on a card that has wiped it.
pub struct Card {
    session: Mutex<Session>,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("transport", &self.describe())
            .finish_non_exhaustive()
    }
}

/// A session dropped without [`Card::close`] still gives its channel back: a card has few
/// logical channels (often three besides the basic one), and one leaked per process start would
/// exhaust them. Best effort: errors are logged, never raised.
impl Drop for Card {
    fn drop(&mut self) {
        let session = match self.session.get_mut() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = session.disconnect() {
            tracing::debug!(error = %e, "closing the card channel on drop failed");
        }
    }
}

impl Card {
    /// Opens a session: opens a channel (per the configuration), selects the applet (trying each
    /// configured AID), and returns the session. No other APDU is sent.
    pub fn open(
        transport: impl Transport + Send + 'static,
        config: CardConfig,
    ) -> Result<Card, Error> {
        Card::open_traced(transport, config, None)
    }

    /// [`Card::open`] with a trace sink that already sees the MANAGE CHANNEL and SELECT of the
    /// opening (secrets redacted, as every trace).
    pub fn open_traced(
        transport: impl Transport + Send + 'static,
        config: CardConfig,
        trace: Option<TraceSink>,
    ) -> Result<Card, Error> {
        let mut session = Session {
            transport: Box::new(transport),
            config,
            selected: None,
            state: ChannelState::Up,
            objects: None,
            applet_info: None,
            ephemeral_generation: 0,
            stats: CardStats::default(),
            trace,
        };
        session.connect()?;
        Ok(Card {
            session: Mutex::new(session),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Session>, Error> {
        self.session.lock().map_err(|_| Error::Poisoned)
    }

    /// Sets a sink that receives every APDU (secrets redacted); `None` removes it.
    pub fn set_trace(&self, sink: Option<TraceSink>) {
        if let Ok(mut s) = self.session.lock() {
            s.trace = sink;
        }
    }

    /// The transport's description.
    pub fn describe(&self) -> String {
        self.session
            .lock()
            .map(|s| s.transport.describe())
            .unwrap_or_else(|_| String::from("(poisoned)"))
    }

    /// The AID that answered SELECT, and the channel in use.
    pub fn selection(&self) -> Option<(Vec<u8>, u8)> {
        let s = self.session.lock().ok()?;
        s.selected.as_ref().map(|x| (x.aid.clone(), x.channel))
    }

    /// The session configuration.
    pub fn config(&self) -> Result<CardConfig, Error> {
        Ok(self.lock()?.config.clone())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CardStats {
        self.session
            .lock()
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        if let Ok(mut s) = self.session.lock() {
            s.stats = CardStats::default();
        }
    }

    /// Applet information (GET DATA P1=00), read once and cached.
    pub fn applet_info(&self) -> Result<AppletInfo, Error> {
        let mut s = self.lock()?;
        if let Some(info) = &s.applet_info {
            return Ok(info.clone());
        }
        let info = s.run(Operation::AppletInfo, |link, cla, _| {
            let r = link.exchange(
                &commands::get_applet_info(cla),
                CommandKind::GetData,
                Secrecy::Public,
            )?;
            AppletInfo::parse(&success(r, CommandKind::GetData)?)
        })?;
        s.applet_info = Some(info.clone());
        Ok(info)
    }

    /// The object list (GET DATA P1=01 with `6300` continuations), read once and cached.
    pub fn objects(&self) -> Result<Vec<ObjectInfo>, Error> {
        let mut s = self.lock()?;
        s.objects_cached()
    }

    /// Forgets the cached object list and applet information (after provisioning changes).
    pub fn refresh(&self) -> Result<(), Error> {
        let mut s = self.lock()?;
        s.objects = None;
        s.applet_info = None;
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
        let mut s = self.lock()?;
        s.run(Operation::ObjectInfo, |link, cla, config| {
            let le = if config.le_in_case4 {
                Le::Ne(256)
            } else {
                Le::Absent
            };
            let cmd = commands::get_object_info(cla, kind, object, le)?;
            let r = link.exchange(&cmd, CommandKind::GetData, Secrecy::Public)?;
            ObjectInfo::parse_single(kind, &success(r, CommandKind::GetData)?)
        })
    }

    /// Reads a whole file. Its size comes from the cached object list, else from GET DATA `C3`; when
    /// the card has neither, chunks are read until an end-of-file status or an empty answer (a short
    /// chunk is not the end: some modems and cards return fewer bytes than asked).
    pub fn read_file(&self, file: &ObjectRef) -> Result<Vec<u8>, Error> {
        let mut s = self.lock()?;
        // Only a list already read is consulted: reading it here would cost APDUs per file.
        let listed = s
            .objects
            .as_ref()
            .and_then(|l| {
                l.iter()
                    .find(|o| o.kind == Some(ObjectKind::File) && file.matches(o))
            })
            .and_then(|o| o.file_size);
        s.run(Operation::ReadFile, |link, cla, config| {
            let size = match listed {
                Some(n) => Some(n as usize),
                None => {
                    let le = if config.le_in_case4 {
                        Le::Ne(256)
                    } else {
                        Le::Absent
                    };
                    let cmd = commands::get_object_info(cla, ObjectKind::File, file, le)?;
                    match link.exchange(&cmd, CommandKind::GetData, Secrecy::Public) {
                        Ok(r) if r.sw.is_success() => {
                            ObjectInfo::parse_single(ObjectKind::File, &r.data)?
                                .file_size
                                .map(|n| n as usize)
                        }
                        Ok(r) if r.sw.meaning() == Meaning::NotFound => {
                            return Err(Error::Status {
                                command: CommandKind::ReadFile,
                                sw: r.sw,
                            })
                        }
                        // No GET DATA on this card: read until the end.
                        Ok(_) => None,
                        Err(e) => return Err(e),
                    }
                }
            };
            read_chunks(link, cla, config, file, size)
        })
    }

    /// GET RANDOM: `len` bytes from the card's generator.
    pub fn get_random(&self, len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut s = self.lock()?;
        s.run(Operation::Random, |link, cla, _| {
            let mut out = Zeroizing::new(Vec::with_capacity(len));
            while out.len() < len {
                let n = (len - out.len()).min(256) as u16;
                let r = link.exchange(
                    &commands::get_random(cla, n)?,
                    CommandKind::GetRandom,
                    Secrecy::Response,
                )?;
                let data = success(r, CommandKind::GetRandom)?;
                if data.is_empty() {
                    return Err(Error::malformed(
                        CommandKind::GetRandom,
                        "random bytes",
                        &[],
                    ));
                }
                let take = data.len().min(len - out.len());
                out.extend_from_slice(&data[..take]);
            }
            Ok(out)
        })
    }

    /// GENERATE KEY PAIR on `key`. The IDs the card returns are authoritative; when the answer has
    /// no public key, it is read with READ PUBLIC KEY.
    pub fn generate_key_pair(&self, key: &ObjectRef) -> Result<KeyPair, Error> {
        let mut s = self.lock()?;
        s.generate(key)
    }

    /// READ PUBLIC KEY.
    pub fn read_public_key(&self, key: &ObjectRef) -> Result<EcPoint, Error> {
        let mut s = self.lock()?;
        s.run(Operation::ReadPublicKey, |link, cla, config| {
            read_public(link, cla, config, key)
        })
    }

    /// PUT PUBLIC KEY: Init, Update, and close if configured.
    pub fn put_public_key(&self, slot: &ObjectRef, point: &EcPoint) -> Result<(), Error> {
        let mut s = self.lock()?;
        let put = s.run(Operation::PutPublicKey, |link, cla, config| {
            put_public(link, cla, config, slot, point)
        })?;
        s.keep(put);
        Ok(())
    }

    /// COMPUTE SIGNATURE in mode 03: the host hashed, the card pads and signs `digest`.
    pub fn sign_digest(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
    ) -> Result<CardSignature, Error> {
        Ok(self.sign_digest_parsed(key, hash, digest)?.signature)
    }

    /// [`Card::sign_digest`], with the wire form the card's answer came in.
    fn sign_digest_parsed(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
    ) -> Result<ParsedSignature, Error> {
        let mut s = self.lock()?;
        let signed = s.run(Operation::Sign, |link, cla, config| {
            let le = case4_le(config);
            let update = [commands::sign_update_digest(
                cla,
                config.sessions.sign,
                digest,
                le,
            )?];
            sign(link, cla, config, key, SignMode::Digest, hash, &update)
        })?;
        Ok(s.keep(signed))
    }

    /// [`Card::sign_digest`], then a check on the host that the signature verifies against
    /// `public`, the key's public point (from its certificate, or READ PUBLIC KEY once). A
    /// signature that does not verify (its answer misread, or made with another key) is never
    /// returned: it is counted in [`CardStats::bad_signatures`] and fails as
    /// [`Error::SignatureCheck`], naming the form the answer was read as.
    pub fn sign_digest_checked(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
        public: &EcPoint,
    ) -> Result<CardSignature, Error> {
        let ParsedSignature { signature, form } = self.sign_digest_parsed(key, hash, digest)?;
        if crate::signature_check::verifies_p256(&signature, public, digest) {
            return Ok(signature);
        }
        self.lock()?.stats.bad_signatures += 1;
        Err(Error::SignatureCheck {
            key: key.to_string(),
            form: form.to_string(),
        })
    }

    /// COMPUTE SIGNATURE in mode 01: the card hashes `message`, sent in `9B` chunks.
    pub fn sign_message(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        message: &[u8],
    ) -> Result<CardSignature, Error> {
        let mut s = self.lock()?;
        let max = s.transport.capabilities().max_command_data.min(255);
        let signed = s.run(Operation::Sign, |link, cla, config| {
            let updates = commands::sign_update_full_text(
                cla,
                config.sessions.sign,
                message,
                max,
                config.full_text_length,
                case4_le(config),
            )?;
            sign(link, cla, config, key, SignMode::FullText, hash, &updates)
        })?;
        Ok(s.keep(signed).signature)
    }

    /// VERIFY SIGNATURE in mode 03 with a public key on the card. `raw_rs` is `r ‖ s`, each half
    /// left-padded to the curve size here. `Ok(false)` is the card's `6D01`.
    pub fn verify_digest(
        &self,
        key: &ObjectRef,
        hash: HashAlgorithm,
        digest: &[u8],
        raw_rs: &[u8],
    ) -> Result<bool, Error> {
        let mut s = self.lock()?;
        let verified = s.run(Operation::Verify, |link, cla, config| {
            let sess = config.sessions.verify;
            let init = commands::verify_init(
                cla,
                sess,
                key,
                SignMode::Digest,
                hash,
                SignatureAlgorithm::Ecdsa,
            )?;
            success(
                link.exchange(&init, CommandKind::VerifySignature, Secrecy::Public)?,
                CommandKind::VerifySignature,
            )?;
            let update =
                commands::verify_update_digest(cla, sess, digest, raw_rs, config.signature_length)?;
            let result = link.exchange(&update, CommandKind::VerifySignature, Secrecy::Public);
            let close_error = close_session(
                link,
                config,
                commands::verify_close(cla, sess),
                CommandKind::VerifySignature,
            );
            let r = result?;
            let verdict = match r.sw.meaning() {
                Meaning::SignatureMismatch => false,
                _ => {
                    success(r, CommandKind::VerifySignature)?;
                    true
                }
            };
            Ok(Closed {
                value: verdict,
                close_error,
            })
        })?;
        Ok(s.keep(verified))
    }

    /// COMPUTE DH between a private key and a public key already on the card; returns the x
    /// coordinate (32 bytes for P-256).
    pub fn compute_dh(
        &self,
        private: &ObjectRef,
        public: &ObjectRef,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut s = self.lock()?;
        s.run(Operation::Dh, |link, cla, config| {
            dh(link, cla, config, private, public)
        })
    }

    /// Generates a fresh ephemeral key pair in `slot` and bumps the slot's generation.
    pub fn generate_ephemeral(&self, slot: &ObjectRef) -> Result<EphemeralKey, Error> {
        let mut s = self.lock()?;
        let key_pair = s.generate(slot)?;
        s.ephemeral_generation += 1;
        Ok(EphemeralKey {
            generation: s.ephemeral_generation,
            key_pair,
        })
    }

    /// The generation of the ephemeral slot's current key.
    pub fn ephemeral_generation(&self) -> u64 {
        self.session
            .lock()
            .map(|s| s.ephemeral_generation)
            .unwrap_or(0)
    }

    /// The ECDHE of one key exchange: puts the peer's point into `peer_slot` and computes DH with
    /// the ephemeral key, under one lock. Fails with [`Error::StaleEphemeral`] if the ephemeral slot
    /// was regenerated since `key` was made.
    pub fn ephemeral_agreement(
        &self,
        key: &EphemeralKey,
        peer_slot: &ObjectRef,
        peer: &EcPoint,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut s = self.lock()?;
        if s.ephemeral_generation != key.generation {
            return Err(Error::StaleEphemeral {
                started: key.generation,
                current: s.ephemeral_generation,
            });
        }
        let put = s.run(Operation::PutPublicKey, |link, cla, config| {
            put_public(link, cla, config, peer_slot, peer)
        });
        let Closed { value, close_error } = put?;
        if let Some(Error::Transport { command, source }) = close_error {
            // The link dropped at the put's session close: whether the card kept the key is
            // unknown, and the DH cannot run on this connection. Report the drop itself.
            s.connection_lost(&source);
            return Err(Error::Transport { command, source });
        }
        s.keep(Closed { value, close_error });
        // A reset found while putting the peer's key (the card had forgotten the session's
        // channel, and the retried put succeeded on a new one) took the ephemeral key with it.
        if s.ephemeral_generation != key.generation {
            return Err(Error::StaleEphemeral {
                started: key.generation,
                current: s.ephemeral_generation,
            });
        }
        s.run(Operation::Dh, |link, cla, config| {
            dh(link, cla, config, &key.key_pair.private, peer_slot)
        })
    }

    /// COMPUTE HKDF (extract) on the card.
    pub fn hkdf_extract(
        &self,
        ikm: &[u8],
        salt: &[u8],
        hash: HashAlgorithm,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut s = self.lock()?;
        s.run(Operation::Hkdf, |link, cla, config| {
            let cmd = commands::hkdf_extract(cla, ikm, salt, hash, case4_le(config))?;
            success(
                link.exchange(&cmd, CommandKind::ComputeHkdf, Secrecy::Both)?,
                CommandKind::ComputeHkdf,
            )
        })
    }

    /// COMPUTE PRF (TLS 1.2 P_SHA256) on the card, general mode.
    pub fn prf(
        &self,
        secret: &[u8],
        label_and_seed: &[u8],
        length: u8,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut s = self.lock()?;
        s.run(Operation::Prf, |link, cla, config| {
            let cmd = commands::prf(cla, secret, label_and_seed, length, case4_le(config))?;
            let out = success(
                link.exchange(&cmd, CommandKind::ComputePrf, Secrecy::Both)?,
                CommandKind::ComputePrf,
            )?;
            if out.len() != usize::from(length) {
                return Err(Error::Malformed {
                    command: CommandKind::ComputePrf,
                    expected: "as many bytes as asked",
                    got: format!("{} bytes for {length} asked", out.len()),
                });
            }
            Ok(out)
        })
    }

    /// Sends one raw APDU on the session's channel lock (procedure bytes resolved) and returns
    /// the response APDU (data then SW1 SW2). The class byte is sent as given.
    pub fn transmit_raw(&self, apdu: &[u8]) -> Result<Vec<u8>, Error> {
        let mut s = self.lock()?;
        if apdu.len() < 4 {
            return Err(Error::InvalidRequest {
                command: CommandKind::Raw,
                reason: format!("an APDU has at least 4 bytes, got {}", apdu.len()),
            });
        }
        let cmd = parse_raw_command(apdu)?;
        s.run(Operation::Raw, |link, _, _| {
            let r = link.exchange(&cmd, CommandKind::Raw, Secrecy::Public)?;
            let mut out = r.data.to_vec();
            out.extend_from_slice(&r.sw.0.to_be_bytes());
            Ok(out)
        })
    }

    /// Closes the channel the session opened. The session re-opens it on the next operation.
    pub fn close(&self) -> Result<(), Error> {
        let mut s = self.lock()?;
        s.disconnect()
    }
}

fn case4_le(config: &CardConfig) -> Le {
    if config.le_in_case4 {
        Le::Ne(256)
    } else {
        Le::Absent
    }
}

/// Splits a raw APDU so that the link can re-send it with another Le on `6Cxx`.
fn parse_raw_command(apdu: &[u8]) -> Result<Command, Error> {
    let bad = |reason: &str| Error::InvalidRequest {
        command: CommandKind::Raw,
        reason: format!("{reason}: {}", hex(apdu)),
    };
    let cmd = Command::new(apdu[0], apdu[1], apdu[2], apdu[3]);
    match apdu.len() {
        4 => Ok(cmd),
        5 => Ok(cmd.with_le(Le::Ne(if apdu[4] == 0 {
            256
        } else {
            u32::from(apdu[4])
        }))),
        _ => {
            let lc = usize::from(apdu[4]);
            if lc == 0 {
                return Err(bad("extended-length raw APDUs are not supported"));
            }
            let data = apdu
                .get(5..5 + lc)
                .ok_or_else(|| bad("Lc exceeds the APDU"))?
                .to_vec();
            match apdu.len() - 5 - lc {
                0 => Ok(cmd.with_data(data)),
                1 => {
                    let le = apdu[5 + lc];
                    Ok(cmd.with_data(data).with_le(Le::Ne(if le == 0 {
                        256
                    } else {
                        u32::from(le)
                    })))
                }
                _ => Err(bad("trailing bytes after Le")),
            }
        }
    }
}

impl Session {
    /// Runs one operation: reconnects and re-selects if needed, wraps it in the transport's
    /// exclusive section, counts it, and notes a lost connection or a card reset.
    ///
    /// The retry rule (see [`Card`]): an operation runs again once, after reconnecting, when the
    /// card cannot have acted on it: the connection was found dead before its first APDU went
    /// out, the transport reported a reset, or the card no longer knew the session's channel.
    fn run<T>(
        &mut self,
        op: Operation,
        mut body: impl FnMut(&mut Link<'_>, u8, &CardConfig) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut retried = false;
        loop {
            let was_up = self.state == ChannelState::Up && self.selected.is_some();
            let (result, sent) = self.run_once(op, &mut body);
            let retry = match &result {
                Err(Error::Transport { source, .. }) if source.needs_reconnect() => {
                    self.connection_lost(source);
                    let untouched = was_up && !sent;
                    untouched || matches!(source, TransportError::ResetCard)
                }
                Err(Error::Status { sw, .. }) if self.channel_lost(*sw) => {
                    tracing::warn!(
                        %sw,
                        "the card no longer knows the session's channel (reset unseen); \
                         opening and selecting again"
                    );
                    self.state = ChannelState::ChannelClosed;
                    self.card_reset();
                    true
                }
                _ => false,
            };
            if retry && !retried {
                retried = true;
                continue;
            }
            return result;
        }
    }

    /// True when `sw` says the session's own channel is closed on the card: the card was reset
    /// (the modem restarted the SIM, a SIM REFRESH, a brown-out) without the transport noticing.
    /// `6881` is ISO 7816-4's "logical channel not supported"; some cards answer `6E00` (class not
    /// supported) for a class byte naming a closed channel, but `6E00` also means a class style
    /// the card does not take, so only `6881` counts.
    fn channel_lost(&self, sw: StatusWord) -> bool {
        let ours = self
            .selected
            .as_ref()
            .is_some_and(|s| s.channel != 0 || s.opened_by_transport);
        ours && self.state == ChannelState::Up && sw.meaning() == Meaning::ChannelNotSupported
    }

    /// Notes a lost connection: what it says of the card decides how the next operation recovers.
    fn connection_lost(&mut self, source: &TransportError) {
        // A PC/SC reset, removal or service restart powers the card down; a modem's port or a
        // link that dropped (timeout, I/O error, closed) leaves the SIM as it was.
        let reset = matches!(
            source,
            TransportError::ResetCard
                | TransportError::RemovedCard
                | TransportError::NoCard(_)
                | TransportError::NoService
                | TransportError::NotTransacted
        );
        if reset {
            if self.state != ChannelState::LostWithReset {
                self.card_reset();
            }
            self.state = ChannelState::LostWithReset;
        } else if self.state == ChannelState::Up {
            self.state = ChannelState::Lost;
        }
        // Whether or not the card was reset, a key made before the loss cannot be trusted to
        // still be there: retire it (the next key exchange generates a fresh one).
        self.ephemeral_generation += 1;
    }

    /// The value of an operation whose session close may have failed. A close cut by a lost
    /// connection still marks the session for recovery before its next operation.
    fn keep<T>(&mut self, closed: Closed<T>) -> T {
        if let Some(Error::Transport { source, .. }) = &closed.close_error {
            if source.needs_reconnect() {
                self.connection_lost(source);
            }
        }
        closed.value
    }

    /// The card forgot everything volatile: count it and retire the ephemeral key.
    fn card_reset(&mut self) {
        self.stats.card_resets += 1;
        self.ephemeral_generation += 1;
    }

    fn run_once<T>(
        &mut self,
        op: Operation,
        body: &mut impl FnMut(&mut Link<'_>, u8, &CardConfig) -> Result<T, Error>,
    ) -> (Result<T, Error>, bool) {
        if self.state != ChannelState::Up || self.selected.is_none() {
            if let Err(e) = self.reconnect() {
                return (Err(e), false);
            }
        }
        let channel = self.selected.as_ref().map(|s| s.channel).unwrap_or(0);
        let cla = match class_byte(channel, self.config.class) {
            Ok(cla) => cla,
            Err(e) => return (Err(e), false),
        };
        let before = self.stats.apdus;
        let started = Instant::now();
        let extended = self.transport.capabilities().extended_length;
        let config = &self.config;
        let stats = &mut self.stats;
        let trace = self.trace.as_ref();
        let mut sent = false;
        let result = match self.transport.transaction() {
            Ok(mut transaction) => {
                let mut link = link(&mut *transaction, stats, trace, config, extended);
                let result = body(&mut link, cla, config);
                sent = link.sent;
                result
            }
            Err(source) => Err(Error::Transport {
                command: CommandKind::Raw,
                source,
            }),
        };
        let entry = self.stats.operations.entry(op).or_default();
        entry.count += 1;
        entry.apdus += self.stats.apdus - before;
        entry.time += started.elapsed();
        if result.is_err() {
            entry.failures += 1;
        }
        (result, sent)
    }

    /// Re-establishes the connection and the applet selection after a loss.
    ///
    /// When the card may have kept its state, the channel the session had is reused: SELECT on it
    /// again (one APDU). Opening a new one instead would leak the old one on the card, and a card
    /// with three extra channels would run out after three dropped connections. When the card was
    /// reset, or refuses the old channel, a new one is opened.
    fn reconnect(&mut self) -> Result<(), Error> {
        if self.state != ChannelState::ChannelClosed {
            self.stats.reconnects += 1;
            self.transport
                .reconnect()
                .map_err(|source| Error::Transport {
                    command: CommandKind::Select,
                    source,
                })?;
        }
        let previous = self.selected.clone();
        let kept_state = self.state == ChannelState::Lost;
        match previous {
            Some(sel) if kept_state && sel.opened_by_us => {
                if self.counted_select(|s| s.reselect(&sel))? {
                    self.state = ChannelState::Up;
                    return Ok(());
                }
                // The old channel is gone after all: the card was reset meanwhile.
                self.card_reset();
            }
            Some(sel) if !kept_state && sel.opened_by_transport => {
                // The transport's channel is gone with the reset; a modem may still hold the
                // session number it handed out: free it (best effort).
                if let Err(e) = self.transport.close_channel() {
                    tracing::debug!(error = %e, "closing the transport's stale channel failed");
                }
            }
            _ => {}
        }
        self.selected = None;
        self.connect()?;
        self.state = ChannelState::Up;
        Ok(())
    }

    /// SELECT on the channel the session had. `Ok(false)`: the card refused it.
    fn reselect(&mut self, sel: &Selected) -> Result<bool, Error> {
        let cla = class_byte(sel.channel, ClassStyle::Interindustry)?;
        let select = commands::select(cla, &sel.aid, self.config.select_le);
        let config = self.config.clone();
        let mut direct = DirectTransaction(&mut *self.transport);
        let mut link = link(
            &mut direct,
            &mut self.stats,
            self.trace.as_ref(),
            &config,
            false,
        );
        let r = link.exchange(&select, CommandKind::Select, Secrecy::Public)?;
        Ok(r.sw.is_success())
    }

    /// Opens the channel and selects the applet.
    fn connect(&mut self) -> Result<(), Error> {
        self.counted_select(Session::connect_inner)
    }

    /// Runs one selection step (opening and selecting, or selecting again on the old channel),
    /// counted as a [`Operation::Select`].
    fn counted_select<T>(
        &mut self,
        step: impl FnOnce(&mut Session) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let before = self.stats.apdus;
        let result = step(self);
        let entry = self.stats.operations.entry(Operation::Select).or_default();
        entry.count += 1;
        entry.apdus += self.stats.apdus - before;
        entry.time += started.elapsed();
        if result.is_err() {
            entry.failures += 1;
        }
        result
    }

    fn connect_inner(&mut self) -> Result<(), Error> {
        self.selected = None;
        let aids = self.config.aids.clone();
        // Transports that open and select in one step (AT+CCHO).
        if self.transport.capabilities().manages_channels {
            let mut last = None;
            for aid in &aids {
                match self.transport.open_channel(aid) {
                    Ok(Some(_)) => {
                        self.selected = Some(Selected {
                            channel: 0,
                            opened_by_us: false,
                            opened_by_transport: true,
                            aid: aid.clone(),
                        });
                        return Ok(());
                    }
                    Ok(None) => break,
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                if !matches!(e, TransportError::Modem { .. }) {
                    return Err(Error::Transport {
                        command: CommandKind::Select,
                        source: e,
                    });
                }
                return Err(Error::AppletNotFound {
                    tried: aids.iter().map(|a| hex(a)).collect::<Vec<_>>().join(", "),
                });
            }
        }
        let config = self.config.clone();
        let stats = &mut self.stats;
        let trace = self.trace.as_ref();
        let mut direct = DirectTransaction(&mut *self.transport);
        let mut link = link(&mut direct, stats, trace, &config, false);
        let (channel, opened_by_us) = match config.channel {
            ChannelStrategy::Basic => (0, false),
            ChannelStrategy::Implicit(ch) => (ch, false),
            ChannelStrategy::ManageChannel => {
                let r = link.exchange(
                    &commands::open_channel(config.open_channel_le),
                    CommandKind::OpenChannel,
                    Secrecy::Public,
                )?;
                match (r.sw.is_success(), r.data.first()) {
                    (true, Some(&ch)) if (1..=19).contains(&ch) => (ch, true),
                    (true, _) => {
                        return Err(Error::malformed(
                            CommandKind::OpenChannel,
                            "one channel number 1..=19",
                            &r.data,
                        ))
                    }
                    // No channel left, or none at all. The basic channel only when allowed:
                    // behind a modem it carries the modem's own USIM traffic.
                    (false, _) if config.allow_basic_channel => {
                        tracing::warn!(sw = %r.sw, "MANAGE CHANNEL refused; using the basic channel");
                        (0, false)
                    }
                    (false, _) => return Err(Error::NoLogicalChannel { sw: r.sw }),
                }
            }
        };
        let select_cla = class_byte(channel, ClassStyle::Interindustry)?;
        let mut refusals = Vec::new();
        for aid in &aids {
            let r = link.exchange(
                &commands::select(select_cla, aid, config.select_le),
                CommandKind::Select,
                Secrecy::Public,
            )?;
            if r.sw.is_success() {
                self.selected = Some(Selected {
                    channel,
                    opened_by_us,
                    opened_by_transport: false,
                    aid: aid.clone(),
                });
                return Ok(());
            }
            refusals.push(format!("{} → {:04X}", hex(aid), r.sw.0));
        }
        if opened_by_us {
            let _ = link.exchange(
                &commands::close_channel(channel),
                CommandKind::CloseChannel,
                Secrecy::Public,
            );
        }
        Err(Error::AppletNotFound {
            tried: refusals.join(", "),
        })
    }

    fn disconnect(&mut self) -> Result<(), Error> {
        let Some(sel) = self.selected.take() else {
            return Ok(());
        };
        match std::mem::replace(&mut self.state, ChannelState::Up) {
            ChannelState::Up => {}
            // The card may still hold the channel: reach it again to close it.
            ChannelState::Lost => {
                self.stats.reconnects += 1;
                self.transport
                    .reconnect()
                    .map_err(|source| Error::Transport {
                        command: CommandKind::CloseChannel,
                        source,
                    })?;
            }
            // The card's reset closed the channel; only a modem's session number may be left.
            ChannelState::LostWithReset | ChannelState::ChannelClosed => {
                if sel.opened_by_transport {
                    let _ = self.transport.close_channel();
                }
                return Ok(());
            }
        }
        if sel.opened_by_transport {
            return self
                .transport
                .close_channel()
                .map_err(|source| Error::Transport {
                    command: CommandKind::CloseChannel,
                    source,
                });
        }
        if sel.opened_by_us {
            let config = self.config.clone();
            let mut direct = DirectTransaction(&mut *self.transport);
            let mut link = link(
                &mut direct,
                &mut self.stats,
                self.trace.as_ref(),
                &config,
                false,
            );
            let r = link.exchange(
                &commands::close_channel(sel.channel),
                CommandKind::CloseChannel,
                Secrecy::Public,
            )?;
            success(r, CommandKind::CloseChannel)?;
        }
        Ok(())
    }

    fn objects_cached(&mut self) -> Result<Vec<ObjectInfo>, Error> {
        if let Some(list) = &self.objects {
            return Ok(list.clone());
        }
        let list = self.run(Operation::ObjectInfo, |link, cla, config| {
            let mut data = Vec::new();
            let mut continuation = false;
            for _ in 0..config.max_rounds {
                let r = link.exchange(
                    &commands::get_object_list(cla, continuation),
                    CommandKind::GetData,
                    Secrecy::Public,
                )?;
                data.extend_from_slice(&r.data);
                match r.sw.meaning() {
                    Meaning::MoreData => continuation = true,
                    _ => {
                        success(r, CommandKind::GetData)?;
                        return crate::objects::parse_object_list(&data);
                    }
                }
            }
            Err(Error::Runaway {
                command: CommandKind::GetData,
                rounds: config.max_rounds,
            })
        })?;
        self.objects = Some(list.clone());
        Ok(list)
    }

    fn generate(&mut self, key: &ObjectRef) -> Result<KeyPair, Error> {
        self.run(Operation::GenerateKeyPair, |link, cla, config| {
            let cmd = commands::generate_key_pair(cla, key, case4_le(config))?;
            let r = link.exchange(&cmd, CommandKind::GenerateKeyPair, Secrecy::Public)?;
            let GeneratedKeyPair {
                private_id,
                public_id,
                point,
            } = commands::parse_generated_key_pair(&success(r, CommandKind::GenerateKeyPair)?)?;
            let private = private_id.map(ObjectRef::Id).unwrap_or_else(|| key.clone());
            // Without a reported public ID, the public half shares the private key's reference.
            let public = public_id
                .map(ObjectRef::Id)
                .unwrap_or_else(|| private.clone());
            let point = match point {
                Some(p) => p,
                None => read_public(link, cla, config, &public)?,
            };
            Ok(KeyPair {
                private,
                public,
                point,
            })
        })
    }
}

/// The link for one operation or selection step: `extended` only inside an operation (the
/// selection is always short APDUs).
fn link<'a>(
    transport: &'a mut dyn Transaction,
    stats: &'a mut CardStats,
    trace: Option<&'a TraceSink>,
    config: &CardConfig,
    extended: bool,
) -> Link<'a> {
    Link {
        transport,
        stats,
        trace,
        extended,
        get_response_class: config.get_response_class,
        get_response_le: config.get_response_le,
        max_rounds: config.max_rounds,
        sent: false,
    }
}

fn read_public(
    link: &mut Link<'_>,
    cla: u8,
    config: &CardConfig,
    key: &ObjectRef,
) -> Result<EcPoint, Error> {
    let cmd = commands::read_public_key(cla, key, case4_le(config))?;
    let r = link.exchange(&cmd, CommandKind::ReadPublicKey, Secrecy::Public)?;
    EcPoint::parse_public_key_data(
        &success(r, CommandKind::ReadPublicKey)?,
        CommandKind::ReadPublicKey,
    )
}

fn put_public(
    link: &mut Link<'_>,
    cla: u8,
    config: &CardConfig,
    slot: &ObjectRef,
    point: &EcPoint,
) -> Result<Closed<()>, Error> {
    let sess = config.sessions.put_public_key;
    let init = commands::put_public_key_init(cla, sess, slot)?;
    success(
        link.exchange(&init, CommandKind::PutPublicKey, Secrecy::Public)?,
        CommandKind::PutPublicKey,
    )?;
    let update = commands::put_public_key_update(cla, sess, point);
    let result = link
        .exchange(&update, CommandKind::PutPublicKey, Secrecy::Public)
        .and_then(|r| success(r, CommandKind::PutPublicKey));
    let close_error = close_session(
        link,
        config,
        commands::put_public_key_close(cla, sess),
        CommandKind::PutPublicKey,
    );
    result?;
    Ok(Closed {
        value: (),
        close_error,
    })
}

fn dh(
    link: &mut Link<'_>,
    cla: u8,
    config: &CardConfig,
    private: &ObjectRef,
    public: &ObjectRef,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let cmd = commands::compute_dh(cla, private, public, case4_le(config))?;
    let data = success(
        link.exchange(&cmd, CommandKind::ComputeDh, Secrecy::Response)?,
        CommandKind::ComputeDh,
    )?;
    Ok(Zeroizing::new(commands::parse_shared_secret(&data, 32)?))
}

#[allow(clippy::too_many_arguments)]
fn sign(
    link: &mut Link<'_>,
    cla: u8,
    config: &CardConfig,
    key: &ObjectRef,
    mode: SignMode,
    hash: HashAlgorithm,
    updates: &[Command],
) -> Result<Closed<ParsedSignature>, Error> {
    let sess = config.sessions.sign;
    let init = commands::sign_init(cla, sess, key, mode, hash, SignatureAlgorithm::Ecdsa)?;
    success(
        link.exchange(&init, CommandKind::ComputeSignature, Secrecy::Public)?,
        CommandKind::ComputeSignature,
    )?;
    let mut result = Err(Error::malformed(
        CommandKind::ComputeSignature,
        "a signature",
        &[],
    ));
    for update in updates {
        result = link
            .exchange(update, CommandKind::ComputeSignature, Secrecy::Public)
            .and_then(|r| success(r, CommandKind::ComputeSignature));
        if result.is_err() {
            break;
        }
    }
    let close_error = close_session(
        link,
        config,
        commands::sign_close(cla, sess),
        CommandKind::ComputeSignature,
    );
    Ok(Closed {
        value: commands::parse_signature_for(&result?, commands::P256_FIELD_LEN)?,
        close_error,
    })
}

/// An operation's result, and how closing its card session failed, if it did. A failed close
/// does not undo a result already received: some cards close the session themselves after the
/// final Update and refuse the explicit close (`6985`).
struct Closed<T> {
    value: T,
    close_error: Option<Error>,
}

/// Closes a sign/verify/put session when configured. Runs even after a failed step so that the
/// session slot is free for the next operation. Returns the failure instead of raising it.
fn close_session(
    link: &mut Link<'_>,
    config: &CardConfig,
    close: Command,
    kind: CommandKind,
) -> Option<Error> {
    if !config.close_sessions {
        return None;
    }
    let error = link
        .exchange(&close, kind, Secrecy::Public)
        .and_then(|r| success(r, kind))
        .err()?;
    link.stats.close_failures += 1;
    tracing::warn!(error = %error, "closing the {kind} session failed; the result is kept");
    Some(error)
}

/// Reads a file in chunks: `size` bytes when known, else until the card reports the end.
///
/// A chunk shorter than asked is not the end: some modems and cards return fewer bytes than Le
/// (a modem cutting long AT answers, a card with a smaller buffer). The end is the announced size,
/// an end-of-file status (`6282` with the last bytes, `6A86`/`6B00` offset beyond the file, `6981`),
/// or an empty answer.
fn read_chunks(
    link: &mut Link<'_>,
    cla: u8,
    config: &CardConfig,
    file: &ObjectRef,
    size: Option<usize>,
) -> Result<Vec<u8>, Error> {
    const MAX_FILE: usize = 0x1_0000;
    /// `6282`: end of file reached before Le bytes were read; the data that came is valid.
    const END_OF_FILE: StatusWord = StatusWord(0x6282);
    let chunk = usize::from(config.read_chunk.clamp(1, 256));
    let target = size.unwrap_or(MAX_FILE).min(MAX_FILE);
    let mut out = Vec::with_capacity(size.unwrap_or(1024).min(MAX_FILE));
    while out.len() < target {
        let want = chunk.min(target - out.len());
        let offset = u16::try_from(out.len()).map_err(|_| Error::InvalidRequest {
            command: CommandKind::ReadFile,
            reason: String::from("files beyond 64 KiB cannot be addressed"),
        })?;
        let cmd = commands::read_file(cla, file, offset, Le::Ne(want as u32))?;
        let r = link.exchange(&cmd, CommandKind::ReadFile, Secrecy::Public)?;
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
