//! Where the time went: each APDU split into serial and card time, the network's round trips,
//! and host work as whatever is left.

use super::record::{ApduEvent, NetKind, Recording};
use super::span::{self, Span};
use iotsafe_core::WireBytes;
use std::time::Duration;

/// One round trip: from the last write of a flight to the first bytes of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTrip {
    /// From the flight's last write to the answer's first read.
    pub span: Span,
    /// Bytes of the flight (every write since the previous round trip's answer).
    pub sent: u64,
    /// Bytes of the answer (every read until the next write).
    pub received: u64,
}

/// Totals over a window of the timeline. Card, serial, network and host time add up to the
/// wall time (APDUs never overlap: the card takes one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// The window's length.
    pub wall: Duration,
    /// APDU time less serial time.
    pub card: Duration,
    /// APDU time spent moving AT text over the UART (zero when the transport reports no bytes).
    pub serial: Duration,
    /// Waiting on the network (TCP connect, round trips, the verdict wait) outside any APDU.
    pub network: Duration,
    /// The part of `network` spent waiting for the server to refuse the certificate after the
    /// handshake (`--wait-ms`): chosen by the user, not the network's cost.
    pub verdict: Duration,
    /// Neither card nor network: the host's own work (TLS, parsing, the runtime, the process).
    pub host: Duration,
    /// APDUs that started inside the window.
    pub apdus: usize,
    /// Their bytes on the modem's serial link; `None` when the transport reports none.
    pub wire: Option<WireBytes>,
}

impl Recording {
    /// The time `apdu`'s AT text needed on the UART at [`Recording::baud`], 8N1 (10 bits a
    /// byte), at most the APDU's measured time; zero when the transport reported no bytes.
    pub fn serial_time(&self, apdu: &ApduEvent) -> Duration {
        let Some(wire) = apdu.wire else {
            return Duration::ZERO;
        };
        let bits = (wire.sent + wire.received) as f64 * 10.0;
        let serial = Duration::from_secs_f64(bits / f64::from(self.baud.max(1)));
        serial.min(apdu.span.len())
    }

    /// The APDU's measured time less its serial time: the card's (and the modem's) own work.
    pub fn card_time(&self, apdu: &ApduEvent) -> Duration {
        apdu.span.len().saturating_sub(self.serial_time(apdu))
    }

    /// From the timeline's start to its last recorded event.
    pub fn window(&self) -> Span {
        let ends = self.apdus.iter().map(|a| a.span.end);
        let ends = ends.chain(self.network.iter().map(|n| n.span.end));
        let ends = ends.chain(self.phases.iter().map(|p| p.span.end));
        Span::new(Duration::ZERO, ends.max().unwrap_or_default())
    }

    /// The first phase called `name`.
    pub fn phase(&self, name: &str) -> Option<Span> {
        self.phases.iter().find(|p| p.name == name).map(|p| p.span)
    }

    /// Every round trip, in order. Reads with no write before them (data the server sends on
    /// its own) count towards the previous answer.
    pub fn round_trips(&self) -> Vec<RoundTrip> {
        let mut io: Vec<_> = self
            .network
            .iter()
            .filter(|n| matches!(n.kind, NetKind::Write | NetKind::Read))
            .collect();
        io.sort_by_key(|n| n.span.start);
        let mut trips: Vec<RoundTrip> = Vec::new();
        let mut last_write = None;
        let mut flight = 0;
        let mut answering = false;
        for event in io {
            if event.kind == NetKind::Write {
                // The last write of a flight starts the wait: before it the host was still busy.
                last_write = Some(event.span.start);
                flight += event.bytes;
                answering = false;
            } else if let Some(sent_at) = last_write.take() {
                trips.push(RoundTrip {
                    span: Span::new(sent_at, event.span.start),
                    sent: std::mem::take(&mut flight),
                    received: event.bytes,
                });
                answering = true;
            } else if let (true, Some(trip)) = (answering, trips.last_mut()) {
                trip.received += event.bytes;
            }
        }
        trips
    }

    /// The time spent waiting on the network: TCP connects, round trips and verdict waits,
    /// less any APDU that ran meanwhile (sorted, disjoint).
    pub fn network_wait(&self) -> Vec<Span> {
        let waits = self
            .network
            .iter()
            .filter(|n| matches!(n.kind, NetKind::Connect | NetKind::Verdict))
            .map(|n| n.span);
        let waits = span::union(waits.chain(self.round_trips().iter().map(|t| t.span)));
        span::subtract(&waits, &self.apdu_spans())
    }

    /// The parts of `window` covered neither by an APDU nor by a network wait (sorted, disjoint).
    pub fn host_work(&self, window: Span) -> Vec<Span> {
        let busy = span::union(self.apdu_spans().into_iter().chain(self.network_wait()));
        span::subtract(&[window], &busy)
    }

    /// Totals over `window` (see [`Totals`]).
    pub fn totals(&self, window: Span) -> Totals {
        let mut totals = Totals {
            wall: window.len(),
            ..Totals::default()
        };
        for apdu in &self.apdus {
            let inside = apdu.span.clip(window).len();
            // An APDU cut by the window keeps its serial part first: the UART moves the command
            // before the card can start.
            let serial = self.serial_time(apdu).min(inside);
            totals.serial += serial;
            totals.card += inside - serial;
            if apdu.span.start >= window.start && apdu.span.start < window.end {
                totals.apdus += 1;
                if let Some(wire) = apdu.wire {
                    let sum = totals.wire.get_or_insert_with(WireBytes::default);
                    sum.sent += wire.sent;
                    sum.received += wire.received;
                }
            }
        }
        let waits: Vec<Span> = self.network_wait().iter().map(|s| s.clip(window)).collect();
        totals.network = span::total(&waits);
        let verdicts = self.network.iter().filter(|n| n.kind == NetKind::Verdict);
        let verdicts = span::union(verdicts.map(|n| n.span.clip(window)));
        totals.verdict = span::total(&span::subtract(&verdicts, &self.apdu_spans()));
        totals.host = span::total(&self.host_work(window));
        totals
    }

    fn apdu_spans(&self) -> Vec<Span> {
        span::union(self.apdus.iter().map(|a| a.span))
    }
}
