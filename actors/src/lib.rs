//! Nexa Vortex subsystem actors (scheduler timer, journal, telemetry, preprocessor, …),
//! each built on the actor core in `vortex-runtime`.
//!
//! # Layout
//! One folder per subsystem, each with the same files: `actor.rs` (wiring), `core.rs`
//! (pure logic), `error.rs`, `config.rs` when needed.
//!
//! - [`launcher`]: compute devices (a static-dispatch enum; `Cpu` on its own resource
//!   group), kernels and their registry (a built-in MLP), one launcher per device, the
//!   scoring router, device faults and rotation.
//! - [`control`]: the control socket: frame codec, HMAC challenge–response, the server
//!   `vortex run` serves and the client `vortex ctl` uses.
//! - [`journal`]: the durable, CRC-framed, group-committed event log and the checkpoint
//!   store.
//! - [`preprocessor`]: the CPU preprocessor pool: transforms on resource groups, pooled
//!   buffers, back-pressure to the next stage.
//! - [`scheduler`]: the timer core on mesocarp's hierarchical timing wheel and the
//!   scheduler actor (`send_after`, `send_interval`, cancel).
//! - [`source`]: a synthetic image-batch source with the batch-size knob.
//! - [`telemetry`]: typed event fan-out, Prometheus exposition over HTTP, tracing spans.

pub mod control;
pub mod journal;
pub mod launcher;
pub mod preprocessor;
pub mod scheduler;
pub mod source;
pub mod telemetry;
