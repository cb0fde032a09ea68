//! [`PcscTransport`]: a card in a PC/SC reader, through pcsc-lite (`pcscd`).
//!
//! One connection is kept for the life of the transport: no establish/connect/disconnect per APDU
//! (the Orange backend does that and pays for it on every command). Multi-APDU operations run
//! inside a PC/SC transaction ([`Transport::transaction`]) so no other application interleaves.

use crate::prelude::*;
use std::ffi::CString;
use std::time::{Duration, Instant};

use pcsc::{Card, Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};
use zeroize::{Zeroize, Zeroizing};

use crate::transport::{Transaction, Transport, TransportError};

/// Which reader to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderChoice {
    /// The reader with exactly this name.
    Exact(String),
    /// The first reader whose name contains this text (case-insensitive).
    Contains(String),
    /// The first reader listed.
    First,
}

impl ReaderChoice {
    fn wanted(&self) -> String {
        match self {
            ReaderChoice::Exact(name) => name.clone(),
            ReaderChoice::Contains(part) => format!("*{part}*"),
            ReaderChoice::First => String::from("(any reader)"),
        }
    }

    /// Picks the matching reader out of `readers`.
    pub fn pick<'a>(&self, readers: &'a [String]) -> Option<&'a String> {
        match self {
            ReaderChoice::Exact(name) => readers.iter().find(|r| *r == name),
            ReaderChoice::Contains(part) => {
                let part = part.to_lowercase();
                readers.iter().find(|r| r.to_lowercase().contains(&part))
            }
            ReaderChoice::First => readers.first(),
        }
    }
}

/// Whether other applications may use the card at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcscShare {
    /// Others may connect too; [`Transport::transaction`] uses transactions to keep operations whole.
    #[default]
    Shared,
    /// No other application may connect while this transport is connected.
    Exclusive,
}

/// Which transmission protocols to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcscProtocols {
    /// T=0 only.
    T0,
    /// T=1 only.
    T1,
    /// Whichever the card and reader agree on.
    #[default]
    Any,
}

/// How to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcscOptions {
    /// Share mode.
    pub share: PcscShare,
    /// Accepted protocols.
    pub protocols: PcscProtocols,
    /// Total time [`Transport::reconnect`] may take before it gives up.
    pub reconnect_deadline: Duration,
}

impl Default for PcscOptions {
    fn default() -> Self {
        PcscOptions {
            share: PcscShare::Shared,
            protocols: PcscProtocols::Any,
            reconnect_deadline: Duration::from_secs(5),
        }
    }
}

impl PcscOptions {
    fn share_mode(&self) -> ShareMode {
        match self.share {
            PcscShare::Shared => ShareMode::Shared,
            PcscShare::Exclusive => ShareMode::Exclusive,
        }
    }

    fn pcsc_protocols(&self) -> Protocols {
        match self.protocols {
            PcscProtocols::T0 => Protocols::T0,
            PcscProtocols::T1 => Protocols::T1,
            PcscProtocols::Any => Protocols::ANY,
        }
    }
}

/// Pause between reconnect attempts: pcscd notices a new card only every ~400 ms.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
/// Most reconnect attempts, on top of the deadline.
const RECONNECT_ATTEMPTS: usize = 50;

/// Maps a pcsc-lite error to the transport's vocabulary. `reader` names the reader for `NoCard`.
pub fn map_pcsc_error(err: pcsc::Error, reader: &str) -> TransportError {
    match err {
        // When pcscd closes its socket in the middle of a call, pcsc-lite answers `CommError`
        // or `SecurityViolation` (the latter is also what a client refused by pcscd's polkit
        // check sees: the daemon hangs up before reading). Seen when pcscd is killed with a
        // request in flight (tests/tests/pcscd_restart.rs). The service is gone as much as
        // with NoService, and the cure is the same: a new context.
        pcsc::Error::NoService
        | pcsc::Error::ServiceStopped
        | pcsc::Error::Shutdown
        | pcsc::Error::CommError
        | pcsc::Error::SecurityViolation => TransportError::NoService,
        pcsc::Error::RemovedCard => TransportError::RemovedCard,
        pcsc::Error::ResetCard => TransportError::ResetCard,
        pcsc::Error::NotTransacted => TransportError::NotTransacted,
        pcsc::Error::NoSmartcard => TransportError::NoCard(reader.to_string()),
        pcsc::Error::InvalidHandle | pcsc::Error::ReaderUnavailable => TransportError::Disconnected,
        pcsc::Error::SharingViolation => TransportError::Protocol(format!(
            "the card in {reader:?} is in exclusive use by another application"
        )),
        pcsc::Error::Timeout | pcsc::Error::WaitedTooLong => {
            TransportError::Protocol(format!("PC/SC timeout on {reader:?}: {err}"))
        }
        other => TransportError::Protocol(format!("PC/SC error on {reader:?}: {other}")),
    }
}

/// A card in a PC/SC reader.
pub struct PcscTransport {
    context: Context,
    card: Option<Card>,
    reader: String,
    options: PcscOptions,
    /// Response buffer, sized for extended-length answers; reused for every APDU. Answers may be
    /// secrets (a DH output, random bytes): each is wiped from it once copied out, and the buffer
    /// is wiped when freed.
    buffer: Zeroizing<Vec<u8>>,
    /// What failures since the last (re)connect say about the connection.
    health: Health,
}

/// What the failures seen since the last (re)connect say about the connection; kept apart from
/// the card handle so that a [`PcscTransaction`], which borrows the handle, can update it.
#[derive(Debug, Default)]
struct Health {
    /// The service answered NoService: the context is dead even if pcsc-lite says it is valid.
    stale_context: bool,
    /// A command failed in a way that calls for a reconnect since the last (re)connect.
    failed_since_connect: bool,
}

impl Health {
    /// Remembers that the service went away, so that the next reconnect establishes a new context.
    fn note(&mut self, err: &TransportError) {
        if matches!(err, TransportError::NoService) {
            self.stale_context = true;
        }
        if err.needs_reconnect() {
            self.failed_since_connect = true;
        }
    }
}

/// Leaves the card as it is: other applications may hold channels and volatile keys on it (a
/// PKCS#11 module and a TLS client sharing the SIM). Dropping a `pcsc::Card` handle would reset
/// the card instead (the crate's `Drop` disconnects with `SCARD_RESET_CARD`).
fn release(card: Option<Card>) {
    let Some(card) = card else {
        return;
    };
    if let Err((card, err)) = card.disconnect(Disposition::LeaveCard) {
        tracing::debug!(error = %err, "SCardDisconnect failed; the handle is abandoned");
        // Dropping it would try again with a reset; the handle is unusable either way.
        std::mem::forget(card);
    }
}

impl Drop for PcscTransport {
    fn drop(&mut self) {
        release(self.card.take());
    }
}

impl std::fmt::Debug for PcscTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscTransport")
            .field("reader", &self.reader)
            .field("connected", &self.card.is_some())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Waits until pcscd reports `reader` with a card in it (`present`) or empty, for at most
/// `deadline`: for a modem that re-powers its SIM, a reader plugged in late, or a test that
/// swaps cards.
///
/// Why not just retry a connect: pcscd polls many readers (vpcd about every 400 ms), and a card
/// that leaves and another that arrives between two polls look like one card that never left.
/// Waiting for "empty" and then for "present" tells the two apart.
///
/// Fails with [`TransportError::NoService`] without pcscd, [`TransportError::NoReader`] when
/// pcscd has no such reader, and [`TransportError::Timeout`] when the state did not come.
pub fn wait_for_reader(
    reader: &str,
    present: bool,
    deadline: Duration,
) -> Result<(), TransportError> {
    let context = establish()?;
    let name = reader_cstring(reader)?;
    let wanted = if present {
        State::PRESENT
    } else {
        State::EMPTY
    };
    let mut states = [ReaderState::new(name, State::UNAWARE)];
    let end = Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match context.get_status_change(left.min(Duration::from_millis(200)), &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(pcsc::Error::UnknownReader) => {
                return Err(TransportError::NoReader {
                    wanted: reader.to_string(),
                    available: readers_of(&context).unwrap_or_default(),
                })
            }
            Err(err) => return Err(map_pcsc_error(err, reader)),
        }
        if states[0].event_state().contains(wanted) {
            return Ok(());
        }
        if left.is_zero() {
            return Err(TransportError::Timeout {
                waited: deadline,
                command: format!(
                    "pcscd to report {reader:?} {} (last state {:?})",
                    if present { "with a card" } else { "empty" },
                    states[0].event_state()
                ),
            });
        }
        states[0].sync_current_state();
    }
}

fn establish() -> Result<Context, TransportError> {
    Context::establish(Scope::User).map_err(|e| map_pcsc_error(e, ""))
}

fn readers_of(context: &Context) -> Result<Vec<String>, TransportError> {
    match context.list_readers_owned() {
        Ok(names) => Ok(names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(err) => Err(map_pcsc_error(err, "")),
    }
}

impl PcscTransport {
    /// The readers pcscd knows, in its order. Fails with [`TransportError::NoService`] when
    /// pcscd is not running.
    pub fn list_readers() -> Result<Vec<String>, TransportError> {
        let context = establish()?;
        readers_of(&context)
    }

    /// Connects to the card in the chosen reader. Fails with [`TransportError::NoReader`] (listing
    /// the readers present) when none matches, [`TransportError::NoCard`] when the reader is empty.
    pub fn connect(choice: &ReaderChoice, options: PcscOptions) -> Result<Self, TransportError> {
        let context = establish()?;
        let readers = readers_of(&context)?;
        let reader = choice
            .pick(&readers)
            .cloned()
            .ok_or_else(|| TransportError::NoReader {
                wanted: choice.wanted(),
                available: readers.clone(),
            })?;
        let card = connect_card(&context, &reader, &options)?;
        tracing::debug!(reader = %reader, "PC/SC card connected");
        Ok(PcscTransport {
            context,
            card: Some(card),
            reader,
            options,
            buffer: Zeroizing::new(vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED]),
            health: Health::default(),
        })
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// The card's ATR, when connected.
    pub fn atr(&self) -> Option<Vec<u8>> {
        let card = self.card.as_ref()?;
        // SCardStatus, not the AtrString attribute: not every reader driver (vpcd) has the latter.
        card.status2_owned()
            .ok()
            .map(|status| status.atr().to_vec())
    }

    /// One reconnect attempt: a fresh context when pcscd restarted, then `SCardReconnect` with a
    /// reset on the existing handle, or a fresh connect when the handle is dead.
    fn reconnect_once(&mut self) -> Result<(), TransportError> {
        // pcsc-lite checks context validity on the client side only, so after a pcscd restart
        // `is_valid` still says yes while every call answers NoService: treat that as dead too.
        if self.health.stale_context || self.context.is_valid().is_err() {
            release(self.card.take()); // handles die with their context
            self.context = establish()?;
            self.health.stale_context = false;
        }
        if let Some(card) = self.card.as_mut() {
            // The session calls reconnect before its first operation too: a healthy connection
            // with no failure since the last (re)connect is left alone, not reset.
            let healthy = card.status2_owned().is_ok();
            if healthy && !self.health.failed_since_connect {
                return Ok(());
            }
            // Healthy but a command failed (cut exchange, timeout): reset for a clean card state.
            // Not healthy (reset or replaced card): the card is fresh already, just re-attach.
            let disposition = if healthy {
                Disposition::ResetCard
            } else {
                Disposition::LeaveCard
            };
            match card.reconnect(
                self.options.share_mode(),
                self.options.pcsc_protocols(),
                disposition,
            ) {
                Ok(()) => {
                    self.health.failed_since_connect = false;
                    return Ok(());
                }
                Err(err) => {
                    tracing::debug!(reader = %self.reader, error = %err, "SCardReconnect failed; connecting afresh");
                    release(self.card.take());
                }
            }
        }
        match connect_card(&self.context, &self.reader, &self.options) {
            Ok(card) => {
                self.card = Some(card);
                self.health.failed_since_connect = false;
                Ok(())
            }
            Err(err) => {
                self.note(&err);
                Err(err)
            }
        }
    }

    /// Remembers what a failure says about the connection (see [`Health`]).
    fn note(&mut self, err: &TransportError) {
        self.health.note(err);
    }
}

fn reader_cstring(reader: &str) -> Result<CString, TransportError> {
    CString::new(reader).map_err(|_| TransportError::NoReader {
        wanted: reader.to_string(),
        available: Vec::new(),
    })
}

fn connect_card(
    context: &Context,
    reader: &str,
    options: &PcscOptions,
) -> Result<Card, TransportError> {
    let name = reader_cstring(reader)?;
    context
        .connect(&name, options.share_mode(), options.pcsc_protocols())
        .map_err(|err| match err {
            pcsc::Error::UnknownReader => TransportError::NoReader {
                wanted: reader.to_string(),
                available: readers_of(context).unwrap_or_default(),
            },
            other => map_pcsc_error(other, reader),
        })
}

/// Sends one APDU on `card` (or on a transaction, which derefs to a card). The answer is copied
/// out of `buffer` (into a block of its exact size, which the caller owns and wipes) and wiped
/// from it: the buffer is reused and lives as long as the transport.
fn transmit_on(
    card: &Card,
    buffer: &mut [u8],
    command: &[u8],
    reader: &str,
) -> Result<Vec<u8>, TransportError> {
    let answer = match card.transmit(command, buffer) {
        Ok(response) => response.to_vec(),
        Err(err) => {
            // Whatever the reader may have left in it.
            buffer.zeroize();
            return Err(map_pcsc_error(err, reader));
        }
    };
    if let Some(used) = buffer.get_mut(..answer.len()) {
        used.zeroize();
    }
    // vpcd (and some readers) answer "success, 0 bytes" when the card vanished mid-command:
    // that is a card gone in flight, so the session must reconnect, not a protocol error.
    if answer.is_empty() {
        return Err(TransportError::NotTransacted);
    }
    if answer.len() < 2 {
        return Err(TransportError::Protocol(format!(
            "the reader returned {} bytes, less than a status word",
            answer.len()
        )));
    }
    Ok(answer)
}

impl Transport for PcscTransport {
    /// `SCardBeginTransaction`: until the transaction is dropped (`SCardEndTransaction`, leaving
    /// the card as it is), no other application's APDU comes between this operation's.
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        let PcscTransport {
            card,
            reader,
            buffer,
            health,
            ..
        } = self;
        let card = card.as_mut().ok_or(TransportError::Disconnected)?;
        match card.transaction() {
            Ok(transaction) => Ok(Box::new(PcscTransaction {
                transaction: Some(transaction),
                buffer: buffer.as_mut_slice(),
                reader,
                health,
            })),
            Err(err) => {
                let source = map_pcsc_error(err, reader);
                health.note(&source);
                Err(source)
            }
        }
    }

    /// Leaves a healthy connection alone (no failure since the last connect); otherwise
    /// re-establishes the context if pcscd restarted, then `SCardReconnect` (reset when the card
    /// is still there, so its state is clean) or a fresh connect. Bounded by
    /// [`PcscOptions::reconnect_deadline`].
    fn reconnect(&mut self) -> Result<(), TransportError> {
        let deadline = Instant::now() + self.options.reconnect_deadline;
        let mut last = TransportError::Disconnected;
        for attempt in 0..RECONNECT_ATTEMPTS {
            match self.reconnect_once() {
                Ok(()) => {
                    tracing::debug!(reader = %self.reader, attempt, "PC/SC card reconnected");
                    return Ok(());
                }
                Err(err) => last = err,
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            std::thread::sleep(RECONNECT_PAUSE.min(remaining));
        }
        Err(last)
    }

    fn describe(&self) -> String {
        format!("PC/SC reader {:?}", self.reader)
    }

    /// The reader: every program reaching the card through pcscd names it the same.
    fn route(&self) -> Option<String> {
        Some(format!("pcsc:{}", self.reader))
    }
}

/// An open PC/SC transaction on a [`PcscTransport`]'s card, ended on drop.
struct PcscTransaction<'a> {
    /// `Some` until dropped.
    transaction: Option<pcsc::Transaction<'a>>,
    buffer: &'a mut [u8],
    reader: &'a str,
    health: &'a mut Health,
}

impl Transaction for PcscTransaction<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let card = self
            .transaction
            .as_deref()
            .ok_or(TransportError::Disconnected)?;
        let result = transmit_on(card, self.buffer, command, self.reader);
        if let Err(err) = &result {
            self.health.note(err);
        }
        result
    }
}

impl Drop for PcscTransaction<'_> {
    fn drop(&mut self) {
        if let Some(transaction) = self.transaction.take() {
            if let Err((_, err)) = transaction.end(Disposition::LeaveCard) {
                // The operation's outcome stands; a card that went away shows on the next command.
                tracing::warn!(reader = %self.reader, error = %err, "ending the PC/SC transaction failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_choice_matching() {
        let readers = vec![
            "Virtual PCD 00 00".to_string(),
            "Virtual PCD 00 01".to_string(),
        ];
        assert_eq!(ReaderChoice::First.pick(&readers), Some(&readers[0]));
        assert_eq!(
            ReaderChoice::Contains("pcd 00 01".into()).pick(&readers),
            Some(&readers[1])
        );
        assert_eq!(
            ReaderChoice::Exact("Virtual PCD 00 00".into()).pick(&readers),
            Some(&readers[0])
        );
        assert_eq!(
            ReaderChoice::Exact("Virtual PCD".into()).pick(&readers),
            None
        );
        assert_eq!(ReaderChoice::First.pick(&[]), None);
    }

    #[test]
    fn error_mapping() {
        assert!(matches!(
            map_pcsc_error(pcsc::Error::NoService, "r"),
            TransportError::NoService
        ));
        assert!(matches!(
            map_pcsc_error(pcsc::Error::CommError, "r"),
            TransportError::NoService
        ));
        assert!(matches!(
            map_pcsc_error(pcsc::Error::SecurityViolation, "r"),
            TransportError::NoService
        ));
        assert!(matches!(
            map_pcsc_error(pcsc::Error::RemovedCard, "r"),
            TransportError::RemovedCard
        ));
        assert!(matches!(
            map_pcsc_error(pcsc::Error::ResetCard, "r"),
            TransportError::ResetCard
        ));
        assert!(matches!(
            map_pcsc_error(pcsc::Error::NotTransacted, "r"),
            TransportError::NotTransacted
        ));
        assert!(matches!(
            map_pcsc_error(pcsc::Error::NoSmartcard, "r"),
            TransportError::NoCard(ref r) if r == "r"
        ));
        assert!(matches!(
            map_pcsc_error(pcsc::Error::InvalidParameter, "r"),
            TransportError::Protocol(_)
        ));
    }
}
