//! The module's own subscriber: each event of the iotsafe crates, DEBUG and up, as one plain line
//! on standard error, prefixed by the spans it happened in:
//!
//! ```text
//! DEBUG pkcs11{function="C_Sign"}: iotsafe_core::at::line: >> AT+CGLA=1,10,"…"
//! ```
//!
//! A few dozen lines instead of `tracing-subscriber`'s formatter, which would make the `.so` about
//! 200 KB bigger for a debugging aid.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Events of targets with this prefix, at this level and above, are written.
const TARGETS: &str = "iotsafe";
const LEVEL: Level = Level::DEBUG;

thread_local! {
    /// The spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Writes each event as one line on standard error.
#[derive(Default)]
pub(super) struct Lines {
    next: AtomicU64,
    /// Each open span's `name{fields}`, and how many handles it has.
    spans: Mutex<HashMap<u64, (String, usize)>>,
}

/// `name=value` pairs, `message` first and bare.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = match field.name() {
            "message" => write!(self.0, "{value:?}"),
            name => write!(self.0, "{name}={value:?}"),
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.record_debug(field, &format_args!("{value}")),
            _ => self.record_debug(field, &value),
        }
    }
}

impl Subscriber for Lines {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with(TARGETS) && *metadata.level() <= LEVEL
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = String::new();
        span.record(&mut Fields(&mut fields));
        let text = format!("{}{{{fields}}}", span.metadata().name());
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        iotsafe_core::lock::lock(&self.spans).insert(id, (text, 1));
        Id::from_u64(id)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut line = format!("{} ", metadata.level());
        {
            let spans = iotsafe_core::lock::lock(&self.spans);
            ENTERED.with(|entered| {
                for id in entered.borrow().iter() {
                    if let Some((text, _)) = spans.get(id) {
                        line.push_str(text);
                        line.push(':');
                    }
                }
            });
        }
        if line.ends_with(':') {
            line.push(' ');
        }
        let _ = write!(line, "{}: ", metadata.target());
        let mut fields = String::new();
        event.record(&mut Fields(&mut fields));
        line.push_str(&fields);
        line.push('\n');
        // One write per line, so that lines of several threads do not mix.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn enter(&self, span: &Id) {
        ENTERED.with(|entered| entered.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        ENTERED.with(|entered| {
            let mut entered = entered.borrow_mut();
            if let Some(at) = entered.iter().rposition(|id| *id == span.into_u64()) {
                entered.remove(at);
            }
        });
    }

    fn clone_span(&self, span: &Id) -> Id {
        if let Some(entry) = iotsafe_core::lock::lock(&self.spans).get_mut(&span.into_u64()) {
            entry.1 += 1;
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        let mut spans = iotsafe_core::lock::lock(&self.spans);
        let id = span.into_u64();
        let closed = spans.get_mut(&id).is_some_and(|entry| {
            entry.1 -= 1;
            entry.1 == 0
        });
        if closed {
            spans.remove(&id);
        }
        closed
    }
}
