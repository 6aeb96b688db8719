//! Equal-terms A/B measurement shared by the pipeline-vs-hand-written benches.
//!
//! Two passes measure the same two variants: criterion (each variant's samples recorded
//! through `iter_custom`) and an interleaved pass (the variants alternate round by round,
//! so load from other processes hits both alike). A ratio is reported only when the two
//! passes agree within [`AGREEMENT`]; otherwise the bench says they disagree and reports
//! none.
#![allow(dead_code, unreachable_pub)]

use std::{
    cell::RefCell,
    rc::Rc,
    time::{Duration, Instant},
};

/// The largest relative difference between the two passes' ratios that still counts as
/// agreement.
pub const AGREEMENT: f64 = 0.20;

/// How long a round's setup waits, outside the timed region, so that the threads of the
/// variant that ran before (rayon workers spin a while after their last task, tokio
/// workers before they park) are asleep when the next round starts: no other pool spins
/// while a variant is timed.
pub const SETTLE: Duration = Duration::from_millis(10);

/// Waits [`SETTLE`] (call it in a round's setup, never inside the timed region).
pub fn settle() {
    std::thread::sleep(SETTLE);
}

/// Seconds per round recorded by criterion's `iter_custom` (warm-up included).
#[derive(Clone, Default)]
pub struct Recorder(Rc<RefCell<Vec<f64>>>);

impl Recorder {
    /// Times `iterations` rounds of `round` and records the mean per round.
    pub fn time<F: FnMut()>(&self, iterations: u64, mut round: F) -> Duration {
        let start = Instant::now();
        for _ in 0..iterations {
            round();
        }
        let elapsed = start.elapsed();
        self.0
            .borrow_mut()
            .push(elapsed.as_secs_f64() / iterations.max(1) as f64);
        elapsed
    }

    /// The median seconds per round of the later half of the samples (past warm-up).
    pub fn median(&self) -> f64 {
        let samples = self.0.borrow();
        median(samples[samples.len() / 2..].to_vec())
    }
}

/// The median of `values` (NaN when empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `a` and `b` alternately for `rounds` rounds each, each on a fresh input from
/// `setup` (made outside the timed region); median seconds per round of each.
pub fn interleaved<T>(
    rounds: usize,
    mut setup: impl FnMut() -> T,
    mut a: impl FnMut(T),
    mut b: impl FnMut(T),
) -> (f64, f64) {
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for offset in 0..2 {
            let variant = (round + offset) % 2;
            let input = setup();
            let start = Instant::now();
            if variant == 0 {
                a(input);
            } else {
                b(input);
            }
            samples[variant].push(start.elapsed().as_secs_f64());
        }
    }
    let [a, b] = samples.map(median);
    (a, b)
}

/// Times one round of `round` on an input made by `setup` outside the timed region, and
/// records it; for criterion's `iter_custom`, call it `iterations` times and sum.
pub fn timed_rounds<T>(
    recorder: &Recorder,
    iterations: u64,
    mut setup: impl FnMut() -> T,
    mut round: impl FnMut(T),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let mut input = Some(setup());
        total += recorder.time(1, || round(input.take().expect("one input per round")));
    }
    total
}

/// Prints both passes' ratios (`hand seconds / pipeline seconds`, so > 1 means the
/// pipeline is faster) and whether they agree; returns the agreed ratio.
pub fn report(
    label: &str,
    criterion_ratio: f64,
    interleaved_ratio: f64,
    goal: Option<f64>,
) -> Option<f64> {
    let spread =
        (criterion_ratio - interleaved_ratio).abs() / criterion_ratio.max(interleaved_ratio);
    if spread <= AGREEMENT {
        let verdict = match goal {
            Some(goal) if criterion_ratio.min(interleaved_ratio) >= goal => {
                format!("; goal >= {goal:.2}: met")
            }
            Some(goal) => format!("; goal >= {goal:.2}: NOT met"),
            None => String::new(),
        };
        println!(
            "{label}: ratio pipeline/hand criterion {criterion_ratio:.2}, interleaved {interleaved_ratio:.2} \
             (agree within {:.0}%){verdict}",
            AGREEMENT * 100.0
        );
        Some(criterion_ratio.min(interleaved_ratio))
    } else {
        println!(
            "{label}: passes DISAGREE (criterion {criterion_ratio:.2}, interleaved {interleaved_ratio:.2}, \
             spread {:.0}% > {:.0}%): no ratio reported",
            spread * 100.0,
            AGREEMENT * 100.0
        );
        None
    }
}

/// The first `threads` cores this process may run on (wrapping), for pinning both
/// variants the same way; `None` when they cannot be read, or when the environment sets
/// `VORTEX_BENCH_UNPINNED` (both variants then run unpinned, still on equal terms).
pub fn cores(threads: usize) -> Option<Vec<usize>> {
    if std::env::var_os("VORTEX_BENCH_UNPINNED").is_some() {
        return None;
    }
    let mut ids: Vec<usize> = core_affinity::get_core_ids()?
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return None;
    }
    Some((0..threads).map(|i| ids[i % ids.len()]).collect())
}
