//! The serial link between a host and its cellular modem: a UART at some baud rate, 8N1.
//!
//! On a real cellular device every APDU crosses the UART as AT text: `AT+CSIM=<2n>,"<HEX>"\r` in,
//! `\r\n+CSIM: <2m>,"<HEX>"\r\n\r\nOK\r\n` out. Each byte of it is 10 bits on the wire (a start
//! bit, 8 data bits, a stop bit) and the hex doubles the APDU's bytes, so at 115,200 baud a
//! 500-byte certificate read costs about 90 ms of serial time alone.
//!
//! [`crate::Latency::serial`] puts such a link into the card's latency model. The card does not
//! charge it itself (it has no UART); the front ends that stand for a modem do:
//!
//! - the AT front ends ([`crate::frontend::at`], on a pty or TCP) charge every byte they actually
//!   receive from the host and write back (echo, information lines, result codes, URCs);
//! - [`crate::InProcessTransport`] has no AT text, so it charges the `AT+CSIM` lines a modem would
//!   carry for each APDU ([`csim_command_len`], [`csim_answer_len`]);
//! - the vpcd front end charges nothing: a PC/SC reader has no modem UART.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// A UART between host and modem: `baud` bits a second, 8N1 ([`SerialLink::BITS_PER_BYTE`] bits a
/// byte on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SerialLink {
    baud: NonZeroU32,
}

impl SerialLink {
    /// Bits on the wire for one byte in 8N1 framing: a start bit, 8 data bits, a stop bit.
    pub const BITS_PER_BYTE: u32 = 10;

    /// The usual UART rate between a host and a cellular modem (the `modem` latency preset).
    pub const MODEM_BAUD: u32 = 115_200;

    /// A link at `baud` bits a second; `None` for 0 (a link that never carries a byte).
    pub fn new(baud: u32) -> Option<SerialLink> {
        NonZeroU32::new(baud).map(|baud| SerialLink { baud })
    }

    /// The usual modem UART: [`SerialLink::MODEM_BAUD`] (115,200 baud).
    pub fn modem() -> SerialLink {
        SerialLink {
            baud: NonZeroU32::new(Self::MODEM_BAUD).unwrap_or(NonZeroU32::MIN),
        }
    }

    /// The baud rate (bits a second).
    pub fn baud(self) -> u32 {
        self.baud.get()
    }

    /// How long `bytes` bytes take on this link: `bytes` × 10 bits ÷ baud, rounded up to the next
    /// nanosecond (the last byte is not in before its stop bit is). At 115,200 baud one byte takes
    /// 86.81 µs and 11,520 bytes exactly one second.
    ///
    /// Computed in integer nanoseconds in 128 bits, so it never overflows; a time beyond
    /// [`Duration::MAX`] saturates.
    pub fn time_of(self, bytes: usize) -> Duration {
        const NANOS_PER_SEC: u128 = 1_000_000_000;
        let baud = u128::from(self.baud.get());
        // usize is at most 64 bits: bytes × 10 fits in u128 with room to spare.
        let bits = (bytes as u128).saturating_mul(u128::from(Self::BITS_PER_BYTE));
        let secs = bits / baud;
        // rest < baud < 2^32, so rest × 10^9 < 2^62: no overflow, and the rounded-up quotient is
        // at most 10^9.
        let rest = bits % baud;
        let nanos = (rest * NANOS_PER_SEC).div_ceil(baud);
        Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)).saturating_add(
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
        )
    }
}

impl fmt::Display for SerialLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} baud", self.baud)
    }
}

/// A baud rate in decimal (`115200`; `_` and `,` between digits are allowed: `115_200`); 0 is
/// refused.
impl FromStr for SerialLink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, '_' | ','))
            .collect();
        let baud: u32 = digits
            .parse()
            .map_err(|e| format!("{s:?} is not a baud rate (bits a second, e.g. 115200): {e}"))?;
        SerialLink::new(baud).ok_or_else(|| {
            format!("{s:?}: a serial link needs a baud rate of at least 1 (e.g. 115200)")
        })
    }
}

/// Decimal digits of `n` (1 for 0).
fn decimal_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// The bytes a modem receives for one APDU of `apdu_len` bytes sent with `AT+CSIM` (echo off):
/// `AT+CSIM=<2n>,"<HEX>"\r`, the length counting hex characters.
pub fn csim_command_len(apdu_len: usize) -> usize {
    let hex = apdu_len.saturating_mul(2);
    "AT+CSIM=,\"\"\r"
        .len()
        .saturating_add(decimal_digits(hex))
        .saturating_add(hex)
}

/// The bytes a modem writes back for a response APDU of `response_len` bytes to `AT+CSIM`:
/// `\r\n+CSIM: <2m>,"<HEX>"\r\n` then `\r\nOK\r\n` (V.250 verbose format).
pub fn csim_answer_len(response_len: usize) -> usize {
    let hex = response_len.saturating_mul(2);
    "\r\n+CSIM: ,\"\"\r\n\r\nOK\r\n"
        .len()
        .saturating_add(decimal_digits(hex))
        .saturating_add(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(baud: u32) -> SerialLink {
        SerialLink::new(baud).unwrap()
    }

    #[test]
    fn ten_bits_a_byte() {
        // 115,200 baud: 11,520 bytes a second exactly.
        assert_eq!(link(115_200).time_of(11_520), Duration::from_secs(1));
        assert_eq!(link(115_200).time_of(1_152), Duration::from_millis(100));
        // 9,600 baud: 960 bytes a second; one byte 1,041,666.67 ns, rounded up.
        assert_eq!(link(9_600).time_of(960), Duration::from_secs(1));
        assert_eq!(link(9_600).time_of(1), Duration::from_nanos(1_041_667));
        assert_eq!(link(9_600).time_of(96), Duration::from_millis(100));
        // 10 bits a byte: 1 baud carries a byte in 10 s.
        assert_eq!(link(1).time_of(1), Duration::from_secs(10));
        assert_eq!(link(10).time_of(3), Duration::from_secs(3));
        assert_eq!(link(115_200).time_of(0), Duration::ZERO);
        // A 500-byte certificate read as AT text: about 90 ms at 115,200 baud.
        // Its `+CSIM:` answer (500 data bytes and 9000) is 1,028 bytes: 89.24 ms.
        let read = link(115_200).time_of(csim_answer_len(500 + 2));
        assert_eq!(read, Duration::from_nanos(89_236_112));
    }

    #[test]
    fn never_overflows() {
        // usize::MAX bytes at 1 baud is beyond Duration::MAX seconds: saturates.
        assert_eq!(link(1).time_of(usize::MAX), Duration::from_secs(u64::MAX));
        // (2^64 − 1) × 10 / (2^32 − 1) s = (2^32 + 1) × 10 s exactly.
        let fast = link(u32::MAX).time_of(usize::MAX);
        assert_eq!(fast, Duration::from_secs((u64::from(u32::MAX) + 2) * 10));
        assert_eq!(link(u32::MAX).time_of(1), Duration::from_nanos(3));
    }

    #[test]
    fn rounding_never_undercharges() {
        let l = link(115_200);
        for n in [1, 2, 3, 7, 100, 1_151, 11_519, 11_521] {
            let exact_nanos = n as u128 * 10 * 1_000_000_000 / 115_200;
            let t = l.time_of(n).as_nanos();
            assert!(
                t >= exact_nanos && t <= exact_nanos + 1,
                "{n} bytes: {t} ns"
            );
        }
    }

    #[test]
    fn parses_baud_rates() {
        assert_eq!("115200".parse(), Ok(link(115_200)));
        assert_eq!("115_200".parse(), Ok(link(115_200)));
        assert_eq!(" 9600 ".parse(), Ok(link(9_600)));
        let zero = "0".parse::<SerialLink>().unwrap_err();
        assert!(zero.contains("at least 1"), "{zero}");
        assert!("fast".parse::<SerialLink>().is_err());
        assert!("-9600".parse::<SerialLink>().is_err());
        assert!("9600.5".parse::<SerialLink>().is_err());
        assert_eq!(SerialLink::new(0), None);
        assert_eq!(SerialLink::modem().baud(), 115_200);
        assert_eq!(link(9_600).to_string(), "9600 baud");
    }

    #[test]
    fn csim_line_lengths_are_the_lines_a_modem_carries() {
        for n in [0, 1, 4, 5, 49, 50, 255, 261, 499, 500, 5_000, 50_000] {
            let hex = "A5".repeat(n);
            let command = format!("AT+CSIM={},\"{hex}\"\r", hex.len());
            assert_eq!(csim_command_len(n), command.len(), "command of {n} bytes");
            let answer = format!("\r\n+CSIM: {},\"{hex}\"\r\n\r\nOK\r\n", hex.len());
            assert_eq!(csim_answer_len(n), answer.len(), "answer of {n} bytes");
        }
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(9), 1);
        assert_eq!(decimal_digits(10), 2);
        assert_eq!(decimal_digits(usize::MAX), 20);
    }
}
