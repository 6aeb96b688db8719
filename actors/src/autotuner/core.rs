//! The autotuner's core: both controllers, the holds a person's command puts on a knob,
//! pause, and the history of decisions. Pure: time comes in as a number, commands go out
//! as values; no clock, no I/O.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Write as _};

use vortex_messages::{Control, Origin};

use crate::autotuner::batch::BatchController;
use crate::autotuner::config::AutotunerSettings;
use crate::autotuner::observation::Observation;
use crate::autotuner::parallelism::ParallelismController;

/// A knob the autotuner turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Knob {
    /// Preprocessor workers (`Scale`).
    Workers,
    /// Items per batch (`SetBatchSize`).
    BatchSize,
    /// Batches a launcher holds ahead (`SetPrefetchDepth`).
    PrefetchDepth,
}

impl Knob {
    /// The knob's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Knob::Workers => "workers",
            Knob::BatchSize => "batch-size",
            Knob::PrefetchDepth => "prefetch-depth",
        }
    }

    /// The knob a command turns, with the value it asks for; `None` for other commands.
    pub fn of(command: &Control) -> Option<(Knob, u32)> {
        match command {
            Control::Scale { n } => Some((Knob::Workers, *n)),
            Control::SetBatchSize { items } => Some((Knob::BatchSize, *items)),
            Control::SetPrefetchDepth { depth } => Some((Knob::PrefetchDepth, *depth)),
            _ => None,
        }
    }

    /// The command that sets this knob to `value`.
    pub fn command(self, value: u32) -> Control {
        match self {
            Knob::Workers => Control::Scale { n: value },
            Knob::BatchSize => Control::SetBatchSize { items: value },
            Knob::PrefetchDepth => Control::SetPrefetchDepth { depth: value },
        }
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one controller wants for its knob after a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The value before.
    pub from: u32,
    /// The value wanted (equal to `from` to keep it).
    pub to: u32,
    /// Why, in words.
    pub reason: String,
}

impl Proposal {
    /// Keep `value`.
    pub fn keep(value: u32, reason: String) -> Self {
        Proposal {
            from: value,
            to: value,
            reason,
        }
    }

    /// Change `from` to `to`.
    pub fn change(from: u32, to: u32, reason: String) -> Self {
        Proposal { from, to, reason }
    }
}

/// One decision about one knob in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The round (1 = first).
    pub round: u64,
    /// The knob.
    pub knob: Knob,
    /// The value before.
    pub from: u32,
    /// The value decided.
    pub to: u32,
    /// Why.
    pub reason: String,
    /// Whether the knob is held by someone else's command (nothing was decided).
    pub held: bool,
}

impl Decision {
    /// Whether the decision changes the knob (a command has to go out).
    pub fn changes(&self) -> bool {
        !self.held && self.from != self.to
    }

    /// The command that carries the decision out, if it changes the knob.
    pub fn command(&self) -> Option<Control> {
        self.changes().then(|| self.knob.command(self.to))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.held {
            "held"
        } else if self.from == self.to {
            "kept"
        } else {
            "set"
        };
        write!(
            f,
            "#{} {} {verb} {}->{}: {}",
            self.round, self.knob, self.from, self.to, self.reason
        )
    }
}

/// A knob someone else turned, left alone until `until_micros`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The value they set.
    pub value: u32,
    /// Who.
    pub origin: Origin,
    /// When the hold ends (the core's clock, microseconds).
    pub until_micros: u64,
}

/// The autotuner's state and rules.
#[derive(Debug, Clone)]
pub struct AutotunerCore {
    settings: AutotunerSettings,
    parallelism: ParallelismController,
    batch: BatchController,
    holds: BTreeMap<Knob, Hold>,
    history: VecDeque<Decision>,
    round: u64,
    paused: bool,
}

impl AutotunerCore {
    /// A core with `settings`, the batch size starting at `batch`.
    pub fn new(settings: AutotunerSettings, batch: u32) -> Self {
        AutotunerCore {
            parallelism: ParallelismController::new(settings.bounds.workers, settings.hysteresis),
            batch: BatchController::new(&settings, batch),
            holds: BTreeMap::new(),
            history: VecDeque::new(),
            round: 0,
            paused: false,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AutotunerSettings {
        &self.settings
    }

    /// The batch size the core believes is set.
    pub fn batch_size(&self) -> u32 {
        self.batch.batch()
    }

    /// The batch controller (its OOM memory, for status and tests).
    pub fn batch_controller(&self) -> &BatchController {
        &self.batch
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.round
    }

    /// Freezes (`true`) or thaws the core: a paused core decides nothing.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Whether the core is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The knobs held now, at `now_micros`.
    pub fn holds(&self, now_micros: u64) -> impl Iterator<Item = (&Knob, &Hold)> {
        self.holds
            .iter()
            .filter(move |(_, hold)| hold.until_micros > now_micros)
    }

    /// Whether `knob` is held at `now_micros` (someone else turned it recently).
    pub fn is_held(&self, now_micros: u64, knob: Knob) -> bool {
        self.holds
            .get(&knob)
            .is_some_and(|hold| hold.until_micros > now_micros)
    }

    /// The most recent decisions, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Decision> {
        self.history.iter()
    }

    /// Someone else (`origin`) set `knob` to `value` at `now_micros`: adopt the value and
    /// leave the knob alone for the hold time. The autotuner's own commands are ignored.
    pub fn manual(&mut self, now_micros: u64, knob: Knob, value: u32, origin: Origin) {
        if origin.is_autotuner() {
            return;
        }
        let hold = u64::try_from(self.settings.hold().as_micros()).unwrap_or(u64::MAX);
        match knob {
            Knob::Workers => self.parallelism.reset(),
            Knob::BatchSize => self.batch.adopt(value),
            Knob::PrefetchDepth => {}
        }
        self.holds.insert(
            knob,
            Hold {
                value,
                origin,
                until_micros: now_micros.saturating_add(hold),
            },
        );
    }

    /// The command for `knob` was refused: the knob is still at `from`.
    pub fn refused(&mut self, knob: Knob, from: u32) {
        if knob == Knob::BatchSize {
            self.batch.adopt(from);
        }
    }

    /// Runs one round at `now_micros` on `observation`: one decision per knob (none while
    /// paused). The caller sends [`Decision::command`] for each that changes its knob.
    pub fn round(&mut self, now_micros: u64, observation: &Observation) -> Vec<Decision> {
        if self.paused {
            return Vec::new();
        }
        self.round += 1;
        self.holds.retain(|_, hold| hold.until_micros > now_micros);
        let mut decisions = Vec::with_capacity(2);
        let workers = match self.held(now_micros, Knob::Workers, observation.workers) {
            Some(decision) => decision,
            None => {
                let proposal = self.parallelism.decide(observation);
                self.decided(Knob::Workers, proposal)
            }
        };
        decisions.push(workers);
        let batch = match self.held(now_micros, Knob::BatchSize, self.batch.batch()) {
            Some(decision) => {
                if let Some(oom) = observation.out_of_memory {
                    self.batch.remember_oom(oom);
                }
                decision
            }
            None => {
                let proposal = self.batch.decide(observation);
                self.decided(Knob::BatchSize, proposal)
            }
        };
        decisions.push(batch);
        for decision in &decisions {
            if self.history.len() >= self.settings.history.max(1) {
                self.history.pop_front();
            }
            self.history.push_back(decision.clone());
        }
        decisions
    }

    fn decided(&self, knob: Knob, proposal: Proposal) -> Decision {
        Decision {
            round: self.round,
            knob,
            from: proposal.from,
            to: proposal.to,
            reason: proposal.reason,
            held: false,
        }
    }

    fn held(&self, now_micros: u64, knob: Knob, current: u32) -> Option<Decision> {
        let hold = self.holds.get(&knob)?;
        let left = (hold.until_micros - now_micros) as f64 / 1e6;
        Some(Decision {
            round: self.round,
            knob,
            from: current,
            to: current,
            reason: format!(
                "left alone: {} set {} {} ({left:.1} s of {:.1} s hold left)",
                hold.origin,
                knob,
                hold.value,
                self.settings.hold().as_secs_f64()
            ),
            held: true,
        })
    }

    /// The text `Status` shows: state, knobs, holds and the last decisions.
    pub fn describe(&self, now_micros: u64) -> String {
        let mut out = String::new();
        let state = if self.paused { "paused" } else { "tuning" };
        let _ = write!(
            out,
            "{state}; round {}; batch-size {}",
            self.round,
            self.batch.batch()
        );
        if let Some(limit) = self.batch.oom_limit() {
            let _ = write!(out, " (out of memory at {limit}: stays below)");
        }
        for (knob, hold) in self.holds(now_micros) {
            let left = (hold.until_micros - now_micros) as f64 / 1e6;
            let _ = write!(
                out,
                "; {knob} held ({} set {}, {left:.1} s left)",
                hold.origin, hold.value
            );
        }
        for decision in self.history.iter().rev() {
            let _ = write!(out, "\n  {decision}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(workers: u32, batch: u32) -> Observation {
        Observation {
            round_secs: 1.0,
            workers,
            cpu_budget: 4,
            backlog: 64,
            arrived: 200,
            preprocessed: 200,
            preprocess_micros: 10_000.0,
            batch_size: batch,
            batches: 100,
            items: 100 * u64::from(batch),
            p99_micros: 1_000,
            out_of_memory: None,
        }
    }

    #[test]
    fn a_manual_scale_holds_the_knob_and_says_so() {
        let settings = AutotunerSettings {
            hold_ms: 10_000,
            ..AutotunerSettings::default()
        };
        let mut core = AutotunerCore::new(settings, 8);
        let first = core.round(0, &busy(1, 8));
        assert_eq!(
            first[0].command(),
            Some(Control::Scale { n: 3 }),
            "{}",
            first[0]
        );
        core.manual(1_000_000, Knob::Workers, 2, Origin::operator("ada"));
        // Its own command does not hold anything.
        core.manual(
            1_000_000,
            Knob::BatchSize,
            10,
            Origin::autotuner("autotuner"),
        );
        let held = core.round(2_000_000, &busy(2, 10));
        assert!(held[0].held, "{}", held[0]);
        assert_eq!(held[0].command(), None);
        assert!(
            held[0]
                .reason
                .contains("operator ada set workers 2 (9.0 s of 10.0 s hold left)"),
            "{}",
            held[0].reason
        );
        assert!(!held[1].held);
        assert!(core
            .describe(2_000_000)
            .contains("workers held (operator ada set 2"));
        // After the hold the controller takes the knob again.
        let after = core.round(11_000_000, &busy(2, held[1].to));
        assert!(!after[0].held);
        assert_eq!(
            after[0].command(),
            Some(Control::Scale { n: 3 }),
            "{}",
            after[0]
        );
    }

    #[test]
    fn pause_freezes_the_core() {
        let mut core = AutotunerCore::new(AutotunerSettings::default(), 8);
        core.set_paused(true);
        assert!(core.round(0, &busy(1, 8)).is_empty());
        assert_eq!(core.rounds(), 0);
        assert!(core.describe(0).starts_with("paused"));
        core.set_paused(false);
        assert_eq!(core.round(0, &busy(1, 8)).len(), 2);
        assert_eq!(core.rounds(), 1);
    }

    #[test]
    fn history_keeps_the_last_decisions() {
        let settings = AutotunerSettings {
            history: 3,
            ..AutotunerSettings::default()
        };
        let mut core = AutotunerCore::new(settings, 8);
        for round in 0..5 {
            core.round(round, &busy(4, core.batch_size()));
        }
        let rounds: Vec<u64> = core.history().map(|decision| decision.round).collect();
        assert_eq!(rounds, vec![4, 5, 5]);
        let text = core.describe(0);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("  #5"), "{text}");
    }

    #[test]
    fn knobs_map_to_their_commands() {
        for knob in [Knob::Workers, Knob::BatchSize, Knob::PrefetchDepth] {
            assert_eq!(Knob::of(&knob.command(7)), Some((knob, 7)));
        }
        assert_eq!(Knob::of(&Control::Pause), None);
    }
}
