//! Where checkpoints are kept. The runtime calls a [`CheckpointSink`] when an actor answers
//! `Control::Checkpoint`, and asks it for the latest snapshot before (re)starting an actor,
//! so state survives a crash of the actor — and, with a durable sink such as
//! `vortex_actors::journal::DurableCheckpoints`, a crash of the process.
//!
//! Without a sink, checkpoints are kept in memory for the runtime's lifetime.

use vortex_messages::Checkpoint;

/// Durable storage for actor checkpoints.
///
/// Both methods may block on I/O; the runtime calls them off the async workers
/// (`spawn_blocking`).
pub trait CheckpointSink: Send + Sync + 'static {
    /// Persists a checkpoint. Must be durable when it returns `Ok`, and idempotent per
    /// (actor, epoch): saving the same bytes again is `Ok`.
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), String>;

    /// The latest checkpoint of `actor`, if any.
    fn latest(&self, actor: &str) -> Result<Option<Checkpoint>, String>;
}
