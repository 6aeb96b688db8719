//! The launcher's pure logic, no async and no I/O: the router's composite device score
//! and its pick with round-robin ties, the fault budget, the utilisation window and the
//! data-stall meter. Every rule here is table-tested below.

use std::{collections::VecDeque, time::Duration, time::Instant};

/// The score of a device nothing is known about: exactly between best and worst.
pub const NEUTRAL_SCORE: f64 = 0.5;

/// Two scores closer than this are a tie (broken round-robin).
pub const SCORE_EPSILON: f64 = 1e-9;

/// What the router knows about one device, each signal in `0.0..=1.0`; `None` when the
/// device does not report it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeviceSignals {
    /// Busy fraction over the last sampling window (lower is better).
    pub utilisation: Option<f64>,
    /// Free fraction of the device's memory (higher is better).
    pub free_memory: Option<f64>,
    /// Batches held ahead over the prefetch depth (lower is better).
    pub queue_fill: Option<f64>,
}

/// The weight of each signal in the composite score. Only the weights of the signals a
/// device reports count: the score is normalised by their sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreWeights {
    /// Weight of `1 − utilisation`.
    pub utilisation: f64,
    /// Weight of the free-memory fraction.
    pub free_memory: f64,
    /// Weight of `1 − queue_fill`.
    pub queue_depth: f64,
}

impl Default for ScoreWeights {
    /// Utilisation and queue depth count twice as much as free memory: on a CPU device
    /// memory is rarely the constraint, and an idle device with an empty queue is what a
    /// batch wants.
    fn default() -> Self {
        ScoreWeights {
            utilisation: 2.0,
            free_memory: 1.0,
            queue_depth: 2.0,
        }
    }
}

/// The composite score of a device, in `0.0..=1.0`, higher is better.
///
/// Each reported signal becomes a "goodness" in `0..=1` (`1 − utilisation`, the free
/// fraction, `1 − queue_fill`; inputs are clamped), and the score is their weighted mean
/// over the signals present. With no signal, or only zero weights, it is
/// [`NEUTRAL_SCORE`].
pub fn score(signals: &DeviceSignals, weights: &ScoreWeights) -> f64 {
    let goodness = [
        (
            signals.utilisation.map(|u| 1.0 - clamp01(u)),
            weights.utilisation,
        ),
        (signals.free_memory.map(clamp01), weights.free_memory),
        (
            signals.queue_fill.map(|q| 1.0 - clamp01(q)),
            weights.queue_depth,
        ),
    ];
    let (mut sum, mut weight) = (0.0, 0.0);
    for (value, w) in goodness {
        if let Some(value) = value {
            let w = w.max(0.0);
            sum += w * value;
            weight += w;
        }
    }
    if weight > 0.0 {
        sum / weight
    } else {
        NEUTRAL_SCORE
    }
}

fn clamp01(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

/// Picks the best of `scores` (`None`: not a candidate), breaking ties round-robin: among
/// equal best scores, the first at or after `cursor` (wrapping) wins. `None` when there
/// is no candidate.
pub fn pick(scores: &[Option<f64>], cursor: usize) -> Option<usize> {
    let len = scores.len();
    let mut best: Option<(usize, f64)> = None;
    for offset in 0..len {
        let index = (cursor + offset) % len;
        if let Some(score) = scores[index] {
            // Strictly better only: an equal score later in the cycle loses the tie.
            let better = match best {
                None => true,
                Some((_, b)) => score > b + SCORE_EPSILON,
            };
            if better {
                best = Some((index, score));
            }
        }
    }
    best.map(|(index, _)| index)
}

/// "N faults within T take the device out of rotation": the budget's two numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultBudget {
    /// Faults within `window` that take the device out (at least 1).
    pub faults: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for FaultBudget {
    /// Three faults within ten seconds.
    fn default() -> Self {
        FaultBudget {
            faults: 3,
            window: Duration::from_secs(10),
        }
    }
}

/// The faults seen inside the budget's sliding window.
#[derive(Debug, Clone)]
pub struct FaultWindow {
    budget: FaultBudget,
    recent: VecDeque<Instant>,
}

impl FaultWindow {
    /// An empty window for `budget`.
    pub fn new(budget: FaultBudget) -> Self {
        FaultWindow {
            budget,
            recent: VecDeque::new(),
        }
    }

    /// Records a fault at `now`; `true` when it spends the budget (the `faults`-th fault
    /// within `window`), i.e. the device should leave the rotation.
    pub fn record(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.budget.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        self.recent.len() >= self.budget.faults.max(1) as usize
    }

    /// Faults inside the window as of the last [`record`](Self::record).
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Whether no fault is inside the window.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// Forgets every fault (the device came back).
    pub fn clear(&mut self) {
        self.recent.clear();
    }

    /// The budget.
    pub fn budget(&self) -> FaultBudget {
        self.budget
    }
}

/// Busy time over a sampling window: a device's utilisation.
///
/// The value reported is the last *complete* window's busy fraction (or the current
/// window's so far, before one completed); a window that ends with no work reports 0, so
/// an idle device never keeps a stale high value.
#[derive(Debug, Clone)]
pub struct BusyWindow {
    length: Duration,
    start: Instant,
    busy: Duration,
    last: Option<f64>,
}

impl BusyWindow {
    /// A window of `length` starting at `now`.
    pub fn new(length: Duration, now: Instant) -> Self {
        BusyWindow {
            length: length.max(Duration::from_micros(1)),
            start: now,
            busy: Duration::ZERO,
            last: None,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= self.length {
            // Several windows may have passed: the busy time belongs to the whole span.
            self.last = Some(ratio(self.busy, elapsed));
            self.start = now;
            self.busy = Duration::ZERO;
        }
    }

    /// Adds `busy` time of work that ended at `now`.
    pub fn record(&mut self, busy: Duration, now: Instant) {
        self.roll(now);
        self.busy += busy;
    }

    /// The utilisation as of `now`, `0.0..=1.0`; `None` before any time has passed.
    pub fn utilisation(&mut self, now: Instant) -> Option<f64> {
        self.roll(now);
        self.last.or_else(|| {
            let elapsed = now.saturating_duration_since(self.start);
            (!elapsed.is_zero()).then(|| ratio(self.busy, elapsed))
        })
    }
}

fn ratio(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        (part.as_secs_f64() / whole.as_secs_f64()).clamp(0.0, 1.0)
    }
}

/// The data-stall meter: how much of a launcher's time went to waiting for input.
///
/// Counting starts at the first batch (start-up is not a stall). Each gap between the end
/// of one batch and the start of the next is stall time; the ratio is stall time over the
/// time from the first batch's start to the last batch's end, so the idle tail after the
/// last batch (a drained pipeline) does not count.
#[derive(Debug, Clone, Default)]
pub struct StallMeter {
    first_start: Option<Instant>,
    last_end: Option<Instant>,
    stalled: Duration,
}

impl StallMeter {
    /// A batch started at `now`.
    pub fn batch_started(&mut self, now: Instant) {
        if self.first_start.is_none() {
            self.first_start = Some(now);
        }
        if let Some(end) = self.last_end {
            self.stalled += now.saturating_duration_since(end);
        }
    }

    /// The batch ended at `now`.
    pub fn batch_ended(&mut self, now: Instant) {
        self.last_end = Some(now);
    }

    /// Time spent waiting for input so far.
    pub fn stalled(&self) -> Duration {
        self.stalled
    }

    /// Stall time over active time, `0.0..=1.0` (0 before a batch finished).
    pub fn ratio(&self) -> f64 {
        match (self.first_start, self.last_end) {
            (Some(start), Some(end)) => ratio(self.stalled, end.saturating_duration_since(start)),
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: ScoreWeights = ScoreWeights {
        utilisation: 1.0,
        free_memory: 1.0,
        queue_depth: 1.0,
    };

    fn signals(u: Option<f64>, m: Option<f64>, q: Option<f64>) -> DeviceSignals {
        DeviceSignals {
            utilisation: u,
            free_memory: m,
            queue_fill: q,
        }
    }

    #[test]
    fn score_table() {
        let heavy = ScoreWeights {
            utilisation: 3.0,
            free_memory: 1.0,
            queue_depth: 0.0,
        };
        let table: [(&str, DeviceSignals, ScoreWeights, f64); 10] = [
            (
                "nothing known is neutral",
                signals(None, None, None),
                W,
                0.5,
            ),
            (
                "idle, empty, all free",
                signals(Some(0.0), Some(1.0), Some(0.0)),
                W,
                1.0,
            ),
            (
                "saturated, full, no memory",
                signals(Some(1.0), Some(0.0), Some(1.0)),
                W,
                0.0,
            ),
            (
                "only utilisation present",
                signals(Some(0.25), None, None),
                W,
                0.75,
            ),
            (
                "absent signals do not dilute",
                signals(Some(0.5), None, Some(0.0)),
                W,
                0.75,
            ),
            (
                "weights normalised by present",
                signals(Some(0.0), Some(0.0), None),
                heavy,
                0.75,
            ),
            (
                "zero-weight signal ignored",
                signals(None, None, Some(1.0)),
                heavy,
                0.5,
            ),
            (
                "out-of-range input clamped",
                signals(Some(7.0), Some(-1.0), None),
                W,
                0.0,
            ),
            (
                "NaN counts as worst goodness",
                signals(None, Some(f64::NAN), None),
                W,
                0.0,
            ),
            (
                "negative weight counts as zero",
                signals(Some(1.0), Some(1.0), None),
                ScoreWeights {
                    utilisation: -5.0,
                    ..W
                },
                1.0,
            ),
        ];
        for (case, signals, weights, expected) in table {
            let got = score(&signals, &weights);
            assert!(
                (got - expected).abs() < 1e-12,
                "{case}: {got} != {expected}"
            );
        }
    }

    #[test]
    fn pick_table() {
        type Case = (&'static str, Vec<Option<f64>>, usize, Option<usize>);
        let table: [Case; 8] = [
            ("no devices", vec![], 0, None),
            ("none in rotation", vec![None, None], 0, None),
            (
                "best wins",
                vec![Some(0.2), Some(0.9), Some(0.5)],
                0,
                Some(1),
            ),
            (
                "best wins whatever the cursor",
                vec![Some(0.2), Some(0.9)],
                1,
                Some(1),
            ),
            (
                "tie from cursor 0",
                vec![Some(0.5), Some(0.5), Some(0.5)],
                0,
                Some(0),
            ),
            (
                "tie from cursor 2",
                vec![Some(0.5), Some(0.5), Some(0.5)],
                2,
                Some(2),
            ),
            (
                "tie wraps and skips gaps",
                vec![Some(0.5), None, Some(0.5)],
                1,
                Some(2),
            ),
            (
                "cursor past the end wraps",
                vec![Some(0.5), Some(0.5)],
                5,
                Some(1),
            ),
        ];
        for (case, scores, cursor, expected) in table {
            assert_eq!(pick(&scores, cursor), expected, "{case}");
        }
    }

    #[test]
    fn equal_devices_take_turns() {
        let scores = [Some(NEUTRAL_SCORE); 3];
        let mut cursor = 0;
        let mut order = Vec::new();
        for _ in 0..6 {
            let index = pick(&scores, cursor).expect("a candidate");
            order.push(index);
            cursor = index + 1;
        }
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn fault_budget_table() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let budget = FaultBudget {
            faults: 3,
            window: Duration::from_millis(100),
        };
        // (fault times in ms, whether the last one spends the budget)
        let table: [(&[u64], bool); 5] = [
            (&[0], false),
            (&[0, 10], false),
            (&[0, 10, 20], true),
            (&[0, 10, 150], false),
            (&[0, 100, 150, 199], true),
        ];
        for (times, expected) in table {
            let mut window = FaultWindow::new(budget);
            let mut spent = false;
            for &t in times {
                spent = window.record(ms(t));
            }
            assert_eq!(spent, expected, "faults at {times:?}");
        }
        let mut one = FaultWindow::new(FaultBudget {
            faults: 0,
            window: Duration::from_secs(1),
        });
        assert!(one.record(t0), "a budget of 0 acts as 1");
        one.clear();
        assert!(one.is_empty());
    }

    #[test]
    fn busy_window_reports_the_last_complete_window_and_decays_to_zero() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut window = BusyWindow::new(Duration::from_millis(100), t0);
        assert_eq!(window.utilisation(t0), None);
        window.record(Duration::from_millis(25), ms(50));
        let partial = window.utilisation(ms(50)).unwrap();
        assert!((partial - 0.5).abs() < 1e-9, "partial window: {partial}");
        window.record(Duration::from_millis(25), ms(99));
        let full = window.utilisation(ms(100)).unwrap();
        assert!((full - 0.5).abs() < 1e-9, "complete window: {full}");
        // A window with no work at all reports zero, not the stale value.
        assert_eq!(window.utilisation(ms(250)), Some(0.0));
    }

    #[test]
    fn stall_meter_counts_gaps_between_batches_only() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut meter = StallMeter::default();
        assert_eq!(meter.ratio(), 0.0);
        // busy 0–30, wait 30–40, busy 40–90, wait 90–100, busy 100–100.
        for (start, end) in [(0, 30), (40, 90), (100, 100)] {
            meter.batch_started(ms(start));
            meter.batch_ended(ms(end));
        }
        assert_eq!(meter.stalled(), Duration::from_millis(20));
        assert!((meter.ratio() - 0.2).abs() < 1e-9, "{}", meter.ratio());
    }
}
