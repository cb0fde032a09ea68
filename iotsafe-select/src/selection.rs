//! A card selection: exactly one of a PC/SC reader, a modem or a virtual card, plus the applet's
//! AID and, for a virtual card, its latency profile.

use crate::error::SelectError;
use crate::open;
use crate::vcard::TestPki;
use iotsafe_core::cache::{CacheUse, PublicCache};
use iotsafe_core::{Card, CardConfig, SessionClosing, TraceSink};
use std::path::PathBuf;
use std::sync::Arc;

/// Latency profile of the virtual card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatencyProfile {
    /// Answer at once (tests).
    #[default]
    None,
    /// A typical SIM: sign ≈150 ms, key generation ≈250 ms, ECDH ≈120 ms, 5 ms per APDU.
    Sim,
    /// A typical SIM behind a 115,200-baud modem UART: [`LatencyProfile::Sim`] plus the serial
    /// time of the `AT+CSIM` lines each APDU takes (10 bits a byte, hex doubling the APDU).
    Modem,
}

/// Which card to open. Exactly one of `reader`, `modem` and `vcard` must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardSelection {
    /// PC/SC reader, by exact name or unique substring (feature `pcsc`).
    pub reader: Option<String>,
    /// Cellular modem reached with AT commands: a serial device path or `tcp://HOST:PORT`
    /// (feature `at`).
    pub modem: Option<String>,
    /// Virtual card state file, run in process; created and provisioned (with a test PKI next to
    /// it) when it does not exist.
    pub vcard: Option<PathBuf>,
    /// AID of the IoT SAFE applet, in hex (default: probe the standard and known AIDs).
    pub aid: Option<String>,
    /// Latency profile of the virtual card (only with `vcard`).
    pub latency: Option<LatencyProfile>,
    /// Where the card's public data (object list, public keys, certificates) is kept between
    /// runs, checked against the card with one short APDU before use
    /// ([`iotsafe_core::cache`]); `None`: read from the card every time. Only a card with an
    /// identity on this host (a reader, a modem) is cached.
    pub public_cache: Option<PathBuf>,
    /// When the card's sign and put-key sessions are closed (`None`: the default,
    /// [`SessionClosing::UnlessRefused`]).
    pub close_sessions: Option<SessionClosing>,
}

/// An open card session and where it came from.
#[derive(Debug, Clone)]
pub struct OpenedCard {
    /// The session.
    pub card: Arc<Card>,
    /// "virtual card target/iotsafe-demo/card.json", "PC/SC reader …", "modem /dev/ttyUSB2".
    pub description: String,
    /// The test PKI, for a virtual card.
    pub pki: Option<TestPki>,
    /// True when opening provisioned a new virtual card (its state file did not exist).
    pub provisioned: bool,
    /// The cache of the card's public data, and what it gave this run (`None`: not asked for).
    pub public_cache: Option<(PublicCache, CacheUse)>,
}

impl OpenedCard {
    /// Ends the run: keeps what the session read of the card's public data in the cache (when
    /// one is used), then closes the channel the session opened.
    pub fn finish(&self) -> Result<(), iotsafe_core::Error> {
        if let Some((cache, _)) = &self.public_cache {
            // A cache that cannot be written costs the next run its reads, nothing more.
            let _ = cache.store(&self.card);
        }
        self.card.close()
    }
}

impl CardSelection {
    /// A selection of a virtual card state file.
    pub fn virtual_card(state: impl Into<PathBuf>) -> CardSelection {
        CardSelection {
            vcard: Some(state.into()),
            ..CardSelection::default()
        }
    }

    /// The session configuration this selection asks for: the AID given, else probing the
    /// standard and known AIDs.
    pub fn card_config(&self) -> Result<CardConfig, SelectError> {
        let mut config = match &self.aid {
            None => CardConfig::default().probing_known_aids(),
            Some(text) => {
                let aid = iotsafe_core::hexutil::decode(text.trim_start_matches("0x"))
                    .filter(|a| (5..=16).contains(&a.len()))
                    .ok_or_else(|| SelectError::BadAid(text.clone()))?;
                CardConfig::default().with_aid(&aid)
            }
        };
        if let Some(closing) = self.close_sessions {
            config.close_sessions = closing;
        }
        Ok(config)
    }

    /// Checks, without opening anything, that the selection names exactly one card, a valid
    /// AID, and a latency profile only for a virtual card.
    pub fn validate(&self) -> Result<(), SelectError> {
        self.card_config()?;
        let chosen = [
            self.reader.is_some(),
            self.modem.is_some(),
            self.vcard.is_some(),
        ]
        .iter()
        .filter(|w| **w)
        .count();
        if chosen > 1 {
            return Err(SelectError::SeveralCards);
        }
        if self.latency.is_some() && self.vcard.is_none() {
            return Err(SelectError::LatencyWithoutVirtualCard);
        }
        if chosen == 0 {
            return Err(SelectError::NoCard);
        }
        Ok(())
    }

    /// What the selection names, for people: "PC/SC reader NAME", "modem TARGET", "virtual card
    /// STATE", or "no card configured".
    pub fn describe(&self) -> String {
        if let Some(r) = &self.reader {
            format!("PC/SC reader {r}")
        } else if let Some(m) = &self.modem {
            format!("modem {m}")
        } else if let Some(v) = &self.vcard {
            format!("virtual card {}", v.display())
        } else {
            String::from("no card configured")
        }
    }

    /// Opens the selected card (after [`Self::validate`]).
    pub fn open(&self) -> Result<OpenedCard, SelectError> {
        self.open_traced(None)
    }

    /// [`Self::open`] with a trace sink that sees every APDU from the first SELECT on.
    pub fn open_traced(&self, trace: Option<TraceSink>) -> Result<OpenedCard, SelectError> {
        self.validate()?;
        let config = self.card_config()?;
        let cache = self.public_cache.as_ref().map(PublicCache::at);
        let mut opened = if let Some(name) = &self.reader {
            open::reader(name, config, trace)
        } else if let Some(target) = &self.modem {
            open::modem(target, config, trace, cache.as_ref())
        } else if let Some(state) = &self.vcard {
            open::virtual_card(state, self.latency.unwrap_or_default(), config, trace)
        } else {
            Err(SelectError::NoCard)
        }?;
        if let (Some(cache), Some(_)) = (cache, opened.card.identity()) {
            let used = cache.load(&opened.card);
            opened.public_cache = Some((cache, used));
        }
        Ok(opened)
    }
}
