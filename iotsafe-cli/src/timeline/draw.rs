//! The picture: one row per phase, per APDU (serial part and card part), per network wait, a row
//! of socket reads and writes, and a row of host work; totals and a legend above. Drawn with
//! plotters' SVG backend, whose text needs no font files.

use super::analysis::Totals;
use super::record::{NetKind, Recording};
use super::span::Span;
use super::HANDSHAKE;
use crate::error::CliError;
use crate::format::millis;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

const PHASE: RGBColor = RGBColor(186, 170, 214);
const SERIAL: RGBColor = RGBColor(237, 145, 33);
const CARD: RGBColor = RGBColor(52, 101, 164);
const NETWORK: RGBColor = RGBColor(78, 154, 6);
const VERDICT: RGBColor = RGBColor(183, 219, 150);
const WRITE: RGBColor = RGBColor(32, 74, 135);
const READ: RGBColor = RGBColor(164, 0, 0);
const HOST: RGBColor = RGBColor(150, 150, 150);

const WIDTH: u32 = 1280;
const HEADER: u32 = 120;
const ROW: u32 = 20;
const LABELS: u32 = 250;

/// One row: a name on the axis, coloured pieces, ticks, and a note after its last piece.
#[derive(Default)]
struct Row {
    name: String,
    pieces: Vec<(Span, RGBColor)>,
    /// Instants in the upper (true) or lower half of the row (socket writes and reads).
    ticks: Vec<(Duration, RGBColor, bool)>,
    note: Option<String>,
}

impl Row {
    fn bar(name: impl Into<String>, span: Span, colour: RGBColor) -> Row {
        Row {
            name: name.into(),
            pieces: vec![(span, colour)],
            note: Some(millis(span.len())),
            ..Row::default()
        }
    }
}

fn rows(recording: &Recording, window: Span) -> Vec<Row> {
    let mut rows: Vec<Row> = recording
        .phases
        .iter()
        .map(|p| Row::bar(p.name.as_str(), p.span, PHASE))
        .collect();
    for apdu in &recording.apdus {
        let serial = recording.serial_time(apdu);
        // The UART carries the command before the card works and the answer after; one serial
        // piece first keeps the bar readable (the split is what matters, not the order).
        let cut = apdu.span.start + serial;
        let mut note = millis(apdu.span.len());
        if apdu.wire.is_some() {
            note = format!("{note} (serial {})", millis(serial));
        }
        rows.push(Row {
            name: apdu.command.to_string(),
            pieces: vec![
                (Span::new(apdu.span.start, cut), SERIAL),
                (Span::new(cut, apdu.span.end), CARD),
            ],
            note: Some(note),
            ..Row::default()
        });
    }
    // Network rows in time order: connects, round trips, then the verdict wait after them.
    for event in recording
        .network
        .iter()
        .filter(|e| e.kind == NetKind::Connect)
    {
        rows.push(Row::bar("TCP connect", event.span, NETWORK));
    }
    for (i, trip) in recording.round_trips().iter().enumerate() {
        let name = format!(
            "round trip {}: {} B, {} B back",
            i + 1,
            trip.sent,
            trip.received
        );
        rows.push(Row::bar(name, trip.span, NETWORK));
    }
    for event in recording
        .network
        .iter()
        .filter(|e| e.kind == NetKind::Verdict)
    {
        rows.push(Row::bar("waiting for a refusal", event.span, VERDICT));
    }
    let mut io = Row {
        name: "socket writes (up), reads (down)".into(),
        ..Row::default()
    };
    for event in &recording.network {
        match event.kind {
            NetKind::Write => io.ticks.push((event.span.start, WRITE, true)),
            NetKind::Read => io.ticks.push((event.span.start, READ, false)),
            NetKind::Connect | NetKind::Verdict => {}
        }
    }
    rows.push(io);
    let host = recording.host_work(window);
    rows.push(Row {
        name: "host work".into(),
        note: Some(millis(super::span::total(&host))),
        pieces: host.into_iter().map(|s| (s, HOST)).collect(),
        ..Row::default()
    });
    rows
}

/// The y axis: row `r` of `n` (top first) spans `n-r-1 .. n-r`, labelled at its centre with its
/// name (plotters' own axes label numbers, not rows).
struct RowAxis {
    linear: RangedCoordf64,
    names: Vec<String>,
}

impl RowAxis {
    fn new(names: Vec<String>) -> RowAxis {
        let n = names.len() as f64;
        RowAxis {
            linear: RangedCoordf64::from(0.0..n.max(1.0)),
            names,
        }
    }
}

impl Ranged for RowAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }
    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        let n = self.names.len();
        (0..n).map(|r| n as f64 - r as f64 - 0.5).collect()
    }
    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

impl ValueFormatter<f64> for RowAxis {
    fn format_ext(&self, value: &f64) -> String {
        let row = (self.names.len() as f64 - value - 0.5).round();
        let name = (row >= 0.0).then(|| self.names.get(row as usize)).flatten();
        name.cloned().unwrap_or_default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sum_line(name: &str, t: &Totals) -> String {
    let verdict = if t.verdict.is_zero() {
        String::new()
    } else {
        format!(" ({} of it waiting for a refusal)", millis(t.verdict))
    };
    format!(
        "{name} {} = card time {} + serial time {} + network wait {}{verdict} + host work {}",
        millis(t.wall),
        millis(t.card),
        millis(t.serial),
        millis(t.network),
        millis(t.host)
    )
}

fn header_lines(recording: &Recording, window: Span) -> Vec<String> {
    let totals = recording.totals(window);
    let mut lines = vec![sum_line("wall time", &totals)];
    if let Some(handshake) = recording.phase(HANDSHAKE) {
        lines.push(sum_line(
            "of which the TLS handshake",
            &recording.totals(handshake),
        ));
    }
    let uart = match totals.wire {
        Some(w) => format!(
            "UART bytes {} sent, {} received (AT text; serial time at {} baud, 8N1)",
            w.sent, w.received, recording.baud
        ),
        None => "UART bytes: none reported (PC/SC or in-process card: each APDU's whole time is card time)".into(),
    };
    lines.push(format!("APDUs {}; {uart}", totals.apdus));
    lines
}

fn drawing_error(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::new(format!("drawing the timeline {}", path.display()), e)
}

/// Draws `recording` as an SVG file at `path` under `title`.
pub fn draw(recording: &Recording, path: &Path, title: &str) -> Result<(), CliError> {
    let window = recording.window();
    let rows = rows(recording, window);
    let height = HEADER + ROW * rows.len() as u32 + 70;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    let fail = |e| drawing_error(path, e);
    root.fill(&WHITE).map_err(fail)?;
    let (header, body) = root.split_vertically(HEADER);
    let text = TextStyle::from(("sans-serif", 13).into_font());
    header
        .draw(&Text::new(
            title,
            (12, 8),
            ("sans-serif", 18, FontStyle::Bold).into_font(),
        ))
        .map_err(fail)?;
    for (i, line) in header_lines(recording, window).iter().enumerate() {
        let y = 34 + 18 * i as i32;
        header
            .draw(&Text::new(line.as_str(), (12, y), text.clone()))
            .map_err(fail)?;
    }
    let legend = [
        (PHASE, "phase"),
        (SERIAL, "serial (UART)"),
        (CARD, "card"),
        (NETWORK, "network wait"),
        (VERDICT, "waiting for a refusal"),
        (WRITE, "socket write"),
        (READ, "socket read"),
        (HOST, "host work"),
    ];
    let mut x = 12;
    for (colour, name) in legend {
        let y = HEADER as i32 - 22;
        header
            .draw(&Rectangle::new([(x, y), (x + 14, y + 12)], colour.filled()))
            .map_err(fail)?;
        header
            .draw(&Text::new(name, (x + 19, y), text.clone()))
            .map_err(fail)?;
        // Text widths are estimates (no font files): about 7 px a character at this size.
        x += 19 + 7 * name.len() as i32 + 18;
    }

    let n = rows.len();
    // Room after the last bar for its note.
    let x_max = (ms(window.end) * 1.25).max(1.0);
    let mut chart = ChartBuilder::on(&body)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(LABELS)
        .build_cartesian_2d(
            RangedCoordf64::from(0.0..x_max),
            RowAxis::new(rows.iter().map(|r| r.name.clone()).collect()),
        )
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .max_light_lines(4)
        .x_desc("milliseconds since start")
        .label_style(text.clone())
        .draw()
        .map_err(fail)?;
    // Ticks, and bars shorter than that, are drawn 1.5 pixels wide: a 0.3 ms TCP connect on a
    // 1.4 s axis must still show.
    let pixel = x_max / f64::from(WIDTH - LABELS);
    let visible = 1.5 * pixel;
    for (r, row) in rows.iter().enumerate() {
        let top = n as f64 - r as f64 - 0.2;
        let bottom = n as f64 - r as f64 - 0.8;
        let bars = row
            .pieces
            .iter()
            .filter(|(s, _)| !s.is_empty())
            .map(|(s, colour)| {
                let (start, end) = (ms(s.start), ms(s.end).max(ms(s.start) + visible));
                Rectangle::new([(start, bottom), (end, top)], colour.filled())
            });
        chart.draw_series(bars).map_err(fail)?;
        let ticks = row.ticks.iter().map(|(at, colour, up)| {
            let middle = (top + bottom) / 2.0;
            let (low, high) = if *up { (middle, top) } else { (bottom, middle) };
            let x = ms(*at);
            Rectangle::new([(x, low), (x + visible, high)], colour.filled())
        });
        chart.draw_series(ticks).map_err(fail)?;
        if let (Some(note), Some(end)) = (&row.note, row.pieces.iter().map(|(s, _)| s.end).max()) {
            let at = (ms(end), (top + bottom) / 2.0);
            let style = text.clone().pos(Pos::new(HPos::Left, VPos::Center));
            let label = EmptyElement::at(at) + Text::new(note.clone(), (5, 0), style);
            chart.draw_series(std::iter::once(label)).map_err(fail)?;
        }
    }
    root.present().map_err(fail)
}
