//! The one error type of the journal and the checkpoint store.
//!
//! Every variant is `Clone` (I/O errors sit behind an `Arc`) because one failure — a
//! failed `fdatasync`, say — must be handed to every appender waiting on the same batch.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the journal or the checkpoint store.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// An I/O operation failed; nothing about the journal's state is known to be wrong.
    #[error("I/O error while {operation} {path}: {source}")]
    Io {
        /// What the journal was doing.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The disk is full (ENOSPC, or a write that wrote nothing). Nothing of the failed
    /// write is acknowledged; reads go on and later appends may succeed once space is freed.
    #[error("disk full while {operation} {path}: {source}")]
    DiskFull {
        /// What the journal was doing.
        operation: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// An `fdatasync` (or a directory fsync) failed once, so the journal refuses every later
    /// append: after a failed fsync the kernel may have dropped the dirty pages, and
    /// retrying would report durability that does not exist. Reads are still served.
    #[error("journal poisoned: fsync of {path} failed: {source}")]
    Poisoned {
        /// The file whose sync failed.
        path: PathBuf,
        /// The error the sync returned.
        #[source]
        source: Arc<io::Error>,
    },
    /// A record is larger than the configured maximum; nothing was written.
    #[error("record of {length} bytes exceeds the maximum of {maximum} bytes")]
    RecordTooLarge {
        /// The payload length asked for.
        length: usize,
        /// The largest payload allowed.
        maximum: usize,
    },
    /// An atomic batch is larger than an empty segment can hold; nothing was written.
    #[error("batch of {bytes} bytes exceeds the {maximum} bytes a segment holds")]
    BatchTooLarge {
        /// Bytes the batch's frames take.
        bytes: u64,
        /// Bytes of frames an empty segment holds.
        maximum: u64,
    },
    /// A segment file header is damaged in a place where that cannot be a torn write.
    #[error("bad segment header in {segment}: {reason}")]
    BadSegmentHeader {
        /// The segment file.
        segment: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A frame is damaged but valid data follows it, or it sits in a sealed segment: this
    /// is corruption, not a torn write, and recovery refuses to guess.
    #[error("corruption in {segment} at offset {offset}: {reason}")]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the first bad frame inside the segment file.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A payload could not be encoded with bincode.
    #[error("could not encode payload: {0}")]
    Encode(String),
    /// A payload could not be decoded with bincode.
    #[error("could not decode payload: {0}")]
    Decode(String),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The writer thread is gone (shut down or panicked) before acknowledging.
    #[error("the journal writer has stopped")]
    WriterStopped,
    /// An actor name is empty, too long or could escape the checkpoint directory.
    #[error("invalid actor name {name:?}: {reason}")]
    InvalidActorName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A checkpoint for this epoch already exists with different bytes.
    #[error("checkpoint {actor}/{epoch} already exists with different bytes")]
    CheckpointConflict {
        /// The actor.
        actor: String,
        /// The epoch.
        epoch: u64,
    },
    /// No checkpoint exists for this actor and epoch.
    #[error("no checkpoint {actor}/{epoch}")]
    CheckpointNotFound {
        /// The actor.
        actor: String,
        /// The epoch.
        epoch: u64,
    },
    /// A checkpoint file failed verification (magic, length or CRC).
    #[error("checkpoint {path} is corrupt: {reason}")]
    CheckpointCorrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Shorthand for results in this crate.
pub type JournalResult<T> = Result<T, JournalError>;

impl JournalError {
    /// Classifies an I/O error from a write: a full disk becomes [`JournalError::DiskFull`].
    pub(crate) fn from_write(operation: &'static str, path: PathBuf, error: io::Error) -> Self {
        if is_disk_full(&error) {
            Self::DiskFull {
                operation,
                path,
                source: Arc::new(error),
            }
        } else {
            Self::io(operation, path, error)
        }
    }

    /// Wraps an I/O error.
    pub(crate) fn io(operation: &'static str, path: PathBuf, error: io::Error) -> Self {
        Self::Io {
            operation,
            path,
            source: Arc::new(error),
        }
    }

    /// True when this error poisoned the journal.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Self::Poisoned { .. })
    }
}

/// ENOSPC on Linux and macOS.
const ENOSPC: i32 = 28;

fn is_disk_full(error: &io::Error) -> bool {
    error.raw_os_error() == Some(ENOSPC)
        || matches!(
            error.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::WriteZero
        )
}
