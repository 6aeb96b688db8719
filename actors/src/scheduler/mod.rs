//! The pure timer core of the Nexa Vortex scheduler actor: one-shot and interval timers
//! over abstract `u64` ticks, on mesocarp's hierarchical timing wheel.
//!
//! [`Timers`] does no I/O and owns no clock. The scheduler actor (the driver) feeds it the
//! current tick with [`Timers::advance_to`], delivers what fires, and sleeps until
//! [`Timers::next_deadline`]. The guarantees (never early, exactly once, order, no drift)
//! are listed on [`Timers`].
//!
//! # Layout
//!
//! - `core.rs`: [`Timers`], its ids, [`Fired`] and [`CancelOutcome`]; the slab of
//!   generation-stamped slots, the overflow map, the due heap. Unit tests (one per
//!   mesocarp trap) in `core/tests.rs`.
//! - `wheel.rs`: the wheel backend's API and selection. With the cargo feature `mesocarp`
//!   (default, LGPL-2.1) `wheel/mesocarp_clock.rs`: mesocarp's `Clock<_, 64, 4>` kept
//!   inside its contract, with tests that pin each measured trap of the raw clock; without
//!   it `wheel/btree.rs`: a permissively licensed `BTreeMap` wheel with the same API,
//!   which is also the reference the mesocarp backend is tested against.
//! - `actor.rs`: [`Scheduler`] (`send_after`, `send_at`, `send_interval`,
//!   `control_after`) and the scheduler actor that drives the table from tokio's clock.
//! - `error.rs`: [`Error`], the one error type.
//! - `tests/model.rs`: the table against a `BTreeMap<(deadline, sequence), id>` model.
//! - `benches/timers.rs`: arm, cancel and fire cost and bytes per timer, beside
//!   `tokio::time::Sleep` and `tokio_util::time::DelayQueue`.
//!
//! # Example
//!
//! ```
//! use vortex_actors::scheduler::{CancelOutcome, Timers};
//!
//! let mut timers = Timers::new();
//! let reminder = timers.arm_after(250, "reminder");
//! let heartbeat = timers.arm_interval(100, 100, "heartbeat").unwrap();
//!
//! let mut delivered = Vec::new();
//! timers.advance_to(300, |fired| delivered.push((fired.deadline(), fired.into_owned()))).unwrap();
//! assert_eq!(delivered, [(100, "heartbeat"), (200, "heartbeat"), (250, "reminder"), (300, "heartbeat")]);
//!
//! assert_eq!(timers.cancel(reminder), CancelOutcome::AlreadyFired); // it already fired
//! assert_eq!(timers.cancel(heartbeat), CancelOutcome::Cancelled);
//! assert_eq!(timers.next_deadline(), None);
//! ```

pub mod actor;
mod clock;
pub mod core;
mod delivery;
pub mod error;
pub mod handle;
pub mod missed;
mod state;
mod wheel;

pub use crate::scheduler::core::{CancelOutcome, Fired, IntervalTimer, TimerId, Timers};
pub use crate::scheduler::error::Error;
pub use crate::scheduler::missed::MissedTicks;
pub use actor::{ArmTimer, SchedulerActor, SchedulerMessage};
pub use handle::{Scheduler, SchedulerConfig, TimerHandle};
