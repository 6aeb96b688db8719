//! The autotuner: a closed loop from telemetry to control commands. It keeps the devices
//! fed at the best throughput the latency target allows, without a person tuning knobs.
//!
//! Every `interval` (a scheduler timer) it runs a round: it drains its telemetry
//! subscription (finished batches, device out-of-memory faults), reads the preprocessor
//! pool's counters, and asks two controllers — each a pure function of the observation
//! and its own state — what the knobs should be:
//!
//! - **parallelism** ([`ParallelismController`]): preprocessor workers sized from the
//!   demand (arrivals × per-batch service time, plus what drains the backlog in two
//!   rounds), within the CPU budget (the cores of the pool's resource group) — tf.data's
//!   AUTOTUNE budget idea;
//! - **batch size** ([`BatchController`]): grow while p99 latency is under 85 % of the
//!   target and throughput improves (25 % per round until the first limit, then
//!   additively); a target violation cuts multiplicatively and makes that size a ceiling
//!   for a while; a size that ran the device out of memory is never asked for again.
//!
//! Both act up quickly and down slowly ([`Hysteresis`]: a flip of direction resets the
//! count), and stay within per-knob [`Bounds`]. Commands go out through
//! `Runtime::control_from` stamped [`Origin::Autotuner`](vortex_messages::Origin); a
//! command anyone else sends to one of its knobs (a person through `vortex ctl`, the
//! cluster log, code) makes it leave that knob alone for `hold_ms`, and say so. Every
//! decision carries a reason and goes to telemetry (`AutotunerDecided`), the journal
//! (record kind [`DECISION_RECORD_KIND`]), the log, and the actor's `Status` detail.
//! `Pause` freezes it; `Resume` starts a fresh measurement.
//!
//! The prefetch-depth knob has bounds and holds but no controller yet: the autotuner
//! never changes it on its own.
//!
//! # Layout
//! - `config.rs`: [`AutotunerSettings`] (the topology file's table), [`Bounds`].
//! - `observation.rs`: [`Observation`], one round's numbers.
//! - `hysteresis.rs`, `parallelism.rs`, `batch.rs`: the rules, table-tested.
//! - `core.rs`: [`AutotunerCore`], both controllers, holds, pause, history.
//! - `actor.rs`: [`Autotuner`], the wiring.
//! - `sim.rs` (tests only): a simulated device and the convergence checks.

mod actor;
mod batch;
mod config;
mod core;
mod error;
mod hysteresis;
mod observation;
mod parallelism;
#[cfg(test)]
mod sim;

pub use actor::{
    Autotuner, AutotunerConfig, AutotunerHandle, AutotunerMessage, DECISION_RECORD_KIND,
};
pub use batch::BatchController;
pub use config::{AutotunerSettings, Bounds, HysteresisSettings, KnobBounds};
pub use core::{AutotunerCore, Decision, Hold, Knob, Proposal};
pub use error::AutotunerError;
pub use hysteresis::{Direction, Hysteresis};
pub use observation::Observation;
pub use parallelism::ParallelismController;
