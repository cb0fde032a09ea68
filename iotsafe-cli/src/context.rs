//! The card a subcommand works on, opened on first use, with the APDU trace when asked.

use iotsafe_cli::selection::OpenedCard;
use iotsafe_cli::{CardFlags, CliError};
use iotsafe_core::{Direction, TraceEvent};
use std::sync::{Arc, OnceLock};

/// Global flags and the lazily opened card.
pub struct Context {
    /// Card selection flags.
    pub selection: CardFlags,
    /// `--trace`: print every APDU on stderr.
    pub trace: bool,
    opened: OnceLock<OpenedCard>,
}

impl Context {
    /// A context; nothing is opened yet.
    pub fn new(selection: CardFlags, trace: bool) -> Context {
        Context {
            selection,
            trace,
            opened: OnceLock::new(),
        }
    }

    /// The card, opened on first use.
    pub fn opened(&self) -> Result<&OpenedCard, CliError> {
        if let Some(o) = self.opened.get() {
            return Ok(o);
        }
        let trace: Option<iotsafe_core::TraceSink> = if self.trace {
            Some(Arc::new(print_trace))
        } else {
            None
        };
        let opened = self.selection.open_traced(trace)?;
        Ok(self.opened.get_or_init(|| opened))
    }

    /// The card session.
    pub fn card(&self) -> Result<&Arc<iotsafe_core::Card>, CliError> {
        Ok(&self.opened()?.card)
    }

    /// Keeps the card's public data in the cache (when used) and closes the channel the session
    /// opened, if a card was opened.
    pub fn close(&self) {
        if let Some(o) = self.opened.get() {
            let _ = o.finish();
        }
    }
}

fn print_trace(event: &TraceEvent) {
    let arrow = match event.direction {
        Direction::Command => "→",
        Direction::Response => "←",
    };
    eprintln!("{arrow} {:<20} {}", event.command.to_string(), event.text);
}
