//! The built-in single-node pipeline that `vortex run` starts:
//!
//! ```text
//! source ──► preprocessor pool ──► router ──► launcher-0 (cpu:0) ──┐
//! (image      (normalise to f32,    (device    launcher-1 (cpu:1) ──┼──► sink
//!  batches)    group `cpu`)          score)    …                   ─┘
//! ```
//!
//! Each launcher drives one CPU compute device — its own pinned resource group
//! `device-<i>` — running the built-in MLP kernel on every batch. Next to the pipeline run
//! the services a deployment has ([`open_services`]): the scheduler, the journal in the
//! data directory, and housekeeping timers; with `metrics_addr`, the supervised exporter.
//! [`Faults`] injects failures on purpose.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
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

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use vortex_messages::pipeline::FinishedBatch;

use crate::actors::autotuner::{Autotuner, AutotunerConfig, AutotunerSettings};
use crate::actors::journal::{
    Durability, JournalActor, JournalActorConfig, JournalHandle, JournalMessage, PendingRecord,
};
use crate::actors::launcher::{
    ComputeDevice, CpuDevice, KernelRegistry, Launcher, LauncherConfig, LauncherHandle, MlpKernel,
    Router, ScoreWeights,
};
use crate::actors::preprocessor::{NormalizeImages, Preprocessor, PreprocessorConfig};
use crate::actors::scheduler::{Scheduler, SchedulerConfig, TimerHandle};
use crate::actors::source::{ImageSource, SourceConfig};
use crate::actors::telemetry::{ExporterConfig, MetricsSink, RuntimeExporter, TelemetryPublisher};
use crate::prelude::*;
use crate::runtime::buffer_pool::BufferPool;
use crate::runtime::RuntimeObserver;

/// Outputs of the demo MLP (classes).
const MLP_OUTPUTS: usize = 10;

/// Memory each CPU device hands out.
const DEVICE_MEMORY_BYTES: u64 = 256 << 20;

/// Settings of the demo pipeline.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// How long the source feeds the pipeline.
    pub duration: Duration,
    /// Transform workers in the pool.
    pub workers: u32,
    /// Bytes per image (one square RGB image of about this size).
    pub batch_bytes: usize,
    /// Images per batch (the source's batch-size knob at start).
    pub batch_items: u32,
    /// CPU compute devices, one launcher each.
    pub devices: u32,
    /// Hidden units of the MLP kernel.
    pub hidden: usize,
    /// Batches each launcher may hold ahead.
    pub prefetch_depth: u32,
    /// Scale the pool to this size half-way through.
    pub scale_to: Option<u32>,
    /// Serve Prometheus metrics here while the pipeline runs.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Where the journal lives (see [`open_services`]); `None`: a fresh temporary
    /// directory, removed when the run ends.
    pub data_dir: Option<PathBuf>,
    /// Faults injected on purpose (none by default).
    pub faults: Faults,
    /// Run the autotuner (named `autotuner`) with these settings while the pipeline runs.
    pub autotune: Option<AutotunerSettings>,
}

/// Faults `vortex run` injects on purpose, so that restarts and dead letters really
/// happen (for drills, and for the test that scrapes every metric).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The sink fails on every n-th batch it receives (counted across its restarts): that
    /// batch goes to the dead-letter sink (accounted for, not lost) and the sink's
    /// supervisor restarts it. With any fault on, each top-level actor may restart 1000
    /// times in 10 s (instead of 20) so that the drill does not exhaust its budget.
    pub poison_every: Option<u64>,
    /// Injects one failure into the actor with this name (`Runtime::inject_failure`)
    /// one second into the run (when feeding ends, in a shorter run); its supervisor
    /// restarts it. E.g. `sink`, `scheduler`, `journal`, `exporter-http`.
    pub fail_once: Option<String>,
}

impl Faults {
    fn any(&self) -> bool {
        self.poison_every.is_some() || self.fail_once.is_some()
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            duration: Duration::from_secs(3),
            workers: 2,
            batch_bytes: 4096,
            batch_items: 8,
            devices: 2,
            hidden: 64,
            prefetch_depth: 2,
            scale_to: None,
            metrics_addr: None,
            data_dir: None,
            faults: Faults::default(),
            autotune: None,
        }
    }
}

/// Sink messages: finished batches, and a request for the totals.
pub enum SinkMessage {
    /// One finished batch (the MLP's output) from a launcher.
    Batch(FinishedBatch),
    /// Totals so far: (batches, bytes, distinct ids).
    Totals(Reply<(u64, u64, u64)>),
}

impl From<FinishedBatch> for SinkMessage {
    fn from(batch: FinishedBatch) -> Self {
        SinkMessage::Batch(batch)
    }
}

/// Sink: the end of the pipeline; counts batches and bytes and checks that no id
/// arrives twice. Its totals outlive its incarnations (a poisoned batch restarts it).
#[derive(Default)]
struct Sink {
    totals: Arc<std::sync::Mutex<SinkTotals>>,
    poison_every: Option<u64>,
}

#[derive(Default)]
struct SinkTotals {
    arrived: u64,
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
        let mut totals = self
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match message {
            SinkMessage::Batch(batch) => {
                totals.arrived += 1;
                if let Some(every) = self.poison_every {
                    if totals.arrived.checked_rem(every) == Some(0) {
                        // Fault injection: the runtime dead-letters this batch and the
                        // supervisor restarts the sink.
                        return Err(format!("poisoned batch {} (fault injection)", batch.id).into());
                    }
                }
                totals.batches += 1;
                totals.bytes += batch.data.len() as u64;
                totals.seen.insert(batch.id);
            }
            SinkMessage::Totals(reply) => {
                reply.send((totals.batches, totals.bytes, totals.seen.len() as u64))
            }
        }
        Ok(())
    }
}

/// What one launcher did in a demo run.
#[derive(Debug, Clone)]
pub struct LauncherSummary {
    /// The launcher's registered name.
    pub name: String,
    /// Its device (`cpu:0`).
    pub device: String,
    /// Batches the router sent it.
    pub routed: u64,
    /// Batches it finished.
    pub batches: u64,
    /// Items in those batches.
    pub items: u64,
    /// Kernel time, all batches together.
    pub compute: Duration,
    /// Copy time, all batches together.
    pub copy: Duration,
    /// Fraction of its active time it waited for input.
    pub data_stall_ratio: f64,
    /// Device faults.
    pub faults: u64,
    /// Whether it was in rotation at the end.
    pub in_rotation: bool,
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
    /// Every launcher's summary.
    pub launchers: Vec<LauncherSummary>,
    /// Every resource group's status at the end.
    pub groups: Vec<vortex_messages::resource::ResourceGroupStatus>,
    /// Dead letters in the runtime (each one a batch that is accounted for, not lost).
    pub dead_letters: u64,
    /// The autotuner's `Status` detail at the end (its last decisions), when it ran.
    pub autotuner: Option<String>,
}

impl DemoReport {
    /// Batches sent but neither received exactly once nor dead-lettered.
    pub fn lost(&self) -> u64 {
        let accounted = self.distinct + self.dead_letters;
        self.sent.saturating_sub(accounted) + self.received.abs_diff(self.distinct)
    }

    /// A human-readable summary, launcher table and status table.
    pub fn render(&self, wall: Duration) -> String {
        let secs = self.fed_for.as_secs_f64().max(1e-9);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Nexa Vortex demo pipeline: source -> preprocessor pool (resource group `cpu`) -> router -> {} launchers (CPU devices, MLP kernel) -> sink",
            self.launchers.len()
        );
        let _ = writeln!(
            out,
            "batches: sent {} received {} dead-lettered {} lost {} | {:.0} batches/s, {:.1} MB/s out | wall {:.2}s",
            self.sent,
            self.received,
            self.dead_letters,
            self.lost(),
            self.received as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            wall.as_secs_f64()
        );
        self.render_launchers(&mut out);
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
        if let Some(detail) = &self.autotuner {
            let _ = write!(out, "\nautotuner: {detail}");
        }
        out
    }

    fn render_launchers(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{:<12} {:<7} {:<8} {:>8} {:>8} {:>8} {:>11} {:>8} {:>7} {:>7}",
            "LAUNCHER",
            "DEVICE",
            "ROTATION",
            "ROUTED",
            "BATCHES",
            "ITEMS",
            "COMPUTE_MS",
            "COPY_MS",
            "STALL%",
            "FAULTS"
        );
        for launcher in &self.launchers {
            let _ = writeln!(
                out,
                "{:<12} {:<7} {:<8} {:>8} {:>8} {:>8} {:>11.1} {:>8.1} {:>7.1} {:>7}",
                launcher.name,
                launcher.device,
                if launcher.in_rotation { "in" } else { "OUT" },
                launcher.routed,
                launcher.batches,
                launcher.items,
                launcher.compute.as_secs_f64() * 1e3,
                launcher.copy.as_secs_f64() * 1e3,
                launcher.data_stall_ratio * 100.0,
                launcher.faults
            );
        }
    }
}

/// Builds the runtime: resource group `cpu` (one thread per core, pinned) for the
/// preprocessor and `device-<i>` for each CPU device (its share of the cores).
fn build_runtime(devices: u32, faults: &Faults) -> Result<Runtime, RuntimeError> {
    let cores = core_ids();
    let mut builder =
        Runtime::builder().resource_group("cpu", cores.len().max(1), Some(cores.clone()));
    if faults.any() {
        builder = builder.root_intensity(Intensity::new(1000, Duration::from_secs(10)));
    }
    for device in 0..devices as usize {
        let share = device_cores(&cores, device, devices as usize);
        builder =
            builder.resource_group(format!("device-{device}"), share.len().max(1), Some(share));
    }
    builder.build()
}

/// Device `index` of `devices` gets an equal slice of `cores` (at least one core,
/// wrapping around when there are more devices than cores).
fn device_cores(cores: &[usize], index: usize, devices: usize) -> Vec<usize> {
    if cores.is_empty() {
        return vec![];
    }
    let per = (cores.len() / devices.max(1)).max(1);
    (0..per)
        .map(|i| cores[(index * per + i) % cores.len()])
        .collect()
}

fn invalid(error: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::InvalidConfig(error.to_string())
}

/// Runs the demo pipeline on the current tokio runtime and reports what it did.
///
/// The source sends raw RGB image batches (u8) to a [`Preprocessor`] pool that normalises
/// them to f32 on the resource group `cpu` with pooled buffers; the [`Router`] sends each
/// prepared batch to the best-scoring [`Launcher`], whose CPU device runs the MLP kernel on
/// its own pinned group and forwards the output to the sink. Every stage applies
/// back-pressure to the one before.
pub async fn run(config: DemoConfig) -> Result<DemoReport, RuntimeError> {
    let devices = config.devices.max(1);
    let rt = build_runtime(devices, &config.faults)?;
    let sink_totals = Arc::new(std::sync::Mutex::new(SinkTotals::default()));
    let poison_every = config.faults.poison_every;
    let totals = Arc::clone(&sink_totals);
    let sink = rt
        .spawn("sink", move || Sink {
            totals: Arc::clone(&totals),
            poison_every,
        })
        .await?;
    let buffers = BufferPool::default();
    let side = image_side(config.batch_bytes);
    let features = 3 * (side as usize) * (side as usize);
    let mut kernels = KernelRegistry::new();
    kernels.register(Arc::new(MlpKernel::seeded(
        features,
        config.hidden.max(1),
        MLP_OUTPUTS,
        7,
    )));
    let exporter = match config.metrics_addr {
        Some(addr) => Some(start_exporter(&rt, addr).await?),
        None => None,
    };
    let metrics = exporter.as_ref().map(|(exporter, _)| exporter.sink());
    let services = open_services(&rt, config.data_dir.as_deref(), metrics, &buffers).await?;
    // The autotuner learns from the launchers' events: it needs a publisher too.
    let telemetry = match (&exporter, &config.autotune) {
        (Some((_, telemetry)), _) => Some(telemetry.clone()),
        (None, Some(_)) => Some(TelemetryPublisher::spawn(&rt, "telemetry", 4096).await?),
        (None, None) => None,
    };
    let mut launchers = Vec::new();
    // CUDA devices first when built with `--features cuda` and a GPU is present; CPU
    // devices for the rest (said once, with the reason, when there is no GPU at all).
    let mut gpus = crate::actors::launcher::cuda_devices(
        devices as usize,
        crate::actors::launcher::DEFAULT_CHUNK_ROWS,
        None,
    )
    .unwrap_or_else(|reason| {
        tracing::info!(%reason, "no CUDA device: the demo runs on CPU devices");
        Vec::new()
    })
    .into_iter();
    for index in 0..devices {
        let device = match gpus.next() {
            Some(gpu) => gpu,
            None => ComputeDevice::Cpu(CpuDevice::new(
                index,
                rt.resource_group(&format!("device-{index}"))?,
                DEVICE_MEMORY_BYTES,
                Duration::from_millis(100),
            )),
        };
        let mut launcher_config = LauncherConfig::with_kernel_named(
            format!("launcher-{index}"),
            device,
            &kernels,
            MlpKernel::NAME,
        )
        .map_err(invalid)?
        .prefetch_depth(config.prefetch_depth.max(1))
        .return_buffers_to(buffers.clone());
        if let Some(telemetry) = &telemetry {
            launcher_config = launcher_config.telemetry(telemetry.clone());
        }
        launchers.push(
            Launcher::spawn(&rt, launcher_config, sink.clone())
                .await
                .map_err(invalid)?,
        );
    }
    let router = Arc::new(Router::new(
        "router",
        launchers,
        ScoreWeights::default(),
        rt.dead_letters().clone(),
    ));
    let preprocessor_config = PreprocessorConfig::new(
        "preprocess",
        rt.resource_group("cpu")?,
        Arc::new(NormalizeImages::imagenet()),
        buffers,
    )
    .workers(config.workers.max(1));
    let preprocessor = Preprocessor::spawn(&rt, preprocessor_config, Arc::clone(&router))
        .await
        .map_err(invalid)?;
    let source_config = SourceConfig::new("source", side, config.batch_items.max(1));
    let source = ImageSource::spawn(&rt, source_config, preprocessor.addr().clone()).await?;
    let autotuner = match (&config.autotune, &telemetry) {
        (Some(settings), Some(telemetry)) => Some(
            start_autotuner(&rt, settings.clone(), &config, telemetry.clone(), &services).await?,
        ),
        _ => None,
    };
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut scaled = config.scale_to.is_none();
    let mut fail_once = config.faults.fail_once.clone();
    let fail_at = Duration::from_secs(1);
    while start.elapsed() < config.duration {
        if start.elapsed() >= fail_at {
            if let Some(name) = fail_once.take() {
                inject_once(&rt, &name).await;
            }
        }
        match source.emit(4).await {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
        if !scaled && start.elapsed() >= config.duration / 2 {
            scaled = true;
            if let Some(n) = config.scale_to {
                rt.control(preprocessor.name(), Control::Scale { n })
                    .await?;
            }
        }
    }
    let fed_for = start.elapsed();
    if let Some(name) = fail_once.take() {
        inject_once(&rt, &name).await;
    }
    let totals = wait_for_sink(&rt, &sink_totals, sent).await?;
    let mut statuses = Vec::new();
    for info in rt.actors() {
        if let ControlReply::Status(status) = rt.control(&info.name, Control::Status).await? {
            statuses.push(status);
        }
    }
    let autotuner = match autotuner {
        Some(handle) => {
            let detail = statuses
                .iter()
                .find(|status| status.name == handle.name())
                .map(|status| status.detail.clone());
            drop(handle);
            detail
        }
        None => None,
    };
    let launchers = summarise(&router);
    let dead_letters = rt.dead_letters().count();
    let groups = rt.resource_groups();
    if let Some((exporter, _)) = exporter {
        let _ = exporter.shutdown().await;
    }
    services.close();
    rt.shutdown().await;
    Ok(DemoReport {
        sent,
        received: totals.0,
        distinct: totals.2,
        bytes: totals.1,
        fed_for,
        statuses,
        launchers,
        groups,
        dead_letters,
        autotuner,
    })
}

/// The runtime services `vortex run` starts next to the pipeline, as a deployment would:
/// the scheduler (timing wheel) and the journal in the data directory, with two
/// housekeeping timers on the scheduler — every 100 ms a durable progress record is
/// appended to the journal (one `fdatasync` each), every second the buffer pool's idle
/// buffers (unused for 2 s) are trimmed.
pub struct Services {
    /// Where the journal lives.
    pub data_dir: PathBuf,
    /// The scheduler actor `scheduler`.
    pub scheduler: Scheduler,
    /// The journal actor `journal`.
    pub journal: Addr<JournalActor>,
    /// Reads the journal across the actor's restarts.
    pub journal_handle: JournalHandle,
    timers: Vec<TimerHandle>,
    temporary: bool,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("data_dir", &self.data_dir)
            .field("temporary", &self.temporary)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Cancels the housekeeping timers and removes a temporary data directory (the
    /// actors stop with the runtime).
    pub fn close(self) {
        drop(self.timers);
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Record kind of the journal's progress records (`(handled, dead_letters)`, bincode 2).
pub const PROGRESS_RECORD: u16 = 1;

/// Starts the scheduler (`scheduler`, its lag into `metrics`) and the journal (`journal`,
/// in `data_dir`, created if missing; a fresh temporary directory when `None`, its fsync
/// latency into `metrics`), and arms the housekeeping timers (see [`Services`]).
pub async fn open_services(
    rt: &Runtime,
    data_dir: Option<&Path>,
    metrics: Option<&MetricsSink>,
    buffers: &BufferPool,
) -> Result<Services, RuntimeError> {
    let (data_dir, temporary) = match data_dir {
        Some(dir) => (dir.to_path_buf(), false),
        None => (temporary_dir(), true),
    };
    std::fs::create_dir_all(&data_dir)
        .map_err(|error| invalid(format!("data directory {}: {error}", data_dir.display())))?;
    let mut timers = SchedulerConfig::default();
    if let Some(metrics) = metrics {
        timers = timers.lag_histogram(metrics.timer_lag());
    }
    let scheduler = Scheduler::spawn_with(rt, "scheduler", timers).await?;
    let journal_config = JournalActorConfig {
        metrics: metrics.cloned(),
        ..JournalActorConfig::default()
    };
    let (journal, journal_handle) =
        JournalActor::spawn_with(rt, "journal", data_dir.join("journal"), journal_config)
            .await
            .map_err(invalid)?;
    let housekeeper = rt
        .spawn("housekeeper", {
            let (journal, buffers, observer) = (journal.clone(), buffers.clone(), rt.observer());
            move || Housekeeper {
                journal: journal.clone(),
                buffers: buffers.clone(),
                observer: observer.clone(),
            }
        })
        .await?;
    let every = |period, chore| scheduler.send_interval(period, &housekeeper, chore);
    let timers = vec![
        every(Duration::from_millis(100), Chore::RecordProgress).map_err(invalid)?,
        every(Duration::from_secs(1), Chore::TrimBuffers).map_err(invalid)?,
    ];
    Ok(Services {
        data_dir,
        scheduler,
        journal,
        journal_handle,
        timers,
        temporary,
    })
}

/// A fresh, empty directory under the system's temporary directory.
fn temporary_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!("vortex-run-{}-{nanos}", std::process::id()))
}

/// What the housekeeping timers send.
#[derive(Debug, Clone, Copy)]
enum Chore {
    RecordProgress,
    TrimBuffers,
}

/// Does the chores the scheduler's timers ask for.
struct Housekeeper {
    journal: Addr<JournalActor>,
    buffers: BufferPool,
    observer: RuntimeObserver,
}

impl Actor for Housekeeper {
    type Message = Chore;
    async fn handle(&mut self, chore: Chore, _: &mut Context<Self>) -> Result<(), ActorError> {
        match chore {
            Chore::RecordProgress => {
                let handled: u64 = self.observer.statuses().iter().map(|s| s.handled).sum();
                let progress = (handled, self.observer.dead_letters());
                let record = PendingRecord::encode(PROGRESS_RECORD, &progress)?
                    .with_durability(Durability::Each);
                let appended = self
                    .journal
                    .ask(|reply| JournalMessage::Append { record, reply })
                    .await;
                match appended {
                    Ok(Ok(_seq)) => {}
                    // A journal restarting or refusing is logged; the next tick tries again.
                    Ok(Err(error)) => tracing::warn!(%error, "progress record not appended"),
                    Err(error) => tracing::warn!(%error, "journal did not answer"),
                }
            }
            Chore::TrimBuffers => {
                self.buffers.trim_idle(Duration::from_secs(2));
            }
        }
        Ok(())
    }
}

/// Fault injection: one failure into `name` (logged; an unknown name is reported).
async fn inject_once(rt: &Runtime, name: &str) {
    match rt.inject_failure(name, "vortex run --fail-once").await {
        Ok(()) => tracing::info!(actor = name, "injected one failure"),
        Err(error) => tracing::warn!(actor = name, %error, "fault injection refused"),
    }
}

/// Starts the autotuner on the pipeline's knobs: the `preprocess` pool (within the cores
/// of group `cpu`) and the source's batch size; decisions every `settings.interval_ms`.
async fn start_autotuner(
    rt: &Runtime,
    settings: AutotunerSettings,
    config: &DemoConfig,
    telemetry: crate::actors::telemetry::TelemetryHandle,
    services: &Services,
) -> Result<crate::actors::autotuner::AutotunerHandle, RuntimeError> {
    let cpu_budget = rt.resource_group("cpu")?.threads() as u32;
    let autotuner_config = AutotunerConfig {
        name: "autotuner".into(),
        settings,
        preprocessor: "preprocess".into(),
        source: "source".into(),
        launchers: (0..config.devices.max(1))
            .map(|index| format!("launcher-{index}"))
            .collect(),
        initial_batch: config.batch_items.max(1),
        cpu_budget,
        telemetry,
        journal: Some(services.journal.clone()),
    };
    // The run's own scheduler times its rounds; its decisions go to the run's journal.
    Autotuner::spawn(rt, &services.scheduler, autotuner_config)
        .await
        .map_err(invalid)
}

/// Serves `/metrics` at `addr`, fed by the runtime sampler and by the launchers' events.
async fn start_exporter(
    rt: &Runtime,
    addr: std::net::SocketAddr,
) -> Result<(RuntimeExporter, crate::actors::telemetry::TelemetryHandle), RuntimeError> {
    let exporter_config = ExporterConfig {
        addr,
        ..ExporterConfig::default()
    };
    let exporter = RuntimeExporter::start(rt, exporter_config, Duration::from_millis(500))
        .await
        .map_err(invalid)?;
    let telemetry = TelemetryPublisher::spawn(rt, "telemetry", 1024).await?;
    tokio::spawn(exporter.sink().clone().consume(telemetry.subscribe()));
    tracing::info!(addr = %exporter.local_addr(), "serving /metrics");
    Ok((exporter, telemetry))
}

/// Waits (bounded) until every batch sent reached the sink or the dead-letter sink. Reads
/// the sink's totals directly (they outlive its incarnations), so a sink that is
/// restarting after a poisoned batch does not fail the wait.
async fn wait_for_sink(
    rt: &Runtime,
    totals: &std::sync::Mutex<SinkTotals>,
    sent: u64,
) -> Result<(u64, u64, u64), RuntimeError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let read = || {
        let totals = totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (totals.batches, totals.bytes, totals.seen.len() as u64)
    };
    let mut now = read();
    while tokio::time::Instant::now() < deadline && now.0 + rt.dead_letters().count() < sent {
        tokio::time::sleep(Duration::from_millis(1)).await;
        now = read();
    }
    Ok(now)
}

fn summarise(router: &Router) -> Vec<LauncherSummary> {
    let routed = router.routed();
    router
        .launchers()
        .iter()
        .zip(routed)
        .map(|(launcher, routed): (&LauncherHandle, u64)| {
            let snapshot = launcher.stats().snapshot();
            LauncherSummary {
                name: launcher.name().to_owned(),
                device: launcher.device().label().to_owned(),
                routed,
                batches: snapshot.batches,
                items: snapshot.items,
                compute: snapshot.compute,
                copy: snapshot.copy,
                data_stall_ratio: snapshot.data_stall_ratio,
                faults: snapshot.faults,
                in_rotation: snapshot.in_rotation,
            }
        })
        .collect()
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
