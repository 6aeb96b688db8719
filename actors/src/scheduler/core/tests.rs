//! Unit tests of `Timers`: one regression test per mesocarp trap (`trap_N_*`, run on both
//! backends), then the guarantees one by one.

use std::{marker::PhantomData, rc::Rc};

use super::*;

/// Advances to `now` and returns `(deadline, payload)` of everything that fired, in order.
fn advance<T: Clone>(timers: &mut Timers<T>, now: u64) -> Vec<(u64, T)> {
    let mut fired = Vec::new();
    timers
        .advance_to(now, |expiry| {
            fired.push((expiry.deadline(), expiry.into_owned()))
        })
        .expect("time moves forward in these tests");
    fired
}

#[test]
fn trap_1_deadline_before_the_wheel_fires_on_the_next_advance() {
    let mut timers = Timers::new();
    assert_eq!(advance(&mut timers, 1_000), []);
    timers.arm_at(999, "just passed");
    timers.arm_at(0, "long passed");
    timers.arm_after(0, "now");
    // No underflow panic, no "beyond the horizon": all fire, in deadline order.
    assert_eq!(
        advance(&mut timers, 1_000),
        [(0, "long passed"), (999, "just passed"), (1_000, "now")]
    );

    let mut late_start = Timers::starting_at(500);
    late_start.arm_at(3, "before start");
    assert_eq!(advance(&mut late_start, 500), [(3, "before start")]);
}

#[test]
fn trap_2_current_tick_after_an_advance_neither_loses_nor_drops_its_slot() {
    let mut timers = Timers::new();
    advance(&mut timers, 100);
    // Tick 100 was handed out; 164 and 228 share its level-0 slot in later rounds.
    timers.arm_at(164, "same slot, next round");
    timers.arm_at(100, "current tick");
    timers.arm_at(228, "same slot, round after");
    assert_eq!(advance(&mut timers, 100), [(100, "current tick")]);
    assert_eq!(advance(&mut timers, 163), []);
    assert_eq!(advance(&mut timers, 164), [(164, "same slot, next round")]);
    assert_eq!(advance(&mut timers, 300), [(228, "same slot, round after")]);
}

#[test]
fn trap_3_unaligned_start_and_idle_jumps_keep_far_timers_on_time() {
    let start = 1_000_003; // not a multiple of 64
    let mut timers = Timers::starting_at(start);
    for delay in [1, 63, 64, 70, 4_095, 4_160, 5_000, 266_304, 300_000] {
        timers.arm_after(delay, delay);
    }
    for delay in [1, 63, 64, 70, 4_095, 4_160, 5_000, 266_304, 300_000] {
        assert_eq!(
            advance(&mut timers, start + delay - 1),
            [],
            "early at {delay}"
        );
        assert_eq!(
            advance(&mut timers, start + delay),
            [(start + delay, delay)]
        );
    }
    // Empty now: the next advance jumps (moving the epoch, not the clock's time) to an
    // unaligned tick; timers armed there must still be on time.
    let idle = advance(&mut timers, 7_777_777);
    assert_eq!(idle, []);
    for delay in [64, 65, 5_000, 300_001] {
        timers.arm_after(delay, delay);
    }
    assert_eq!(
        advance(&mut timers, 7_777_777 + 300_001),
        [64, 65, 5_000, 300_001].map(|delay| (7_777_777 + delay, delay))
    );
}

#[test]
fn trap_4_beyond_the_horizon_fires_on_time() {
    let horizon = Timers::<u64>::HORIZON;
    assert_eq!(horizon, 64 + 64 * 64 + 64 * 64 * 64 + 64 * 64 * 64 * 64);
    let mut timers = Timers::new();
    let deadlines = [horizon - 1, horizon, horizon + 1, 3 * horizon + 12_345];
    for deadline in deadlines {
        timers.arm_at(deadline, deadline);
    }
    assert_eq!(timers.next_deadline(), Some(horizon - 1));
    for deadline in deadlines {
        assert_eq!(
            advance(&mut timers, deadline - 1),
            [],
            "early at {deadline}"
        );
        assert_eq!(advance(&mut timers, deadline), [(deadline, deadline)]);
    }
    assert!(timers.is_empty());
}

/// Autoref probe: the inherent method wins when `S: Send`, the trait method otherwise.
struct SendProbe<S>(PhantomData<S>);
trait NotSend {
    fn is_send(&self) -> bool {
        false
    }
}
impl<S> NotSend for SendProbe<S> {}
impl<S: Send> SendProbe<S> {
    fn is_send(&self) -> bool {
        true
    }
}

#[test]
fn trap_5_timers_is_send_only_when_the_payload_is() {
    fn require_send_sync<S: Send + Sync>() {}
    require_send_sync::<Timers<String>>();
    assert!(SendProbe::<Timers<String>>(PhantomData).is_send());
    assert!(!SendProbe::<Timers<Rc<u32>>>(PhantomData).is_send());
    // The compile-time form is the `compile_fail` doctest on `Timers`.
}

#[test]
fn trap_6_empty_ticks_are_not_failures() {
    let mut timers = Timers::new();
    assert_eq!(timers.advance_to(10_000, |_| unreachable!()), Ok(0));
    timers.arm_after(3_600_000, "an hour");
    // A driver waking every 10 s over an almost empty wheel.
    for wake in 1..=359 {
        assert_eq!(
            timers.advance_to(10_000 + wake * 10_000, |_| unreachable!()),
            Ok(0)
        );
    }
    assert_eq!(advance(&mut timers, 3_610_000), [(3_610_000, "an hour")]);
}

#[test]
fn trap_7_cancel_is_a_tombstone_checked_at_fire_time() {
    let mut timers = Timers::new();
    let cancelled = timers.arm_at(10, "cancelled");
    let kept = timers.arm_at(10, "kept");
    assert_eq!(timers.cancel(cancelled), CancelOutcome::Cancelled);
    assert_eq!(timers.cancel(cancelled), CancelOutcome::AlreadyFired);
    // The slot is reused under a new generation; the stale id must not reach it.
    let reused = timers.arm_at(10, "reused");
    assert_eq!(reused.index, cancelled.index);
    assert_ne!(reused.generation, cancelled.generation);
    assert_eq!(timers.cancel(cancelled), CancelOutcome::AlreadyFired);
    assert_eq!(timers.len(), 2);
    assert_eq!(advance(&mut timers, 10), [(10, "kept"), (10, "reused")]);
    assert_eq!(timers.cancel(kept), CancelOutcome::AlreadyFired);
    assert_eq!(timers.tombstones, 0);
}

#[test]
fn cancelled_entries_are_swept_once_they_outnumber_live_timers() {
    let mut timers = Timers::new();
    let far = 10 * Timers::<u32>::HORIZON;
    timers.arm_at(far, 0);
    for round in 0..10_000 {
        let id = timers.arm_at(1_000 + round, round);
        let _ = timers.arm_at(far + round, round);
        assert_eq!(timers.cancel(id), CancelOutcome::Cancelled);
    }
    assert!(timers.tombstones < COMPACT_AT_LEAST.max(timers.live + 1));
    assert_eq!(timers.len(), 10_001);
}

#[test]
fn a_slot_whose_generation_would_wrap_is_retired() {
    let mut timers = Timers::new();
    let first = timers.arm_at(5, 1);
    assert_eq!(timers.cancel(first), CancelOutcome::Cancelled);
    timers.slots[first.index as usize].generation = u32::MAX;
    let last = timers.arm_at(5, 2);
    assert_eq!((last.index, last.generation), (first.index, u32::MAX));
    assert_eq!(timers.cancel(last), CancelOutcome::Cancelled);
    let next = timers.arm_at(5, 3);
    assert_ne!(next.index, first.index, "a retired slot is never reused");
    assert_eq!(advance(&mut timers, 5), [(5, 3)]);
    assert_eq!(timers.tombstones, 0);
}

#[test]
fn interval_of_7_ticks_ends_exactly_at_70_000_after_10_000_periods() {
    let mut timers = Timers::new();
    timers.arm_interval(7, 7, ()).unwrap();
    let mut periods = 0_u64;
    let mut now = 0;
    let mut step = 1;
    while now < 70_000 {
        now = (now + step).min(70_000);
        step = step % 997 + 13; // uneven wake-ups, some late by many periods
        timers
            .advance_to(now, |fired| {
                periods += 1;
                assert_eq!(fired.deadline(), 7 * periods, "drifted");
            })
            .unwrap();
    }
    assert_eq!(periods, 10_000);
    assert_eq!(timers.next_deadline(), Some(70_007));
}

#[test]
fn within_a_tick_the_order_is_the_arm_order_and_intervals_keep_their_place() {
    let mut timers = Timers::new();
    timers.arm_interval(50, 50, "interval").unwrap();
    timers.arm_at(100, "first");
    timers.arm_at(99, "earlier deadline");
    timers.arm_at(100, "second");
    assert_eq!(
        advance(&mut timers, 100),
        [
            (50, "interval"),
            (99, "earlier deadline"),
            (100, "interval"),
            (100, "first"),
            (100, "second")
        ]
    );
}

#[test]
fn a_late_interval_catches_up_every_missed_period_in_order() {
    let mut timers = Timers::new();
    advance(&mut timers, 1_000);
    timers.arm_interval(10, 300, "interval").unwrap();
    timers.arm_at(500, "once");
    assert_eq!(
        advance(&mut timers, 1_000),
        [
            (10, "interval"),
            (310, "interval"),
            (500, "once"),
            (610, "interval"),
            (910, "interval")
        ]
    );
    assert_eq!(advance(&mut timers, 1_209), []);
    assert_eq!(advance(&mut timers, 1_210), [(1_210, "interval")]);
}

#[test]
fn intervals_are_listed_with_their_next_deadline_and_can_change_their_payload() {
    let mut timers = Timers::new();
    let id = timers.arm_interval(5, 10, 0_u32).unwrap();
    timers.arm_at(7, 100);
    timers
        .advance_to(20, |fired| {
            if let Fired::Interval { payload, .. } = fired {
                *payload += 1;
            }
        })
        .unwrap();
    let listed: Vec<_> = timers
        .intervals()
        .map(|interval| {
            (
                interval.id,
                interval.next_deadline,
                interval.period,
                *interval.payload,
            )
        })
        .collect();
    assert_eq!(listed, [(id, 25, 10, 2)]);
}

#[test]
fn next_deadline_is_exact_and_none_when_nothing_is_armed() {
    let mut timers = Timers::new();
    assert_eq!(timers.next_deadline(), None);
    let far = timers.arm_at(Timers::<()>::HORIZON * 2, ());
    assert_eq!(timers.next_deadline(), Some(Timers::<()>::HORIZON * 2));
    let mid = timers.arm_at(100_000, ());
    let near = timers.arm_at(4_200, ());
    assert_eq!(timers.next_deadline(), Some(4_200));
    let _ = timers.cancel(near);
    assert_eq!(timers.next_deadline(), Some(100_000));
    let _ = timers.cancel(mid);
    let _ = timers.cancel(far);
    assert_eq!(timers.next_deadline(), None);
    advance(&mut timers, 50);
    timers.arm_at(20, ());
    assert_eq!(
        timers.next_deadline(),
        Some(20),
        "a past deadline means advance now"
    );
}

#[test]
fn mistakes_are_refused_without_changing_anything() {
    let mut timers = Timers::<()>::new();
    assert_eq!(timers.arm_interval(5, 0, ()), Err(Error::ZeroPeriod));
    timers.arm_at(30, ());
    advance(&mut timers, 20);
    assert_eq!(
        timers.advance_to(19, |_| unreachable!()),
        Err(Error::TimeWentBackwards {
            now: 20,
            requested: 19
        })
    );
    assert_eq!((timers.now(), timers.len()), (20, 1));
}

#[test]
fn ticks_saturate_at_max_tick() {
    let mut timers = Timers::starting_at(Timers::<u8>::MAX_TICK - 10);
    timers
        .arm_interval(Timers::<u8>::MAX_TICK - 4, 3, 1)
        .unwrap();
    timers.arm_at(u64::MAX, 2);
    let fired = advance(&mut timers, u64::MAX);
    let max = Timers::<u8>::MAX_TICK;
    assert_eq!(fired, [(max - 4, 1), (max - 1, 1)]);
    assert_eq!(timers.now(), max);
    assert_eq!(
        timers.len(),
        1,
        "the interval ended, the u64::MAX one-shot never fires"
    );
}

#[test]
fn an_entry_is_16_bytes_and_a_slot_with_a_u64_payload_32() {
    assert_eq!(size_of::<Entry>(), 16);
    assert_eq!(size_of::<Slot<u64>>(), 32);
}

#[test]
fn a_late_advance_follows_each_intervals_missed_tick_policy() {
    let mut timers = Timers::new();
    timers.arm_interval(10, 10, "burst").unwrap();
    timers
        .arm_interval_with(10, 10, MissedTicks::Skip, "skip")
        .unwrap();
    timers
        .arm_interval_with(10, 10, MissedTicks::Delay, "delay")
        .unwrap();
    // The driver wakes at 35 instead of 10: three periods of each are due.
    assert_eq!(
        advance(&mut timers, 35),
        [
            (10, "burst"),
            (10, "skip"),
            (10, "delay"),
            (20, "burst"),
            (30, "burst")
        ]
    );
    let next: Vec<(&str, u64)> = timers
        .intervals()
        .map(|interval| (*interval.payload, interval.next_deadline))
        .collect();
    assert_eq!(next, [("burst", 40), ("skip", 40), ("delay", 45)]);
    assert_eq!(
        advance(&mut timers, 45),
        [(40, "burst"), (40, "skip"), (45, "delay")]
    );
}

#[test]
fn remove_hands_the_payload_back_once() {
    let mut timers = Timers::new();
    let once = timers.arm_at(5, "once");
    let every = timers.arm_interval(5, 5, "every").unwrap();
    assert_eq!(timers.remove(once), Some("once"));
    assert_eq!(timers.remove(once), None);
    assert_eq!(timers.remove(every), Some("every"));
    assert_eq!(advance(&mut timers, 100), []);
    assert!(timers.is_empty());
}

#[test]
fn ids_round_trip_through_bits_below_the_reserved_values() {
    let mut timers = Timers::new();
    let id = timers.arm_at(1, ());
    assert_eq!(TimerId::from_bits(id.to_bits()), id);
    let largest = TimerId {
        index: NO_SLOT - 1,
        generation: u32::MAX,
    };
    assert_eq!(TimerId::from_bits(largest.to_bits()), largest);
    assert!(largest.to_bits() < u64::MAX - 2, "three values stay free");
}
