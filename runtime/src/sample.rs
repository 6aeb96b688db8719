//! What an exporter reads from a running runtime, beyond [`StatusReport`]: the
//! distribution of handler time per batch, which registration a name belongs to, and how
//! many control commands were applied. The runtime only counts (atomics, one short lock
//! per control command); it knows nothing about Prometheus. See [`RuntimeObserver::samples`]
//! and [`RuntimeObserver::control_counts`].
//!
//! [`RuntimeObserver::samples`]: crate::RuntimeObserver::samples
//! [`RuntimeObserver::control_counts`]: crate::RuntimeObserver::control_counts

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::Duration,
};

use vortex_messages::StatusReport;

use crate::{registry::NameMap, sync::lock};

/// Upper bounds of the handler-time buckets, in nanoseconds: 10 µs to 10 s (the same
/// bounds as the telemetry crate's latency histograms, so buckets map one to one). A
/// last, unbounded bucket follows.
pub const HANDLER_TIME_BOUNDS_NANOS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

const BUCKETS: usize = HANDLER_TIME_BOUNDS_NANOS.len() + 1;

/// Lock-free per-batch handler-time buckets, written once per batch by the draining cell.
#[derive(Default)]
pub(crate) struct HandlerTimes {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl HandlerTimes {
    /// Records one batch drain that took `elapsed` in its handlers.
    pub(crate) fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // `le` is inclusive: a value equal to a bound belongs to that bucket.
        let index = HANDLER_TIME_BOUNDS_NANOS.partition_point(|bound| *bound < nanos);
        self.buckets[index].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HandlerTimesSnapshot {
        HandlerTimesSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_nanos: self.sum_nanos.load(Relaxed),
        }
    }
}

/// Batch drains counted per handler-time bucket (not cumulative: `buckets[i]` counts
/// drains in `(bound[i-1], bound[i]]`, the last one those above 10 s), and their total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerTimesSnapshot {
    /// Drains per bucket of [`HANDLER_TIME_BOUNDS_NANOS`], plus one unbounded bucket.
    pub buckets: [u64; BUCKETS],
    /// Handler time of all drains together, in nanoseconds.
    pub sum_nanos: u64,
}

impl HandlerTimesSnapshot {
    /// Batch drains recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// One actor's or pool's counters as an exporter samples them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorSample {
    /// The status (counters, state, depth; `detail` is empty: only the actor's own cell
    /// can call its `describe`, so ask `Control::Status` for it).
    pub status: StatusReport,
    /// A number unique to this registration of the name in this process: a name reused
    /// after `Stop` gets a new one, and its counters start again from zero.
    pub registration: u64,
    /// Handler time per batch drain (a batch is 1 to `batch_size` messages).
    pub handler_batches: HandlerTimesSnapshot,
}

/// How often one control command reached one actor, and with which outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlCount {
    /// The actor, pool or supervisor the command was addressed to (a registered name).
    pub actor: String,
    /// The command's name (`pause`, `scale`, …).
    pub command: &'static str,
    /// Whether the reply was `Ok`.
    pub succeeded: bool,
    /// How many times, since the runtime was built.
    pub count: u64,
}

/// The runtime's count of applied control commands, keyed by actor, then (command,
/// outcome). Only commands to registered names are counted; once more than
/// [`CONTROL_COUNT_NAMES`] names were seen, those no longer registered are dropped, so the
/// table stays bounded however many short-lived actors come and go.
#[derive(Default)]
pub(crate) struct ControlCounts {
    /// A hash map: every `Stop` of a short-lived actor lands here, so a lookup must not
    /// cost a walk of string comparisons.
    counts: Mutex<NameMap<Arc<str>, ActorCounts>>,
}

/// (command, succeeded, count) for one actor.
type CommandCount = (&'static str, bool, u64);

/// One actor's counts: the first kind of command inline (most actors get one kind, often
/// a single `Stop`), the others in a vector that allocates only when needed.
struct ActorCounts {
    first: CommandCount,
    more: Vec<CommandCount>,
}

impl ActorCounts {
    fn add(&mut self, command: &'static str, succeeded: bool) {
        let found = std::iter::once(&mut self.first)
            .chain(self.more.iter_mut())
            .find(|(name, outcome, _)| *name == command && *outcome == succeeded);
        match found {
            Some((_, _, count)) => *count += 1,
            None => self.more.push((command, succeeded, 1)),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &CommandCount> {
        std::iter::once(&self.first).chain(self.more.iter())
    }
}

/// Names the control-count table holds before it forgets unregistered ones.
pub(crate) const CONTROL_COUNT_NAMES: usize = 4096;

impl ControlCounts {
    /// Counts one command; `registered` says whether a name is still registered (asked
    /// only when the table is full).
    pub(crate) fn record(
        &self,
        actor: &Arc<str>,
        command: &'static str,
        succeeded: bool,
        registered: impl Fn(&str) -> bool,
    ) {
        let mut counts = lock(&self.counts);
        if let Some(entries) = counts.get_mut(actor) {
            entries.add(command, succeeded);
            return;
        }
        if counts.len() >= CONTROL_COUNT_NAMES {
            counts.retain(|name, _| registered(name));
        }
        let first = (command, succeeded, 1);
        let more = Vec::new();
        counts.insert(Arc::clone(actor), ActorCounts { first, more });
    }

    pub(crate) fn all(&self) -> Vec<ControlCount> {
        let counts = lock(&self.counts);
        let mut all: Vec<ControlCount> = counts
            .iter()
            .flat_map(|(actor, entries)| {
                entries
                    .iter()
                    .map(|(command, succeeded, count)| ControlCount {
                        actor: actor.to_string(),
                        command,
                        succeeded: *succeeded,
                        count: *count,
                    })
            })
            .collect();
        all.sort_by(|a, b| {
            (a.actor.as_str(), a.command, a.succeeded).cmp(&(
                b.actor.as_str(),
                b.command,
                b.succeeded,
            ))
        });
        all
    }
}

static REGISTRATIONS: AtomicU64 = AtomicU64::new(1);

/// A fresh registration number (see [`ActorSample::registration`]).
pub(crate) fn next_registration() -> u64 {
    REGISTRATIONS.fetch_add(1, Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_lands_in_the_bucket_whose_bound_is_the_first_at_or_above_it() {
        let times = HandlerTimes::default();
        for micros in [1, 10, 11, 30_000_000] {
            times.record(Duration::from_micros(micros));
        }
        let snapshot = times.snapshot();
        assert_eq!(snapshot.buckets[0], 2, "1 µs and exactly 10 µs");
        assert_eq!(snapshot.buckets[1], 1, "11 µs");
        assert_eq!(snapshot.buckets[BUCKETS - 1], 1, "30 s");
        assert_eq!(snapshot.count(), 4);
        assert_eq!(snapshot.sum_nanos, 30_000_022_000);
    }

    #[test]
    fn control_counts_are_kept_per_actor_command_and_outcome() {
        let counts = ControlCounts::default();
        let a: Arc<str> = Arc::from("a");
        counts.record(&a, "pause", true, |_| true);
        counts.record(&a, "pause", true, |_| true);
        counts.record(&a, "scale", false, |_| true);
        let all = counts.all();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].command, all[0].count), ("pause", 2));
        assert!(!all[1].succeeded);
    }

    #[test]
    fn control_counts_forget_unregistered_names_once_the_table_is_full() {
        let counts = ControlCounts::default();
        for n in 0..CONTROL_COUNT_NAMES + 10 {
            // Only "keep" stays registered; every other name came and went.
            let gone: Arc<str> = Arc::from(format!("gone-{n}"));
            counts.record(&gone, "stop", true, |name| name == "keep");
            if n == 0 {
                counts.record(&Arc::from("keep"), "pause", true, |_| true);
            }
        }
        let all = counts.all();
        assert!(all.len() <= CONTROL_COUNT_NAMES, "{} names kept", all.len());
        assert!(all.iter().any(|count| count.actor == "keep"));
    }
}
