//! Nexa Vortex: an actor-model runtime for ML compute pipelines.
//!
//! This crate is the facade: it re-exports the actor core ([`runtime`]), the message
//! vocabulary ([`messages`]) and the subsystem actors ([`actors`]), and owns the `vortex`
//! command, the examples and the cross-crate tests.
//!
//! # Layout
//! - [`prelude`]: what an embedding program imports.
//! - [`messages`]: `vortex-messages`, the protocol.
//! - [`runtime`]: `vortex-runtime`, the actor core.
//! - [`actors`]: `vortex-actors`, the subsystem actors.
//! - [`raft`]: `vortex-raft`, the raft peer (a replicated control log on raft-rs).
//! - [`demo`]: the built-in single-node pipeline `vortex run` starts.
//! - [`topology`]: topology files (TOML) and the plan they resolve to.
//! - [`session`]: what a run keeps in its data directory (journal, checkpoints, control
//!   socket, manifest) and the services that use it.
//!
//! # Example
//! ```
//! use vortex::prelude::*;
//!
//! struct Doubler;
//! impl Actor for Doubler {
//!     type Message = (u64, Reply<u64>);
//!     async fn handle(&mut self, (n, reply): (u64, Reply<u64>), _: &mut Context<Self>) -> Result<(), ActorError> {
//!         reply.send(n * 2);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let rt = Runtime::builder().build().unwrap();
//! let doubler = rt.spawn("doubler", || Doubler).await.unwrap();
//! assert_eq!(doubler.ask(|reply| (21, reply)).await.unwrap(), 42);
//! assert_eq!(rt.control("doubler", Control::Pause).await.unwrap(), ControlReply::Paused);
//! rt.shutdown().await;
//! # }
//! ```

pub mod demo;
pub mod session;
pub mod topology;

pub use vortex_actors as actors;
pub use vortex_messages as messages;
pub use vortex_raft as raft;
pub use vortex_runtime as runtime;

/// Everything an embedding program usually needs.
pub mod prelude {
    pub use vortex_messages::{
        ActorKind, ActorState, Checkpoint, Control, ControlError, ControlReply, StatusReport,
    };
    pub use vortex_runtime::{
        Actor, ActorError, ActorSpec, Addr, AskError, Backoff, Context, DeadLetter,
        DeadLetterReason, Intensity, PoolSpec, Reply, Restart, Runtime, RuntimeError, SendError,
        ShutdownReport, Strategy, SupervisorSpec, TrySendError,
    };
}

/// The README's examples, compiled and run as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
