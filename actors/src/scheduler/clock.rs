//! Tick arithmetic between tokio instants and table ticks: never early, no panic and no
//! silent truncation at any `Duration`, exact far beyond 2^32 ticks.

use std::time::Duration;

use tokio::time::Instant;

/// The tick that never comes: [`Timers`](crate::scheduler::Timers) saturates at
/// `u64::MAX - 1`, so a deadline here never fires.
pub(crate) const NEVER: u64 = u64::MAX;

/// Converts between instants and ticks of `tick` since `epoch`. All arithmetic is in
/// `u128` nanoseconds, so nothing wraps or saturates early (the old conversion clamped
/// the tick count to `u32::MAX` and made the driver spin after 2^32 ticks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TickClock {
    epoch: Instant,
    tick_nanos: u128,
}

impl TickClock {
    /// Ticks of `tick` (at least 1 µs) counted from `epoch`.
    pub(crate) fn new(epoch: Instant, tick: Duration) -> Self {
        Self {
            epoch,
            tick_nanos: tick.max(Duration::from_micros(1)).as_nanos(),
        }
    }

    /// The tick's length.
    pub(crate) fn tick(&self) -> Duration {
        duration_of(self.tick_nanos).unwrap_or(Duration::MAX)
    }

    /// The tick `now` is in (rounded down): a timer due at tick t fires once t began.
    pub(crate) fn now_tick(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        saturate(nanos / self.tick_nanos)
    }

    /// The first tick that begins at or after `instant` (rounded up: never early).
    pub(crate) fn tick_at(&self, instant: Instant) -> u64 {
        let nanos = instant.saturating_duration_since(self.epoch).as_nanos();
        saturate(nanos.div_ceil(self.tick_nanos))
    }

    /// The deadline `delay` after `now`, rounded up; [`NEVER`] when it lies beyond the
    /// last tick (`Duration::MAX` among others). Computed from the exact instant, not
    /// from `now`'s tick, so it is never early.
    pub(crate) fn deadline_after(&self, now: Instant, delay: Duration) -> u64 {
        let since_epoch = now.saturating_duration_since(self.epoch).as_nanos();
        saturate((since_epoch + delay.as_nanos()).div_ceil(self.tick_nanos))
    }

    /// Whole ticks in `period`, rounded up (an interval never runs faster than asked);
    /// [`NEVER`] when more than a `u64` of ticks.
    pub(crate) fn ticks_in(&self, period: Duration) -> u64 {
        saturate(period.as_nanos().div_ceil(self.tick_nanos))
    }

    /// The instant tick `tick` begins; `None` when it is not representable (the driver
    /// then waits for an earlier deadline instead of sleeping).
    pub(crate) fn instant_of(&self, tick: u64) -> Option<Instant> {
        if tick == NEVER {
            return None;
        }
        let nanos = u128::from(tick).checked_mul(self.tick_nanos)?;
        self.epoch.checked_add(duration_of(nanos)?)
    }
}

fn saturate(ticks: u128) -> u64 {
    u64::try_from(ticks).unwrap_or(NEVER)
}

fn duration_of(nanos: u128) -> Option<Duration> {
    let seconds = u64::try_from(nanos / 1_000_000_000).ok()?;
    Some(Duration::new(seconds, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    #[test]
    fn conversions_round_the_safe_way_at_every_limit() {
        let epoch = Instant::now();
        let ms = TickClock::new(epoch, MS);
        let half = epoch + Duration::from_micros(500);
        // (what, got, expected)
        let table = [
            ("now tick rounds down", ms.now_tick(half), 0),
            ("tick_at rounds up", ms.tick_at(half), 1),
            ("tick_at of a whole tick", ms.tick_at(epoch + 3 * MS), 3),
            ("delay from mid-tick", ms.deadline_after(half, MS), 2),
            (
                "zero delay mid-tick",
                ms.deadline_after(half, Duration::ZERO),
                1,
            ),
            (
                "Duration::MAX never fires",
                ms.deadline_after(half, Duration::MAX),
                NEVER,
            ),
            (
                "u64::MAX ms is the last tick",
                ms.deadline_after(epoch, Duration::from_millis(u64::MAX)),
                u64::MAX,
            ),
            (
                "1.5 ms period rounds up",
                ms.ticks_in(Duration::from_micros(1_500)),
                2,
            ),
            ("whole period", ms.ticks_in(7 * MS), 7),
            ("period MAX", ms.ticks_in(Duration::MAX), NEVER),
        ];
        for (what, got, expected) in table {
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn instants_past_two_to_the_32_ticks_are_exact() {
        let epoch = Instant::now();
        let us = TickClock::new(epoch, US);
        let far = (1_u64 << 32) + 12_345;
        assert_eq!(us.instant_of(far), Some(epoch + Duration::from_micros(far)));
        assert_eq!(us.now_tick(epoch + Duration::from_micros(far)), far);
        assert_eq!(us.instant_of(NEVER), None);
        // Beyond what an Instant can hold: None, not a panic.
        let _no_panic = us.instant_of(u64::MAX - 1);
        let _no_panic = TickClock::new(epoch, Duration::MAX).instant_of(u64::MAX - 1);
        assert_eq!(
            TickClock::new(epoch, Duration::ZERO).tick(),
            US,
            "at least 1 µs"
        );
    }
}
