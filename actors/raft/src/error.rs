//! [`RaftError`]: everything that makes the raft peer's core fail.

use vortex_actors::journal::JournalError;
use vortex_messages::wire::WireError;

/// Why the raft core failed. A storage error is fatal to the core (its in-memory state
/// may be ahead of the disk): the owner drops it and reopens from disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftError {
    /// The journal or the checkpoint store failed.
    #[error("raft storage: {0}")]
    Storage(#[from] JournalError),
    /// A stored record does not decode: the storage is damaged or from another version.
    #[error("raft storage is corrupt: {0}")]
    Corrupt(String),
    /// raft-rs refused an operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A state-machine snapshot or command does not encode or decode.
    #[error("encoding: {0}")]
    Wire(#[from] WireError),
    /// The configuration is not usable.
    #[error("invalid raft configuration: {0}")]
    Config(String),
}

/// `Result` with [`RaftError`].
pub type RaftResult<T> = Result<T, RaftError>;
