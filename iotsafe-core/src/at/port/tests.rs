//! `EmbeddedPort` and the AT transport over it without a clock (what a firmware has before
//! `clock::set`), against a UART that never receives a byte.

use super::*;
use crate::clock::without_clock;
use crate::prelude::*;
use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Polls after which the silent UART gives up: far more than a read of a millisecond makes, and
/// the sign that the caller would otherwise have polled forever.
const GIVE_UP_AFTER: usize = 100_000_000;

/// A UART whose receiver never gets a byte; counts the polls and the bytes written.
#[derive(Clone, Default)]
struct SilentUart {
    polls: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
}

impl ErrorType for SilentUart {
    type Error = ErrorKind;
}

impl ReadReady for SilentUart {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        if self.polls.fetch_add(1, Ordering::Relaxed) >= GIVE_UP_AFTER {
            return Err(ErrorKind::TimedOut);
        }
        Ok(false)
    }
}

impl Read for SilentUart {
    fn read(&mut self, _buf: &mut [u8]) -> Result<usize, ErrorKind> {
        Err(ErrorKind::Other)
    }
}

impl Write for SilentUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.written.fetch_add(buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

#[test]
fn without_a_clock_a_read_does_not_poll_forever() {
    let uart = SilentUart::default();
    let mut port = EmbeddedPort::new(uart.clone());
    let mut buf = [0u8; 16];
    let result = without_clock(|| port.read_within(&mut buf, Duration::from_millis(1)));
    // Before: it polled until the UART gave up (GIVE_UP_AFTER polls); a real one never does.
    assert!(
        matches!(result, Err(TransportError::NoClock(_))),
        "{result:?}"
    );
    assert_eq!(uart.polls.load(Ordering::Relaxed), 0);
    // With the clock, the same read waits out its millisecond and reports nothing came.
    let timed = port.read_within(&mut buf, Duration::from_millis(1));
    assert!(matches!(timed, Ok(0)), "{timed:?}");
    assert!(uart.polls.load(Ordering::Relaxed) > 0);
}

#[test]
fn without_a_clock_opening_the_modem_does_not_wait_forever() {
    let uart = SilentUart::default();
    let result = without_clock(|| {
        crate::at::AtTransport::new(
            EmbeddedPort::new(uart.clone()),
            "uart",
            crate::at::AtOptions::default(),
        )
    });
    // Before: stuck in the first drain until the UART gave up (GIVE_UP_AFTER polls).
    let error = result.err();
    assert!(
        matches!(error, Some(TransportError::NoClock(_))),
        "{error:?}"
    );
    assert!(
        error.unwrap().to_string().contains("clock::set"),
        "says what to do"
    );
    assert_eq!(uart.polls.load(Ordering::Relaxed), 0);
    assert_eq!(uart.written.load(Ordering::Relaxed), 0);
}
