//! The preprocessor's errors: [`TransformError`] (a transform refused a batch),
//! [`DownstreamError`] (the next stage refused a prepared batch) and
//! [`PreprocessorError`] (everything else, including why one batch failed).
//!
//! All three are `Clone` and carry plain data (strings and numbers), so one failure can
//! be counted, logged and handed to a failure sink alike.

use thiserror::Error;
use vortex_runtime::{ResourceError, RuntimeError};

/// What can go wrong when a transform turns a raw batch into a prepared one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransformError {
    /// The transform does not handle this kind of batch.
    #[error("transform `{transform}` cannot handle {kind} batches")]
    KindMismatch {
        /// The transform's name.
        transform: String,
        /// The batch kind it was given, as text.
        kind: String,
    },
    /// The batch's data length does not match its declared shape.
    #[error("batch data is {actual} bytes, its shape says {expected}")]
    DataLength {
        /// Bytes the shape requires.
        expected: usize,
        /// Bytes the batch holds.
        actual: usize,
    },
    /// The number of items found in the data does not match `items`.
    #[error("batch declares {expected} items, its data holds {actual}")]
    ItemCount {
        /// Items the batch declares.
        expected: usize,
        /// Items found in the data.
        actual: usize,
    },
    /// The image channel count is not one the transform supports.
    #[error("images with {channels} channels are not supported (expected {supported})")]
    UnsupportedChannels {
        /// Channels the batch declares.
        channels: u32,
        /// Channels the transform supports.
        supported: u32,
    },
    /// Text data is not valid UTF-8.
    #[error("text batch is not valid UTF-8 after byte {valid_up_to}")]
    InvalidUtf8 {
        /// Length of the longest valid prefix.
        valid_up_to: usize,
    },
    /// The shape's size does not fit in memory arithmetic.
    #[error("batch shape is too large to address")]
    TooLarge,
    /// The transform's own configuration is invalid.
    #[error("invalid transform configuration: {reason}")]
    InvalidConfig {
        /// Why it is invalid.
        reason: String,
    },
    /// Any other reason a user-written transform refuses a batch.
    #[error("transform `{transform}` failed: {reason}")]
    Other {
        /// The transform's name.
        transform: String,
        /// Why it failed.
        reason: String,
    },
}

/// Why the next stage did not take a prepared batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DownstreamError {
    /// The stage stopped (its mailbox or channel is closed).
    #[error("downstream `{stage}` is closed")]
    Closed {
        /// The stage's name (the actor's name, or a description).
        stage: String,
    },
    /// The stage refused the batch for another reason.
    #[error("downstream `{stage}` failed: {reason}")]
    Failed {
        /// The stage's name.
        stage: String,
        /// Why it failed.
        reason: String,
    },
}

/// Everything else that can go wrong in the preprocessor: spawning it, or one batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PreprocessorError {
    /// The transform refused the batch (wrong kind, malformed data, …).
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// The resource group could not run the transform (it panicked, or the group went away).
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// The next stage did not take the prepared batch.
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    /// The runtime refused the pool (name taken, shut down, too many workers, …).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The preprocessor's configuration is invalid.
    #[error("invalid preprocessor configuration: {0}")]
    InvalidConfig(String),
}
