//! The Nexa Vortex message vocabulary: plain, typed data shared by every layer.
//!
//! Nothing here depends on the runtime or on tokio. Every type is `serde`-serialisable and
//! travels over the wire as bincode 2 (see [`wire`]), so the `vortex` command line, the
//! control socket and the raft log all speak exactly the types an in-process caller uses.
//!
//! # Layout
//! - [`control`]: commands every actor answers (`Pause`, `Resume`, `Checkpoint`, `Scale`,
//!   `Status`, `Stop`), the knobs (`SetBatchSize`, `SetPrefetchDepth`), their replies and
//!   their errors.
//! - [`ctl`]: the control-socket protocol (`CtlRequest`, `CtlResponse`) `vortex ctl` speaks.
//! - [`journal`]: records the journal and checkpoint store emit (`CheckpointTaken`).
//! - [`pipeline`]: batches of the pipeline (`RawBatch`, `PreparedBatch`, `FinishedBatch`).
//! - [`raft`]: the cluster control log's commands (`ClusterCommand`, `Target`,
//!   `RequestId`), how proposals are answered (`ProposalOutcome`), and the envelope a
//!   raft message travels in (`RaftEnvelope`).
//! - [`resource`]: status data of resource groups and the buffer pool.
//! - [`telemetry`]: typed telemetry events (batches, mailboxes, lifecycle, devices, …).
//! - [`wire`]: bincode 2 encoding helpers with a size limit and a typed error.
//!
//! # Example
//! ```
//! use vortex_messages::control::{Control, ControlReply};
//! use vortex_messages::wire;
//!
//! let bytes = wire::encode(&Control::Scale { n: 4 }).unwrap();
//! let back: Control = wire::decode(&bytes).unwrap();
//! assert_eq!(back, Control::Scale { n: 4 });
//! assert_eq!(ControlReply::Paused, ControlReply::Paused);
//! ```

pub mod control;
pub mod ctl;
pub mod journal;
pub mod pipeline;
pub mod raft;
pub mod resource;
pub mod telemetry;
pub mod wire;

pub use control::{
    ActorKind, ActorState, Checkpoint, Control, ControlError, ControlReply, StatusReport,
};
