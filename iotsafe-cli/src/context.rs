//! The card a subcommand works on, opened on first use, with the APDU trace when asked and the
//! timeline recorder when a subcommand wants one.

use iotsafe_cli::selection::OpenedCard;
use iotsafe_cli::timeline::{Timeline, OPEN_CARD};
use iotsafe_cli::{CardFlags, CliError};
use iotsafe_core::{Direction, TraceEvent, TraceSink};
use std::sync::{Arc, OnceLock};

/// Global flags and the lazily opened card.
pub struct Context {
    /// Card selection flags.
    pub selection: CardFlags,
    /// `--trace`: print every APDU on stderr.
    pub trace: bool,
    timeline: OnceLock<Arc<Timeline>>,
    opened: OnceLock<OpenedCard>,
}

impl Context {
    /// A context; nothing is opened yet.
    pub fn new(selection: CardFlags, trace: bool) -> Context {
        Context {
            selection,
            trace,
            timeline: OnceLock::new(),
            opened: OnceLock::new(),
        }
    }

    /// Records every APDU into `timeline`, from the card's opening on (a one-shot process pays
    /// for the open too). Only before the card is opened: the trace sink is fixed then.
    pub fn record_timeline(&self, timeline: &Arc<Timeline>) {
        debug_assert!(self.opened.get().is_none(), "the card is already open");
        let _ = self.timeline.set(Arc::clone(timeline));
    }

    /// The card, opened on first use.
    pub fn opened(&self) -> Result<&OpenedCard, CliError> {
        if let Some(o) = self.opened.get() {
            return Ok(o);
        }
        let timeline = self.timeline.get();
        let _phase = timeline.map(|t| t.phase(OPEN_CARD));
        let opened = self
            .selection
            .open_traced(self.sink(timeline.map(|t| t.sink())))?;
        Ok(self.opened.get_or_init(|| opened))
    }

    /// `--trace` printing and the timeline's recording, either, both or none.
    fn sink(&self, record: Option<TraceSink>) -> Option<TraceSink> {
        let print: Option<TraceSink> = self.trace.then(|| Arc::new(print_trace) as TraceSink);
        match (print, record) {
            // The timeline stamps a command after printing it and a response before, so that
            // the time stderr takes is not counted as the card's.
            (Some(print), Some(record)) => {
                Some(Arc::new(move |event: &TraceEvent| match event.direction {
                    Direction::Command => {
                        print(event);
                        record(event);
                    }
                    Direction::Response => {
                        record(event);
                        print(event);
                    }
                }))
            }
            (print, record) => print.or(record),
        }
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
