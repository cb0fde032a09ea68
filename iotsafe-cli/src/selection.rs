//! Which card to talk to: `--reader NAME` (PC/SC), `--modem PATH|tcp://HOST:PORT` (AT commands),
//! `--vcard STATE` (the virtual card, in-process), plus `--aid` and `--latency`. Shared by every
//! `iotsafe` subcommand and by the MQTT demo.

use crate::error::CliError;
use iotsafe_core::{Card, CardConfig, TraceSink};
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
    #[arg(
        long,
        global = true,
        value_name = "PATH|tcp://HOST:PORT",
        env = "IOTSAFE_MODEM"
    )]
    pub modem: Option<String>,
    /// Virtual card state file, run in-process; created and provisioned (with a test PKI next to
    /// it) when it does not exist.
    #[arg(long, global = true, value_name = "STATE", env = "IOTSAFE_VCARD")]
    pub vcard: Option<PathBuf>,
    /// AID of the IoT SAFE applet, in hex (default: probe the standard and known AIDs).
    #[arg(long, global = true, value_name = "HEX", env = "IOTSAFE_AID")]
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
                        CliError::new(
                            "reading --aid",
                            format!("{text:?} is not 5 to 16 bytes of hex"),
                        )
                        .hint("--aid A0000005590010")
                    })?;
                Ok(CardConfig::default().with_aid(&aid))
            }
        }
    }

    /// Opens the selected card: exactly one of `--reader`, `--modem`, `--vcard`.
    pub fn open(&self) -> Result<OpenedCard, CliError> {
        self.open_traced(None)
    }

    /// [`Self::open`] with a trace sink that sees every APDU from the first SELECT on.
    pub fn open_traced(&self, trace: Option<TraceSink>) -> Result<OpenedCard, CliError> {
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
            return open_reader(name, config, trace);
        }
        if let Some(target) = &self.modem {
            return open_modem(target, config, trace);
        }
        if let Some(state) = &self.vcard {
            return open_virtual(state, self.latency.unwrap_or_default(), config, trace);
        }
        Err(CliError::new("choosing the card", "no card selected").hint(
            "--vcard STATE for the virtual card, --reader NAME for a PC/SC reader, or --modem PATH",
        ))
    }
}

#[cfg(feature = "pcsc")]
fn open_reader(
    name: &str,
    config: CardConfig,
    trace: Option<TraceSink>,
) -> Result<OpenedCard, CliError> {
    use iotsafe_core::pcsc::{PcscOptions, PcscTransport, ReaderChoice};
    let what = format!("opening PC/SC reader {name:?}");
    let readers = PcscTransport::list_readers().map_err(|e| transport_error(&what, e))?;
    // An exact name wins; otherwise a unique substring.
    let choice = if readers.iter().any(|r| r == name) {
        ReaderChoice::Exact(name.to_string())
    } else {
        ReaderChoice::Contains(name.to_string())
    };
    let transport = PcscTransport::connect(&choice, PcscOptions::default())
        .map_err(|e| transport_error(&what, e))?;
    let description = format!("PC/SC reader {:?}", transport.reader());
    let card = Card::open_traced(transport, config, trace.clone())
        .map_err(|e| CliError::card(&what, &e))?;
    Ok(OpenedCard {
        card: Arc::new(card),
        description,
        pki: None,
    })
}

#[cfg(not(feature = "pcsc"))]
fn open_reader(
    name: &str,
    _config: CardConfig,
    _trace: Option<TraceSink>,
) -> Result<OpenedCard, CliError> {
    Err(CliError::new(
        format!("opening reader {name:?}"),
        "this build has no PC/SC support",
    )
    .hint("rebuild with `--features pcsc` (needs libpcsclite-dev)"))
}

#[cfg(feature = "at")]
fn open_modem(
    target: &str,
    config: CardConfig,
    trace: Option<TraceSink>,
) -> Result<OpenedCard, CliError> {
    use iotsafe_core::at::AtTransport;
    let what = format!("opening modem {target}");
    let card = if let Some(addr) = target.strip_prefix("tcp://") {
        let transport = AtTransport::connect_tcp(addr).map_err(|e| transport_error(&what, e))?;
        Card::open_traced(transport, config, trace.clone())
    } else {
        let transport =
            AtTransport::open_serial(target, 115_200).map_err(|e| transport_error(&what, e))?;
        Card::open_traced(transport, config, trace.clone())
    }
    .map_err(|e| CliError::card(&what, &e))?;
    Ok(OpenedCard {
        card: Arc::new(card),
        description: format!("modem {target}"),
        pki: None,
    })
}

#[cfg(not(feature = "at"))]
fn open_modem(
    target: &str,
    _config: CardConfig,
    _trace: Option<TraceSink>,
) -> Result<OpenedCard, CliError> {
    Err(CliError::new(
        format!("opening modem {target:?}"),
        "this build has no AT modem support",
    )
    .hint("rebuild with `--features at`"))
}

#[cfg(any(feature = "at", feature = "pcsc"))]
fn transport_error(what: &str, error: iotsafe_core::TransportError) -> CliError {
    CliError::transport(what, error)
}

/// Where the test PKI of a virtual card state lives: `<dir>/<stem>-pki/`.
pub fn pki_dir_of(state: &Path) -> PathBuf {
    let stem = state
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "card".into());
    state
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(format!("{stem}-pki"))
}

/// The test PKI files in `dir`, if they are all there.
pub fn test_pki_in(dir: &Path) -> Option<TestPki> {
    let pki = TestPki {
        dir: dir.to_path_buf(),
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        device_cert: dir.join("device.pem"),
    };
    [
        &pki.ca_cert,
        &pki.server_cert,
        &pki.server_key,
        &pki.device_cert,
    ]
    .iter()
    .all(|p| p.is_file())
    .then_some(pki)
}

/// Virtual card options for a latency profile.
pub fn virtual_card_options(latency: LatencyProfile) -> iotsafe_vcard::CardOptions {
    iotsafe_vcard::CardOptions {
        latency: match latency {
            LatencyProfile::None => iotsafe_vcard::Latency::none(),
            LatencyProfile::Sim => iotsafe_vcard::Latency::typical_sim(),
        },
        ..iotsafe_vcard::CardOptions::default()
    }
}

/// Provisions a virtual card state with the default layout and a test PKI (`<stem>-pki/` next to
/// it) unless the state file exists; returns whether it was created.
pub fn ensure_virtual_card(state: &Path) -> Result<bool, CliError> {
    if state.exists() {
        return Ok(false);
    }
    let what = format!("provisioning a virtual card in {}", state.display());
    if let Some(parent) = state.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| CliError::file(&what, parent, &e))?;
    }
    iotsafe_vcard::provision(
        state,
        &pki_dir_of(state),
        virtual_card_options(LatencyProfile::None),
    )
    .map_err(|e| CliError::new(&what, e))?;
    Ok(true)
}

fn open_virtual(
    state: &Path,
    latency: LatencyProfile,
    config: CardConfig,
    trace: Option<TraceSink>,
) -> Result<OpenedCard, CliError> {
    let what = format!("opening the virtual card {}", state.display());
    if ensure_virtual_card(state)? {
        eprintln!(
            "note: provisioned a new virtual card in {} (test PKI in {})",
            state.display(),
            pki_dir_of(state).display()
        );
    }
    let vcard = iotsafe_vcard::VirtualCard::open_state(state, virtual_card_options(latency))
        .map_err(|e| {
            CliError::new(&what, e).hint("delete the state file to provision a fresh card")
        })?;
    let transport = iotsafe_vcard::InProcessTransport::new(vcard);
    let card = Card::open_traced(transport, config, trace.clone())
        .map_err(|e| CliError::card(&what, &e))?;
    Ok(OpenedCard {
        card: Arc::new(card),
        description: format!("virtual card {}", state.display()),
        pki: test_pki_in(&pki_dir_of(state)),
    })
}
