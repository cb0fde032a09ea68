//! The recorder: timestamped APDUs (from the card's trace), network events (from the socket
//! adapter) and named phases, as offsets from one start instant.

use super::span::Span;
use iotsafe_core::{CommandKind, Direction, TraceEvent, TraceSink, WireBytes};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One APDU exchange: from its command's trace event to its response's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApduEvent {
    /// The command it belongs to.
    pub command: CommandKind,
    /// When the command was handed to the transport and when its answer came back.
    pub span: Span,
    /// The bytes it took on the modem's serial link (AT text), when the transport reports them.
    pub wire: Option<WireBytes>,
}

/// What happened on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKind {
    /// The TCP connect, from the call to the established connection.
    Connect,
    /// TLS bytes handed to the socket (an instant).
    Write,
    /// TLS bytes read from the socket (an instant: when the read returned them).
    Read,
    /// Waiting after the handshake for the server to refuse the certificate (`--wait-ms`).
    Verdict,
}

/// One network event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetEvent {
    /// What it was.
    pub kind: NetKind,
    /// When (a zero-length span for writes and reads).
    pub span: Span,
    /// Bytes written or read (0 for connects and waits).
    pub bytes: u64,
}

/// A named stretch of the program's work ("open card", "TLS handshake").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// Its name, as drawn.
    pub name: String,
    /// When it ran.
    pub span: Span,
}

/// Everything recorded, in recording order, with the UART rate that splits APDU times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// APDU exchanges.
    pub apdus: Vec<ApduEvent>,
    /// Network events.
    pub network: Vec<NetEvent>,
    /// Phases.
    pub phases: Vec<Phase>,
    /// The modem UART's rate in bits per second (8N1: 10 bits a byte on the line).
    pub baud: u32,
}

/// Records a timeline; shared (`Arc`) by the card's trace sink, the socket adapter and the
/// command. Each event costs one short lock: events come at most once per APDU or socket call.
#[derive(Debug)]
pub struct Timeline {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    start: Instant,
    recording: bool,
    /// The command whose response is awaited (a failed exchange never completes it).
    pending: Option<(CommandKind, Duration)>,
    events: Recording,
}

impl Timeline {
    /// A recorder that starts now; `baud` is the modem UART's rate (see [`Recording::baud`]).
    pub fn new(baud: u32) -> Arc<Timeline> {
        Arc::new(Timeline {
            state: Mutex::new(State {
                start: Instant::now(),
                recording: true,
                pending: None,
                events: Recording {
                    baud,
                    ..Recording::default()
                },
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets everything recorded and starts again from now (the benchmark draws one handshake,
    /// not the card operations before it).
    pub fn restart(&self) {
        let mut state = self.lock();
        let baud = state.events.baud;
        state.start = Instant::now();
        state.recording = true;
        state.pending = None;
        state.events = Recording {
            baud,
            ..Recording::default()
        };
    }

    /// Ignores every later event: what has been recorded is what will be drawn.
    pub fn stop(&self) {
        self.lock().recording = false;
    }

    /// A copy of what has been recorded.
    pub fn recording(&self) -> Recording {
        self.lock().events.clone()
    }

    /// Takes one APDU trace event: a command opens an exchange, its response closes it.
    pub fn trace(&self, event: &TraceEvent) {
        let now = Instant::now();
        let mut state = self.lock();
        if !state.recording {
            return;
        }
        let at = now.saturating_duration_since(state.start);
        match event.direction {
            Direction::Command => state.pending = Some((event.command, at)),
            Direction::Response => {
                if let Some((command, start)) = state.pending.take() {
                    state.events.apdus.push(ApduEvent {
                        command,
                        span: Span::new(start, at),
                        wire: event.wire,
                    });
                }
            }
        }
    }

    /// A trace sink that records into this timeline.
    pub fn sink(self: &Arc<Self>) -> TraceSink {
        let timeline = Arc::clone(self);
        Arc::new(move |event: &TraceEvent| timeline.trace(event))
    }

    /// Records a network event that ran from `start` to `end`.
    pub fn network(&self, kind: NetKind, start: Instant, end: Instant, bytes: u64) {
        let mut state = self.lock();
        if state.recording {
            let span = Span::new(
                start.saturating_duration_since(state.start),
                end.saturating_duration_since(state.start),
            );
            state.events.network.push(NetEvent { kind, span, bytes });
        }
    }

    /// Records the phase `name` from now until the guard is dropped.
    pub fn phase(self: &Arc<Self>, name: impl Into<String>) -> PhaseGuard {
        PhaseGuard {
            timeline: Arc::clone(self),
            name: name.into(),
            started: Instant::now(),
        }
    }
}

/// An open phase; recorded when dropped (on early returns too, so a failure is drawn as well).
#[must_use = "the phase ends when this guard is dropped"]
pub struct PhaseGuard {
    timeline: Arc<Timeline>,
    name: String,
    started: Instant,
}

impl Drop for PhaseGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut state = self.timeline.lock();
        if state.recording {
            let span = Span::new(
                self.started.saturating_duration_since(state.start),
                now.saturating_duration_since(state.start),
            );
            let name = std::mem::take(&mut self.name);
            state.events.phases.push(Phase { name, span });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(direction: Direction, command: CommandKind, wire: Option<WireBytes>) -> TraceEvent {
        TraceEvent {
            direction,
            command,
            text: String::new(),
            wire,
        }
    }

    #[test]
    fn a_command_and_its_response_make_one_apdu_and_a_failed_exchange_none() {
        let timeline = Timeline::new(115_200);
        let sink = timeline.sink();
        // A command whose transport failed: no response ever comes for it.
        sink(&event(Direction::Command, CommandKind::Select, None));
        let wire = Some(WireBytes {
            sent: 40,
            received: 30,
        });
        sink(&event(
            Direction::Command,
            CommandKind::ComputeSignature,
            None,
        ));
        sink(&event(
            Direction::Response,
            CommandKind::ComputeSignature,
            wire,
        ));
        let recorded = timeline.recording();
        assert_eq!(recorded.apdus.len(), 1);
        assert_eq!(recorded.apdus[0].command, CommandKind::ComputeSignature);
        assert_eq!(recorded.apdus[0].wire, wire);
        assert!(recorded.apdus[0].span.start <= recorded.apdus[0].span.end);
    }

    #[test]
    fn phases_are_recorded_when_their_guard_drops_and_nothing_after_stop() {
        let timeline = Timeline::new(9600);
        drop(timeline.phase("open card"));
        timeline.stop();
        drop(timeline.phase("late"));
        let now = Instant::now();
        timeline.network(NetKind::Write, now, now, 10);
        let recorded = timeline.recording();
        assert_eq!(recorded.phases.len(), 1);
        assert_eq!(recorded.phases[0].name, "open card");
        assert!(recorded.network.is_empty());
        timeline.restart();
        timeline.network(NetKind::Read, now, now, 10);
        let recorded = timeline.recording();
        assert!(recorded.phases.is_empty(), "restart forgets");
        assert_eq!(recorded.network.len(), 1);
        assert_eq!(recorded.baud, 9600);
    }
}
