//! The built-in single-node demo pipeline that `vortex run` starts: a source feeding a
//! pool of transform workers feeding a sink, all custom actors on the actor core.
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

use crate::actors::telemetry::{ExporterConfig, RuntimeExporter};
use crate::prelude::*;

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

/// A raw batch: an id and its bytes.
pub struct RawBatch {
    id: u64,
    bytes: Vec<u8>,
}

/// What a transform worker produces: the batch id and a checksum of the normalised data.
pub struct Prepared {
    id: u64,
    checksum: f64,
    bytes: usize,
}

/// Transform worker: normalises bytes to f32 in [0, 1] and forwards a checksum.
struct Transform {
    sink: Addr<Sink>,
    scratch: Vec<f32>,
}

impl Actor for Transform {
    type Message = RawBatch;
    async fn handle(&mut self, batch: RawBatch, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.scratch.clear();
        self.scratch
            .extend(batch.bytes.iter().map(|&b| f32::from(b) / 255.0));
        let checksum = self.scratch.iter().map(|&x| f64::from(x)).sum();
        let prepared = Prepared {
            id: batch.id,
            checksum,
            bytes: batch.bytes.len(),
        };
        self.sink
            .tell(SinkMessage::Batch(prepared))
            .await
            .map_err(|_| "sink closed")?;
        Ok(())
    }
}

/// Sink messages: prepared batches, and a request for the totals.
pub enum SinkMessage {
    /// One prepared batch.
    Batch(Prepared),
    /// Totals so far: (batches, bytes, checksum, distinct ids).
    Totals(Reply<(u64, u64, f64, u64)>),
}

/// Sink: counts batches and bytes, and checks that no id arrives twice.
#[derive(Default)]
struct Sink {
    batches: u64,
    bytes: u64,
    checksum: f64,
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
                self.bytes += batch.bytes as u64;
                self.checksum += batch.checksum;
                self.seen.insert(batch.id);
            }
            SinkMessage::Totals(reply) => reply.send((
                self.batches,
                self.bytes,
                self.checksum,
                self.seen.len() as u64,
            )),
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
            "Nexa Vortex demo pipeline: source -> transform pool -> sink"
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
        let _ = write!(out, "dead letters: {}", self.dead_letters);
        out
    }
}

/// Runs the demo pipeline on the current tokio runtime and reports what it did.
pub async fn run(config: DemoConfig) -> Result<DemoReport, RuntimeError> {
    let rt = Runtime::builder().build()?;
    let sink = rt.spawn("sink", Sink::default).await?;
    let transform_sink = sink.clone();
    let pool = rt
        .spawn_pool("transform", config.workers.max(1), move || Transform {
            sink: transform_sink.clone(),
            scratch: Vec::new(),
        })
        .await?;
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
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut scaled = config.scale_to.is_none();
    while start.elapsed() < config.duration {
        let bytes = vec![(sent % 251) as u8; config.batch_bytes];
        if pool.tell(RawBatch { id: sent, bytes }).await.is_err() {
            break;
        }
        sent += 1;
        if !scaled && start.elapsed() >= config.duration / 2 {
            scaled = true;
            if let Some(n) = config.scale_to {
                rt.control("transform", Control::Scale { n }).await?;
            }
        }
    }
    let fed_for = start.elapsed();
    // Wait (bounded) until every batch went through both stages.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut totals = (0, 0, 0.0, 0);
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
    if let Some(exporter) = exporter {
        let _ = exporter.shutdown().await;
    }
    rt.shutdown().await;
    Ok(DemoReport {
        sent,
        received: totals.0,
        distinct: totals.3,
        bytes: totals.1,
        fed_for,
        statuses,
        dead_letters,
    })
}
