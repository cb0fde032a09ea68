//! The modem's UART: the serial time of the bytes the host sends and the modem writes back
//! ([`crate::Latency::serial`]).
//!
//! The link is full duplex, one byte every 10 bit times each way ([`SerialLink::time_of`]):
//! - **In.** Bytes read from the host come in one after another from the moment the modem reads
//!   them (or, when earlier bytes are still coming in, right after those). The modem acts on a
//!   line only once its last byte is in.
//! - **Echo.** Each byte is echoed as it comes in, so the echo of a line is out one byte time
//!   after the line's last byte came in, unless the transmitter was still busy.
//! - **Out.** An answer goes out once the transmitter is free and is written to the host only
//!   when its last byte would have arrived, so no host reads it earlier than the model says.
//!
//! Without a link every call is a no-op.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::frontend::sleep_unless_stopped;
use crate::SerialLink;

/// The two directions of one host's serial link.
pub(crate) struct Uart {
    link: Option<SerialLink>,
    /// When the last byte read from the host so far is (or was) in.
    rx_done: Instant,
    /// When the last byte written to the host so far is (or was) out.
    tx_done: Instant,
}

/// Where one read's bytes begin on the receive line (`None` without a link).
#[derive(Clone, Copy)]
pub(crate) struct Chunk(Option<Instant>);

impl Uart {
    /// The UART of `link`; `None` charges nothing.
    pub fn new(link: Option<SerialLink>) -> Self {
        let now = Instant::now();
        Self {
            link,
            rx_done: now,
            tx_done: now,
        }
    }

    /// `n` bytes just read from the host: they come in from now on, after those still coming in.
    pub fn receive(&mut self, n: usize) -> Chunk {
        let Some(link) = self.link else {
            return Chunk(None);
        };
        let start = self.rx_done.max(Instant::now());
        self.rx_done = after(start, link.time_of(n));
        Chunk(Some(start))
    }

    /// When the first `taken` bytes of `chunk` are in.
    pub fn arrival(&self, chunk: Chunk, taken: usize) -> Option<Instant> {
        Some(after(chunk.0?, self.link?.time_of(taken)))
    }

    /// Waits until a line whose last byte comes in at `arrived` is in.
    pub fn wait_for_line(&self, arrived: Option<Instant>, stop: &AtomicBool) {
        if let Some(at) = arrived {
            wait_until(at, stop);
        }
    }

    /// Waits until the echo of a line of `len` bytes (its terminator included), whose last byte
    /// came in at `arrived`, is out: byte for byte as the line came in, after whatever the
    /// transmitter still had to send.
    pub fn echo(&mut self, len: usize, arrived: Option<Instant>, stop: &AtomicBool) {
        let (Some(link), Some(arrived)) = (self.link, arrived) else {
            return;
        };
        // Byte i leaves once it is in (`arrived` − (len−1−i) byte times) and the byte before it
        // is out. So the last one is out one byte time after the line is in, or, when the
        // transmitter was busy, `len` byte times after it got free, whichever is later.
        let done = after(arrived, link.time_of(1)).max(after(self.tx_done, link.time_of(len)));
        self.tx_done = done;
        wait_until(done, stop);
    }

    /// Waits until `len` bytes written now are out: they follow whatever the transmitter still
    /// had to send.
    pub fn send(&mut self, len: usize, stop: &AtomicBool) {
        let Some(link) = self.link else {
            return;
        };
        if len == 0 {
            return;
        }
        let done = after(self.tx_done.max(Instant::now()), link.time_of(len));
        self.tx_done = done;
        wait_until(done, stop);
    }
}

/// `t` + `d`, or `t` itself for a time `Instant` cannot hold (centuries away: not worth a panic).
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

/// Sleeps until `at` (not at all when it has passed), or until `stop` is raised.
fn wait_until(at: Instant, stop: &AtomicBool) {
    let left = at.saturating_duration_since(Instant::now());
    if left > Duration::ZERO {
        sleep_unless_stopped(left, stop);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AtModem, AtOptions};
    use crate::frontend::share;
    use crate::{CardHandler, SerialLink};
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// A card whose latency model has the serial link `0`; it answers every APDU `9000` at once.
    struct Wired(Option<SerialLink>);

    impl CardHandler for Wired {
        fn atr(&self) -> Vec<u8> {
            Vec::new()
        }
        fn power_on(&mut self) {}
        fn power_off(&mut self) {}
        fn reset(&mut self) {}
        fn process(&mut self, _apdu: &[u8]) -> Vec<u8> {
            vec![0x90, 0x00]
        }
        fn serial_link(&self) -> Option<SerialLink> {
            self.0
        }
    }

    const BAUD: u32 = 9_600;

    fn modem(echo: bool) -> AtModem {
        AtModem::new(
            share(Wired(SerialLink::new(BAUD))),
            AtOptions {
                echo,
                ..AtOptions::default()
            },
        )
    }

    /// Feeds `input` at once; the answer and how long it took.
    fn timed(modem: &mut AtModem, input: &str) -> (String, Duration) {
        let mut out = Vec::new();
        let started = Instant::now();
        modem
            .feed(input.as_bytes(), &mut out, &AtomicBool::new(false))
            .unwrap();
        (String::from_utf8(out).unwrap(), started.elapsed())
    }

    fn bytes(n: usize) -> Duration {
        SerialLink::new(BAUD).unwrap().time_of(n)
    }

    #[test]
    fn a_csim_exchange_costs_its_line_in_and_its_answer_out() {
        let mut m = modem(false);
        let line = "AT+CSIM=10,\"00B0000000\"\r";
        let (answer, took) = timed(&mut m, line);
        assert_eq!(answer, "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n");
        // 24 bytes in, 25 out: 51 ms at 9,600 baud. Sleeps never end early.
        assert!(took >= bytes(line.len() + answer.len()), "{took:?}");
    }

    #[test]
    fn modem_commands_and_the_echo_are_charged_too() {
        let mut m = modem(true);
        // The echo goes out while the line comes in: it is out one byte after the line is in;
        // then the 6 bytes of `\r\nOK\r\n`.
        let (answer, took) = timed(&mut m, "ATE0\r");
        assert_eq!(answer, "ATE0\r\r\nOK\r\n");
        assert!(took >= bytes(5 + 1 + 6), "{took:?}");
        let (answer, took) = timed(&mut m, "AT+CMEE=1\r\n");
        assert_eq!(answer, "\r\nOK\r\n");
        // The `\n` of `\r\n` comes after the line: it does not hold up this answer, and it is in
        // while the answer goes out (the link is full duplex).
        assert!(took >= bytes(10 + 6), "{took:?}");
        let (answer, took) = timed(&mut m, "ATI\r");
        assert_eq!(answer, "\r\niotsafe-vcard virtual modem\r\n\r\nOK\r\n");
        assert!(took >= bytes(4 + answer.len()), "{took:?}");
    }

    #[test]
    fn lines_sent_together_come_in_one_after_another() {
        let mut m = modem(false);
        let (answer, took) = timed(&mut m, "AT\rAT\r");
        assert_eq!(answer, "\r\nOK\r\n\r\nOK\r\n");
        // The second line is in 6 bytes after the start, but the first answer is out only after
        // 3 + 6: the second answer follows it.
        assert!(took >= bytes(3 + 6 + 6), "{took:?}");
    }

    #[test]
    fn a_line_split_over_reads_is_acted_on_once_it_is_all_in() {
        let mut m = modem(false);
        let started = Instant::now();
        let (first, _) = timed(&mut m, "AT+CSIM=4,");
        assert_eq!(first, "");
        let (answer, _) = timed(&mut m, "\"0070\"\r");
        assert_eq!(answer, "\r\n+CSIM: 4,\"9000\"\r\n\r\nOK\r\n");
        assert!(started.elapsed() >= bytes(17 + answer.len()));
    }
}
