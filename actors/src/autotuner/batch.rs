//! The batch-size controller: grow while p99 latency is under the headroom of the target
//! and throughput improves (fast at first, then additively), cut multiplicatively on a
//! target violation, and remember a batch size that ran the device out of memory.

use crate::autotuner::config::{AutotunerSettings, Bounds};
use crate::autotuner::hysteresis::{Direction, Hysteresis};
use crate::autotuner::observation::Observation;
use crate::autotuner::Proposal;

/// Relative throughput change that ends a plateau (the load changed: look again).
const REPLAN: f64 = 0.10;

/// Rounds a batch size that violated the latency target stays the ceiling.
const CEILING_ROUNDS: u32 = 100;

/// Growth per round before the first limit is met (25 %, like a slow start).
const FAST_GROWTH: f64 = 0.25;

/// Rounds on a plateau before probing a larger batch while work is waiting; doubled
/// after each probe that made throughput worse (up to [`PROBE_WAIT_MAX`]).
const PROBE_WAIT: u32 = 4;

/// The longest wait between probes.
const PROBE_WAIT_MAX: u32 = 64;

/// A plateau: growing stopped helping at this throughput and backlog.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plateau {
    throughput: f64,
    backlog: u64,
    rounds: u32,
}

impl Plateau {
    fn at(throughput: f64, backlog: u64) -> Self {
        Plateau {
            throughput,
            backlog,
            rounds: 0,
        }
    }
}

/// Sizes batches. A pure function of the observation and its own state.
#[derive(Debug, Clone)]
pub struct BatchController {
    bounds: Bounds,
    target_micros: f64,
    headroom: f64,
    step: u32,
    cut: f64,
    min_gain: f64,
    min_batches: u64,
    /// The batch size now (as last decided or set by someone else).
    batch: u32,
    /// The smallest batch size that ran the device out of memory: never again.
    oom_limit: Option<u32>,
    /// The largest batch size that ran without running out of memory (below the limit).
    largest_ok: u32,
    /// A batch size that violated the latency target, and rounds it stays the ceiling.
    ceiling: Option<(u32, u32)>,
    /// The size grown from and its throughput, while a growth step is being judged.
    reference: Option<(u32, f64)>,
    plateau: Option<Plateau>,
    /// Still growing fast (no limit met yet).
    fast: bool,
    /// Rounds on a plateau before the next probe.
    probe_wait: u32,
    /// Evidence for going back after a step that made throughput worse.
    hysteresis: Hysteresis,
}

impl BatchController {
    /// A controller starting at `batch` items.
    pub fn new(settings: &AutotunerSettings, batch: u32) -> Self {
        let bounds = settings.bounds.batch_size;
        BatchController {
            bounds,
            target_micros: settings.latency_target_ms as f64 * 1e3,
            headroom: settings.latency_headroom,
            step: settings.batch_step.max(1),
            cut: settings.batch_cut,
            min_gain: settings.min_gain,
            min_batches: settings.min_batches,
            batch: bounds.clamp(batch),
            oom_limit: None,
            largest_ok: 0,
            ceiling: None,
            reference: None,
            plateau: None,
            fast: true,
            probe_wait: PROBE_WAIT,
            hysteresis: Hysteresis::new(settings.hysteresis),
        }
    }

    /// The batch size now.
    pub fn batch(&self) -> u32 {
        self.batch
    }

    /// The smallest batch size that ran the device out of memory, if any did.
    pub fn oom_limit(&self) -> Option<u32> {
        self.oom_limit
    }

    /// Someone else set the batch size: adopt it and judge afresh from there.
    pub fn adopt(&mut self, batch: u32) {
        self.batch = batch.max(1);
        self.reference = None;
        self.plateau = None;
        self.hysteresis.reset();
    }

    /// Records an out-of-memory at `batch` items without deciding (the knob is held).
    pub fn remember_oom(&mut self, batch: u32) {
        self.oom_limit = Some(self.oom_limit.map_or(batch, |limit| limit.min(batch)));
    }

    /// The largest size growth may reach: the bounds; after an out-of-memory, the
    /// largest size known to fit (so the device runs out of memory once per capacity,
    /// not once per probe); below a latency ceiling.
    fn growth_cap(&self) -> u32 {
        let mut cap = self.bounds.max;
        if let Some(limit) = self.oom_limit {
            let fits = if self.largest_ok > 0 && self.largest_ok < limit {
                self.largest_ok
            } else {
                limit.saturating_sub(1)
            };
            cap = cap.min(fits.max(1));
        }
        if let Some((ceiling, _)) = self.ceiling {
            cap = cap.min(ceiling.saturating_sub(1).max(1));
        }
        cap.max(self.bounds.min)
    }

    fn set(&mut self, to: u32, reason: String) -> Proposal {
        let from = self.batch;
        self.batch = self.bounds.clamp(to);
        Proposal::change(from, self.batch, reason)
    }

    fn keep(&self, reason: String) -> Proposal {
        Proposal::keep(self.batch, reason)
    }

    /// The batch size wanted after this round, and why.
    pub fn decide(&mut self, observation: &Observation) -> Proposal {
        if let Some((ceiling, rounds)) = self.ceiling {
            self.ceiling = (rounds > 1).then(|| (ceiling, rounds - 1));
        }
        if let Some(oom) = observation.out_of_memory {
            return self.out_of_memory(oom);
        }
        if observation.batch_size != self.batch {
            return self.keep(format!(
                "batches finished at {} items, not yet at {}: keep",
                observation.batch_size, self.batch
            ));
        }
        if observation.batches > 0
            && !matches!(self.oom_limit, Some(limit) if observation.batch_size >= limit)
        {
            self.largest_ok = self.largest_ok.max(observation.batch_size);
        }
        if observation.batches < self.min_batches {
            return self.keep(format!(
                "{} batches finished (< {}): too few to judge, keep {}",
                observation.batches, self.min_batches, self.batch
            ));
        }
        let p99 = observation.p99_micros as f64;
        let share = p99 / self.target_micros;
        if share > 1.0 {
            return self.violation(share);
        }
        if share > self.headroom {
            self.hysteresis.observe(Direction::Hold);
            self.reference = None;
            self.fast = false;
            return self.keep(format!(
                "p99 {:.1} ms is {:.0}% of the {:.0} ms target (grow only under {:.0}%): keep {}",
                p99 / 1e3,
                share * 100.0,
                self.target_micros / 1e3,
                self.headroom * 100.0,
                self.batch
            ));
        }
        self.under_target(observation, share)
    }

    fn out_of_memory(&mut self, oom: u32) -> Proposal {
        self.remember_oom(oom);
        self.fast = false;
        self.reference = None;
        self.plateau = None;
        self.hysteresis.reset();
        let limit = self.oom_limit.unwrap_or(oom);
        let to = ((f64::from(self.batch.min(oom)) * self.cut) as u32).min(self.growth_cap());
        self.set(
            to,
            format!(
                "device out of memory at {oom} items: cut to {to}, never again >= {limit} (grows back to {cap} at most)",
                to = self.bounds.clamp(to),
                cap = self.growth_cap(),
            ),
        )
    }

    fn violation(&mut self, share: f64) -> Proposal {
        let from = self.batch;
        self.ceiling = Some((from, CEILING_ROUNDS));
        self.fast = false;
        self.reference = None;
        self.plateau = None;
        self.hysteresis.reset();
        let to = (f64::from(from) * self.cut) as u32;
        self.set(
            to,
            format!(
                "p99 is {:.0}% of the {:.0} ms target: violation, cut {from}->{} (x{}), stay under {from} for {CEILING_ROUNDS} rounds",
                share * 100.0,
                self.target_micros / 1e3,
                self.bounds.clamp(to),
                self.cut
            ),
        )
    }

    fn under_target(&mut self, observation: &Observation, share: f64) -> Proposal {
        let throughput = observation.throughput();
        let latency = format!("p99 {:.0}% of target", share * 100.0);
        if let Some((from, before)) = self.reference {
            if throughput >= before * (1.0 + self.min_gain) {
                self.reference = None;
                self.probe_wait = PROBE_WAIT;
                return self.grow(
                    throughput,
                    format!(
                        "{latency}, throughput {throughput:.0}/s up from {before:.0}/s at {from}"
                    ),
                );
            }
            if throughput < before * (1.0 - self.min_gain) {
                if self.hysteresis.observe(Direction::Down) {
                    self.reference = None;
                    self.fast = false;
                    self.probe_wait = (self.probe_wait * 2).min(PROBE_WAIT_MAX);
                    self.plateau = Some(Plateau::at(before, observation.backlog));
                    return self.set(from, format!(
                        "{latency}, but throughput {throughput:.0}/s is below {before:.0}/s at {from}: back to {from}, next probe in {} rounds",
                        self.probe_wait
                    ));
                }
                let (seen, needed) = self.hysteresis.progress();
                return self.keep(format!(
                    "{latency}, throughput {throughput:.0}/s below {before:.0}/s at {from}: keep {} (evidence {seen}/{needed} rounds)",
                    self.batch
                ));
            }
            // No better and no worse: keep the larger batch, stop growing for a while.
            self.reference = None;
            self.fast = false;
            self.plateau = Some(Plateau::at(throughput, observation.backlog));
            self.hysteresis.observe(Direction::Hold);
            return self.keep(format!(
                "{latency}, throughput {throughput:.0}/s no better than {before:.0}/s at {from}: plateau, keep {}",
                self.batch
            ));
        }
        if let Some(mut plateau) = self.plateau {
            plateau.rounds += 1;
            let moved = (throughput - plateau.throughput).abs() > plateau.throughput * REPLAN;
            let piled = observation.backlog > plateau.backlog + (plateau.backlog / 2).max(4);
            let probe = observation.backlog > 0 && plateau.rounds >= self.probe_wait;
            if !moved && !piled && !probe {
                self.plateau = Some(plateau);
                self.hysteresis.observe(Direction::Hold);
                return self.keep(format!(
                    "{latency}, throughput {throughput:.0}/s on the plateau ({:.0}/s): keep {}",
                    plateau.throughput, self.batch
                ));
            }
            self.plateau = None;
            let what = if moved {
                self.probe_wait = PROBE_WAIT;
                format!(
                    "throughput moved to {throughput:.0}/s from {:.0}/s",
                    plateau.throughput
                )
            } else if piled {
                self.probe_wait = PROBE_WAIT;
                format!(
                    "backlog grew to {} from {}",
                    observation.backlog, plateau.backlog
                )
            } else {
                format!(
                    "{} batches waiting after {} rounds on the plateau",
                    observation.backlog, plateau.rounds
                )
            };
            return self.grow(throughput, format!("{latency}, {what}: probe"));
        }
        self.grow(throughput, latency)
    }

    fn grow(&mut self, throughput: f64, why: String) -> Proposal {
        let from = self.batch;
        let cap = self.growth_cap();
        // The step never more than halves-again a small batch.
        let additive = self.step.min((from / 2).max(1));
        let step = if self.fast {
            ((f64::from(from) * FAST_GROWTH) as u32).max(additive)
        } else {
            additive
        };
        let to = from.saturating_add(step).min(cap);
        self.hysteresis.observe(Direction::Up);
        if to <= from {
            self.plateau = Some(Plateau::at(throughput, u64::MAX / 4));
            return self.keep(format!("{why}: at the cap {cap}, keep {from}"));
        }
        self.reference = Some((from, throughput));
        let how = if self.fast { "fast" } else { "additive" };
        self.set(
            to,
            format!("{why}: grow {from}->{to} ({how} +{})", to - from),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AutotunerSettings {
        AutotunerSettings {
            latency_target_ms: 100,
            batch_step: 4,
            min_batches: 2,
            ..AutotunerSettings::default()
        }
    }

    /// A round at `batch` items: `items` finished in one second, p99 `p99_ms`.
    fn seen(batch: u32, items: u64, p99_ms: u64) -> Observation {
        Observation {
            round_secs: 1.0,
            batch_size: batch,
            batches: items / u64::from(batch.max(1)),
            items,
            p99_micros: p99_ms * 1000,
            ..Observation::default()
        }
    }

    fn oom(batch: u32) -> Observation {
        Observation {
            out_of_memory: Some(batch),
            batch_size: batch,
            ..seen(batch, 0, 0)
        }
    }

    #[test]
    fn decisions_and_reasons() {
        let mut controller = BatchController::new(&settings(), 16);
        // (observation, batch after, words the reason contains)
        let table: Vec<(Observation, u32, &str)> = vec![
            // Under 85% of target: grow fast (+25%, at least the step).
            (seen(16, 1600, 40), 20, "grow 16->20 (fast +4)"),
            // Throughput improved: grow again.
            (seen(20, 2000, 50), 25, "up from 1600/s at 16"),
            // In the band between 85% and 100%: keep, and growth turns additive.
            (seen(25, 2400, 90), 25, "grow only under 85%"),
            (seen(25, 2400, 60), 29, "additive +4"),
            // No better: plateau.
            (seen(29, 2410, 70), 29, "plateau"),
            (seen(29, 2400, 70), 29, "on the plateau"),
            // The load changed (throughput moved > 10%): probe again.
            (seen(29, 2900, 70), 33, "probe"),
            // A target violation: multiplicative cut, and a ceiling.
            (seen(33, 3300, 120), 23, "violation, cut 33->23"),
            // Batches still at the old size teach nothing.
            (seen(33, 3300, 120), 23, "not yet at 23"),
            // Out of memory at 23: cut and remember.
            (oom(23), 16, "never again >= 23"),
            (seen(16, 1600, 10), 20, "grow 16->20"),
            (seen(20, 2000, 10), 22, "grow 20->22"), // capped below the OOM limit
            (seen(22, 2200, 10), 22, "at the cap 22"),
            (seen(22, 10, 10), 22, "too few to judge"),
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
        assert_eq!(controller.oom_limit(), Some(23));
    }

    #[test]
    fn a_step_that_lowers_throughput_is_undone_slowly() {
        let mut controller = BatchController::new(&settings(), 40);
        assert_eq!(controller.decide(&seen(40, 4000, 10)).to, 50);
        // Worse at 50: down needs three rounds of evidence (down slowly).
        assert_eq!(controller.decide(&seen(50, 3000, 10)).to, 50);
        assert_eq!(controller.decide(&seen(50, 3000, 10)).to, 50);
        let back = controller.decide(&seen(50, 3000, 10));
        assert_eq!(back.to, 40, "{}", back.reason);
        assert!(back.reason.contains("back to 40"), "{}", back.reason);
        // Back at 40 on the plateau of 4000/s.
        assert!(controller
            .decide(&seen(40, 4000, 10))
            .reason
            .contains("plateau"));
    }

    #[test]
    fn bounds_are_never_left() {
        let mut settings = settings();
        settings.bounds.batch_size = Bounds::new(8, 12);
        let mut controller = BatchController::new(&settings, 100);
        assert_eq!(controller.batch(), 12);
        assert_eq!(controller.decide(&seen(12, 1200, 10)).to, 12);
        assert_eq!(controller.decide(&seen(12, 1200, 200)).to, 8);
    }
}
