//! Which card to talk to: `--reader NAME` (PC/SC), `--modem PATH|tcp://HOST:PORT` (AT commands),
//! `--vcard STATE` (the virtual card, in-process), plus `--aid` and `--latency`. Shared by every
//! `iotsafe` subcommand and by the MQTT demo.

use crate::error::CliError;
use iotsafe_core::{Card, CardConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Latency profile of the virtual card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LatencyProfile {
    /// Answer at once (tests).
    #[default]
    None,
    /// A typical SIM: sign ≈150 ms, key generation ≈250 ms, ECDH ≈120 ms, 5 ms per APDU.
    Sim,
}

/// Card selection flags, global to every subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CardSelection {
    /// PC/SC reader, by name or unique substring (needs the `pcsc` feature).
    #[arg(long, global = true, value_name = "NAME", env = "IOTSAFE_READER")]
    pub reader: Option<String>,
    /// Cellular modem reached with AT commands: a serial device path or tcp://HOST:PORT.
    #[arg(long, global = true, value_name = "PATH|tcp://HOST:PORT", env = "IOTSAFE_MODEM")]
    pub modem: Option<String>,
    /// Virtual card state file, run in-process; created and provisioned (with a test PKI next to
    /// it) when it does not exist.
    #[arg(long, global = true, value_name = "STATE", env = "IOTSAFE_VCARD")]
    pub vcard: Option<PathBuf>,
    /// AID of the IoT SAFE applet, in hex (default: probe the standard and known AIDs).
    #[arg(long, global = true, value_name = "HEX")]
    pub aid: Option<String>,
    /// Latency profile of the virtual card (`sim` = a typical SIM's timings).
    #[arg(long, global = true, value_enum, value_name = "PROFILE")]
    pub latency: Option<LatencyProfile>,
}

/// Files of the test PKI provisioned with a virtual card: a CA, a server certificate and key for
/// `localhost`/`127.0.0.1`, and the device certificate that is also on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPki {
    /// Directory holding the files.
    pub dir: PathBuf,
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// Server certificate (PEM), signed by the CA.
    pub server_cert: PathBuf,
    /// Server private key (PEM, PKCS#8).
    pub server_key: PathBuf,
    /// Device certificate (PEM), the one on the card.
    pub device_cert: PathBuf,
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
}

impl CardSelection {
    /// A selection of a virtual card state file.
    pub fn virtual_card(state: impl Into<PathBuf>) -> CardSelection {
        CardSelection {
            vcard: Some(state.into()),
            ..CardSelection::default()
        }
    }

    /// The session configuration these flags ask for.
    pub fn card_config(&self) -> Result<CardConfig, CliError> {
        match &self.aid {
            None => Ok(CardConfig::default().probing_known_aids()),
            Some(text) => {
                let aid = iotsafe_core::hexutil::decode(text.trim_start_matches("0x"))
                    .filter(|a| (5..=16).contains(&a.len()))
                    .ok_or_else(|| {
                        CliError::new("reading --aid", format!("{text:?} is not 5 to 16 bytes of hex"))
                            .hint("--aid A0000005590010")
                    })?;
                Ok(CardConfig::default().with_aid(&aid))
            }
        }
    }

    /// Opens the selected card: exactly one of `--reader`, `--modem`, `--vcard`.
    pub fn open(&self) -> Result<OpenedCard, CliError> {
        let config = self.card_config()?;
        let chosen = [
            self.reader.is_some(),
            self.modem.is_some(),
            self.vcard.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if chosen > 1 {
            return Err(CliError::new(
                "choosing the card",
                "--reader, --modem and --vcard exclude each other",
            )
            .hint("pass only one of them"));
        }
        if self.latency.is_some() && self.vcard.is_none() {
            return Err(CliError::new(
                "choosing the card",
                "--latency only applies to a virtual card",
            )
            .hint("add --vcard STATE, or drop --latency"));
        }
        if let Some(name) = &self.reader {
            return open_reader(name, config);
        }
        if let Some(target) = &self.modem {
            return open_modem(target, config);
        }
        if let Some(state) = &self.vcard {
            return open_virtual(state, self.latency.unwrap_or_default(), config);
        }
        Err(CliError::new("choosing the card", "no card selected").hint(
            "--vcard STATE for the virtual card, --reader NAME for a PC/SC reader, or --modem PATH",
        ))
    }
}

#[cfg(feature = "pcsc")]
fn open_reader(name: &str, config: CardConfig) -> Result<OpenedCard, CliError> {
    let _ = (name, config);
    Err(CliError::new(
        format!("opening reader {name:?}"),
        "the PC/SC transport is not merged into this build yet",
    ))
}

#[cfg(not(feature = "pcsc"))]
fn open_reader(name: &str, _config: CardConfig) -> Result<OpenedCard, CliError> {
    Err(CliError::new(
        format!("opening reader {name:?}"),
        "this build has no PC/SC support",
    )
    .hint("rebuild with `--features pcsc` (needs libpcsclite-dev)"))
}

#[cfg(feature = "at")]
fn open_modem(target: &str, config: CardConfig) -> Result<OpenedCard, CliError> {
    let _ = config;
    Err(CliError::new(
        format!("opening modem {target:?}"),
        "the AT transport is not merged into this build yet",
    ))
}

#[cfg(not(feature = "at"))]
fn open_modem(target: &str, _config: CardConfig) -> Result<OpenedCard, CliError> {
    Err(CliError::new(
        format!("opening modem {target:?}"),
        "this build has no AT modem support",
    )
    .hint("rebuild with `--features at`"))
}

fn open_virtual(
    state: &Path,
    latency: LatencyProfile,
    config: CardConfig,
) -> Result<OpenedCard, CliError> {
    let _ = (latency, config);
    Err(CliError::new(
        format!("opening the virtual card {}", state.display()),
        "the in-process virtual card is not merged into this build yet",
    ))
}
