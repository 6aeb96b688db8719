//! What the autotuner saw in one round: plain numbers, gathered by the actor from
//! telemetry and the runtime's statuses (or by a simulation in tests).

/// One round of observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The round's length, in seconds.
    pub round_secs: f64,
    /// Preprocessor workers now.
    pub workers: u32,
    /// The CPU budget: cores of the preprocessor's resource group.
    pub cpu_budget: u32,
    /// Batches waiting in the preprocessor's mailbox at the end of the round.
    pub backlog: u64,
    /// Batches that reached the preprocessor during the round (handled + backlog growth).
    pub arrived: u64,
    /// Batches the preprocessor finished during the round.
    pub preprocessed: u64,
    /// Mean time one worker spent on one batch, in microseconds (0 when none finished).
    pub preprocess_micros: f64,
    /// The batch size the finished batches below were made at.
    pub batch_size: u32,
    /// Batches the devices finished during the round.
    pub batches: u64,
    /// Items in those batches.
    pub items: u64,
    /// p99 latency of those batches (routed to finished), in microseconds.
    pub p99_micros: u64,
    /// The smallest batch size that failed with a device out-of-memory this round.
    pub out_of_memory: Option<u32>,
}

impl Observation {
    /// Items finished per second.
    pub fn throughput(&self) -> f64 {
        if self.round_secs > 0.0 {
            self.items as f64 / self.round_secs
        } else {
            0.0
        }
    }
}
