//! Locking the local emulations' shared state.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex` even if a panicking holder poisoned it: every critical
/// section here leaves the data consistent, and one failed request must not
/// take the whole emulator down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
