//! The parallelism controller: preprocessor workers sized from backlog and per-batch
//! service time, within a CPU budget (tf.data's AUTOTUNE idea: as many busy workers as
//! the demand needs, never more than the cores of the pool's resource group).

use crate::autotuner::config::{Bounds, HysteresisSettings};
use crate::autotuner::hysteresis::{Direction, Hysteresis};
use crate::autotuner::observation::Observation;
use crate::autotuner::Proposal;

/// Spare capacity asked for on top of the measured demand.
const HEADROOM: f64 = 1.1;

/// Rounds the backlog should drain in.
const DRAIN_ROUNDS: f64 = 2.0;

/// Sizes the preprocessor pool. A pure function of the observation and its own state.
#[derive(Debug, Clone)]
pub struct ParallelismController {
    bounds: Bounds,
    hysteresis: Hysteresis,
}

impl ParallelismController {
    /// A controller within `bounds`, acting with `hysteresis`.
    pub fn new(bounds: Bounds, hysteresis: HysteresisSettings) -> Self {
        ParallelismController {
            bounds,
            hysteresis: Hysteresis::new(hysteresis),
        }
    }

    /// Forgets the evidence collected so far (someone else set the pool's size).
    pub fn reset(&mut self) {
        self.hysteresis.reset();
    }

    /// The workers wanted after this round, and why.
    pub fn decide(&mut self, observation: &Observation) -> Proposal {
        let current = observation.workers;
        let budget = self.bounds.max.min(observation.cpu_budget.max(1));
        let low = self.bounds.min.min(budget);
        if observation.preprocessed == 0 || observation.preprocess_micros <= 0.0 {
            self.hysteresis.observe(Direction::Hold);
            return Proposal::keep(current, "no batch preprocessed this round: keep".into());
        }
        let service = observation.preprocess_micros / 1e6;
        let round = observation.round_secs.max(1e-6);
        let demand = observation.arrived as f64 / round * service;
        let drain = observation.backlog as f64 * service / (round * DRAIN_ROUNDS);
        let needed = (demand * HEADROOM + drain).ceil().max(1.0);
        let desired = (needed.min(f64::from(u32::MAX)) as u32).clamp(low, budget);
        let why = format!(
            "demand {:.1} batches/s x {:.2} ms = {demand:.2} busy workers, backlog {} batches (+{drain:.2} to drain) -> {desired} within budget {budget}",
            observation.arrived as f64 / round,
            service * 1e3,
            observation.backlog,
        );
        let direction = match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        };
        if direction == Direction::Hold {
            self.hysteresis.observe(direction);
            return Proposal::keep(current, format!("{why}: keep {current}"));
        }
        if self.hysteresis.observe(direction) {
            let verb = if direction == Direction::Up {
                "up"
            } else {
                "down"
            };
            Proposal::change(
                current,
                desired,
                format!("{why}: {verb} {current}->{desired}"),
            )
        } else {
            let (seen, needed) = self.hysteresis.progress();
            Proposal::keep(
                current,
                format!("{why}: keep {current} (evidence {seen}/{needed} rounds)"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(workers: u32, arrived: u64, backlog: u64, micros: f64) -> Observation {
        Observation {
            round_secs: 1.0,
            workers,
            cpu_budget: 8,
            backlog,
            arrived,
            preprocessed: arrived,
            preprocess_micros: micros,
            ..Observation::default()
        }
    }

    #[test]
    fn decisions_and_reasons() {
        let hysteresis = HysteresisSettings {
            up_rounds: 1,
            down_rounds: 2,
        };
        let mut controller = ParallelismController::new(Bounds::new(1, 6), hysteresis);
        // (observation, workers after, words the reason contains)
        let table: Vec<(Observation, u32, &str)> = vec![
            // 100 batches/s x 10 ms = 1 busy worker (+10% headroom) -> 2: up at once.
            (observation(1, 100, 0, 10_000.0), 2, "up 1->2"),
            // A backlog of 100 batches at 10 ms drains over two rounds with 0.5 more.
            (observation(2, 100, 100, 10_000.0), 2, "keep 2"),
            // Demand far above the budget: capped by the bounds (6), not the cores (8).
            (observation(2, 1_000, 500, 10_000.0), 6, "within budget 6"),
            // Demand falls: down needs two rounds of evidence.
            (observation(6, 100, 0, 10_000.0), 6, "evidence 1/2"),
            (observation(6, 100, 0, 10_000.0), 2, "down 6->2"),
            // Nothing preprocessed: nothing learnt.
            (observation(2, 0, 0, 0.0), 2, "no batch preprocessed"),
        ];
        for (round, (observation, after, words)) in table.into_iter().enumerate() {
            let proposal = controller.decide(&observation);
            assert_eq!(proposal.to, after, "round {round}: {}", proposal.reason);
            assert!(
                proposal.reason.contains(words),
                "round {round}: `{}` lacks `{words}`",
                proposal.reason
            );
        }
    }

    #[test]
    fn the_cpu_budget_caps_the_pool() {
        let mut controller =
            ParallelismController::new(Bounds::new(1, 64), HysteresisSettings::default());
        let mut busy = observation(2, 10_000, 1_000, 10_000.0);
        busy.cpu_budget = 3;
        let proposal = controller.decide(&busy);
        assert_eq!(proposal.to, 3, "{}", proposal.reason);
        assert!(proposal.reason.contains("budget 3"));
    }
}
