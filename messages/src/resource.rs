//! Status data of the runtime's CPU resources: resource groups and the buffer pool.
//!
//! Plain data (serde), kept apart from the runtime types that produce it
//! (`vortex_runtime::resource_group`, `vortex_runtime::buffer_pool`), so that status
//! reports, telemetry and the command line can carry it without a runtime dependency.

use serde::{Deserialize, Serialize};

/// A snapshot of one resource group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceGroupStatus {
    /// The group's name.
    pub name: String,
    /// Number of worker threads.
    pub threads: usize,
    /// The cores the threads are pinned to (thread `i` on `cores[i % len]`), if any.
    pub cores: Option<Vec<usize>>,
    /// Tasks submitted and not yet finished (queued or running).
    pub active_tasks: usize,
    /// Tasks that returned normally.
    pub completed: u64,
    /// Tasks that panicked.
    pub panicked: u64,
}

/// Counters of a buffer pool (`vortex_runtime::buffer_pool::BufferPool::stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferPoolStats {
    /// `get` calls served by an idle buffer.
    pub hits: u64,
    /// `get` calls that allocated.
    pub misses: u64,
    /// Idle bytes (sum of capacities) held now.
    pub pooled_bytes: usize,
    /// Idle buffers held now.
    pub pooled_buffers: usize,
    /// Buffers dropped on `put` because the pool was at its high watermark.
    pub dropped: u64,
    /// Buffers freed by `trim_idle`.
    pub trimmed: u64,
}
