//! Small synchronisation helpers shared by the whole crate.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, also when a thread panicked while holding it: tether's locks
/// guard state that stays consistent between statements, so a poisoned lock
/// is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
