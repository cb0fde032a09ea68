//! Reconnect back-off: exponential with jitter and a cap, so that a flapping network does not
//! hammer the SIM with a key generation, an ECDH and a signature per attempt.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exponential back-off with ±25 % jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Attempts after the first before giving up (`0`: never retry).
    pub max_retries: u32,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30), 5)
    }
}

impl Backoff {
    /// A back-off starting at `initial`, doubling up to `max`, for at most `max_retries` retries.
    pub fn new(initial: Duration, max: Duration, max_retries: u32) -> Backoff {
        Backoff {
            initial,
            max,
            max_retries,
            attempt: 0,
        }
    }

    /// The delay before the next retry, or `None` when the retries are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.max_retries {
            return None;
        }
        let exp = self.attempt.min(16);
        self.attempt += 1;
        let base = self.initial.saturating_mul(1 << exp).min(self.max);
        // Jitter from the clock's low bits: good enough to de-synchronise a fleet.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = f64::from(nanos % 1000) / 1000.0 * 0.5 - 0.25;
        Some(base.mul_f64(1.0 + jitter).min(self.max))
    }

    /// Retries used so far.
    pub fn retries(&self) -> u32 {
        self.attempt
    }

    /// Starts over after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_stops() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 6);
        let delays: Vec<_> = std::iter::from_fn(|| b.next_delay()).collect();
        assert_eq!(delays.len(), 6);
        assert!(delays[0] >= Duration::from_millis(75) && delays[0] <= Duration::from_millis(125));
        assert!(delays[2] >= Duration::from_millis(300));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1000)));
        assert_eq!(b.next_delay(), None);
        b.reset();
        assert!(b.next_delay().is_some());
    }
}
