//! Opening the transport a selection names, and the card session on it.

use crate::error::SelectError;
use crate::selection::{LatencyProfile, OpenedCard};
use crate::vcard::{ensure_virtual_card, pki_dir_of, test_pki_in, virtual_card_options};
use iotsafe_core::{Card, CardConfig, TraceSink, Transport};
use std::path::Path;
use std::sync::Arc;

/// The session on `transport` to the card described as `card`, shown as `description`; no test
/// PKI, nothing provisioned (the virtual card fills those in).
fn opened(
    card: String,
    description: String,
    transport: impl Transport + Send + 'static,
    config: CardConfig,
    trace: Option<TraceSink>,
) -> Result<OpenedCard, SelectError> {
    match Card::open_traced(transport, config, trace) {
        Ok(session) => Ok(OpenedCard {
            card: Arc::new(session),
            description,
            pki: None,
            provisioned: false,
            public_cache: None,
        }),
        Err(source) => Err(SelectError::Card { card, source }),
    }
}

/// What a reader or a modem that could not be reached becomes.
#[cfg(any(feature = "pcsc", feature = "at"))]
fn unreachable(card: &str) -> impl Fn(iotsafe_core::TransportError) -> SelectError + '_ {
    move |source| SelectError::Transport {
        card: card.to_string(),
        source,
    }
}

/// The card in the PC/SC reader named `name` exactly, else the one reader whose name contains it.
#[cfg(feature = "pcsc")]
pub(crate) fn reader(
    name: &str,
    config: CardConfig,
    trace: Option<TraceSink>,
) -> Result<OpenedCard, SelectError> {
    use iotsafe_core::pcsc::{PcscOptions, PcscTransport, ReaderChoice};
    let card = format!("PC/SC reader {name:?}");
    let readers = PcscTransport::list_readers().map_err(unreachable(&card))?;
    // An exact name wins; otherwise a unique substring.
    let choice = if readers.iter().any(|r| r == name) {
        ReaderChoice::Exact(name.to_string())
    } else {
        ReaderChoice::Contains(name.to_string())
    };
    let transport =
        PcscTransport::connect(&choice, PcscOptions::default()).map_err(unreachable(&card))?;
    let description = format!("PC/SC reader {:?}", transport.reader());
    opened(card, description, transport, config, trace)
}

/// Without PC/SC support: says so.
#[cfg(not(feature = "pcsc"))]
pub(crate) fn reader(
    name: &str,
    _config: CardConfig,
    _trace: Option<TraceSink>,
) -> Result<OpenedCard, SelectError> {
    Err(SelectError::NotBuilt {
        card: format!("PC/SC reader {name:?}"),
        support: "PC/SC",
        feature: "pcsc",
    })
}

/// The card behind the modem at `target`: `tcp://HOST:PORT`, else a serial device at 115200 baud.
#[cfg(feature = "at")]
pub(crate) fn modem(
    target: &str,
    config: CardConfig,
    trace: Option<TraceSink>,
    cache: Option<&iotsafe_core::cache::PublicCache>,
) -> Result<OpenedCard, SelectError> {
    use iotsafe_core::at::{AtOptions, Learned};
    let port = format!("modem {target}");
    // What an earlier program found out about this modem (three AT exchanges fewer); if the
    // open fails with it (another modem on the port since?), once more asking everything.
    let learned = cache
        .and_then(|c| c.port_facts(&port))
        .and_then(|text| Learned::parse(&text));
    let options = AtOptions {
        learned,
        ..AtOptions::default()
    };
    let opened = match modem_with(target, options, config.clone(), trace.clone()) {
        Err(_) if learned.is_some() => modem_with(target, AtOptions::default(), config, trace),
        other => other,
    }?;
    if let (Some(cache), Some(facts)) = (cache, opened.card.transport_learned()) {
        // A cache that cannot be written costs the next run its questions, nothing more.
        let _ = cache.remember_port(&port, &facts);
    }
    Ok(opened)
}

/// Opens the modem at `target` (a serial device, or `tcp://HOST:PORT`) with `options`.
#[cfg(feature = "at")]
fn modem_with(
    target: &str,
    options: iotsafe_core::at::AtOptions,
    config: CardConfig,
    trace: Option<TraceSink>,
) -> Result<OpenedCard, SelectError> {
    use iotsafe_core::at::AtTransport;
    let card = format!("modem {target}");
    // The two ports are different types, hence two calls.
    match target.strip_prefix("tcp://") {
        Some(addr) => {
            let transport =
                AtTransport::connect_tcp_with(addr, options).map_err(unreachable(&card))?;
            opened(card.clone(), card, transport, config, trace)
        }
        None => {
            let transport = AtTransport::open_serial_with(target, 115_200, options)
                .map_err(unreachable(&card))?;
            opened(card.clone(), card, transport, config, trace)
        }
    }
}

/// Without AT modem support: says so.
#[cfg(not(feature = "at"))]
pub(crate) fn modem(
    target: &str,
    _config: CardConfig,
    _trace: Option<TraceSink>,
    _cache: Option<&iotsafe_core::cache::PublicCache>,
) -> Result<OpenedCard, SelectError> {
    Err(SelectError::NotBuilt {
        card: format!("modem {target}"),
        support: "AT modem",
        feature: "at",
    })
}

/// The virtual card of the state file `state`, in process; provisioned first when the file does
/// not exist.
pub(crate) fn virtual_card(
    state: &Path,
    latency: LatencyProfile,
    config: CardConfig,
    trace: Option<TraceSink>,
) -> Result<OpenedCard, SelectError> {
    let provisioned = ensure_virtual_card(state)?;
    let vcard = iotsafe_vcard::VirtualCard::open_state(state, virtual_card_options(latency))
        .map_err(|source| SelectError::VirtualCard {
            state: state.to_path_buf(),
            source,
        })?;
    let description = format!("virtual card {}", state.display());
    let transport = iotsafe_vcard::InProcessTransport::new(vcard);
    Ok(OpenedCard {
        pki: test_pki_in(&pki_dir_of(state)),
        provisioned,
        ..opened(description.clone(), description, transport, config, trace)?
    })
}
