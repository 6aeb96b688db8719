//! `Timers` against a reference model, `BTreeMap<(deadline, sequence), timer>`.
//!
//! Random operations: arm one-shots (now, past, next tick, near, horizon − 1 / horizon /
//! horizon + 1, far beyond the horizon), arm intervals, cancel live and dead ids, and
//! advance by random amounts (0, a few ticks, a level-0 round, seconds, rarely several
//! horizons). After every advance the timers that fired — and their order — must equal
//! the model's; after every operation `len` and `next_deadline` must too.
//!
//! 20 seeds × 50 000 operations = 1 000 000 operations, split over four tests so they
//! run in parallel. CI runs debug builds; this finishes there in seconds, not minutes.
//! A failure names its seed and step, and replays exactly.

use std::collections::{BTreeMap, HashMap};

use vortex::actors::scheduler::{CancelOutcome, Fired, TimerId, Timers};

const OPERATIONS_PER_SEED: usize = 50_000;
const HORIZON: u64 = Timers::<u64>::HORIZON;
/// Few live intervals, so a long advance does not turn into millions of periods.
const MAX_INTERVALS: usize = 2;

/// splitmix64: tiny, seeded, good enough to pick operations.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: TimerId,
    tag: u64,
    period: Option<u64>,
}

/// What fired: deadline, tag (the payload), whether it was an interval, and the id.
type Expiry = (u64, u64, bool, TimerId);

/// The reference: every armed timer keyed by `(deadline, arm sequence)`.
#[derive(Default)]
struct Model {
    now: u64,
    next_sequence: u64,
    pending: BTreeMap<(u64, u64), Pending>,
    keys: HashMap<TimerId, (u64, u64)>,
}

impl Model {
    fn arm(&mut self, deadline: u64, timer: Pending) {
        let key = (deadline, self.next_sequence);
        self.next_sequence += 1;
        self.pending.insert(key, timer);
        self.keys.insert(timer.id, key);
    }

    fn cancel(&mut self, id: TimerId) -> CancelOutcome {
        match self.keys.remove(&id) {
            Some(key) => {
                self.pending.remove(&key);
                CancelOutcome::Cancelled
            }
            None => CancelOutcome::AlreadyFired,
        }
    }

    fn advance_to(&mut self, now: u64) -> Vec<Expiry> {
        let mut fired = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            let (deadline, sequence) = *entry.key();
            if deadline > now {
                break;
            }
            let timer = entry.remove();
            fired.push((deadline, timer.tag, timer.period.is_some(), timer.id));
            match timer.period {
                Some(period) => {
                    let key = (deadline + period, sequence);
                    self.pending.insert(key, timer);
                    self.keys.insert(timer.id, key);
                }
                None => {
                    self.keys.remove(&timer.id);
                }
            }
        }
        self.now = now;
        fired
    }

    fn intervals(&self) -> usize {
        self.pending
            .values()
            .filter(|timer| timer.period.is_some())
            .count()
    }

    fn next_deadline(&self) -> Option<u64> {
        self.pending.keys().next().map(|&(deadline, _)| deadline)
    }
}

/// A deadline for a one-shot, spread over every region the wheel treats differently.
fn pick_deadline(random: &mut Random, now: u64) -> u64 {
    let next_tick = now + 1;
    match random.below(16) {
        0 => now,
        1 => now - random.below(2_000).min(now),
        2 => next_tick,
        3 => next_tick + random.below(64),
        4 => next_tick + 64 * random.below(70),
        5 => next_tick + random.below(5_000),
        6 => next_tick + random.below(300_000),
        7 => next_tick + HORIZON - 2 + random.below(4),
        8 => next_tick + HORIZON * (1 + random.below(3)) + random.below(100_000),
        _ => next_tick + random.below(20_000),
    }
}

fn pick_advance(random: &mut Random) -> u64 {
    match random.below(1_000) {
        0..=249 => 0,
        250..=599 => random.below(64),
        600..=959 => random.below(5_000),
        960..=997 => random.below(100_000),
        _ => HORIZON / 2 + random.below(2 * HORIZON),
    }
}

fn run_seed(seed: u64) {
    let mut random = Random(seed);
    let start = random.below(3) * random.below(1 << 40);
    let mut timers = Timers::starting_at(start);
    let mut model = Model {
        now: start,
        ..Model::default()
    };
    let mut issued: Vec<TimerId> = Vec::new();
    let mut intervals: Vec<TimerId> = Vec::new();
    for step in 0..OPERATIONS_PER_SEED {
        let context = format!("seed {seed}, step {step}");
        let now = model.now;
        match random.below(100) {
            0..=39 => {
                let deadline = pick_deadline(&mut random, now);
                let tag = step as u64;
                let id = timers.arm_at(deadline, tag);
                model.arm(
                    deadline,
                    Pending {
                        id,
                        tag,
                        period: None,
                    },
                );
                issued.push(id);
            }
            40..=42 => {
                if model.intervals() >= MAX_INTERVALS {
                    let oldest = intervals.remove(0);
                    assert_eq!(timers.cancel(oldest), model.cancel(oldest), "{context}");
                }
                let first = now + random.below(3_000) - random.below(1_000).min(now);
                let period = match random.below(4) {
                    0 => 64,
                    1 => 4_096,
                    _ => 50 + random.below(3_000),
                };
                let tag = step as u64;
                let id = timers
                    .arm_interval(first, period, tag)
                    .expect("non-zero period");
                model.arm(
                    first,
                    Pending {
                        id,
                        tag,
                        period: Some(period),
                    },
                );
                issued.push(id);
                intervals.push(id);
            }
            43..=64 if !issued.is_empty() => {
                // Recent ids are mostly live, old ones mostly fired or cancelled.
                let back = if random.below(2) == 0 {
                    random.below(64)
                } else {
                    random.next()
                };
                let id = issued[issued.len() - 1 - (back as usize % issued.len())];
                assert_eq!(timers.cancel(id), model.cancel(id), "{context}");
            }
            _ => {
                let amount = pick_advance(&mut random);
                if amount > HORIZON / 4 {
                    // Millions of periods would only slow the test down.
                    for id in intervals.drain(..) {
                        assert_eq!(timers.cancel(id), model.cancel(id), "{context}");
                    }
                }
                let target = now + amount;
                let mut fired: Vec<Expiry> = Vec::new();
                let count = timers
                    .advance_to(target, |expiry| {
                        let interval = expiry.is_interval();
                        let (id, deadline) = (expiry.id(), expiry.deadline());
                        let tag = match expiry {
                            Fired::Once { payload, .. } => payload,
                            Fired::Interval { payload, .. } => *payload,
                        };
                        fired.push((deadline, tag, interval, id));
                    })
                    .unwrap_or_else(|error| panic!("{context}: {error}"));
                let expected = model.advance_to(target);
                assert_eq!(count, fired.len(), "{context}");
                assert_eq!(fired, expected, "{context}: fired set or order differs");
                assert_eq!(timers.now(), target, "{context}");
            }
        }
        assert_eq!(timers.len(), model.keys.len(), "{context}");
        assert_eq!(timers.next_deadline(), model.next_deadline(), "{context}");
    }
    let live_intervals = timers.intervals().count();
    assert_eq!(live_intervals, model.intervals(), "seed {seed}");
}

fn run_seeds(seeds: std::ops::Range<u64>) {
    for seed in seeds {
        run_seed(seed);
    }
}

#[test]
fn model_seeds_0_to_4() {
    run_seeds(0..5);
}

#[test]
fn model_seeds_5_to_9() {
    run_seeds(5..10);
}

#[test]
fn model_seeds_10_to_14() {
    run_seeds(10..15);
}

#[test]
fn model_seeds_15_to_19() {
    run_seeds(15..20);
}
