//! [`MissedTicks`]: what an interval does about periods a late driver missed.

/// What an interval timer does when it fires late, after one or more of its periods
/// went by unfired (a slow driver, a long `Pause`, a stalled runtime). The same three
/// choices as tokio's `MissedTickBehavior`; the default is [`Burst`](Self::Burst), as in
/// tokio.
///
/// The rules, for an interval due at `deadline` with `period`, fired at tick `now`
/// (`now >= deadline`):
///
/// | policy | next deadline | late periods |
/// |---|---|---|
/// | `Burst` | `deadline + period` | every missed period fires, in order, at once |
/// | `Skip` | the first `deadline + k·period` after `now` | fire once, then back on the original grid |
/// | `Delay` | `now + period` | fire once, then every `period` from now on (the grid moves) |
///
/// When the driver is on time (`now == deadline`) all three give `deadline + period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MissedTicks {
    /// Catch up: every missed period fires, in order, as soon as the driver runs.
    #[default]
    Burst,
    /// Fire once for all the missed periods, then keep to the original grid.
    Skip,
    /// Fire once, then restart the period from the moment it fired.
    Delay,
}

impl MissedTicks {
    /// The next deadline of an interval whose period due at `deadline` fired at `now`
    /// (see the table on [`MissedTicks`]); `None` when it would pass `u64::MAX`.
    pub fn next_deadline(self, deadline: u64, period: u64, now: u64) -> Option<u64> {
        let now = now.max(deadline);
        match self {
            Self::Burst => deadline.checked_add(period),
            Self::Skip => {
                let periods = (now - deadline) / period.max(1) + 1;
                period
                    .checked_mul(periods)
                    .and_then(|ahead| deadline.checked_add(ahead))
            }
            Self::Delay => now.checked_add(period),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MissedTicks::{self, Burst, Delay, Skip};

    #[test]
    fn next_deadline_follows_the_table() {
        // (policy, deadline, period, now, next)
        let table: [(MissedTicks, u64, u64, u64, Option<u64>); 14] = [
            (Burst, 10, 5, 10, Some(15)),
            (Skip, 10, 5, 10, Some(15)),
            (Delay, 10, 5, 10, Some(15)),
            (Burst, 10, 5, 37, Some(15)),
            (Skip, 10, 5, 37, Some(40)),
            (Delay, 10, 5, 37, Some(42)),
            (Skip, 10, 5, 14, Some(15)),
            (Skip, 10, 5, 15, Some(20)), // exactly on a later period: that one counts as missed
            (Delay, 10, 5, 15, Some(20)),
            (Burst, u64::MAX - 2, 5, u64::MAX - 2, None),
            (Skip, u64::MAX - 9, 5, u64::MAX - 1, None),
            (Delay, 0, 5, u64::MAX - 1, None),
            (Skip, 0, u64::MAX, 7, Some(u64::MAX)),
            (Burst, 3, 1, 3, Some(4)),
        ];
        for (policy, deadline, period, now, next) in table {
            assert_eq!(
                policy.next_deadline(deadline, period, now),
                next,
                "{policy:?} deadline {deadline} period {period} now {now}"
            );
        }
        assert_eq!(MissedTicks::default(), Burst, "the documented default");
    }
}
