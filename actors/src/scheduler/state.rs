//! [`TimerState`]: one armed timer's fate, shared by its handle and the scheduler actor.
//!
//! One `AtomicU64`: `PENDING` (armed by the caller, the actor has not seen it yet), the
//! table id once the actor armed it, `CANCELLED`, or `FIRED` (a one-shot that fired, or
//! an interval that ended). The handle and the actor race with compare-and-swap, so
//! exactly one of "cancel" and "fire" wins: cancel is final without a message, a lock or
//! a wait, which is what makes it safe from `Drop` and with a full scheduler mailbox.

use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire};

use crate::scheduler::{CancelOutcome, TimerId};

const PENDING: u64 = u64::MAX - 2;
const FIRED: u64 = u64::MAX - 1;
const CANCELLED: u64 = u64::MAX;

/// The shared state of one armed timer (see the module docs).
#[derive(Debug)]
pub(crate) struct TimerState(AtomicU64);

impl TimerState {
    /// A timer the caller just armed.
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(PENDING))
    }

    /// Caller side: cancels unless it fired (or was cancelled) first. On `Cancelled`,
    /// also returns the table id whose entry the actor may free, if it armed one.
    pub(crate) fn cancel(&self) -> (CancelOutcome, Option<TimerId>) {
        let mut current = self.0.load(Acquire);
        loop {
            if current == CANCELLED || current == FIRED {
                return (CancelOutcome::AlreadyFired, None);
            }
            match self
                .0
                .compare_exchange_weak(current, CANCELLED, AcqRel, Acquire)
            {
                Ok(_) if current == PENDING => return (CancelOutcome::Cancelled, None),
                Ok(_) => return (CancelOutcome::Cancelled, Some(TimerId::from_bits(current))),
                Err(seen) => current = seen,
            }
        }
    }

    /// Actor side: the timer entered the table as `id`; `false` when it was cancelled
    /// before (the caller then removes it again).
    pub(crate) fn armed(&self, id: TimerId) -> bool {
        self.0
            .compare_exchange(PENDING, id.to_bits(), AcqRel, Acquire)
            .is_ok()
    }

    /// Whether the handle cancelled it.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Acquire) == CANCELLED
    }

    /// Actor side: a one-shot `id` fires, unless the handle cancelled it first.
    pub(crate) fn fire(&self, id: TimerId) -> bool {
        self.0
            .compare_exchange(id.to_bits(), FIRED, AcqRel, Acquire)
            .is_ok()
    }

    /// Actor side: an interval `id` ended (its target is gone); a later cancel answers
    /// `AlreadyFired`. Does nothing if it was cancelled first.
    pub(crate) fn end(&self, id: TimerId) {
        let _ = self.fire(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Timers;

    fn some_id() -> TimerId {
        let mut timers = Timers::new();
        let _ = timers.arm_at(1, ());
        timers.arm_at(2, ())
    }

    #[test]
    fn exactly_one_of_cancel_and_fire_wins_in_every_order() {
        use CancelOutcome::{AlreadyFired, Cancelled};
        let id = some_id();
        // cancel before the actor saw it: the arm is then refused
        let state = TimerState::new();
        assert_eq!(state.cancel(), (Cancelled, None));
        assert!(!state.armed(id));
        assert!(!state.fire(id));
        assert_eq!(state.cancel(), (AlreadyFired, None), "idempotent");
        // cancel while armed: the entry can be freed, and it never fires
        let state = TimerState::new();
        assert!(state.armed(id));
        assert_eq!(state.cancel(), (Cancelled, Some(id)));
        assert!(state.is_cancelled());
        assert!(!state.fire(id));
        // fire first: the cancel is too late and says so
        let state = TimerState::new();
        assert!(state.armed(id));
        assert!(state.fire(id));
        assert_eq!(state.cancel(), (AlreadyFired, None));
        // an interval that ended
        let state = TimerState::new();
        assert!(state.armed(id));
        state.end(id);
        assert_eq!(state.cancel(), (AlreadyFired, None));
    }

    #[test]
    fn racing_cancel_and_fire_never_both_win() {
        let id = some_id();
        for _ in 0..500 {
            let state = std::sync::Arc::new(TimerState::new());
            assert!(state.armed(id));
            let other = std::sync::Arc::clone(&state);
            let canceller = std::thread::spawn(move || other.cancel().0);
            let fired = state.fire(id);
            let cancelled = canceller.join().unwrap() == CancelOutcome::Cancelled;
            assert!(fired != cancelled, "fired {fired}, cancelled {cancelled}");
        }
    }
}
