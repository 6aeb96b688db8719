//! The Nexa Vortex scheduler: a pure timer core (one-shot and interval timers over
//! abstract `u64` ticks, on mesocarp's hierarchical timing wheel) and the supervised
//! scheduler actor that owns it. The contract is in `docs/semantics.md` ("Timers").
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
//! - `missed.rs`: [`MissedTicks`], the per-interval policy for periods a late advance
//!   finds already past (burst / skip / delay), a pure rule with a table test.
//! - `handle.rs`: [`Scheduler`] (`send_after`, `send_at`, `send_interval`,
//!   `send_interval_with`, `control_after`), [`SchedulerConfig`] and [`TimerHandle`]:
//!   every arm is a `try_tell` of [`SchedulerMessage::Arm`] carrying the timer's state,
//!   allocated by the caller, so the handle exists at once.
//! - `state.rs`: the per-timer shared state (one `AtomicU64`) that makes cancel final
//!   without a lock or a wait: whoever wins the compare-and-swap, cancel or fire, decides.
//! - `actor.rs`: [`SchedulerActor`]: owns the table through state every incarnation
//!   shares (so armed timers survive a panic), runs its tick driver as part of its
//!   lifecycle, applies arms, frees cancelled entries, advances and delivers.
//! - `delivery.rs`: what a fired timer does: `try_tell`, or one ordered, bounded backlog
//!   per full target with one flusher task; lateness into the lag histogram.
//! - `clock.rs`: tick arithmetic in `u128` nanoseconds (never early, any `Duration`,
//!   exact past 2^32 ticks), with table tests.
//! - `error.rs`: [`Error`], the one error type.
//! - `tests/scheduler_model.rs`: the table against a `BTreeMap<(deadline, sequence), id>`
//!   model; `tests/scheduler_actor.rs`, `scheduler_limits.rs`, `scheduler_delivery.rs`:
//!   the actor on tokio's paused clock.
//! - `benches/timers.rs`: arm, cancel and fire cost and bytes per timer, for the table
//!   and through the actor, beside `tokio::time::Sleep` and `tokio_util::time::DelayQueue`.
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
