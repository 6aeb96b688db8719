//! The mesocarp backend: `Clock<_, 64, 4>` kept inside its contract.

use std::{cmp::Reverse, collections::BinaryHeap};

use mesocarp::{
    scheduling::{Clock, Scheduleable},
    MesoError,
};

use super::{Entry, HEIGHT, HORIZON, SLOTS};

/// An entry with its deadline made relative to the wheel's epoch, as `Clock` wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Relative(pub(super) Entry);

impl Scheduleable for Relative {
    fn time(&self) -> u64 {
        self.0.deadline
    }

    fn commit_time(&self) -> u64 {
        self.0.deadline
    }
}

/// How many slots after `from` (wrapping) the first non-empty one is, if any.
fn first_occupied(slots: &[Vec<Relative>], from: usize) -> Option<usize> {
    let (before, after) = slots.split_at(from);
    let occupied = |slot: &Vec<Relative>| !slot.is_empty();
    match after.iter().position(occupied) {
        Some(ahead) => Some(ahead),
        None => before
            .iter()
            .position(occupied)
            .map(|ahead| after.len() + ahead),
    }
}

pub(super) type RawClock = Clock<Relative, SLOTS, HEIGHT>;

pub(super) fn fresh_clock() -> Box<RawClock> {
    match Clock::new() {
        Ok(clock) => Box::new(clock),
        Err(_) => unreachable!("Clock::new only fails for HEIGHT = 0"),
    }
}

/// mesocarp's `Clock<_, 64, 4>`, used only inside the contract it is correct in.
///
/// - The clock always starts at time 0; the absolute tick of clock time 0 is `epoch`,
///   kept here. `Clock::set_time` and `Clock::rollback` are never called (trap 3).
/// - Only deadlines in `first_insertable() .. next_tick() + HORIZON` reach
///   `Clock::insert` (traps 1 and 2); the caller keeps the rest (trap 4).
/// - `Err(NoItems)` from `Clock::tick` is an empty tick, not a failure (trap 6).
#[derive(Debug)]
pub(crate) struct MesocarpWheel {
    clock: Box<RawClock>,
    epoch: u64,
    stored: usize,
    taken: bool,
    /// Handed to `Clock::increment`, which pushes what a rotation cannot re-insert.
    spill: BinaryHeap<Reverse<Relative>>,
}

impl MesocarpWheel {
    pub(crate) fn new(start: u64) -> Self {
        Self {
            clock: fresh_clock(),
            epoch: start,
            stored: 0,
            taken: false,
            spill: BinaryHeap::new(),
        }
    }

    pub(crate) fn next_tick(&self) -> u64 {
        self.epoch + self.clock.time
    }

    pub(crate) fn first_insertable(&self) -> u64 {
        self.next_tick() + u64::from(self.taken)
    }

    pub(crate) fn insert(&mut self, entry: Entry) -> Result<(), Entry> {
        if entry.deadline < self.first_insertable() || entry.deadline - self.next_tick() >= HORIZON
        {
            return Err(entry);
        }
        let relative = Relative(Entry {
            deadline: entry.deadline - self.epoch,
            ..entry
        });
        match self.clock.insert(relative) {
            Ok(()) => {
                self.stored += 1;
                Ok(())
            }
            Err(_) => Err(entry),
        }
    }

    pub(crate) fn take_due(&mut self, out: &mut Vec<Entry>) {
        debug_assert!(!self.taken, "take_due twice for one tick");
        self.taken = true;
        let tick = self.next_tick();
        match self.clock.tick() {
            Ok(events) => {
                self.stored -= events.len();
                for Relative(relative) in events {
                    let entry = Entry {
                        deadline: relative.deadline + self.epoch,
                        ..relative
                    };
                    // Never early: an entry for a later tick would go back in.
                    debug_assert_eq!(entry.deadline, tick, "wheel slot holds another tick");
                    if entry.deadline > tick && self.insert(entry).is_ok() {
                        continue;
                    }
                    out.push(entry);
                }
            }
            // Trap 6: an empty slot is the common case, not a failure.
            Err(MesoError::NoItems) => {}
            // Trap 2 is the only way to get `TimeTravel` (and lose the slot); the
            // `taken` flag keeps every insert off a tick that was handed out.
            Err(error) => debug_assert!(false, "mesocarp Clock::tick failed: {error}"),
        }
    }

    /// Moves to the next tick that can hold something, or to `limit`.
    ///
    /// When nothing is stored, the clock is replaced by a fresh one whose time 0 is
    /// `limit` (the epoch moves; the clock is never `set_time`). Otherwise the ticks
    /// that calling `Clock::increment` one by one would pass without touching a
    /// non-empty slot are skipped by writing the clock's public cursor fields to the
    /// values those increments would leave (`current_idxs[k] = (time / 64^k) % 64`,
    /// which holds because the clock starts at 0), then the last step is a real
    /// `increment`, so any rotation due at the landing tick runs as usual.
    pub(crate) fn advance(&mut self, limit: u64, overflow: &mut BinaryHeap<Reverse<Entry>>) {
        debug_assert!(self.taken, "advance before take_due would skip a tick");
        debug_assert!(limit > self.next_tick(), "advance needs a later limit");
        self.taken = false;
        if self.stored == 0 {
            if self.clock.time != 0 {
                self.clock = fresh_clock();
            }
            self.epoch = limit;
            return;
        }
        let time = self.clock.time;
        let target = (limit - self.epoch).min(self.next_event(time));
        if target > time + 1 {
            let before = target - 1;
            self.clock.time = before;
            let mut period = 1_u64;
            for index in &mut self.clock.current_idxs {
                *index = ((before / period) % SLOTS as u64) as usize;
                period *= SLOTS as u64;
            }
        }
        self.clock.increment(&mut self.spill);
        // A rotation re-inserts an entry at most 2 * 64^3 + 4160 ticks ahead, well
        // inside the horizon, so this stays empty; should it not, the caller's overflow
        // map keeps the entries (the clock never drains its heap: trap 4).
        for Reverse(Relative(relative)) in self.spill.drain() {
            self.stored -= 1;
            overflow.push(Reverse(Entry {
                deadline: relative.deadline + self.epoch,
                ..relative
            }));
        }
    }

    /// The first clock time after `time` at which a non-empty slot is ticked or
    /// rotated, or `u64::MAX` when there is none.
    fn next_event(&self, time: u64) -> u64 {
        let wheels = &self.clock.wheels;
        let cursors = &self.clock.current_idxs;
        // Level 0's current slot was just handed out, so the scan starts one past it.
        let mut best = match first_occupied(&wheels[0], (cursors[0] + 1) % SLOTS) {
            Some(ahead) => time + 1 + ahead as u64,
            None => u64::MAX,
        };
        let mut period = 1_u64;
        for level in 1..HEIGHT {
            period *= SLOTS as u64;
            let first_rotation = (time / period + 1) * period;
            if first_rotation >= best {
                break;
            }
            if let Some(ahead) = first_occupied(&wheels[level], cursors[level]) {
                best = best.min(first_rotation + ahead as u64 * period);
            }
        }
        best
    }

    /// The earliest deadline among entries for which `live` holds.
    ///
    /// Every entry in a slot is due no earlier than the time that slot is ticked (level
    /// 0) or rotated (levels 1..), and those times grow slot by slot from the cursor, so
    /// each level is scanned only until its slots start after the best deadline found.
    pub(crate) fn earliest(&self, live: impl Fn(&Entry) -> bool) -> Option<u64> {
        let time = self.clock.time;
        let mut best: Option<u64> = None;
        let mut period = 1_u64;
        for level in 0..HEIGHT {
            let first_drain = if level == 0 {
                time
            } else {
                period *= SLOTS as u64;
                (time / period + 1) * period
            };
            for ahead in 0..SLOTS {
                let drain = first_drain + ahead as u64 * period;
                if best.is_some_and(|best| best <= drain) {
                    break;
                }
                let slot =
                    &self.clock.wheels[level][(self.clock.current_idxs[level] + ahead) % SLOTS];
                for Relative(relative) in slot {
                    let entry = Entry {
                        deadline: relative.deadline + self.epoch,
                        ..*relative
                    };
                    if live(&entry) && best.is_none_or(|best| entry.deadline < best) {
                        best = Some(entry.deadline);
                    }
                }
            }
        }
        best
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        let epoch = self.epoch;
        let mut stored = 0;
        for slot in self.clock.wheels.iter_mut().flatten() {
            slot.retain(|Relative(relative)| {
                keep(&Entry {
                    deadline: relative.deadline + epoch,
                    ..*relative
                })
            });
            stored += slot.len();
        }
        self.stored = stored;
    }
}

#[cfg(test)]
mod tests {
    //! The measured traps of mesocarp 0.12's `Clock`, shown on the raw clock (so a new
    //! mesocarp release that changes them is noticed), and the fast-forward checked
    //! against plain stepping.

    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::*;
    use crate::scheduler::wheel::tests::next_random;

    fn relative(deadline: u64, index: u32) -> Relative {
        Relative(Entry {
            deadline,
            index,
            generation: 0,
        })
    }

    /// Steps a raw clock the documented way until its time is `until`, returning events.
    fn step_raw<const S: usize, const H: usize>(
        clock: &mut Clock<Relative, S, H>,
        until: u64,
    ) -> Vec<(u64, Relative)> {
        let mut heap = BinaryHeap::new();
        let mut fired = Vec::new();
        while clock.time < until {
            if let Ok(events) = clock.tick() {
                fired.extend(events.into_iter().map(|event| (clock.time, event)));
            }
            clock.increment(&mut heap);
        }
        fired
    }

    #[test]
    fn mesocarp_trap_1_raw_insert_before_the_clock_underflows() {
        let mut clock = fresh_clock();
        step_raw(&mut clock, 10);
        let result = catch_unwind(AssertUnwindSafe(|| clock.insert(relative(5, 0))));
        if cfg!(debug_assertions) {
            assert!(result.is_err(), "debug builds panic on `time - self.time`");
        } else {
            assert!(
                matches!(result, Ok(Err(_))),
                "release builds call it beyond the horizon"
            );
        }
    }

    #[test]
    fn mesocarp_trap_2_raw_insert_after_tick_loses_the_slot() {
        let mut clock = fresh_clock();
        step_raw(&mut clock, 3);
        assert!(clock.tick().is_err()); // tick 3 handed out (empty)
        clock.insert(relative(3, 0)).unwrap(); // lands in the slot just emptied
        clock.insert(relative(67, 1)).unwrap(); // unrelated, same slot one round later
        let mut heap = BinaryHeap::new();
        clock.increment(&mut heap);
        let fired = step_raw(&mut clock, 67);
        assert!(fired.is_empty());
        assert!(matches!(clock.tick(), Err(MesoError::TimeTravel)));
        assert!(
            clock.wheels.iter().flatten().all(Vec::is_empty),
            "both events are gone"
        );
    }

    #[test]
    fn mesocarp_trap_3_raw_unaligned_set_time_never_fires_far_events() {
        let mut clock = fresh_clock();
        clock.set_time(100);
        clock.insert(relative(100 + 70, 0)).unwrap();
        clock.insert(relative(100 + 10, 1)).unwrap();
        let fired = step_raw(&mut clock, 100 + 5_000);
        assert_eq!(
            fired,
            [(110, relative(110, 1))],
            "the event 70 ticks away never fires"
        );
    }

    #[test]
    fn mesocarp_trap_4_raw_overflow_heap_is_never_drained() {
        // A small clock (horizon 4 + 16 = 20) shows what happens past 64 + ... + 64^4.
        let mut clock = Clock::<Relative, 4, 2>::new().unwrap();
        let far = relative(25, 0);
        assert_eq!(clock.insert(far), Err(far));
        let mut heap = BinaryHeap::from([std::cmp::Reverse(far)]);
        for _ in 0..200 {
            assert!(clock.tick().is_err());
            clock.increment(&mut heap);
        }
        assert_eq!(heap.len(), 1, "the clock never takes it back");
    }

    #[test]
    fn mesocarp_trap_5_raw_clock_is_send_whatever_it_holds() {
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        struct NotSend(std::rc::Rc<u64>);
        impl Scheduleable for NotSend {
            fn time(&self) -> u64 {
                *self.0
            }
            fn commit_time(&self) -> u64 {
                *self.0
            }
        }
        fn require_send_sync<S: Send + Sync>() {}
        require_send_sync::<Clock<NotSend, 64, 4>>();
    }

    #[test]
    fn mesocarp_trap_6_raw_empty_tick_is_no_items() {
        let mut clock = fresh_clock();
        assert!(matches!(clock.tick(), Err(MesoError::NoItems)));
    }

    /// The fast-forward in `MesocarpWheel::advance` writes `Clock::time` and
    /// `Clock::current_idxs` itself, assuming 4 levels of 64 slots whose cursors are the
    /// base-64 digits of the time. That is mesocarp 0.12.2's layout (pinned exactly in
    /// the workspace `Cargo.toml`); this test is the alarm if it ever changes.
    #[test]
    fn mesocarp_layout_assumption_cursors_are_the_base_64_digits_of_the_time() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .expect("the workspace Cargo.lock");
        assert!(
            lock.contains("name = \"mesocarp\"\nversion = \"0.12.2\""),
            "mesocarp is no longer 0.12.2: MesocarpWheel::advance writes the clock's cursor \
             fields by hand and must be re-checked against the new layout before upgrading"
        );
        let mut clock = fresh_clock();
        assert_eq!(
            clock.wheels.len(),
            HEIGHT,
            "mesocarp Clock layout changed: levels"
        );
        assert!(
            clock.wheels.iter().all(|level| level.len() == SLOTS),
            "mesocarp Clock layout changed: slots per level"
        );
        let mut heap = BinaryHeap::new();
        // Past the first level-2 rotation, and a few level-3 boundaries in digits.
        let steps = 2 * 64 * 64 * 64 + 64 * 64 + 7;
        for _ in 0..steps {
            let _ = clock.tick();
            clock.increment(&mut heap);
            let time = clock.time;
            let mut period = 1_u64;
            for (level, cursor) in clock.current_idxs.iter().enumerate() {
                assert_eq!(
                    *cursor as u64,
                    (time / period) % SLOTS as u64,
                    "mesocarp Clock layout changed: the cursor of level {level} at time {time} \
                     is not digit {level} of the time in base 64, so MesocarpWheel::advance \
                     would corrupt the clock"
                );
                period *= SLOTS as u64;
            }
        }
        // And an entry lands where the level arithmetic says: delta 64 is level 1.
        clock.insert(relative(clock.time + 64, 0)).unwrap();
        assert!(
            clock.wheels[0].iter().all(Vec::is_empty)
                && clock.wheels[1].iter().any(|s| !s.is_empty()),
            "mesocarp Clock layout changed: level boundaries"
        );
    }

    #[test]
    fn fast_forward_leaves_the_clock_as_plain_stepping_would() {
        for seed in 0..8 {
            let mut random = seed;
            let mut wheel = MesocarpWheel::new(0);
            let mut raw = fresh_clock();
            let mut overflow = BinaryHeap::new();
            let mut index = 0;
            for _ in 0..200 {
                let now = wheel.next_tick();
                assert_eq!(now, raw.time);
                for _ in 0..next_random(&mut random) % 4 {
                    let spread =
                        [64, 4_200, 270_000, HORIZON][(next_random(&mut random) % 4) as usize];
                    let entry = Entry {
                        deadline: now + next_random(&mut random) % spread,
                        index,
                        generation: 0,
                    };
                    index += 1;
                    wheel.insert(entry).unwrap();
                    raw.insert(Relative(entry)).unwrap();
                }
                let until = now
                    + 1
                    + next_random(&mut random)
                        % [3, 100, 5_000, 70_000][(next_random(&mut random) % 4) as usize];
                let mut handed = Vec::new();
                while wheel.next_tick() < until {
                    let tick = wheel.next_tick();
                    let start = handed.len();
                    wheel.take_due(&mut handed);
                    assert!(handed[start..].iter().all(|entry| entry.deadline == tick));
                    wheel.advance(until, &mut overflow);
                }
                let stepped: Vec<Entry> = step_raw(&mut raw, until)
                    .into_iter()
                    .map(|(_, Relative(entry))| entry)
                    .collect();
                assert_eq!(handed, stepped, "seed {seed}");
                assert_eq!(wheel.next_tick(), raw.time);
                // Until the wheel first empties and moves its epoch, the clocks are twins.
                if wheel.epoch == 0 {
                    assert_eq!(wheel.clock.current_idxs, raw.current_idxs);
                    assert_eq!(wheel.clock.wheels, raw.wheels, "seed {seed}");
                }
                assert!(overflow.is_empty());
            }
        }
    }
}
