//! The Nexa Vortex actor core: typed actors on lock-free mailboxes, hosted and supervised
//! on kameo, addressed by name through a per-runtime registry.
//!
//! Domain-agnostic: this crate knows the control vocabulary (`vortex-messages`) and
//! nothing about GPUs, raft or telemetry contents.
//!
//! # Layout
//! - [`actor`]: the [`Actor`] trait and the handler's [`Context`].
//! - [`addr`]: [`Addr`] (`tell`, `try_tell`, `ask`) and [`Reply`].
//! - `mailbox`: the data mailbox (mesocarp ring, or crossbeam without the `mesocarp`
//!   feature), back-pressure, and the lock-free wake-up dispatch (a waker slot per
//!   consumer and an idle bitmap; its hand-off is model-checked in `mailbox::model`).
//! - `cell`: the kameo actor hosting one incarnation; it runs its own batch loop from
//!   `kameo::Actor::next`, control commands first, then one batch at a time.
//! - `deadline`: ask deadlines on a hashed timing wheel (no timer entry per ask).
//! - [`supervisor`]: strategies, restart policies, intensity, back-off; the supervisor cell
//!   (trees and pools), which never waits for a child's start in a handler; the root, a
//!   table of independent top-level children rather than an actor.
//! - [`spec`]: declarative [`ActorSpec`], [`PoolSpec`], [`SupervisorSpec`].
//! - `registry`: per-runtime name → control handle.
//! - [`runtime`]: [`Runtime`], its builder, `control` by name, `shutdown`; `config`:
//!   [`RuntimeConfig`].
//! - [`checkpoint`]: [`CheckpointSink`], where checkpoints are persisted.
//! - [`dead_letter`]: the dead-letter sink.
//! - [`resource_group`]: isolated, optionally core-pinned rayon pools for CPU-heavy work
//!   ([`ResourceGroup`], [`ResourceGroups`]); errors in [`resource_error`].
//! - [`buffer_pool`]: size-bucketed reuse of byte buffers ([`BufferPool`]).
//! - [`error`]: send, ask and runtime errors.
//!
//! # Example
//! ```
//! use vortex_runtime::{Actor, ActorError, Context, Reply, Runtime};
//! use vortex_runtime::messages::{Control, ControlReply};
//!
//! #[derive(Default)]
//! struct Counter { total: u64 }
//!
//! enum CounterMessage { Add(u64), Get(Reply<u64>) }
//!
//! impl Actor for Counter {
//!     type Message = CounterMessage;
//!     async fn handle(&mut self, message: CounterMessage, _: &mut Context<Self>) -> Result<(), ActorError> {
//!         match message {
//!             CounterMessage::Add(n) => self.total += n,
//!             CounterMessage::Get(reply) => reply.send(self.total),
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let rt = Runtime::builder().build().unwrap();
//! let counter = rt.spawn("counter", Counter::default).await.unwrap();
//! counter.tell(CounterMessage::Add(2)).await.unwrap();
//! assert_eq!(counter.ask(CounterMessage::Get).await.unwrap(), 2);
//! let status = rt.control("counter", Control::Status).await.unwrap();
//! assert!(matches!(status, ControlReply::Status(report) if report.handled == 2));
//! rt.shutdown().await;
//! # }
//! ```

pub mod actor;
pub mod addr;
pub mod buffer_pool;
mod cell;
pub mod checkpoint;
mod config;
pub mod dead_letter;
mod deadline;
pub mod error;
mod mailbox;
mod registry;
pub mod resource_error;
pub mod resource_group;
pub mod runtime;
pub mod sample;
mod shared;
pub mod spec;
pub mod supervisor;
mod sync;

pub use actor::{Actor, ActorError, Context};
pub use addr::{Addr, Reply};
pub use buffer_pool::{BufferPool, BufferPoolConfig, BufferPoolStats, PooledBuffer};
pub use checkpoint::CheckpointSink;
pub use dead_letter::{DeadLetter, DeadLetterReason, DeadLetters};
pub use error::{AskError, RuntimeError, SendError, TrySendError};
pub use registry::ActorInfo;
pub use resource_error::ResourceError;
pub use resource_group::{ResourceGroup, ResourceGroups};
pub use runtime::{Runtime, RuntimeBuilder, RuntimeConfig, RuntimeObserver, ShutdownReport};
pub use sample::{ActorSample, ControlCount, HandlerTimesSnapshot};
pub use spec::{ActorSpec, ChildSpec, PoolSpec, SupervisorSpec};
pub use supervisor::{Backoff, Intensity, Restart, Strategy};
/// The message vocabulary (`vortex-messages`), re-exported.
pub use vortex_messages as messages;
