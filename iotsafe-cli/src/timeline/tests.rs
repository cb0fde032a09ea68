//! The timeline's arithmetic on synthetic recordings: serial and card split, round trips,
//! network wait and host work, and totals that add up.

use super::*;
use iotsafe_core::{CommandKind, WireBytes};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn span(start: u64, end: u64) -> Span {
    Span::new(ms(start), ms(end))
}

fn apdu(start: u64, end: u64, wire: Option<(u64, u64)>) -> ApduEvent {
    ApduEvent {
        command: CommandKind::ComputeSignature,
        span: span(start, end),
        wire: wire.map(|(sent, received)| WireBytes { sent, received }),
    }
}

fn net(kind: NetKind, start: u64, end: u64, bytes: u64) -> NetEvent {
    NetEvent {
        kind,
        span: span(start, end),
        bytes,
    }
}

fn assert_adds_up(t: &Totals) {
    assert_eq!(t.card + t.serial + t.network + t.host, t.wall, "{t:?}");
}

#[test]
fn serial_time_is_ten_bits_a_byte_at_the_baud_rate_and_the_card_gets_the_rest() {
    // 10,000 baud, 8N1: 1,000 bytes a second; 30 + 20 bytes are 50 ms.
    let r = Recording {
        apdus: vec![apdu(0, 80, Some((30, 20))), apdu(100, 120, None)],
        baud: 10_000,
        ..Recording::default()
    };
    assert_eq!(r.serial_time(&r.apdus[0]), ms(50));
    assert_eq!(r.card_time(&r.apdus[0]), ms(30));
    // PC/SC and in-process cards report no bytes: all of it is card time.
    assert_eq!(r.serial_time(&r.apdus[1]), Duration::ZERO);
    assert_eq!(r.card_time(&r.apdus[1]), ms(20));
}

#[test]
fn serial_time_never_exceeds_the_apdu_so_card_time_is_never_negative() {
    // At 100 baud the same 50 bytes would take 5 s, longer than the 20 ms measured.
    let r = Recording {
        apdus: vec![apdu(0, 20, Some((30, 20)))],
        baud: 100,
        ..Recording::default()
    };
    assert_eq!(r.serial_time(&r.apdus[0]), ms(20));
    assert_eq!(r.card_time(&r.apdus[0]), Duration::ZERO);
    let t = r.totals(r.window());
    assert_eq!(
        (t.serial, t.card, t.host),
        (ms(20), Duration::ZERO, Duration::ZERO)
    );
}

/// Connect 0–5, an APDU 10–20 (5 ms serial), a round trip 25–35, an APDU 40–50, a round trip
/// 55–70 with an APDU 60–65 inside it, the last event at 100 ms.
fn handshake() -> Recording {
    Recording {
        apdus: vec![
            apdu(10, 20, Some((3, 2))),
            apdu(40, 50, None),
            apdu(60, 65, None),
        ],
        network: vec![
            net(NetKind::Connect, 0, 5, 0),
            net(NetKind::Write, 25, 25, 300),
            net(NetKind::Read, 35, 35, 1000),
            net(NetKind::Read, 36, 36, 200),
            net(NetKind::Write, 52, 52, 100),
            net(NetKind::Write, 55, 55, 50),
            net(NetKind::Read, 70, 70, 80),
        ],
        phases: vec![Phase {
            name: HANDSHAKE.into(),
            span: span(5, 100),
        }],
        baud: 10_000,
    }
}

#[test]
fn round_trips_run_from_a_flight_s_last_write_to_the_answer_s_first_read() {
    let trips = handshake().round_trips();
    assert_eq!(
        trips,
        vec![
            RoundTrip {
                span: span(25, 35),
                sent: 300,
                received: 1200
            },
            RoundTrip {
                span: span(55, 70),
                sent: 150,
                received: 80
            },
        ]
    );
}

#[test]
fn network_wait_leaves_out_apdus_and_host_work_is_what_nothing_else_covers() {
    let r = handshake();
    assert_eq!(
        r.network_wait(),
        vec![span(0, 5), span(25, 35), span(55, 60), span(65, 70)]
    );
    assert_eq!(
        r.host_work(r.window()),
        vec![
            span(5, 10),
            span(20, 25),
            span(35, 40),
            span(50, 55),
            span(70, 100)
        ]
    );
    let t = r.totals(r.window());
    assert_eq!(t.wall, ms(100));
    assert_eq!(t.serial, ms(5));
    assert_eq!(t.card, ms(20));
    assert_eq!(t.network, ms(25));
    assert_eq!(t.host, ms(50));
    assert_eq!(t.apdus, 3);
    assert_eq!(
        t.wire,
        Some(WireBytes {
            sent: 3,
            received: 2
        })
    );
    assert_adds_up(&t);
}

#[test]
fn a_phase_s_totals_count_only_what_happened_inside_it() {
    let r = handshake();
    let t = r.totals(r.phase(HANDSHAKE).unwrap());
    assert_eq!(t.wall, ms(95));
    assert_eq!(t.network, ms(20), "the TCP connect is before the phase");
    assert_eq!(t.apdus, 3);
    assert_adds_up(&t);
    // A window that cuts an APDU in two counts the part inside, serial time first.
    let t = r.totals(span(12, 17));
    assert_eq!(
        (t.serial, t.card, t.host),
        (ms(5), Duration::ZERO, Duration::ZERO)
    );
    assert_adds_up(&t);
}

#[test]
fn host_work_is_never_negative_when_waits_and_apdus_overlap_and_overflow_the_window() {
    let r = Recording {
        apdus: vec![apdu(0, 30, None)],
        network: vec![
            net(NetKind::Connect, 0, 40, 0),
            net(NetKind::Verdict, 20, 60, 0),
        ],
        baud: DEFAULT_BAUD,
        ..Recording::default()
    };
    let t = r.totals(span(10, 50));
    assert_eq!(t.host, Duration::ZERO);
    assert_eq!((t.card, t.network), (ms(20), ms(20)));
    assert_eq!(
        t.verdict,
        ms(20),
        "the verdict wait from the APDU's end to the window's"
    );
    assert_adds_up(&t);
    assert!(r.host_work(span(10, 50)).is_empty());
}

#[test]
fn an_empty_recording_draws_nothing_and_reads_before_any_write_are_no_round_trip() {
    let r = Recording {
        network: vec![net(NetKind::Read, 1, 1, 10), net(NetKind::Write, 2, 2, 10)],
        baud: DEFAULT_BAUD,
        ..Recording::default()
    };
    assert!(r.round_trips().is_empty());
    let empty = Recording::default();
    assert_eq!(empty.window(), span(0, 0));
    assert_eq!(empty.totals(empty.window()), Totals::default());
}

#[test]
fn the_drawing_is_an_svg_file_naming_each_command_and_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.svg");
    draw(&handshake(), &path, "synthetic handshake").unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    for label in [
        "COMPUTE SIGNATURE",
        "round trip 2: 150 B, 80 B back",
        "wall time",
        "host work",
    ] {
        assert!(svg.contains(label), "{label} missing");
    }
}
