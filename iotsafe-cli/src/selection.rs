//! Which card to talk to: `--reader NAME` (PC/SC), `--modem PATH|tcp://HOST:PORT` (AT commands),
//! `--vcard STATE` (the virtual card, in-process), plus `--aid` and `--latency`. Shared by every
//! `iotsafe` subcommand and by the MQTT demo. The flags (and the environment variables they
//! default to) map onto an `iotsafe-select` [`CardSelection`], which does the opening.

use crate::error::CliError;
use iotsafe_core::TraceSink;
use iotsafe_select::env;
use std::path::PathBuf;

pub use iotsafe_select::{
    pki_dir_of, test_pki_in, CardSelection, LatencyProfile, OpenedCard, SelectError, TestPki,
};

/// `--latency`: latency profile of the virtual card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Latency {
    /// Answer at once (tests).
    #[default]
    None,
    /// A typical SIM: sign ≈150 ms, key generation ≈250 ms, ECDH ≈120 ms, 5 ms per APDU.
    Sim,
    /// A typical SIM behind a 115,200-baud modem UART (every APDU also crosses it as AT+CSIM
    /// text).
    Modem,
}

impl From<Latency> for LatencyProfile {
    fn from(latency: Latency) -> LatencyProfile {
        match latency {
            Latency::None => LatencyProfile::None,
            Latency::Sim => LatencyProfile::Sim,
            Latency::Modem => LatencyProfile::Modem,
        }
    }
}

/// Card selection flags, global to every subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CardFlags {
    /// PC/SC reader, by name or unique substring (needs the `pcsc` feature).
    #[arg(long, global = true, value_name = "NAME", env = env::READER)]
    pub reader: Option<String>,
    /// Cellular modem reached with AT commands: a serial device path or tcp://HOST:PORT.
    #[arg(
        long,
        global = true,
        value_name = "PATH|tcp://HOST:PORT",
        env = env::MODEM
    )]
    pub modem: Option<String>,
    /// Virtual card state file, run in-process; created and provisioned (with a test PKI next to
    /// it) when it does not exist.
    #[arg(long, global = true, value_name = "STATE", env = env::VCARD)]
    pub vcard: Option<PathBuf>,
    /// AID of the IoT SAFE applet, in hex (default: probe the standard and known AIDs).
    #[arg(long, global = true, value_name = "HEX", env = env::AID)]
    pub aid: Option<String>,
    /// Latency profile of the virtual card (`sim` = a typical SIM's timings; `modem` = the same
    /// behind a 115,200-baud modem UART).
    #[arg(long, global = true, value_enum, value_name = "PROFILE")]
    pub latency: Option<Latency>,
    /// Read the card's public data (object list, public keys, certificate) from the card every
    /// time, instead of the copy kept in `$IOTSAFE_CACHE_DIR` (else `~/.cache/iotsafe`), which is
    /// checked against the card with one short APDU before use.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// When to close the card's sign and put-key sessions: unless-refused (the default: left
    /// open, closed from the first Init the card refuses on), always (as wolfSSL does), never.
    #[arg(long, global = true, value_enum, value_name = "WHEN")]
    pub close_sessions: Option<CloseSessions>,
}

/// `--close-sessions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloseSessions {
    /// Left open; closed after use once the card refused an Init on one left open.
    UnlessRefused,
    /// After every operation (8 APDUs per handshake instead of 6).
    Always,
    /// Never.
    Never,
}

impl From<CloseSessions> for iotsafe_core::SessionClosing {
    fn from(when: CloseSessions) -> Self {
        match when {
            CloseSessions::UnlessRefused => iotsafe_core::SessionClosing::UnlessRefused,
            CloseSessions::Always => iotsafe_core::SessionClosing::Always,
            CloseSessions::Never => iotsafe_core::SessionClosing::Never,
        }
    }
}

impl CardFlags {
    /// The selection these flags ask for.
    pub fn selection(&self) -> CardSelection {
        CardSelection {
            reader: self.reader.clone(),
            modem: self.modem.clone(),
            vcard: self.vcard.clone(),
            aid: self.aid.clone(),
            latency: self.latency.map(LatencyProfile::from),
            close_sessions: self.close_sessions.map(Into::into),
            public_cache: if self.no_cache {
                None
            } else {
                iotsafe_core::cache::PublicCache::from_env().map(|c| c.dir().to_path_buf())
            },
        }
    }

    /// Opens the selected card: exactly one of `--reader`, `--modem`, `--vcard`.
    pub fn open(&self) -> Result<OpenedCard, CliError> {
        self.open_traced(None)
    }

    /// [`Self::open`] with a trace sink that sees every APDU from the first SELECT on. Says on
    /// stderr when a new virtual card was provisioned.
    pub fn open_traced(&self, trace: Option<TraceSink>) -> Result<OpenedCard, CliError> {
        let opened = self.selection().open_traced(trace)?;
        if let (true, Some(state)) = (opened.provisioned, &self.vcard) {
            eprintln!(
                "note: provisioned a new virtual card in {} (test PKI in {})",
                state.display(),
                pki_dir_of(state).display()
            );
        }
        Ok(opened)
    }
}

/// What went wrong, in terms of the flags, with what to try.
impl From<SelectError> for CliError {
    fn from(error: SelectError) -> CliError {
        let choosing = "choosing the card";
        match error {
            SelectError::BadAid(text) => CliError::new(
                "reading --aid",
                format!("{text:?} is not 5 to 16 bytes of hex"),
            )
            .hint("--aid A0000005590010"),
            SelectError::SeveralCards => CliError::new(
                choosing,
                "--reader, --modem and --vcard exclude each other",
            )
            .hint("pass only one of them"),
            SelectError::LatencyWithoutVirtualCard => {
                CliError::new(choosing, "--latency only applies to a virtual card")
                    .hint("add --vcard STATE, or drop --latency")
            }
            SelectError::NoCard => CliError::new(choosing, "no card selected").hint(
                "--vcard STATE for the virtual card, --reader NAME for a PC/SC reader, or --modem PATH",
            ),
            SelectError::NotBuilt {
                card,
                support,
                feature,
            } => {
                let hint = match feature {
                    "pcsc" => String::from("rebuild with `--features pcsc` (needs libpcsclite-dev)"),
                    other => format!("rebuild with `--features {other}`"),
                };
                CliError::new(
                    format!("opening {card}"),
                    format!("this build has no {support} support"),
                )
                .hint(hint)
            }
            SelectError::Transport { card, source } => {
                CliError::transport(format!("opening {card}"), source)
            }
            SelectError::Card { card, source } => {
                CliError::card(format!("opening {card}"), &source)
            }
            SelectError::Provision { state, source } => CliError::new(
                format!("provisioning a virtual card in {}", state.display()),
                source,
            ),
            SelectError::VirtualCard { state, source } => CliError::new(
                format!("opening the virtual card {}", state.display()),
                source,
            )
            .hint("delete the state file to provision a fresh card"),
            other => CliError::new(choosing, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        card: CardFlags,
    }

    fn latency(args: &[&str]) -> Result<Option<LatencyProfile>, clap::Error> {
        let argv = ["iotsafe", "--vcard", "card.json"].iter().chain(args);
        Ok(Probe::try_parse_from(argv)?.card.selection().latency)
    }

    #[test]
    fn latency_takes_none_sim_and_modem() {
        assert_eq!(latency(&[]).unwrap(), None);
        assert_eq!(
            latency(&["--latency", "none"]).unwrap(),
            Some(LatencyProfile::None)
        );
        assert_eq!(
            latency(&["--latency", "sim"]).unwrap(),
            Some(LatencyProfile::Sim)
        );
        assert_eq!(
            latency(&["--latency", "modem"]).unwrap(),
            Some(LatencyProfile::Modem)
        );
        assert!(latency(&["--latency", "uart"]).is_err());
    }
}
