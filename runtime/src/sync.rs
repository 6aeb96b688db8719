//! Small synchronisation helpers shared by the runtime's layers.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering the guard if a holder panicked: nothing in the runtime panics
/// while holding its locks, and a poisoned lock must not cascade into every later caller.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
