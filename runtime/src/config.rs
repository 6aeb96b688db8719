//! [`RuntimeConfig`]: the defaults every actor of a runtime inherits.

use std::time::Duration;

use crate::supervisor::{Backoff, Intensity};

/// Defaults every actor inherits unless its spec says otherwise.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Data mailbox capacity in messages (default 1024).
    pub mailbox_capacity: usize,
    /// Messages handled per batch before control commands get a turn (default 64).
    pub batch_size: usize,
    /// Deadline of [`Addr::ask`] (default 5 s).
    pub ask_timeout: Duration,
    /// How long an actor's start-up (factory, `restore`, `on_start`) may take before it
    /// counts as a start failure (default 5 s).
    pub start_timeout: Duration,
    /// How long a stopping or halted actor may take to finish its current message and its
    /// `on_stop`, before it is aborted and reported (default 5 s).
    pub stop_timeout: Duration,
    /// Largest pool size `Scale` may ask for (default 256).
    pub max_pool_workers: u32,
    /// Dead-letter records kept in memory; the count is always exact (default 10 000).
    pub dead_letters_retained: usize,
    /// Bytes of undelivered messages the dead-letter sink keeps, each counted at its own
    /// size (`size_of_val`; default 16 MiB); past it the oldest records go first.
    pub dead_letters_retained_bytes: usize,
    /// Restart intensity of the root supervisor (default: 20 within 10 s).
    pub root_intensity: Intensity,
    /// Back-off of the root supervisor (default: 10 ms doubling to 2 s).
    pub root_backoff: Backoff,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            mailbox_capacity: 1024,
            batch_size: 64,
            ask_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(5),
            max_pool_workers: 256,
            dead_letters_retained: 10_000,
            dead_letters_retained_bytes: 16 << 20,
            root_intensity: Intensity::default(),
            root_backoff: Backoff::default(),
        }
    }
}
