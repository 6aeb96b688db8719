//! [`ResourceError`]: what can go wrong with a resource group.
//!
//! `Clone` and plain data only (strings and numbers; rayon's build error is kept as
//! text), so one failure can be handed to several waiters and travel in reports.

use thiserror::Error;

/// What can go wrong when building a resource group or running a task on it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// A group was asked for zero threads.
    #[error("resource group `{group}` needs at least one thread")]
    ZeroThreads {
        /// The group's name.
        group: String,
    },
    /// A core list was given but it is empty.
    #[error("resource group `{group}` was given an empty core list")]
    EmptyCoreList {
        /// The group's name.
        group: String,
    },
    /// A requested core id is not one this process may run on.
    #[error("resource group `{group}`: unknown core id {core} (available: {available:?})")]
    UnknownCore {
        /// The group's name.
        group: String,
        /// The requested core id.
        core: usize,
        /// The core ids `core_affinity::get_core_ids()` reported.
        available: Vec<usize>,
    },
    /// Cores were requested but this platform cannot list or pin cores.
    #[error("resource group `{group}`: core ids are not available on this platform")]
    CoreIdsUnavailable {
        /// The group's name.
        group: String,
    },
    /// A worker thread could not pin itself to its core.
    #[error("resource group `{group}`: thread {thread} could not be pinned to core {core}")]
    PinFailed {
        /// The group's name.
        group: String,
        /// The worker's index within the group.
        thread: usize,
        /// The core it should have been pinned to.
        core: usize,
    },
    /// Not every worker thread reported that it started within the deadline.
    #[error("resource group `{group}`: only {started} of {threads} threads started in time")]
    StartTimeout {
        /// The group's name.
        group: String,
        /// Threads that reported.
        started: usize,
        /// Threads requested.
        threads: usize,
    },
    /// rayon refused to build the thread pool.
    #[error("resource group `{group}`: cannot build thread pool: {reason}")]
    PoolBuild {
        /// The group's name.
        group: String,
        /// rayon's error, as text (its error type is not `Clone`).
        reason: String,
    },
    /// The task panicked; the panic was caught on the pool.
    #[error("task on resource group `{group}` panicked: {message}")]
    TaskPanicked {
        /// The group's name.
        group: String,
        /// The panic payload when it was a string, otherwise a placeholder.
        message: String,
    },
    /// The task was dropped without reporting a result (the pool went away).
    #[error("task on resource group `{group}` was dropped before it finished")]
    TaskDropped {
        /// The group's name.
        group: String,
    },
    /// A group with this name is already registered.
    #[error("resource group `{name}` already exists")]
    DuplicateGroup {
        /// The duplicated name.
        name: String,
    },
    /// No group with this name is registered.
    #[error("resource group `{name}` does not exist")]
    UnknownGroup {
        /// The missing name.
        name: String,
    },
}
