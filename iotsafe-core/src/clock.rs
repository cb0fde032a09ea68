//! The monotonic clock the session and the AT client measure time with.
//!
//! With `std` it is the operating system's monotonic clock. Without it, the firmware names its
//! own (a SysTick or timer count) once with `set`; until then [`now`] stays at zero, so
//! deadlines never pass and time in the card is not counted.

use core::time::Duration;

#[cfg(not(feature = "std"))]
static SOURCE: spin::Once<fn() -> Duration> = spin::Once::new();

/// Time since an arbitrary fixed point, never going backwards.
pub fn now() -> Duration {
    #[cfg(feature = "std")]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }
    #[cfg(not(feature = "std"))]
    {
        SOURCE.get().map_or(Duration::ZERO, |source| source())
    }
}

/// Uses `source` as the clock (without `std`; the first call wins). `source` must be monotonic.
#[cfg(not(feature = "std"))]
pub fn set(source: fn() -> Duration) {
    SOURCE.call_once(|| source);
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
