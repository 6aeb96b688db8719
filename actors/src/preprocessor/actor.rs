//! [`Preprocessor`]: a runtime pool of workers sharing one mailbox of [`RawBatch`]es.
//!
//! Each worker hands its batch to the resource group (`run_async`: the CPU work never
//! runs on a tokio worker), then sends the prepared batch to the next stage, waiting
//! while that stage is full. Pool control comes from the runtime: `Scale{n}` resizes the
//! pool live, `Pause`/`Resume` stop and restart draining, `Status` carries the
//! preprocessor's counters in its `detail`.
//!
//! A failed batch never fails the worker: it is data, not a bug. It is counted, logged,
//! and handed to the failure sink if there is one; the worker goes on with the next
//! batch (so a stream of malformed batches costs no restarts and no back-off).

use std::sync::Arc;

use vortex_messages::pipeline::{PreparedBatch, RawBatch};
use vortex_runtime::{
    buffer_pool::BufferPool,
    resource_group::{least_loaded, ResourceGroup},
    Actor, ActorError, Addr, Context, PoolSpec, Runtime, SendError,
};

use crate::preprocessor::{
    config::PreprocessorConfig,
    core::{now_micros, transform_timed, FailedBatch, PreprocessorStats},
    downstream::Downstream,
    error::PreprocessorError,
    transform::Transform,
};

/// What every worker of one preprocessor shares (workers are rebuilt on restart and
/// on `Scale`; this is not).
struct Shared {
    name: String,
    /// The first is the config's group; a batch runs on the least-loaded of them.
    groups: Vec<Arc<ResourceGroup>>,
    transform: Arc<dyn Transform>,
    pool: BufferPool,
    downstream: Arc<dyn Downstream<PreparedBatch>>,
    failures: Option<Arc<dyn Downstream<FailedBatch>>>,
    stats: Arc<PreprocessorStats>,
}

/// One preprocessor worker. Spawn a pool of them with [`Preprocessor::spawn`].
pub struct Preprocessor {
    shared: Arc<Shared>,
}

impl Preprocessor {
    /// Spawns the preprocessor pool `config.name` under the runtime's root supervisor,
    /// sending every prepared batch to `downstream`.
    pub async fn spawn(
        rt: &Runtime,
        config: PreprocessorConfig,
        downstream: impl Downstream<PreparedBatch>,
    ) -> Result<PreprocessorHandle, PreprocessorError> {
        let stats = Arc::new(PreprocessorStats::default());
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            groups: std::iter::once(config.group)
                .chain(config.more_groups)
                .collect(),
            transform: config.transform,
            pool: config.pool,
            downstream: Arc::new(downstream),
            failures: config.failures,
            stats: Arc::clone(&stats),
        });
        let mut spec = PoolSpec::new(config.name, config.workers, move || Preprocessor {
            shared: Arc::clone(&shared),
        })
        .capacity(config.capacity)
        .batch_size(config.batch_size);
        if let Some(max) = config.max_workers {
            spec = spec.max_workers(max);
        }
        let addr = rt.spawn_pool_with(spec).await?;
        Ok(PreprocessorHandle { addr, stats })
    }

    /// Hands a failed batch on: counted, logged, and sent to the failure sink if any.
    async fn fail(
        &self,
        id: u64,
        created_at_micros: u64,
        error: PreprocessorError,
        batch: Option<RawBatch>,
    ) {
        let shared = &self.shared;
        shared.stats.record_failed();
        tracing::warn!(preprocessor = %shared.name, batch = id, %error, "batch failed");
        if let Some(sink) = &shared.failures {
            let failed = FailedBatch {
                id,
                created_at_micros,
                error,
                batch,
            };
            if let Err(closed) = sink.send(failed).await {
                tracing::warn!(preprocessor = %shared.name, batch = id, error = %closed, "failure sink refused a failed batch");
            }
        }
    }
}

impl Actor for Preprocessor {
    type Message = RawBatch;

    async fn handle(&mut self, raw: RawBatch, _: &mut Context<Self>) -> Result<(), ActorError> {
        let queue_wait = now_micros().saturating_sub(raw.created_at_micros);
        let (id, created_at_micros) = (raw.id, raw.created_at_micros);
        let shared = Arc::clone(&self.shared);
        let group = least_loaded(&self.shared.groups).unwrap_or(&self.shared.groups[0]);
        let task = group.run_async(move || transform_timed(&*shared.transform, raw, &shared.pool));
        let transformed = match task.await {
            Ok(transformed) => transformed,
            Err(error) => {
                self.fail(id, created_at_micros, error.into(), None).await;
                return Ok(());
            }
        };
        let raw = transformed.raw;
        let prepared = match transformed.outcome {
            Ok(prepared) => prepared,
            Err(error) => {
                self.fail(id, created_at_micros, error.into(), Some(raw))
                    .await;
                return Ok(());
            }
        };
        let stats = &self.shared.stats;
        stats.record_prepared(queue_wait, transformed.took, &raw, &prepared);
        match self.shared.downstream.send(prepared).await {
            Ok(()) => stats.record_delivered(),
            Err(error) => {
                self.fail(id, created_at_micros, error.into(), Some(raw))
                    .await
            }
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        let buffers = self.shared.pool.stats();
        let lookups = buffers.hits + buffers.misses;
        let hit_rate = if lookups == 0 {
            0.0
        } else {
            buffers.hits as f64 / lookups as f64
        };
        Some(format!(
            "transform={} group={} {} buffer_hit_rate={hit_rate:.3} pooled_bytes={} pooled_buffers={}",
            self.shared.transform.name(),
            self.shared
                .groups
                .iter()
                .map(|group| group.name())
                .collect::<Vec<_>>()
                .join(","),
            self.shared.stats.snapshot(),
            buffers.pooled_bytes,
            buffers.pooled_buffers
        ))
    }
}

/// A running preprocessor: its address (send [`RawBatch`]es to it) and its counters.
#[derive(Clone)]
pub struct PreprocessorHandle {
    addr: Addr<Preprocessor>,
    stats: Arc<PreprocessorStats>,
}

impl PreprocessorHandle {
    /// The pool's address; it is also a [`Downstream`] for an earlier stage.
    pub fn addr(&self) -> &Addr<Preprocessor> {
        &self.addr
    }

    /// The pool's registered name (for `Runtime::control`).
    pub fn name(&self) -> &str {
        self.addr.name()
    }

    /// Queues a raw batch, waiting while the mailbox is full; hands it back if the
    /// preprocessor stopped.
    pub async fn submit(&self, batch: RawBatch) -> Result<(), SendError<RawBatch>> {
        self.addr.tell(batch).await
    }

    /// The per-batch counters (all workers together).
    pub fn stats(&self) -> &PreprocessorStats {
        &self.stats
    }
}

impl std::fmt::Debug for PreprocessorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreprocessorHandle")
            .field("name", &self.name())
            .field("stats", &self.stats.snapshot())
            .finish()
    }
}
