//! Locks. The one around a card session (`Lock`, crate-private): the operating system's mutex
//! with `std`, a spin lock without (a microcontroller has no OS to park a thread; its firmware
//! rarely shares a card between contexts, and a spin lock is correct when it does). And, with
//! `std`, the one rule every crate of the workspace uses for an OS lock around plain data (counters,
//! lists, optional values): a panic in another thread while it held the lock leaves the data
//! consistent between two statements, so the lock is taken over rather than every later caller
//! failing ([`lock()`], [`read()`], [`write()`], [`wait()`], [`wait_timeout()`]). A lock whose data a panic can leave
//! half changed (the card session) repairs it instead (`Lock::lock`).

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

/// `mutex`, taken over if a panic poisoned it (see the module docs: plain data only).
#[cfg(feature = "std")]
pub fn lock<T: ?Sized>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `rw` for reading, taken over if a panic poisoned it (plain data only).
#[cfg(feature = "std")]
pub fn read<T: ?Sized>(rw: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    rw.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `rw` for writing, taken over if a panic poisoned it (plain data only).
#[cfg(feature = "std")]
pub fn write<T: ?Sized>(rw: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    rw.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`std::sync::Condvar::wait_timeout`], the lock taken over if a panic poisoned it (plain data
/// only).
#[cfg(feature = "std")]
pub fn wait_timeout<'a, T>(
    changed: &std::sync::Condvar,
    guard: std::sync::MutexGuard<'a, T>,
    timeout: core::time::Duration,
) -> std::sync::MutexGuard<'a, T> {
    match changed.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

/// [`std::sync::Condvar::wait`], the lock taken over if a panic poisoned it (plain data only).
#[cfg(feature = "std")]
pub fn wait<'a, T>(
    changed: &std::sync::Condvar,
    guard: std::sync::MutexGuard<'a, T>,
) -> std::sync::MutexGuard<'a, T> {
    changed
        .wait(guard)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
