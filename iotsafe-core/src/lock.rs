//! The lock around a card session: the operating system's mutex with `std`, a spin lock without
//! (a microcontroller has no OS to park a thread; its firmware rarely shares a card between
//! contexts, and a spin lock is correct when it does).

/// A locked value, released when dropped.
#[cfg(feature = "std")]
pub(crate) type Guard<'a, T> = std::sync::MutexGuard<'a, T>;
/// A locked value, released when dropped.
#[cfg(not(feature = "std"))]
pub(crate) type Guard<'a, T> = spin::MutexGuard<'a, T>;

/// A value behind a lock.
pub(crate) struct Lock<T> {
    #[cfg(feature = "std")]
    inner: std::sync::Mutex<T>,
    #[cfg(not(feature = "std"))]
    inner: spin::Mutex<T>,
}

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Lock<T> {
        Lock {
            #[cfg(feature = "std")]
            inner: std::sync::Mutex::new(value),
            #[cfg(not(feature = "std"))]
            inner: spin::Mutex::new(value),
        }
    }

    /// Locks the value. When a panic left it locked halfway (a poisoned OS mutex), the lock is
    /// taken over and `recover` repairs the value first; a spin lock is never poisoned.
    pub(crate) fn lock(&self, recover: impl FnOnce(&mut T)) -> Guard<'_, T> {
        #[cfg(feature = "std")]
        {
            self.inner.lock().unwrap_or_else(|poisoned| {
                self.inner.clear_poison();
                let mut value = poisoned.into_inner();
                recover(&mut value);
                value
            })
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = recover;
            self.inner.lock()
        }
    }

    /// The value, when nobody else can hold the lock; `recover` as in [`Lock::lock`].
    pub(crate) fn get_mut(&mut self, recover: impl FnOnce(&mut T)) -> &mut T {
        #[cfg(feature = "std")]
        {
            match self.inner.get_mut() {
                Ok(value) => value,
                Err(poisoned) => {
                    let value = poisoned.into_inner();
                    recover(value);
                    value
                }
            }
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = recover;
            self.inner.get_mut()
        }
    }
}
