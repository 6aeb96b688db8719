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
    /// Largest pool size `Scale` may ask for (default 256).
    pub max_pool_workers: u32,
    /// Dead-letter records kept in memory; the count is always exact (default 10 000).
    pub dead_letters_retained: usize,
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
            max_pool_workers: 256,
            dead_letters_retained: 10_000,
            root_intensity: Intensity::default(),
            root_backoff: Backoff::default(),
        }
    }
}
