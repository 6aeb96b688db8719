//! [`PreprocessorConfig`]: what a preprocessor pool runs, where, and how large.

use std::{fmt, sync::Arc};

use vortex_runtime::{buffer_pool::BufferPool, resource_group::ResourceGroup};

use crate::preprocessor::{core::FailedBatch, downstream::Downstream, transform::Transform};

/// Mailbox capacity (raw batches) unless [`PreprocessorConfig::capacity`] says otherwise.
/// Raw batches are often megabytes, so the runtime's default of 1024 would hold
/// gigabytes before producers feel back-pressure.
pub const DEFAULT_CAPACITY: usize = 64;

/// A preprocessor's settings. Built with [`new`](PreprocessorConfig::new) and the
/// chained setters; handed to [`Preprocessor::spawn`](crate::preprocessor::Preprocessor::spawn).
pub struct PreprocessorConfig {
    pub(crate) name: String,
    pub(crate) workers: u32,
    pub(crate) max_workers: Option<u32>,
    pub(crate) capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) group: Arc<ResourceGroup>,
    pub(crate) more_groups: Vec<Arc<ResourceGroup>>,
    pub(crate) transform: Arc<dyn Transform>,
    pub(crate) pool: BufferPool,
    pub(crate) failures: Option<Arc<dyn Downstream<FailedBatch>>>,
}

impl PreprocessorConfig {
    /// A pool named `name` that runs `transform` on `group`'s threads into buffers from
    /// `pool` (a cheap, shared handle: clone it for the stage that hands buffers back).
    ///
    /// Defaults: one worker per group thread, [`DEFAULT_CAPACITY`] raw batches of
    /// mailbox, a drain batch of one message (so `Pause` and `Scale` take effect after at
    /// most one raw batch per worker), and no failure sink.
    pub fn new(
        name: impl Into<String>,
        group: Arc<ResourceGroup>,
        transform: Arc<dyn Transform>,
        pool: BufferPool,
    ) -> Self {
        PreprocessorConfig {
            name: name.into(),
            workers: u32::try_from(group.threads()).unwrap_or(u32::MAX),
            max_workers: None,
            capacity: DEFAULT_CAPACITY,
            batch_size: 1,
            group,
            more_groups: Vec::new(),
            transform,
            pool,
            failures: None,
        }
    }

    /// Also runs on `group`: with more than one CPU group, each batch goes to the
    /// least-loaded one (fewest active tasks, `resource_group::least_loaded`).
    pub fn also_on(mut self, group: Arc<ResourceGroup>) -> Self {
        self.more_groups.push(group);
        self
    }

    /// Workers (actors sharing the mailbox) at start; `Scale{n}` changes it live. More
    /// workers than group threads keep the group busy while some workers wait on the
    /// next stage.
    pub fn workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }

    /// The largest size `Scale` may ask for (default: the runtime's `max_pool_workers`).
    pub fn max_workers(mut self, max: u32) -> Self {
        self.max_workers = Some(max);
        self
    }

    /// Mailbox capacity in raw batches.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Raw batches a worker handles before control commands get a turn (default 1).
    pub fn batch_size(mut self, batch: usize) -> Self {
        self.batch_size = batch;
        self
    }

    /// Where failed batches go (with their typed error and, where still held, the raw
    /// batch). Without a sink a failure is counted in the stats and logged at `warn`.
    pub fn on_failure(mut self, sink: impl Downstream<FailedBatch>) -> Self {
        self.failures = Some(Arc::new(sink));
        self
    }

    /// The pool's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for PreprocessorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreprocessorConfig")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("max_workers", &self.max_workers)
            .field("capacity", &self.capacity)
            .field("batch_size", &self.batch_size)
            .field("group", &self.group.name())
            .field("transform", &self.transform.name())
            .field(
                "failure_sink",
                &self.failures.as_ref().map(|sink| sink.name()),
            )
            .finish()
    }
}
