//! The monotonic clock the session and the AT client measure time with.
//!
//! With `std` it is the operating system's monotonic clock. Without it, the firmware names its
//! own (a SysTick or timer count) once with `set`. Until then there is no clock: [`now`] stays
//! at zero (time in the card is not counted), and a [`Deadline`] cannot be set, so every read
//! that must end by one fails at once with [`NoClock`] instead of waiting forever.

use core::time::Duration;

#[cfg(not(feature = "std"))]
static SOURCE: spin::Once<fn() -> Duration> = spin::Once::new();

/// Time since an arbitrary fixed point, never going backwards.
pub fn now() -> Duration {
    read().unwrap_or(Duration::ZERO)
}

/// The clock's reading, or `None` when there is no clock (without `std`, before `set`).
fn read() -> Option<Duration> {
    #[cfg(all(test, feature = "std"))]
    if test_hook::clockless() {
        return None;
    }
    #[cfg(feature = "std")]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        Some(START.get_or_init(std::time::Instant::now).elapsed())
    }
    #[cfg(not(feature = "std"))]
    {
        SOURCE.get().map(|source| source())
    }
}

/// Uses `source` as the clock (without `std`; the first call wins). `source` must be monotonic.
/// Call it before the first command: without a clock, nothing that waits on a modem can start.
#[cfg(not(feature = "std"))]
pub fn set(source: fn() -> Duration) {
    SOURCE.call_once(|| source);
}

/// No clock to measure a deadline with: built without `std`, and `set` was not called yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no clock to time out with: without `std`, call `iotsafe_core::clock::set` with the \
     firmware's monotonic clock before the first command"
)]
pub struct NoClock;

/// The moment by which a wait must end, on the clock of [`now`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Instant);

impl Deadline {
    /// `timeout` from now (a timeout too large for the clock waits a day instead). Fails
    /// without a clock: a deadline that never comes would let a silent modem hold the caller
    /// forever.
    pub fn after(timeout: Duration) -> Result<Deadline, NoClock> {
        let now = Instant(read().ok_or(NoClock)?);
        let at = now
            .checked_add(timeout)
            .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
            .unwrap_or(now);
        Ok(Deadline(at))
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// True once the deadline has passed.
    pub fn has_passed(&self) -> bool {
        self.remaining().is_zero()
    }
}

/// A point in time from [`now`], for measuring how long something took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(Duration);

impl Instant {
    /// Now.
    pub fn now() -> Instant {
        Instant(now())
    }

    /// Time since this instant.
    pub fn elapsed(&self) -> Duration {
        now().saturating_sub(self.0)
    }

    /// The instant `d` later, or `None` where that cannot be represented.
    pub fn checked_add(&self, d: Duration) -> Option<Instant> {
        self.0.checked_add(d).map(Instant)
    }

    /// Time from `earlier` to this instant (zero if `earlier` is later).
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(all(test, feature = "std"))]
pub(crate) use test_hook::without_clock;

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[test]
    fn without_a_clock_no_deadline_can_be_set() {
        without_clock(|| {
            assert_eq!(now(), Duration::ZERO);
            assert_eq!(Deadline::after(Duration::from_secs(5)), Err(NoClock));
        });
        assert!(NoClock.to_string().contains("clock::set"));
    }

    #[test]
    fn with_a_clock_a_deadline_counts_down() {
        let deadline = Deadline::after(Duration::from_secs(3600)).unwrap();
        assert!(!deadline.has_passed());
        assert!(deadline.remaining() <= Duration::from_secs(3600));
        assert!(Deadline::after(Duration::ZERO).unwrap().has_passed());
        // Too far for the clock: a day instead of an overflow.
        let far = Deadline::after(Duration::MAX).unwrap();
        assert!(far.remaining() <= Duration::from_secs(24 * 3600));
    }
}

/// The host's tests of the path a firmware takes before `set`: the crate's tests are built with
/// `std`, whose clock is always there.
#[cfg(all(test, feature = "std"))]
mod test_hook {
    use core::cell::Cell;

    std::thread_local! {
        static CLOCKLESS: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn clockless() -> bool {
        CLOCKLESS.with(Cell::get)
    }

    /// Runs `f` on this thread as without `std` before `clock::set`: no clock.
    pub(crate) fn without_clock<R>(f: impl FnOnce() -> R) -> R {
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                CLOCKLESS.with(|c| c.set(false));
            }
        }
        CLOCKLESS.with(|c| c.set(true));
        let _restore = Restore;
        f()
    }
}
