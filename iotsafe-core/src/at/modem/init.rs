//! Taking over a modem's port: the drain, `ATE0`/`AT`, `AT+CMEE=1`, and what the modem is and
//! has (`AT+CGMM`, `AT+CCHO=?`, `AT+CSIM=?`), or what an earlier run found out of it.

use super::{AtTransport, Support};
use crate::at::framing::AtCommand;
use crate::at::options::AtMode;
use crate::at::parser;
use crate::at::port::AtPort;
use crate::at::quirks::ModemQuirks;
use crate::at::refusal::ErrorMode;
use crate::prelude::*;
use crate::transport::TransportError;
use core::time::Duration;

/// Longest the line is drained at open, before `ATE0` (a modem may still be printing its boot
/// banner or URCs).
const OPEN_DRAIN_LIMIT: Duration = Duration::from_millis(200);
/// The silence that ends the drain at open on a modem an earlier run has talked to
/// ([`AtOptions::learned`]): long enough for what is already buffered or on its way, not the
/// 30 ms a modem that may just have booted gets.
const KNOWN_MODEM_QUIET: Duration = Duration::from_millis(5);

impl<P: AtPort> AtTransport<P> {
    /// `ATE0`, `AT`, `AT+CMEE=1`, identification and probes (what [`AtOptions::learned`]
    /// does not say already).
    pub(super) fn initialise(&mut self) -> Result<(), TransportError> {
        match self.options.learned {
            Some(_) => self
                .line
                .drain_until_quiet(OPEN_DRAIN_LIMIT, KNOWN_MODEM_QUIET)?,
            None => self.line.drain(OPEN_DRAIN_LIMIT)?,
        }
        self.line.wait_ready()?;
        self.ask_for_numeric_errors()?;
        if let Some(learned) = self.options.learned {
            self.quirks = self.options.quirks.unwrap_or(learned.quirks);
            let support = |yes| if yes { Support::Yes } else { Support::No };
            if self.options.mode == AtMode::Auto {
                (self.cgla, self.csim) = (support(learned.cgla), support(learned.csim));
            }
            tracing::debug!(modem = %self.line.label(), learned = %learned.to_text(), "AT transport ready (what an earlier run found)");
            return Ok(());
        }
        if self.options.quirks.is_none() {
            self.quirks = *self.identify();
        }
        if self.options.mode == AtMode::Auto {
            self.cgla = self.probe("AT+CCHO=?");
            self.csim = self.probe("AT+CSIM=?");
            if self.cgla == Support::No && self.csim == Support::No {
                tracing::warn!(modem = %self.line.label(), "the modem refused both AT+CCHO=? and AT+CSIM=?; trying AT+CSIM anyway");
            }
        }
        tracing::debug!(
            modem = %self.line.label(),
            quirks = self.quirks.name,
            logical_channel_commands = self.uses_logical_channel_commands(),
            "AT transport ready"
        );
        Ok(())
    }

    /// `AT+CMEE=1`: equipment errors as `+CME ERROR: <n>`. Modems come up at `AT+CMEE=0`, where
    /// every failure is a plain `ERROR` and a lost channel cannot be told from a syntax error. A
    /// modem that refuses it (or says nothing) stays in [`ErrorMode::Plain`]; only a port that
    /// fails is an error.
    pub(super) fn ask_for_numeric_errors(&mut self) -> Result<(), TransportError> {
        let command = AtCommand::plain("AT+CMEE=1");
        let parser = self.line.parser(&[]);
        self.errors = match self
            .line
            .exchange(&command, parser, self.options.check_timeout())
        {
            Ok(answer) if answer.result.is_ok() => ErrorMode::Numeric,
            Ok(answer) => {
                tracing::info!(modem = %self.line.label(), answer = %answer.summary(), "the modem refused AT+CMEE=1; reading plain ERROR answers");
                ErrorMode::Plain
            }
            Err(TransportError::Timeout { .. }) => ErrorMode::Plain,
            Err(err) => return Err(err),
        };
        Ok(())
    }

    /// Asks `AT+CGMM` for the model; unknown or silent modems get the generic quirks.
    fn identify(&mut self) -> &'static ModemQuirks {
        let command = AtCommand::plain("AT+CGMM");
        let parser = self.line.parser(&["+CGMM:"]);
        match self
            .line
            .exchange(&command, parser, self.options.check_timeout())
        {
            Ok(answer) if answer.result.is_ok() => {
                let model = answer
                    .info
                    .iter()
                    .chain(answer.skipped.iter())
                    .map(|l| {
                        parser::strip_prefix_ignore_case(l, "+CGMM:")
                            .unwrap_or(l)
                            .trim()
                    })
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_string();
                let quirks = ModemQuirks::for_model(&model);
                tracing::debug!(model = %model, quirks = quirks.name, "modem identified");
                quirks
            }
            _ => &ModemQuirks::GENERIC,
        }
    }

    /// `OK` to a `=?` test command means the modem has the command.
    fn probe(&mut self, line: &str) -> Support {
        let command = AtCommand::plain(line);
        let parser = self.line.parser(&[]);
        match self
            .line
            .exchange(&command, parser, self.options.check_timeout())
        {
            Ok(answer) if answer.result.is_ok() => Support::Yes,
            Ok(_) => Support::No,
            Err(err) => {
                tracing::debug!(command = line, error = %err, "probe failed");
                Support::Unknown
            }
        }
    }
}
