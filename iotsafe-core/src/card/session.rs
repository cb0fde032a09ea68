//! The session behind a [`Card`](super::Card): the channel and the applet selected on it, what a
//! lost connection says about the card, reconnection, and the retry rule. The operations
//! themselves live in [`super::ops`]; they reach the card only through [`Session::run`].

use super::ephemeral::EphemeralSlots;
use super::ops::{Closed, Op, OpenSessions};
use super::public::PublicData;
use crate::apdu::{class_byte, ClassStyle};
use crate::clock::Instant;
use crate::commands;
use crate::config::{CardConfig, ChannelStrategy};
use crate::error::{CommandKind, Error};
use crate::hexutil;
use crate::link::{success, Link, Secrecy, TraceSink};
use crate::objects::{AppletInfo, ObjectInfo};
use crate::prelude::*;
use crate::stats::{CardStats, Operation};
use crate::sw::{Meaning, StatusWord};
use crate::transport::{Transaction, Transport, TransportError};

/// Where the session stands with the applet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Selected {
    /// Channel number used in class bytes (0 when the transport routes channels itself).
    pub(super) channel: u8,
    /// Whether the session opened the channel with MANAGE CHANNEL (and closes it at the end).
    opened_by_us: bool,
    /// Whether the transport opened it (AT+CCHO).
    opened_by_transport: bool,
    /// The AID that answered.
    pub(super) aid: Vec<u8>,
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

/// What one attempt at an operation tells the retry rule: whether the card can have acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The channel was up and no APDU was handed to the transport (the transaction was refused
    /// before the first): the card has not seen the operation.
    Untouched,
    /// An APDU went to the transport, or the attempt first had to recover the channel, whose
    /// own APDUs may have gone out: the card may have acted.
    Touched,
}

/// The state behind a card's lock.
pub(super) struct Session {
    transport: Box<dyn Transport + Send>,
    pub(super) config: CardConfig,
    /// The channel the applet was last selected on; kept across a lost connection so that it can
    /// be reused (or closed) instead of leaked.
    pub(super) selected: Option<Selected>,
    state: ChannelState,
    pub(super) objects: Option<Vec<ObjectInfo>>,
    pub(super) applet_info: Option<AppletInfo>,
    /// The key each volatile slot holds (retired all at once by a loss).
    pub(super) ephemeral: EphemeralSlots,
    pub(super) stats: CardStats,
    pub(super) trace: Option<TraceSink>,
    /// The card sessions the channel has left open, and whether the card wants them closed.
    pub(super) sessions: OpenSessions,
    /// Public data read so far, or handed over from an earlier run: what the host cache keeps.
    pub(super) public: PublicData,
    /// Public data handed over from an earlier run and checked: answered from memory. (What
    /// this run reads itself is read from the card every time, as without a cache.)
    pub(super) preloaded: PublicData,
}

impl Session {
    /// A session on `transport`, not yet connected.
    pub(super) fn new(
        transport: Box<dyn Transport + Send>,
        config: CardConfig,
        trace: Option<TraceSink>,
    ) -> Session {
        Session {
            transport,
            config,
            selected: None,
            state: ChannelState::Up,
            objects: None,
            applet_info: None,
            ephemeral: EphemeralSlots::default(),
            stats: CardStats::default(),
            trace,
            sessions: OpenSessions::default(),
            public: PublicData::default(),
            preloaded: PublicData::default(),
        }
    }

    /// The transport's description.
    pub(super) fn describe(&self) -> String {
        self.transport.describe()
    }

    /// What the transport learned about its link.
    pub(super) fn transport_learned(&self) -> Option<String> {
        self.transport.learned()
    }

    /// Largest command data field the transport carries in one APDU.
    pub(super) fn max_command_data(&self) -> usize {
        self.transport.capabilities().max_command_data
    }

    /// Runs one operation: reconnects and re-selects if needed, wraps it in one transaction of the
    /// transport, counts it, and notes a lost connection or a card reset.
    ///
    /// The retry rule (see [`Card`](super::Card)): an operation runs again once, after
    /// reconnecting, when the card cannot have acted on it: the connection was found dead before
    /// its first APDU went out ([`Attempt::Untouched`]), the transport reported a reset, or the
    /// card no longer knew the session's channel.
    pub(super) fn run<T>(
        &mut self,
        op: Operation,
        body: impl FnMut(&mut Op<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.run_guarded(op, |_| Ok(()), body)
    }

    /// [`Session::run`], with `guard` checked before each attempt, after any reconnection: an
    /// operation that needs volatile state (the agreement with an ephemeral key) must not be
    /// retried on a card that was reset meanwhile.
    pub(super) fn run_guarded<T>(
        &mut self,
        op: Operation,
        guard: impl Fn(&EphemeralSlots) -> Result<(), Error>,
        mut body: impl FnMut(&mut Op<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut retried = false;
        loop {
            let (result, attempt) = self.run_once(op, &guard, &mut body);
            let retry = match &result {
                Err(Error::Transport { source, .. }) if source.needs_reconnect() => {
                    self.connection_lost(source);
                    attempt == Attempt::Untouched || matches!(source, TransportError::ResetCard)
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

    fn run_once<T>(
        &mut self,
        op: Operation,
        guard: &impl Fn(&EphemeralSlots) -> Result<(), Error>,
        body: &mut impl FnMut(&mut Op<'_>) -> Result<T, Error>,
    ) -> (Result<T, Error>, Attempt) {
        let mut attempt = Attempt::Untouched;
        if self.state != ChannelState::Up || self.selected.is_none() {
            attempt = Attempt::Touched;
            if let Err(e) = self.reconnect() {
                return (Err(e), attempt);
            }
        }
        if let Err(e) = guard(&self.ephemeral) {
            return (Err(e), attempt);
        }
        let channel = self.selected.as_ref().map_or(0, |s| s.channel);
        let cla = match class_byte(channel, self.config.class) {
            Ok(cla) => cla,
            Err(e) => return (Err(e), attempt),
        };
        let extended = self.transport.capabilities().extended_length;
        let started = (op, Instant::now(), self.stats.apdus);
        let ran = self.in_transaction(extended, |link, config, sessions| {
            let mut op = Op::new(link, cla, config, sessions, started);
            let result = body(&mut op);
            (result, op.sent(), op.current())
        });
        let (result, current) = match ran {
            Ok((result, sent, current)) => {
                if sent {
                    attempt = Attempt::Touched;
                }
                (result, current)
            }
            Err(source) => {
                let error = Error::Transport {
                    command: CommandKind::Raw,
                    source,
                };
                (Err(error), started)
            }
        };
        let (op, started, apdus_before) = current;
        count(&mut self.stats, op, started, apdus_before, result.is_ok());
        (result, attempt)
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
    pub(super) fn connection_lost(&mut self, source: &TransportError) {
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
        self.ephemeral.retire_all();
    }

    /// A panic left an operation unfinished while the lock was held. Recovered like a dropped
    /// connection that did not reset the card: the next operation selects the applet again on
    /// its channel (which ends any card session the operation left open), and the ephemeral key
    /// is retired, since the interrupted operation may have been its agreement.
    pub(super) fn interrupted(&mut self) {
        if self.state == ChannelState::Up {
            self.state = ChannelState::Lost;
        }
        self.ephemeral.retire_all();
    }

    /// The value of an operation whose session close may have failed. A close cut by a lost
    /// connection still marks the session for recovery before its next operation.
    pub(super) fn keep<T>(&mut self, closed: Closed<T>) -> T {
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
        self.ephemeral.retire_all();
        self.sessions.channel_reset();
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
                if let Err(e) = self.close_transport_channel() {
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
        let r =
            self.direct(|link, _| link.exchange(&select, CommandKind::Select, Secrecy::Public))?;
        Ok(r.sw.is_success())
    }

    /// Opens the channel and selects the applet.
    pub(super) fn connect(&mut self) -> Result<(), Error> {
        self.counted_select(Session::connect_inner)
    }

    /// Runs one selection step (opening and selecting, or selecting again on the old channel),
    /// counted as a [`Operation::Select`].
    fn counted_select<T>(
        &mut self,
        step: impl FnOnce(&mut Session) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let apdus_before = self.stats.apdus;
        // A SELECT, or a channel opened afresh, ends every card session on the channel.
        self.sessions.channel_reset();
        let result = step(self);
        count(
            &mut self.stats,
            Operation::Select,
            started,
            apdus_before,
            result.is_ok(),
        );
        result
    }

    /// A link in a transaction of its own, for opening, selecting and closing the channel: short
    /// APDUs only, as the selection always is, and no retry rule around it.
    fn direct<T>(
        &mut self,
        step: impl FnOnce(&mut Link<'_>, &CardConfig) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let stepped = self.in_transaction(false, |mut link, config, _| step(&mut link, config));
        stepped.map_err(|source| Error::Transport {
            command: CommandKind::Select,
            source,
        })?
    }

    /// Runs `step` on a link through one transaction of the transport (extended-length APDUs
    /// when `extended`); an error when the transaction could not begin.
    fn in_transaction<T>(
        &mut self,
        extended: bool,
        step: impl for<'a> FnOnce(Link<'a>, &'a CardConfig, &'a mut OpenSessions) -> T,
    ) -> Result<T, TransportError> {
        let Session {
            transport,
            config,
            stats,
            trace,
            sessions,
            ..
        } = self;
        let mut transaction = transport.transaction()?;
        Ok(step(
            link(&mut *transaction, stats, trace.as_ref(), config, extended),
            config,
            sessions,
        ))
    }

    /// Closes the channel the transport opened itself (a transport without its own channels has
    /// none to close).
    fn close_transport_channel(&mut self) -> Result<(), TransportError> {
        match self.transport.logical_channels() {
            Some(channels) => channels.close_channel(),
            None => Ok(()),
        }
    }

    fn connect_inner(&mut self) -> Result<(), Error> {
        self.selected = None;
        let aids = self.config.aids.clone();
        // Transports that open and select in one step (AT+CCHO).
        if let Some(channels) = self.transport.logical_channels() {
            let (mut last, mut opened) = (None, None);
            for aid in &aids {
                match channels.open_channel(aid) {
                    Ok(Some(_)) => {
                        opened = Some(aid.clone());
                        break;
                    }
                    // The transport gave its channels up: MANAGE CHANNEL below.
                    Ok(None) => break,
                    Err(e) => last = Some(e),
                }
            }
            if let Some(aid) = opened {
                self.selected = Some(Selected {
                    channel: 0,
                    opened_by_us: false,
                    opened_by_transport: true,
                    aid,
                });
                return Ok(());
            }
            if let Some(e) = last {
                if !matches!(e, TransportError::Modem { .. }) {
                    return Err(Error::Transport {
                        command: CommandKind::Select,
                        source: e,
                    });
                }
                return Err(Error::AppletNotFound {
                    tried: aids
                        .iter()
                        .map(|a| hexutil::encode(a))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let selected = self.direct(|link, config| open_and_select(link, config, &aids))?;
        self.selected = Some(selected);
        Ok(())
    }

    /// Gives the session's channel back (best effort after a reset, which closed it already).
    pub(super) fn disconnect(&mut self) -> Result<(), Error> {
        let Some(sel) = self.selected.take() else {
            return Ok(());
        };
        match core::mem::replace(&mut self.state, ChannelState::Up) {
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
                    let _ = self.close_transport_channel();
                }
                return Ok(());
            }
        }
        if sel.opened_by_transport {
            return self
                .close_transport_channel()
                .map_err(|source| Error::Transport {
                    command: CommandKind::CloseChannel,
                    source,
                });
        }
        if sel.opened_by_us {
            self.direct(|link, _| {
                let r = link.exchange(
                    &commands::close_channel(sel.channel),
                    CommandKind::CloseChannel,
                    Secrecy::Public,
                )?;
                success(r, CommandKind::CloseChannel)
            })?;
        }
        Ok(())
    }
}

/// Adds one run of `op`, begun at `started` when `apdus_before` APDUs had been sent, to the
/// per-operation counters.
pub(super) fn count(
    stats: &mut CardStats,
    op: Operation,
    started: Instant,
    apdus_before: u64,
    ok: bool,
) {
    let apdus = stats.apdus - apdus_before;
    let entry = stats.operations.entry(op).or_default();
    entry.count += 1;
    entry.apdus += apdus;
    entry.time += started.elapsed();
    if !ok {
        entry.failures += 1;
    }
}

/// Opens a channel as configured and selects the first of `aids` that answers.
fn open_and_select(
    link: &mut Link<'_>,
    config: &CardConfig,
    aids: &[Vec<u8>],
) -> Result<Selected, Error> {
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
    for aid in aids {
        let r = link.exchange(
            &commands::select(select_cla, aid, config.select_le),
            CommandKind::Select,
            Secrecy::Public,
        )?;
        if r.sw.is_success() {
            return Ok(Selected {
                channel,
                opened_by_us,
                opened_by_transport: false,
                aid: aid.clone(),
            });
        }
        refusals.push(format!("{} → {:04X}", hexutil::encode(aid), r.sw.0));
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
