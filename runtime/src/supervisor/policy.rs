//! Pure supervision rules: restart policies, strategies, restart intensity and back-off.
//! No async, no I/O: the supervisor cell feeds these with times and exits.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

use crate::cell::Exit;

/// Which children a supervisor restarts when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Restart only the child that failed.
    #[default]
    OneForOne,
    /// Halt every other child (youngest first) and restart them all, in start order.
    OneForAll,
    /// Halt the children started after the failed one, and restart it and them, in order.
    RestForOne,
}

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// After a failure, and after a normal end of an incarnation (`Context::restart`).
    #[default]
    Permanent,
    /// Only after a failure (handler error or panic, start failure).
    Transient,
    /// Never.
    Temporary,
}

/// Restart intensity: more than `max_restarts` restarts within `within` make the
/// supervisor give up: it halts its children and fails, escalating to its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts tolerated within the window.
    pub max_restarts: u32,
    /// The sliding window.
    pub within: Duration,
}

impl Intensity {
    /// `max_restarts` within `within`.
    pub fn new(max_restarts: u32, within: Duration) -> Self {
        Intensity {
            max_restarts,
            within,
        }
    }
}

impl Default for Intensity {
    /// 20 restarts within 10 seconds.
    fn default() -> Self {
        Intensity::new(20, Duration::from_secs(10))
    }
}

/// Exponential back-off between restarts (Akka's `restartWithBackoff`): the n-th
/// consecutive restart waits `min(initial * 2^(n-1), max)`. The sequence resets when the
/// previous failure is more than `reset_after` ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
    /// Quiet time after which the next failure starts from `initial` again.
    pub reset_after: Duration,
}

impl Backoff {
    /// Doubling from `initial` up to `max`; resets after 10 × `max` without failures.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            reset_after: max.max(initial) * 10,
        }
    }

    /// Restart at once.
    pub fn none() -> Self {
        Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            reset_after: Duration::ZERO,
        }
    }

    /// Sets the quiet time after which the back-off starts from `initial` again.
    pub fn reset_after(mut self, quiet: Duration) -> Self {
        self.reset_after = quiet;
        self
    }

    /// The delay before the `consecutive`-th restart (1-based).
    pub fn delay(&self, consecutive: u32) -> Duration {
        let shift = consecutive.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

impl Default for Backoff {
    /// 10 ms doubling up to 2 s.
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(10), Duration::from_secs(2))
    }
}

/// Whether a child that ended with `exit` is restarted under `restart`.
pub(crate) fn wants_restart(restart: Restart, exit: &Exit) -> bool {
    match (restart, exit) {
        (_, Exit::Halted | Exit::Stopped) => false,
        (Restart::Temporary, _) => false,
        (Restart::Transient, Exit::Normal) => false,
        (Restart::Permanent, Exit::Normal) => true,
        (_, Exit::Failed(_)) => true,
    }
}

/// Which children (by position) restart when the child at `failed` does.
pub(crate) fn restart_set(strategy: Strategy, failed: usize, live: &[bool]) -> Vec<usize> {
    match strategy {
        Strategy::OneForOne => vec![failed],
        Strategy::OneForAll => (0..live.len())
            .filter(|&i| i == failed || live[i])
            .collect(),
        Strategy::RestForOne => (failed..live.len())
            .filter(|&i| i == failed || live[i])
            .collect(),
    }
}

/// Restart bookkeeping of one supervisor: the intensity window and the back-off sequence.
#[derive(Debug)]
pub(crate) struct RestartBudget {
    intensity: Intensity,
    backoff: Backoff,
    history: VecDeque<Instant>,
    consecutive: u32,
    last_failure: Option<Instant>,
}

/// What the budget says about one more restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// Too many restarts: give up and escalate.
    Escalate,
}

impl RestartBudget {
    pub(crate) fn new(intensity: Intensity, backoff: Backoff) -> Self {
        RestartBudget {
            intensity,
            backoff,
            history: VecDeque::new(),
            consecutive: 0,
            last_failure: None,
        }
    }

    /// Records one restart at `now` and says whether and when it may happen.
    pub(crate) fn record(&mut self, now: Instant) -> Verdict {
        while let Some(&oldest) = self.history.front() {
            if now.duration_since(oldest) >= self.intensity.within {
                self.history.pop_front();
            } else {
                break;
            }
        }
        self.history.push_back(now);
        if self.history.len() > self.intensity.max_restarts as usize {
            return Verdict::Escalate;
        }
        let quiet = self
            .last_failure
            .is_none_or(|last| now.duration_since(last) > self.backoff.reset_after);
        self.consecutive = if quiet { 1 } else { self.consecutive + 1 };
        self.last_failure = Some(now);
        Verdict::RestartAfter(self.backoff.delay(self.consecutive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_table() {
        let failed = Exit::Failed("boom".into());
        let table = [
            (Restart::Permanent, Exit::Normal, true),
            (Restart::Permanent, failed.clone(), true),
            (Restart::Permanent, Exit::Stopped, false),
            (Restart::Permanent, Exit::Halted, false),
            (Restart::Transient, Exit::Normal, false),
            (Restart::Transient, failed.clone(), true),
            (Restart::Transient, Exit::Stopped, false),
            (Restart::Temporary, Exit::Normal, false),
            (Restart::Temporary, failed.clone(), false),
        ];
        for (restart, exit, expected) in table {
            assert_eq!(
                wants_restart(restart, &exit),
                expected,
                "{restart:?} {exit:?}"
            );
        }
    }

    #[test]
    fn strategy_table() {
        let live = [true, false, true, true];
        assert_eq!(restart_set(Strategy::OneForOne, 2, &live), vec![2]);
        assert_eq!(restart_set(Strategy::OneForAll, 2, &live), vec![0, 2, 3]);
        assert_eq!(restart_set(Strategy::RestForOne, 1, &live), vec![1, 2, 3]);
        assert_eq!(restart_set(Strategy::RestForOne, 3, &live), vec![3]);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(70));
        let delays: Vec<_> = (1..=5).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, vec![10, 20, 40, 70, 70]);
        assert_eq!(backoff.delay(1000), Duration::from_millis(70));
        assert_eq!(Backoff::none().delay(3), Duration::ZERO);
    }

    #[test]
    fn intensity_escalates_on_the_restart_past_the_limit() {
        let start = Instant::now();
        let mut budget = RestartBudget::new(
            Intensity::new(2, Duration::from_secs(1)),
            Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)),
        );
        assert_eq!(
            budget.record(start),
            Verdict::RestartAfter(Duration::from_millis(10))
        );
        let t1 = start + Duration::from_millis(100);
        assert_eq!(
            budget.record(t1),
            Verdict::RestartAfter(Duration::from_millis(20))
        );
        assert_eq!(
            budget.record(start + Duration::from_millis(200)),
            Verdict::Escalate
        );
    }

    #[test]
    fn the_window_slides_and_backoff_resets_after_quiet() {
        let start = Instant::now();
        let backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(40))
            .reset_after(Duration::from_millis(500));
        let mut budget = RestartBudget::new(Intensity::new(1, Duration::from_secs(1)), backoff);
        assert!(matches!(budget.record(start), Verdict::RestartAfter(_)));
        // Two seconds later the first restart left the window and the back-off reset.
        assert_eq!(
            budget.record(start + Duration::from_secs(2)),
            Verdict::RestartAfter(Duration::from_millis(10))
        );
    }
}
