//! The built-in single-node pipeline that `vortex run` starts:
//!
//! ```text
//! source ──► preprocessor pool ──► router ──► launcher-0 (cpu:0) ──┐
//! (image      (normalise to f32,    (device    launcher-1 (cpu:1) ──┼──► sink
//!  batches)    group `cpu`)          score)    …                   ─┘
//! ```
//!
//! Each launcher drives one CPU compute device — its own pinned resource group
//! `device-<i>` — running the built-in MLP kernel on every batch.
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
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use vortex_messages::{pipeline::FinishedBatch, ActorState};

use crate::actors::autotuner::{Autotuner, AutotunerConfig, AutotunerSettings};
use crate::actors::control::TcpControl;
use crate::actors::journal::{
    Durability, JournalActor, JournalActorConfig, JournalHandle, JournalMessage, PendingRecord,
};
use crate::actors::launcher::{
    ComputeDevice, CpuDevice, KernelRegistry, Launcher, LauncherConfig, LauncherHandle, MlpKernel,
    Router, ScoreWeights,
};
use crate::actors::preprocessor::{NormalizeImages, Preprocessor, PreprocessorConfig};
use crate::actors::scheduler::{Scheduler, SchedulerConfig, TimerHandle};
use crate::actors::source::SourceHandle;
use crate::actors::source::{ImageSource, SourceConfig};
use crate::actors::telemetry::{
    ExporterConfig, MetricsSink, RuntimeExporter, TelemetryHandle, TelemetryPublisher,
};
use crate::prelude::*;
use crate::runtime::buffer_pool::BufferPool;
use crate::runtime::{CheckpointSink, RuntimeObserver};
use crate::session::{RunResults, Session};

/// Outputs of the demo MLP (classes).
const MLP_OUTPUTS: usize = 10;

/// Memory each CPU device hands out unless configured otherwise.
const DEVICE_MEMORY_BYTES: u64 = 256 << 20;

/// How long a stopped run waits for the source to stop and the sink to drain.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

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
    /// The data directory (journal, checkpoints, control socket, run manifest); a run on
    /// a directory that holds an earlier run resumes it. None: a fresh temporary
    /// directory, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// Stop feeding after this many batches (with `duration`, whichever comes first).
    pub batches: Option<u64>,
    /// Resource groups that replace the built-in ones of the same name (`cpu`,
    /// `device-<i>`) or are added.
    pub resource_groups: Vec<GroupSpec>,
    /// The resource group the preprocessor pool runs on.
    pub preprocessor_group: String,
    /// The launchers' kernel, by registry name.
    pub kernel: String,
    /// Memory each CPU device hands out.
    pub device_memory_bytes: u64,
    /// The router's score weights.
    pub router_weights: ScoreWeights,
    /// The scheduler's tick (periodic checkpoints).
    pub scheduler_tick: Duration,
    /// Periodic checkpoints: actor name → period, driven by the scheduler.
    pub checkpoint_every: Vec<(String, Duration)>,
    /// Checkpoint epochs kept per actor.
    pub keep_checkpoints: usize,
    /// Bytes per journal segment (none: the journal's default).
    pub journal_segment_bytes: Option<u64>,
    /// Serve the control socket (and optionally TCP) while the pipeline runs.
    pub control: Option<ControlSettings>,
    /// How often [`run_until`] reports [`Progress`].
    pub progress_every: Duration,
    /// The topology's name (for the run manifest).
    pub topology_name: String,
    /// The topology file, if any (for the run manifest).
    pub topology_file: Option<PathBuf>,
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

/// A resource group of the pipeline: a pinned pool of `threads`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// The group's name.
    pub name: String,
    /// Threads.
    pub threads: usize,
    /// Cores to pin to (none: not pinned).
    pub cores: Option<Vec<usize>>,
}

/// Where the control server listens.
#[derive(Debug, Clone, Default)]
pub struct ControlSettings {
    /// The Unix socket (none: `<data_dir>/control.sock`).
    pub socket: Option<PathBuf>,
    /// The authenticated TCP listener, if any.
    pub tcp: Option<TcpControl>,
}

/// What [`run_until`] reports while it runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunEvent<'a> {
    /// Every actor is up and the control socket is listening; feeding starts now.
    Started(&'a Started),
    /// A periodic progress report.
    Progress(&'a Progress),
}

/// Where a run keeps its state and how to reach it.
#[derive(Debug, Clone)]
pub struct Started {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Which run on this data directory this is (1 for the first).
    pub run: u64,
    /// The control socket, if served.
    pub control_socket: Option<PathBuf>,
    /// The control TCP listener's address, if served.
    pub control_tcp: Option<std::net::SocketAddr>,
    /// Actors restored from a checkpoint, with the epoch.
    pub restored: Vec<(String, u64)>,
}

/// A live view of a running pipeline, for a progress line.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Time since feeding started.
    pub elapsed: Duration,
    /// Batches the source made so far in this run.
    pub sent: u64,
    /// Batches the launchers finished so far.
    pub finished: u64,
    /// Batches finished per second since the previous report.
    pub batches_per_sec: f64,
    /// The launchers' mean data-stall ratio (0..1).
    pub data_stall_ratio: f64,
    /// Mailbox depth per actor, by name.
    pub depths: Vec<(String, u64)>,
}

impl Progress {
    /// One line: batches/s, stall ratio, mailbox depths.
    pub fn line(&self) -> String {
        let depths: Vec<String> = self
            .depths
            .iter()
            .map(|(name, depth)| format!("{name}={depth}"))
            .collect();
        format!(
            "{:>6.1}s | sent {} finished {} | {:.0} batches/s | stall {:.1}% | depth {}",
            self.elapsed.as_secs_f64(),
            self.sent,
            self.finished,
            self.batches_per_sec,
            self.data_stall_ratio * 100.0,
            depths.join(" ")
        )
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
            batches: None,
            resource_groups: Vec::new(),
            preprocessor_group: "cpu".to_owned(),
            kernel: MlpKernel::NAME.to_owned(),
            device_memory_bytes: DEVICE_MEMORY_BYTES,
            router_weights: ScoreWeights::default(),
            scheduler_tick: Duration::from_millis(1),
            checkpoint_every: Vec::new(),
            keep_checkpoints: crate::actors::journal::DEFAULT_KEEP_EPOCHS,
            journal_segment_bytes: None,
            control: None,
            progress_every: Duration::from_secs(1),
            topology_name: "built-in single-node".to_owned(),
            topology_file: None,
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
    /// The data directory the run used.
    pub data_dir: PathBuf,
    /// Which run on this data directory it was (1 for the first).
    pub run: u64,
    /// Actors restored from a checkpoint at start, with the epoch.
    pub restored: Vec<(String, u64)>,
    /// Why it ended: `finished` (duration or batch count reached) or `stopped`.
    pub ended_by: String,
    /// Control commands served on the control socket.
    pub control_commands: u64,
    /// Messages still queued when the runtime shut down, per actor (in the dead-letter
    /// sink, reason `Undelivered`; batches are drained before, so these are telemetry
    /// events and the like).
    pub leftovers: ShutdownReport,
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
        let restored: Vec<String> = self
            .restored
            .iter()
            .map(|(actor, epoch)| format!("{actor} (epoch {epoch})"))
            .collect();
        let _ = writeln!(
            out,
            "run {} on {} ({}), {} control commands served; restored: {}",
            self.run,
            self.data_dir.display(),
            self.ended_by,
            self.control_commands,
            if restored.is_empty() {
                "nothing".to_owned()
            } else {
                restored.join(", ")
            }
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
        if self.leftovers.total_undelivered() > 0 {
            let each: Vec<String> = self
                .leftovers
                .undelivered
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            let _ = write!(
                out,
                "\nleftovers at shutdown (dead-lettered, not lost): {}",
                each.join(", ")
            );
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

/// The resource groups a run builds: `cpu` (one thread per core, pinned) for the
/// preprocessor and `device-<i>` for each CPU device (its share of the cores), each
/// replaced by a configured group of the same name; other configured groups are added.
pub fn resolved_groups(config: &DemoConfig) -> Vec<GroupSpec> {
    let cores = core_ids();
    let devices = config.devices.max(1) as usize;
    let mut groups = vec![GroupSpec {
        name: "cpu".to_owned(),
        threads: cores.len().max(1),
        cores: Some(cores.clone()),
    }];
    for device in 0..devices {
        let share = device_cores(&cores, device, devices);
        groups.push(GroupSpec {
            name: format!("device-{device}"),
            threads: share.len().max(1),
            cores: Some(share),
        });
    }
    for configured in &config.resource_groups {
        match groups
            .iter_mut()
            .find(|group| group.name == configured.name)
        {
            Some(group) => *group = configured.clone(),
            None => groups.push(configured.clone()),
        }
    }
    groups
}

/// Builds the runtime with the [`resolved_groups`] and the session's checkpoint sink.
fn build_runtime(
    config: &DemoConfig,
    checkpoints: Arc<dyn CheckpointSink>,
) -> Result<Runtime, RuntimeError> {
    let mut builder = Runtime::builder().checkpoints(checkpoints);
    if config.faults.any() {
        builder = builder.root_intensity(Intensity::new(1000, Duration::from_secs(10)));
    }
    for group in resolved_groups(config) {
        builder = builder.resource_group(group.name, group.threads.max(1), group.cores);
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

/// Runs the demo pipeline on the current tokio runtime until `config.duration` (or
/// `config.batches`) and reports what it did. See [`run_until`].
pub async fn run(config: DemoConfig) -> Result<DemoReport, RuntimeError> {
    run_until(config, std::future::pending(), |_| {}).await
}

/// Runs the demo pipeline on the current tokio runtime and reports what it did.
///
/// It ends when `config.duration` has passed, `config.batches` were made, or `stop`
/// completes (Ctrl-C, SIGTERM), whichever comes first. `on_progress` is called every
/// `config.progress_every`. Ending drains gracefully: periodic checkpoints and the
/// control socket stop, paused actors are resumed, the source takes a final checkpoint
/// and stops, the pipeline drains into the sink, the journal is flushed and the run
/// manifest written. The data directory (see [`crate::session`]) holds the journal,
/// the checkpoints every actor is restored from at start, and the manifest.
///
/// The source sends raw RGB image batches (u8) to a [`Preprocessor`] pool that normalises
/// them to f32 on the resource group `cpu` with pooled buffers; the [`Router`] sends each
/// prepared batch to the best-scoring [`Launcher`], whose CPU device runs the MLP kernel on
/// its own pinned group and forwards the output to the sink. Every stage applies
/// back-pressure to the one before.
pub async fn run_until(
    config: DemoConfig,
    stop: impl Future<Output = ()>,
    mut on_event: impl FnMut(RunEvent<'_>),
) -> Result<DemoReport, RuntimeError> {
    let devices = config.devices.max(1);
    let mut session = Session::open(&config)?;
    let rt = build_runtime(&config, session.checkpoint_sink())?;
    let sink_totals = Arc::new(std::sync::Mutex::new(SinkTotals::default()));
    let poison_every = config.faults.poison_every;
    let totals = Arc::clone(&sink_totals);
    rt.spawn("sink", move || Sink {
        totals: Arc::clone(&totals),
        poison_every,
    })
    .await?;
    let sink: Addr<Sink> = rt.lookup("sink")?;
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
    // The autotuner learns from the launchers' events, `vortex ctl events` streams them
    // and the exporter counts them: any of the three needs a publisher.
    let wants_events =
        config.metrics_addr.is_some() || config.control.is_some() || config.autotune.is_some();
    let telemetry = match wants_events {
        true => Some(TelemetryPublisher::spawn(&rt, "telemetry", 4096).await?),
        false => None,
    };
    let exporter = match (config.metrics_addr, &telemetry) {
        (Some(addr), Some(telemetry)) => Some(start_exporter(&rt, addr, telemetry).await?),
        _ => None,
    };
    let metrics = exporter.as_ref().map(|exporter| exporter.sink());
    let services = open_services(
        &rt,
        session.data_dir(),
        config.scheduler_tick,
        metrics,
        &buffers,
    )
    .await?;
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
                config.device_memory_bytes,
                Duration::from_millis(100),
            )),
        };
        let mut launcher_config = LauncherConfig::with_kernel_named(
            format!("launcher-{index}"),
            device,
            &kernels,
            &config.kernel,
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
        config.router_weights,
        rt.dead_letters().clone(),
    ));
    let preprocessor_config = PreprocessorConfig::new(
        "preprocess",
        rt.resource_group(&config.preprocessor_group)?,
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
    let mut names: Vec<String> = rt.actors().into_iter().map(|info| info.name).collect();
    names.sort();
    let restored = session.note_restored(&names);
    for (actor, epoch) in &restored {
        tracing::info!(%actor, epoch, "restored from its latest checkpoint");
    }
    session
        .start_services(&rt, &config, telemetry.clone(), &services.scheduler)
        .await?;
    on_event(RunEvent::Started(&Started {
        data_dir: session.data_dir().to_owned(),
        run: session.run_number(),
        control_socket: session.control_socket().map(Into::into),
        control_tcp: session.control_tcp(),
        restored: restored.clone(),
    }));
    let first_id = source.next_id();
    let start = tokio::time::Instant::now();
    let mut on_progress = |progress: &Progress| on_event(RunEvent::Progress(progress));
    let mut fail_once = config.faults.fail_once.clone();
    let ended_by = feed(
        &rt,
        &config,
        &source,
        &router,
        first_id,
        stop,
        &mut on_progress,
        &mut fail_once,
    )
    .await?;
    let fed_for = start.elapsed();
    if let Some(name) = fail_once.take() {
        inject_once(&rt, &name).await;
    }
    let control_commands = session.stop_services().await;
    drain_source(&rt, &source).await;
    let sent = source.next_id() - first_id;
    drop(sink);
    let totals = wait_for_sink(&rt, &sink_totals, sent).await?;
    let mut statuses = Vec::new();
    for info in rt.actors() {
        // An actor listed a moment ago may have stopped since (a stopped actor is
        // forgotten, its name released): it has no status to report.
        match rt.control(&info.name, Control::Status).await {
            Ok(ControlReply::Status(status)) => statuses.push(status),
            Ok(_) | Err(ControlError::UnknownActor(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let autotuner = autotuner.and_then(|handle| {
        statuses
            .iter()
            .find(|status| status.name == handle.name())
            .map(|status| status.detail.clone())
    });
    let launchers = summarise(&router);
    let dead_letters = rt.dead_letters().count();
    let groups = rt.resource_groups();
    if let Some(exporter) = exporter {
        let _ = exporter.shutdown().await;
    }
    services.close();
    let leftovers = rt.shutdown().await;
    let data_dir = session.data_dir().to_owned();
    let run = session.run_number();
    let lost = (sent.saturating_sub(totals.2 + dead_letters)) + totals.0.abs_diff(totals.2);
    session
        .finish(RunResults {
            sent,
            received: totals.0,
            dead_letters,
            lost,
            control_commands,
            ended_by: ended_by.to_owned(),
        })
        .await?;
    Ok(DemoReport {
        data_dir,
        run,
        restored,
        ended_by: ended_by.to_owned(),
        control_commands,
        leftovers,
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

/// Feeds the pipeline until the duration or batch count is reached or `stop` completes;
/// reports progress meanwhile. Returns why it ended.
// The run's pieces it drives (runtime, source, router), what it is told to do (config,
// stop, a fault to inject) and where it reports: grouping them would only rename them.
#[allow(clippy::too_many_arguments)]
async fn feed(
    rt: &Runtime,
    config: &DemoConfig,
    source: &SourceHandle,
    router: &Router,
    first_id: u64,
    stop: impl Future<Output = ()>,
    on_progress: &mut impl FnMut(&Progress),
    fail_once: &mut Option<String>,
) -> Result<&'static str, RuntimeError> {
    let start = tokio::time::Instant::now();
    let fail_at = Duration::from_secs(1);
    let deadline = start.checked_add(config.duration);
    let mut stop = std::pin::pin!(stop);
    let mut ticker = tokio::time::interval(config.progress_every.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scaled = config.scale_to.is_none();
    let mut last = (start, 0u64);
    // The emit in flight is kept across progress ticks, so no request is abandoned.
    let mut pending: Option<std::pin::Pin<Box<dyn Future<Output = _> + Send>>> = None;
    loop {
        let made = source.next_id() - first_id;
        if pending.is_none() {
            let want = match config.batches {
                Some(limit) if made >= limit => return Ok("finished"),
                Some(limit) => (limit - made).min(4) as u32,
                None => 4,
            };
            let source = source.clone();
            pending = Some(Box::pin(async move { source.emit(want).await }));
        }
        let until_deadline = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut stop => return Ok("stopped"),
            _ = until_deadline => return Ok("finished"),
            _ = ticker.tick() => {
                let progress = progress(rt, router, start, made, &mut last);
                on_progress(&progress);
            }
            result = pending.as_mut().expect("an emit in flight") => {
                pending = None;
                match result {
                    Ok(0) | Err(AskError::Closed | AskError::Stopped) => return Ok("finished"),
                    // A paused source answers late; ask again.
                    Ok(_) | Err(_) => {}
                }
            }
        }
        if start.elapsed() >= fail_at {
            if let Some(name) = fail_once.take() {
                inject_once(rt, &name).await;
            }
        }
        if !scaled && start.elapsed() >= config.duration / 2 {
            scaled = true;
            if let Some(n) = config.scale_to {
                rt.control("preprocess", Control::Scale { n }).await?;
            }
        }
    }
}

fn progress(
    rt: &Runtime,
    router: &Router,
    start: tokio::time::Instant,
    sent: u64,
    last: &mut (tokio::time::Instant, u64),
) -> Progress {
    let snapshots: Vec<_> = router
        .launchers()
        .iter()
        .map(|launcher| launcher.stats().snapshot())
        .collect();
    let finished: u64 = snapshots.iter().map(|s| s.batches).sum();
    let stall =
        snapshots.iter().map(|s| s.data_stall_ratio).sum::<f64>() / snapshots.len().max(1) as f64;
    let now = tokio::time::Instant::now();
    let rate = (finished - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
    *last = (now, finished);
    let depths = rt
        .observer()
        .statuses()
        .into_iter()
        .filter(|status| status.name == "preprocess" || status.name.starts_with("launcher-"))
        .map(|status| (status.name, status.mailbox_depth))
        .collect();
    Progress {
        elapsed: now - start,
        sent,
        finished,
        batches_per_sec: rate,
        data_stall_ratio: stall,
        depths,
    }
}

/// Resumes every paused actor (so the pipeline can drain), checkpoints the source (so a
/// later run resumes where this one ended) and stops it, waiting (bounded) until it has.
async fn drain_source(rt: &Runtime, source: &SourceHandle) {
    let observer = rt.observer();
    for status in observer.statuses() {
        if status.state == ActorState::Paused {
            tracing::info!(actor = %status.name, "resuming a paused actor to drain");
            let _ = rt.control(&status.name, Control::Resume).await;
        }
    }
    if let Err(error) = rt.control(source.name(), Control::Checkpoint).await {
        tracing::warn!(%error, "final checkpoint of the source failed");
    }
    let _ = rt.control(source.name(), Control::Stop).await;
    let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
    while tokio::time::Instant::now() < deadline {
        match observer.status(source.name()) {
            Ok(status) if !matches!(status.state, ActorState::Stopped | ActorState::Failed) => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            _ => break,
        }
    }
}

/// Where the journal actor keeps its journal, under the data directory. (`journal/` and
/// `checkpoints/` belong to the run's checkpoint store: checkpoints and every control
/// command served, see [`crate::session`].)
pub const EVENTS_DIR: &str = "events";

/// The runtime services `vortex run` starts next to the pipeline, as a deployment would:
/// the scheduler (timing wheel) and the journal actor (its journal in
/// `<data_dir>/events`), with two housekeeping timers on the scheduler — every 100 ms a
/// durable progress record is appended to that journal (one `fdatasync` each), every
/// second the buffer pool's idle buffers (unused for 2 s) are trimmed.
pub struct Services {
    /// The data directory (the journal actor's journal is in its `events/`).
    pub data_dir: PathBuf,
    /// The scheduler actor `scheduler`.
    pub scheduler: Scheduler,
    /// The journal actor `journal`.
    pub journal: Addr<JournalActor>,
    /// Reads the journal across the actor's restarts.
    pub journal_handle: JournalHandle,
    timers: Vec<TimerHandle>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Cancels the housekeeping timers (the actors stop with the runtime; the session
    /// owns the data directory).
    pub fn close(self) {
        drop(self.timers);
    }
}

/// Record kind of the journal's progress records (`(handled, dead_letters)`, bincode 2).
pub const PROGRESS_RECORD: u16 = 1;

/// Starts the scheduler (`scheduler`, ticking every `tick`, its lag into `metrics`) and
/// the journal actor (`journal`, in `<data_dir>/events`, created if missing, its fsync
/// latency into `metrics`), and arms the housekeeping timers (see [`Services`]).
pub async fn open_services(
    rt: &Runtime,
    data_dir: &Path,
    tick: Duration,
    metrics: Option<&MetricsSink>,
    buffers: &BufferPool,
) -> Result<Services, RuntimeError> {
    let data_dir = data_dir.to_path_buf();
    std::fs::create_dir_all(&data_dir)
        .map_err(|error| invalid(format!("data directory {}: {error}", data_dir.display())))?;
    let mut timers = SchedulerConfig::default().tick(tick.max(Duration::from_millis(1)));
    if let Some(metrics) = metrics {
        timers = timers.lag_histogram(metrics.timer_lag());
    }
    let scheduler = Scheduler::spawn_with(rt, "scheduler", timers).await?;
    let journal_config = JournalActorConfig {
        metrics: metrics.cloned(),
        ..JournalActorConfig::default()
    };
    let (journal, journal_handle) =
        JournalActor::spawn_with(rt, "journal", data_dir.join(EVENTS_DIR), journal_config)
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
    })
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
    telemetry: &TelemetryHandle,
) -> Result<RuntimeExporter, RuntimeError> {
    let exporter_config = ExporterConfig {
        addr,
        ..ExporterConfig::default()
    };
    let exporter = RuntimeExporter::start(rt, exporter_config, Duration::from_millis(500))
        .await
        .map_err(invalid)?;
    tokio::spawn(exporter.sink().clone().consume(telemetry.subscribe()));
    tracing::info!(addr = %exporter.local_addr(), "serving /metrics");
    Ok(exporter)
}

/// Waits (bounded) until every batch sent reached the sink or the dead-letter sink, and the
/// sink is not in a restart back-off. Reads the sink's totals directly (they outlive its
/// incarnations), so a sink that is restarting after a poisoned batch does not fail the
/// wait; and a report taken after the wait counts that restart (a status read during the
/// back-off would show the failure's dead letter without its restart).
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
    let restarting = || {
        rt.status("sink")
            .is_ok_and(|status| status.state == ActorState::Restarting)
    };
    let mut now = read();
    while tokio::time::Instant::now() < deadline
        && (now.0 + rt.dead_letters().count() < sent || restarting())
    {
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
pub(crate) fn image_side(bytes: usize) -> u32 {
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
