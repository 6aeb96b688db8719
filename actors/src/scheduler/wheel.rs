//! The wheel backend: where armed entries wait until their tick comes.
//!
//! Two backends with one API, picked by the cargo feature `mesocarp`:
//!
//! - `MesocarpWheel` (feature `mesocarp`, on by default, LGPL-2.1): mesocarp's
//!   hierarchical timing wheel `Clock<_, 64, 4>`, kept inside its narrow contract.
//! - `BTreeWheel` (always available, permissively licensed): a `BTreeMap` from tick to
//!   entries. It is also the reference the mesocarp backend is tested against.
//!
//! The backend API, in absolute ticks:
//!
//! - `new(start)`: an empty wheel whose first tick to hand out is `start`.
//! - `next_tick()`: the first tick not yet handed out by `take_due`.
//! - `first_insertable()`: `next_tick()`, or `next_tick() + 1` once `take_due` has handed
//!   out that tick (inserting for a tick already handed out is mesocarp trap 2).
//! - `insert(entry)`: accepts `first_insertable() <= deadline < next_tick() + HORIZON`
//!   and gives anything else back, untouched.
//! - `take_due(out)`: appends the entries of tick `next_tick()`, in no particular order.
//! - `advance(limit, overflow)`: after `take_due`, moves `next_tick()` forward by at least
//!   one and at most to `limit`, skipping only ticks that hold nothing. `overflow` receives
//!   entries the wheel could not keep (none, by construction; see `MesocarpWheel::advance`).
//! - `earliest(live)`: the earliest deadline of an entry for which `live` holds.
//! - `retain(keep)`: drops the entries for which `keep` is false.
//!
//! Neither backend ever holds a payload: an [`Entry`] is plain data, which is what makes
//! mesocarp's unconditional `unsafe impl Send/Sync for Clock` harmless here (trap 5).

/// Slots per level of the mesocarp wheel.
const SLOTS: usize = 64;
/// Levels of the mesocarp wheel.
const HEIGHT: usize = 4;

/// The first delta (deadline minus the wheel's next tick) that `Clock<_, 64, 4>::insert`
/// refuses: level `k` (0-based) holds deltas `sum(64^1..=64^k) .. sum(64^1..=64^(k+1))`,
/// so the wheel covers `64 + 64^2 + 64^3 + 64^4 = 17_043_520` ticks (about 4 h 44 min at
/// 1 ms per tick). Both backends use this horizon, so both builds take the same paths.
pub(crate) const HORIZON: u64 = {
    let mut sum = 0_u64;
    let mut power = 1_u64;
    let mut level = 0;
    while level < HEIGHT {
        power *= SLOTS as u64;
        sum += power;
        level += 1;
    }
    sum
};

/// One armed timer as the wheel sees it: when, and which slab slot with which generation.
///
/// 16 bytes. Ordered by deadline first, which is what the overflow heap needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Entry {
    /// Absolute tick at which the entry is due.
    pub(crate) deadline: u64,
    /// Index of the timer's slot in the slab.
    pub(crate) index: u32,
    /// Generation of that slot when the timer was armed; a mismatch means cancelled.
    pub(crate) generation: u32,
}

#[cfg(not(feature = "mesocarp"))]
pub(crate) use self::btree::BTreeWheel as Wheel;
#[cfg(feature = "mesocarp")]
pub(crate) use self::mesocarp_clock::MesocarpWheel as Wheel;

#[cfg(any(test, not(feature = "mesocarp")))]
mod btree;
#[cfg(feature = "mesocarp")]
mod mesocarp_clock;

#[cfg(test)]
mod tests {
    use std::{cmp::Reverse, collections::BinaryHeap};

    use super::{btree::BTreeWheel, Entry, Wheel, HORIZON};

    /// splitmix64: a tiny seeded generator, so failures replay.
    pub(super) fn next_random(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = *state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Runs a wheel until its next tick passes `until`, collecting what it hands out.
    macro_rules! run_until {
        ($wheel:expr, $until:expr, $out:expr) => {{
            let mut overflow = BinaryHeap::<Reverse<Entry>>::new();
            while $wheel.next_tick() <= $until {
                let tick = $wheel.next_tick();
                let start = $out.len();
                $wheel.take_due(&mut $out);
                assert!($out[start..].iter().all(|entry| entry.deadline == tick));
                $wheel.advance($until + 1, &mut overflow);
            }
            assert!(overflow.is_empty());
        }};
    }

    #[test]
    fn the_wheel_hands_out_what_the_btree_reference_does() {
        for seed in 0..8 {
            let mut random = seed;
            let mut wheel = Wheel::new(seed * 1_000_003);
            let mut reference = BTreeWheel::new(seed * 1_000_003);
            let mut index = 0;
            for _ in 0..2_000 {
                let now = wheel.next_tick();
                assert_eq!(now, reference.next_tick());
                let spread = [64, 4_200, 270_000, HORIZON][(next_random(&mut random) % 4) as usize];
                for _ in 0..next_random(&mut random) % 8 {
                    let entry = Entry {
                        deadline: now + next_random(&mut random) % spread,
                        index,
                        generation: 0,
                    };
                    index += 1;
                    assert_eq!(wheel.insert(entry), Ok(()));
                    assert_eq!(reference.insert(entry), Ok(()));
                }
                let far = Entry {
                    deadline: now + HORIZON,
                    index,
                    generation: 0,
                };
                assert_eq!(wheel.insert(far), Err(far));
                assert_eq!(reference.insert(far), Err(far));
                assert_eq!(wheel.earliest(|_| true), reference.earliest(|_| true));
                let odd = |entry: &Entry| entry.index % 2 == 1;
                assert_eq!(wheel.earliest(odd), reference.earliest(odd));
                if next_random(&mut random).is_multiple_of(50) {
                    wheel.retain(odd);
                    reference.retain(odd);
                }
                let until = now
                    + next_random(&mut random)
                        % [2, 70, 5_000, 300_000][(next_random(&mut random) % 4) as usize];
                let (mut handed, mut expected) = (Vec::new(), Vec::new());
                run_until!(wheel, until, handed);
                run_until!(reference, until, expected);
                handed.sort_unstable();
                expected.sort_unstable();
                assert_eq!(handed, expected, "seed {seed}");
            }
        }
    }
}
