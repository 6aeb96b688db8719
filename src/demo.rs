//! The built-in single-node pipeline that `vortex run` starts: a source feeding the CPU
//! preprocessor (a pool of workers normalising images on a pinned resource group) feeding
//! a sink that stands in for the GPU launcher.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use vortex::demo::{run, DemoConfig};
//!
//! let report = run(DemoConfig { duration: Duration::from_millis(50), ..DemoConfig::default() })
//!     .await
//!     .unwrap();
//! assert_eq!(report.lost(), 0);
//! assert_eq!(report.sent, report.received);
//! # }
//! ```

use std::{fmt::Write as _, time::Duration};

use std::sync::Arc;

use vortex_messages::pipeline::{BatchKind, PreparedBatch, RawBatch};

use crate::actors::preprocessor::{now_micros, NormalizeImages, Preprocessor, PreprocessorConfig};
use crate::actors::telemetry::{ExporterConfig, RuntimeExporter};
use crate::prelude::*;
use crate::runtime::buffer_pool::BufferPool;

/// Settings of the demo pipeline.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// How long the source feeds the pipeline.
    pub duration: Duration,
    /// Transform workers in the pool.
    pub workers: u32,
    /// Bytes per batch.
    pub batch_bytes: usize,
    /// Scale the pool to this size half-way through.
    pub scale_to: Option<u32>,
    /// Serve Prometheus metrics here while the pipeline runs.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            duration: Duration::from_secs(3),
            workers: 2,
            batch_bytes: 4096,
            scale_to: None,
            metrics_addr: None,
        }
    }
}

/// Sink messages: prepared batches, and a request for the totals.
pub enum SinkMessage {
    /// One prepared (normalised, f32) batch from the preprocessor.
    Batch(PreparedBatch),
    /// Totals so far: (batches, bytes, distinct ids).
    Totals(Reply<(u64, u64, u64)>),
}

impl From<PreparedBatch> for SinkMessage {
    fn from(batch: PreparedBatch) -> Self {
        SinkMessage::Batch(batch)
    }
}

/// Sink: stands in for the GPU launcher; counts batches and bytes and checks that no id
/// arrives twice.
#[derive(Default)]
struct Sink {
    batches: u64,
    bytes: u64,
    seen: std::collections::HashSet<u64>,
}

impl Actor for Sink {
    type Message = SinkMessage;
    async fn handle(
        &mut self,
        message: SinkMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            SinkMessage::Batch(batch) => {
                self.batches += 1;
                self.bytes += batch.data.len() as u64;
                self.seen.insert(batch.id);
            }
            SinkMessage::Totals(reply) => {
                reply.send((self.batches, self.bytes, self.seen.len() as u64))
            }
        }
        Ok(())
    }
}

/// What one demo run did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Batches the source sent.
    pub sent: u64,
    /// Batches the sink received.
    pub received: u64,
    /// Distinct batch ids the sink saw.
    pub distinct: u64,
    /// Bytes the sink received.
    pub bytes: u64,
    /// How long the source fed the pipeline.
    pub fed_for: Duration,
    /// Every actor's status at the end.
    pub statuses: Vec<StatusReport>,
    /// Every resource group's status at the end.
    pub groups: Vec<vortex_messages::resource::ResourceGroupStatus>,
    /// Dead letters in the runtime.
    pub dead_letters: u64,
}

impl DemoReport {
    /// Batches sent but not received exactly once.
    pub fn lost(&self) -> u64 {
        self.sent.abs_diff(self.distinct) + self.received.abs_diff(self.distinct)
    }

    /// A human-readable summary and status table.
    pub fn render(&self, wall: Duration) -> String {
        let secs = self.fed_for.as_secs_f64().max(1e-9);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Nexa Vortex demo pipeline: source -> preprocessor pool (resource group `cpu`) -> sink"
        );
        let _ = writeln!(
            out,
            "batches: sent {} received {} lost {} | {:.0} batches/s, {:.1} MB/s | wall {:.2}s",
            self.sent,
            self.received,
            self.lost(),
            self.received as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            wall.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<10} {:>8} {:>10} {:>9} {:>8} {:>8}",
            "NAME", "KIND", "STATE", "WORKERS", "HANDLED", "RESTARTS", "DEPTH", "DEAD"
        );
        for status in &self.statuses {
            let _ = writeln!(
                out,
                "{:<12} {:<10} {:<10} {:>8} {:>10} {:>9} {:>8} {:>8}",
                status.name,
                status.kind.to_string(),
                status.state.to_string(),
                status.workers,
                status.handled,
                status.restarts,
                status.mailbox_depth,
                status.dead_letters
            );
        }
        for group in &self.groups {
            let _ = writeln!(
                out,
                "resource group {}: {} threads, cores {:?}, {} tasks done, {} panicked, {} active",
                group.name,
                group.threads,
                group.cores,
                group.completed,
                group.panicked,
                group.active_tasks
            );
        }
        let _ = write!(out, "dead letters: {}", self.dead_letters);
        out
    }
}

/// Runs the demo pipeline on the current tokio runtime and reports what it did.
///
/// The source sends raw RGB image batches (u8) to a [`Preprocessor`] pool that normalises
/// them to f32 on the resource group `cpu` (one thread per core, pinned), with pooled
/// output buffers, and forwards them to the sink with back-pressure.
pub async fn run(config: DemoConfig) -> Result<DemoReport, RuntimeError> {
    let cores = core_ids();
    let rt = Runtime::builder()
        .resource_group("cpu", cores.len().max(1), Some(cores))
        .build()?;
    let sink = rt.spawn("sink", Sink::default).await?;
    let transform = NormalizeImages::imagenet();
    let preprocessor_config = PreprocessorConfig::new(
        "preprocess",
        rt.resource_group("cpu")?,
        Arc::new(transform),
        BufferPool::default(),
    )
    .workers(config.workers.max(1));
    let preprocessor = Preprocessor::spawn(&rt, preprocessor_config, sink.clone())
        .await
        .map_err(|error| RuntimeError::InvalidConfig(error.to_string()))?;
    let exporter = match config.metrics_addr {
        Some(addr) => {
            let exporter_config = ExporterConfig {
                addr,
                ..ExporterConfig::default()
            };
            let exporter = RuntimeExporter::start(&rt, exporter_config, Duration::from_millis(500))
                .await
                .map_err(|error| RuntimeError::InvalidConfig(error.to_string()))?;
            tracing::info!(addr = %exporter.local_addr(), "serving /metrics");
            Some(exporter)
        }
        None => None,
    };
    let side = image_side(config.batch_bytes);
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut scaled = config.scale_to.is_none();
    while start.elapsed() < config.duration {
        let batch = RawBatch {
            id: sent,
            kind: BatchKind::Images {
                width: side,
                height: side,
                channels: 3,
            },
            items: 1,
            data: vec![(sent % 251) as u8; (side * side * 3) as usize],
            created_at_micros: now_micros(),
        };
        if preprocessor.submit(batch).await.is_err() {
            break;
        }
        sent += 1;
        if !scaled && start.elapsed() >= config.duration / 2 {
            scaled = true;
            if let Some(n) = config.scale_to {
                rt.control(preprocessor.name(), Control::Scale { n })
                    .await?;
            }
        }
    }
    let fed_for = start.elapsed();
    // Wait (bounded) until every batch went through both stages.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut totals = (0, 0, 0);
    while tokio::time::Instant::now() < deadline {
        totals = sink
            .ask(SinkMessage::Totals)
            .await
            .map_err(|_| RuntimeError::ShutDown)?;
        if totals.0 >= sent {
            break;
        }
        tokio::task::yield_now().await;
    }
    let mut statuses = Vec::new();
    for info in rt.actors() {
        if let ControlReply::Status(status) = rt.control(&info.name, Control::Status).await? {
            statuses.push(status);
        }
    }
    let dead_letters = rt.dead_letters().count();
    let groups = rt.resource_groups();
    if let Some(exporter) = exporter {
        let _ = exporter.shutdown().await;
    }
    rt.shutdown().await;
    Ok(DemoReport {
        sent,
        received: totals.0,
        distinct: totals.2,
        bytes: totals.1,
        fed_for,
        statuses,
        groups,
        dead_letters,
    })
}

/// The side of a square RGB image of about `bytes` bytes (at least 1 pixel).
fn image_side(bytes: usize) -> u32 {
    (((bytes / 3) as f64).sqrt() as u32).max(1)
}

/// The cores this process may run on (empty when they cannot be read).
fn core_ids() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect();
    ids.sort_unstable();
    ids
}
