//! Topology files: the TOML that says what `vortex run` starts.
//!
//! A topology declares the resource groups, the source, the preprocessor pool, the
//! devices and their launchers (the kernel by registry name), the router's weights, the
//! metrics address, the data directory (journal, checkpoints, control socket, run
//! manifest), the scheduler's resolution, periodic checkpoints per actor, checkpoint
//! retention, the control socket and the autotuner's settings. Every section is optional
//! and has the defaults of [`Topology::default`] — the built-in single-node topology.
//!
//! Unknown fields are errors, and every error names the file, the line and the field:
//!
//! ```
//! use vortex::topology::Topology;
//!
//! let topology = Topology::parse("inline.toml", "[preprocessor]\nworkers = 3\n").unwrap();
//! assert_eq!(topology.preprocessor.workers, 3);
//!
//! let error = Topology::parse("bad.toml", "[preprocessor]\nworkres = 3\n").unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "bad.toml:2: preprocessor.workres: unknown field `workres`, expected one of \
//!      `workers`, `transform`, `group`, `scale_to`"
//! );
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actors::launcher::{MlpKernel, ScoreWeights};
use crate::demo::{DemoConfig, GroupSpec};

/// The transforms a topology may name (`preprocessor.transform`).
pub const TRANSFORMS: &[&str] = &["normalize-images"];

/// The kernels a topology may name (`launchers.kernel`).
pub const KERNELS: &[&str] = &[MlpKernel::NAME];

/// The actors a pipeline registers (valid keys of `checkpoints.every_ms`).
pub const PIPELINE_ACTORS: &[&str] = &["source", "preprocess", "sink"];

/// Why a topology file was refused. Each names the file, the line (1-based) and the
/// field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// The file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The TOML is malformed, has an unknown field or a value of the wrong type.
    #[error("{file}:{line}: {field}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// The field (dotted path), as far as it can be told.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The TOML is well-formed but a value is not allowed.
    #[error("{file}:{line}: {field}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The line (0 when the field is absent, e.g. a missing secret).
        line: usize,
        /// The field (dotted path).
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A whole topology. Every section has defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// A name for the plan and the run manifest.
    pub name: String,
    /// The data directory: journal, checkpoints, control socket, run manifest. A relative
    /// path is relative to the working directory. None: a fresh temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Serve Prometheus metrics (`/metrics`, `/healthz`) here.
    pub metrics_addr: Option<SocketAddr>,
    /// Resource groups; a group named like a built-in one (`cpu`, `device-<i>`) replaces
    /// it, any other is added.
    pub resource_groups: Vec<ResourceGroupSection>,
    /// The source.
    pub source: SourceSection,
    /// The preprocessor pool.
    pub preprocessor: PreprocessorSection,
    /// The compute devices.
    pub devices: DevicesSection,
    /// The launchers (one per device).
    pub launchers: LaunchersSection,
    /// The router's score weights.
    pub router: RouterSection,
    /// The scheduler timer.
    pub scheduler: SchedulerSection,
    /// Periodic checkpoints and how many are kept.
    pub checkpoints: CheckpointsSection,
    /// The journal's layout.
    pub journal: JournalSection,
    /// The control socket.
    pub control: ControlSection,
    /// The autotuner (parsed and validated; the autotuner actor reads it).
    pub autotuner: Option<AutotunerSection>,
}

impl Default for Topology {
    /// The built-in single-node topology: synthetic source, a pool of 2, 2 CPU devices.
    fn default() -> Self {
        Topology {
            name: "built-in single-node".to_owned(),
            data_dir: None,
            metrics_addr: None,
            resource_groups: Vec::new(),
            source: SourceSection::default(),
            preprocessor: PreprocessorSection::default(),
            devices: DevicesSection::default(),
            launchers: LaunchersSection::default(),
            router: RouterSection::default(),
            scheduler: SchedulerSection::default(),
            checkpoints: CheckpointsSection::default(),
            journal: JournalSection::default(),
            control: ControlSection::default(),
            autotuner: None,
        }
    }
}

/// `[[resource_groups]]`: a pinned thread pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceGroupSection {
    /// The group's name.
    pub name: String,
    /// Threads in the pool (at least 1).
    pub threads: usize,
    /// Cores to pin the threads to, round-robin (none: not pinned).
    #[serde(default)]
    pub cores: Option<Vec<usize>>,
}

/// The kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SourceKind {
    /// Synthetic RGB images.
    Synthetic,
}

/// `[source]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceSection {
    /// The kind of source.
    pub kind: SourceKind,
    /// Bytes per image (one square RGB image of about this size).
    pub batch_bytes: usize,
    /// Images per batch at start.
    pub batch_items: u32,
}

impl Default for SourceSection {
    fn default() -> Self {
        SourceSection {
            kind: SourceKind::Synthetic,
            batch_bytes: 4096,
            batch_items: 8,
        }
    }
}

/// `[preprocessor]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessorSection {
    /// Workers in the pool.
    pub workers: u32,
    /// The transform, by name (see [`TRANSFORMS`]).
    pub transform: String,
    /// The resource group it runs on.
    pub group: String,
    /// Scale the pool to this size half-way through a bounded run.
    pub scale_to: Option<u32>,
}

impl Default for PreprocessorSection {
    fn default() -> Self {
        PreprocessorSection {
            workers: 2,
            transform: TRANSFORMS[0].to_owned(),
            group: "cpu".to_owned(),
            scale_to: None,
        }
    }
}

/// The kinds of compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DeviceKind {
    /// CPU devices, each on its own resource group.
    Cpu,
    /// GPUs; this build runs CPU devices in their place and says so once.
    Gpu,
}

/// `[devices]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesSection {
    /// CPU or GPU.
    pub kind: DeviceKind,
    /// How many (one launcher each).
    pub count: u32,
    /// Memory each device hands out, in MiB.
    pub memory_mib: u64,
}

impl Default for DevicesSection {
    fn default() -> Self {
        DevicesSection {
            kind: DeviceKind::Cpu,
            count: 2,
            memory_mib: 256,
        }
    }
}

/// `[launchers]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaunchersSection {
    /// The kernel, by registry name (see [`KERNELS`]).
    pub kernel: String,
    /// Hidden units of the MLP kernel.
    pub hidden: usize,
    /// Batches each launcher may hold ahead.
    pub prefetch_depth: u32,
}

impl Default for LaunchersSection {
    fn default() -> Self {
        LaunchersSection {
            kernel: MlpKernel::NAME.to_owned(),
            hidden: 64,
            prefetch_depth: 2,
        }
    }
}

/// `[router]`: the weights of a device's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSection {
    /// Weight of `1 − utilisation`.
    pub utilisation: f64,
    /// Weight of the free-memory fraction.
    pub free_memory: f64,
    /// Weight of `1 − queue fill`.
    pub queue_depth: f64,
}

impl Default for RouterSection {
    fn default() -> Self {
        let weights = ScoreWeights::default();
        RouterSection {
            utilisation: weights.utilisation,
            free_memory: weights.free_memory,
            queue_depth: weights.queue_depth,
        }
    }
}

/// `[scheduler]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSection {
    /// The timing wheel's tick, in milliseconds (at least 1).
    pub resolution_ms: u64,
}

impl Default for SchedulerSection {
    fn default() -> Self {
        SchedulerSection { resolution_ms: 1 }
    }
}

/// `[checkpoints]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointsSection {
    /// `checkpoint_every`: actor name → period in milliseconds, driven by the scheduler.
    pub every_ms: BTreeMap<String, u64>,
    /// Checkpoint epochs kept per actor (older files are pruned after each save).
    pub keep: usize,
}

impl Default for CheckpointsSection {
    fn default() -> Self {
        CheckpointsSection {
            every_ms: BTreeMap::new(),
            keep: crate::actors::journal::DEFAULT_KEEP_EPOCHS,
        }
    }
}

/// `[journal]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSection {
    /// Bytes per journal segment file (none: the journal's default).
    pub segment_bytes: Option<u64>,
}

/// `[control]`: the control socket `vortex ctl` talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Serve the control socket at all.
    pub enabled: bool,
    /// The Unix socket (none: `<data_dir>/control.sock`).
    pub socket: Option<PathBuf>,
    /// Also listen on TCP here, with the HMAC challenge–response.
    pub tcp: Option<SocketAddr>,
    /// The TCP listener's shared secret, from this file.
    pub secret_file: Option<PathBuf>,
    /// … or from this environment variable.
    pub secret_env: Option<String>,
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            enabled: true,
            socket: None,
            tcp: None,
            secret_file: None,
            secret_env: None,
        }
    }
}

/// `[autotuner]`: settings of the closed loop on batch size and pool size. Parsed and
/// validated here; the autotuner actor is wired to them by its own issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutotunerSection {
    /// Whether the autotuner runs.
    pub enabled: bool,
    /// The end-to-end latency it aims for, in milliseconds.
    pub latency_target_ms: u64,
    /// How often it decides, in milliseconds.
    pub interval_ms: u64,
    /// The ranges it may move the knobs in.
    pub bounds: AutotunerBounds,
}

impl Default for AutotunerSection {
    fn default() -> Self {
        AutotunerSection {
            enabled: false,
            latency_target_ms: 50,
            interval_ms: 1000,
            bounds: AutotunerBounds::default(),
        }
    }
}

/// `[autotuner.bounds]`: inclusive `[low, high]` ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutotunerBounds {
    /// Items per batch.
    pub batch_items: [u32; 2],
    /// Preprocessor workers.
    pub workers: [u32; 2],
    /// Launcher prefetch depth.
    pub prefetch_depth: [u32; 2],
}

impl Default for AutotunerBounds {
    fn default() -> Self {
        AutotunerBounds {
            batch_items: [1, 256],
            workers: [1, 8],
            prefetch_depth: [1, 8],
        }
    }
}

impl Topology {
    /// Reads and validates the topology in `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Topology, TopologyError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| TopologyError::Read {
            file: file.clone(),
            reason: error.to_string(),
        })?;
        Topology::parse(&file, &text)
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Topology, TopologyError> {
        let topology: Topology = toml::from_str(text).map_err(|error| {
            let offset = error.span().map(|span| span.start).unwrap_or(0);
            let line = line_of(text, offset);
            TopologyError::Parse {
                file: file.to_owned(),
                line,
                field: field_at(text, line),
                message: error.message().trim().to_owned(),
            }
        })?;
        topology.validate(file, text)?;
        Ok(topology)
    }

    fn validate(&self, file: &str, text: &str) -> Result<(), TopologyError> {
        let invalid = |table: &str, key: &str, message: String| TopologyError::Invalid {
            file: file.to_owned(),
            line: locate(text, table, key),
            field: if table.is_empty() {
                key.to_owned()
            } else {
                format!("{table}.{key}")
            },
            message,
        };
        let at_least_one = |table: &str, key: &str, value: u64| {
            if value == 0 {
                Err(invalid(table, key, "must be at least 1".to_owned()))
            } else {
                Ok(())
            }
        };
        at_least_one("source", "batch_bytes", self.source.batch_bytes as u64)?;
        at_least_one("source", "batch_items", self.source.batch_items.into())?;
        at_least_one("preprocessor", "workers", self.preprocessor.workers.into())?;
        if let Some(n) = self.preprocessor.scale_to {
            at_least_one("preprocessor", "scale_to", n.into())?;
        }
        at_least_one("devices", "count", self.devices.count.into())?;
        at_least_one("devices", "memory_mib", self.devices.memory_mib)?;
        at_least_one("launchers", "hidden", self.launchers.hidden as u64)?;
        at_least_one(
            "launchers",
            "prefetch_depth",
            self.launchers.prefetch_depth.into(),
        )?;
        at_least_one("scheduler", "resolution_ms", self.scheduler.resolution_ms)?;
        at_least_one("checkpoints", "keep", self.checkpoints.keep as u64)?;
        if !TRANSFORMS.contains(&self.preprocessor.transform.as_str()) {
            return Err(invalid(
                "preprocessor",
                "transform",
                format!(
                    "unknown transform `{}` (known: {})",
                    self.preprocessor.transform,
                    TRANSFORMS.join(", ")
                ),
            ));
        }
        if !KERNELS.contains(&self.launchers.kernel.as_str()) {
            return Err(invalid(
                "launchers",
                "kernel",
                format!(
                    "unknown kernel `{}` (registered: {})",
                    self.launchers.kernel,
                    KERNELS.join(", ")
                ),
            ));
        }
        for (name, weight) in [
            ("utilisation", self.router.utilisation),
            ("free_memory", self.router.free_memory),
            ("queue_depth", self.router.queue_depth),
        ] {
            if !weight.is_finite() || weight < 0.0 {
                return Err(invalid(
                    "router",
                    name,
                    format!("must be a finite weight >= 0, not {weight}"),
                ));
            }
        }
        self.validate_groups(&invalid)?;
        let launchers: Vec<String> = (0..self.devices.count)
            .map(|i| format!("launcher-{i}"))
            .collect();
        for (actor, period) in &self.checkpoints.every_ms {
            if !PIPELINE_ACTORS.contains(&actor.as_str()) && !launchers.contains(actor) {
                return Err(invalid(
                    "checkpoints.every_ms",
                    actor,
                    format!(
                        "no actor `{actor}` in this topology (actors: {}, launcher-0..{})",
                        PIPELINE_ACTORS.join(", "),
                        self.devices.count - 1
                    ),
                ));
            }
            at_least_one("checkpoints.every_ms", actor, *period)?;
        }
        if let Some(bytes) = self.journal.segment_bytes {
            if bytes < 64 * 1024 {
                return Err(invalid(
                    "journal",
                    "segment_bytes",
                    format!("{bytes} is below the minimum of 65536"),
                ));
            }
        }
        if self.control.tcp.is_some()
            && self.control.secret_file.is_none()
            && self.control.secret_env.is_none()
        {
            return Err(invalid(
                "control",
                "tcp",
                "a TCP listener needs `secret_file` or `secret_env`".to_owned(),
            ));
        }
        if let Some(autotuner) = &self.autotuner {
            at_least_one("autotuner", "interval_ms", autotuner.interval_ms)?;
            at_least_one(
                "autotuner",
                "latency_target_ms",
                autotuner.latency_target_ms,
            )?;
            let bounds = &autotuner.bounds;
            for (name, [low, high]) in [
                ("batch_items", bounds.batch_items),
                ("workers", bounds.workers),
                ("prefetch_depth", bounds.prefetch_depth),
            ] {
                if low == 0 || low > high {
                    return Err(invalid(
                        "autotuner.bounds",
                        name,
                        format!("[{low}, {high}] is not a range 1 <= low <= high"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_groups(
        &self,
        invalid: &impl Fn(&str, &str, String) -> TopologyError,
    ) -> Result<(), TopologyError> {
        let mut seen = std::collections::BTreeSet::new();
        for group in &self.resource_groups {
            if !seen.insert(group.name.as_str()) {
                return Err(invalid(
                    "resource_groups",
                    "name",
                    format!("the group `{}` is declared twice", group.name),
                ));
            }
            if group.threads == 0 {
                return Err(invalid(
                    "resource_groups",
                    "threads",
                    format!("group `{}` needs at least 1 thread", group.name),
                ));
            }
        }
        let group = self.preprocessor.group.as_str();
        let built_in = group == "cpu"
            || group
                .strip_prefix("device-")
                .and_then(|i| i.parse::<u32>().ok())
                .is_some_and(|i| i < self.devices.count);
        if !built_in && !seen.contains(group) {
            return Err(invalid(
                "preprocessor",
                "group",
                format!("no resource group `{group}` (declare it in [[resource_groups]])"),
            ));
        }
        Ok(())
    }

    /// The pipeline settings this topology stands for (the data directory resolved
    /// against the working directory by the caller).
    pub fn demo_config(&self) -> DemoConfig {
        DemoConfig {
            workers: self.preprocessor.workers,
            batch_bytes: self.source.batch_bytes,
            batch_items: self.source.batch_items,
            devices: self.devices.count,
            hidden: self.launchers.hidden,
            prefetch_depth: self.launchers.prefetch_depth,
            scale_to: self.preprocessor.scale_to,
            metrics_addr: self.metrics_addr,
            data_dir: self.data_dir.clone(),
            resource_groups: self
                .resource_groups
                .iter()
                .map(|group| GroupSpec {
                    name: group.name.clone(),
                    threads: group.threads,
                    cores: group.cores.clone(),
                })
                .collect(),
            preprocessor_group: self.preprocessor.group.clone(),
            kernel: self.launchers.kernel.clone(),
            device_memory_bytes: self.devices.memory_mib << 20,
            router_weights: ScoreWeights {
                utilisation: self.router.utilisation,
                free_memory: self.router.free_memory,
                queue_depth: self.router.queue_depth,
            },
            scheduler_tick: Duration::from_millis(self.scheduler.resolution_ms),
            checkpoint_every: self
                .checkpoints
                .every_ms
                .iter()
                .map(|(actor, ms)| (actor.clone(), Duration::from_millis(*ms)))
                .collect(),
            keep_checkpoints: self.checkpoints.keep,
            journal_segment_bytes: self.journal.segment_bytes,
            ..DemoConfig::default()
        }
    }

    /// One line saying GPUs were asked for and CPU devices run instead, if so.
    pub fn device_notice(&self) -> Option<String> {
        (self.devices.kind == DeviceKind::Gpu).then(|| {
            format!(
                "devices: {} GPUs requested; this build has no GPU backend, running {} CPU devices instead",
                self.devices.count, self.devices.count
            )
        })
    }

    /// The resolved plan, as `vortex topology check` prints it.
    pub fn plan(&self) -> String {
        let config = self.demo_config();
        let mut out = String::new();
        let side = crate::demo::image_side(self.source.batch_bytes);
        let _ = writeln!(out, "topology: {}", self.name);
        let data_dir = match &self.data_dir {
            Some(dir) => dir.display().to_string(),
            None => "a fresh temporary directory".to_owned(),
        };
        let _ = writeln!(out, "  data_dir      {data_dir}");
        let socket = match (&self.control.enabled, &self.control.socket) {
            (false, _) => "off".to_owned(),
            (true, Some(path)) => format!("unix {} (mode 0600)", path.display()),
            (true, None) => "unix <data_dir>/control.sock (mode 0600)".to_owned(),
        };
        let tcp = match self.control.tcp {
            Some(addr) => format!(", tcp {addr} (HMAC challenge-response)"),
            None => String::new(),
        };
        let _ = writeln!(out, "  control       {socket}{tcp}");
        let _ = writeln!(
            out,
            "  source        `source`: synthetic, {} images of {side}x{side}x3 per batch",
            self.source.batch_items
        );
        let _ = writeln!(
            out,
            "  preprocessor  pool `preprocess`: {} workers{}, transform {}, group {}",
            self.preprocessor.workers,
            self.preprocessor
                .scale_to
                .map(|n| format!(" (scaled to {n} half-way)"))
                .unwrap_or_default(),
            self.preprocessor.transform,
            self.preprocessor.group
        );
        let kind = match self.devices.kind {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu (CPU devices in this build)",
        };
        let _ = writeln!(
            out,
            "  devices       {} x {kind}, {} MiB each",
            self.devices.count, self.devices.memory_mib
        );
        let _ = writeln!(
            out,
            "  launchers     launcher-0..launcher-{}: kernel {} (hidden {}), prefetch depth {}",
            self.devices.count - 1,
            self.launchers.kernel,
            self.launchers.hidden,
            self.launchers.prefetch_depth
        );
        let _ = writeln!(
            out,
            "  router        `router`: weights utilisation {}, free_memory {}, queue_depth {}",
            self.router.utilisation, self.router.free_memory, self.router.queue_depth
        );
        for group in crate::demo::resolved_groups(&config) {
            let cores = match &group.cores {
                Some(cores) => format!("cores {cores:?}"),
                None => "not pinned".to_owned(),
            };
            let _ = writeln!(
                out,
                "  group         {}: {} threads, {cores}",
                group.name, group.threads
            );
        }
        let _ = writeln!(
            out,
            "  scheduler     `scheduler`: {} ms ticks",
            self.scheduler.resolution_ms
        );
        let every: Vec<String> = self
            .checkpoints
            .every_ms
            .iter()
            .map(|(actor, ms)| format!("{actor} every {ms} ms"))
            .collect();
        let _ = writeln!(
            out,
            "  checkpoints   {}; keep {} per actor",
            if every.is_empty() {
                "on command only".to_owned()
            } else {
                every.join(", ")
            },
            self.checkpoints.keep
        );
        let metrics = match self.metrics_addr {
            Some(addr) => format!("http://{addr}/metrics"),
            None => "off".to_owned(),
        };
        let _ = writeln!(out, "  metrics       {metrics}");
        let autotuner = match &self.autotuner {
            Some(tuner) if tuner.enabled => format!(
                "on: target {} ms, every {} ms, batch_items {:?}, workers {:?}, prefetch_depth {:?}",
                tuner.latency_target_ms,
                tuner.interval_ms,
                tuner.bounds.batch_items,
                tuner.bounds.workers,
                tuner.bounds.prefetch_depth
            ),
            _ => "off".to_owned(),
        };
        let _ = write!(out, "  autotuner     {autotuner}");
        if let Some(notice) = self.device_notice() {
            let _ = write!(out, "\n{notice}");
        }
        out
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text[..offset].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The dotted field on `line`: the table header above it, then the key on it.
fn field_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(current) = lines.get(line.saturating_sub(1)) else {
        return "(end of file)".to_owned();
    };
    let current = current.trim();
    if let Some(header) = table_header(current) {
        return header;
    }
    let key = current
        .split('=')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_matches('"')
        .to_owned();
    let table = lines[..line.saturating_sub(1)]
        .iter()
        .rev()
        .find_map(|line| table_header(line.trim()));
    match table {
        Some(table) if !key.is_empty() => format!("{table}.{key}"),
        Some(table) => table,
        None if key.is_empty() => "(top level)".to_owned(),
        None => key,
    }
}

/// `[a.b]` or `[[a]]` → `a.b` / `a`.
fn table_header(line: &str) -> Option<String> {
    let line = line.split('#').next().unwrap_or_default().trim();
    let inner = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"));
    let inner = inner.or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))?;
    Some(inner.trim().to_owned())
}

/// The line of `key` in `[table]` (or at the top level for an empty table), or of
/// `table.key = …` written inline; 0 when absent.
fn locate(text: &str, table: &str, key: &str) -> usize {
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(header) = table_header(trimmed) {
            current = header;
            continue;
        }
        let Some((left, _)) = trimmed.split_once('=') else {
            continue;
        };
        let left = left.trim().trim_matches('"');
        let dotted = if current.is_empty() {
            left.to_owned()
        } else {
            format!("{current}.{left}")
        };
        let wanted = if table.is_empty() {
            key.to_owned()
        } else {
            format!("{table}.{key}")
        };
        if dotted == wanted || (current == table && left == key) {
            return index + 1;
        }
        // An inline table: `every_ms = { source = 0 }` holds `checkpoints.every_ms.source`.
        if wanted.starts_with(&format!("{dotted}.")) && trimmed.contains(key) {
            return index + 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_topology_parses_from_an_empty_file() {
        assert_eq!(Topology::parse("empty", "").unwrap(), Topology::default());
    }

    #[test]
    fn fields_are_located_on_their_lines() {
        let text = "name = \"x\"\n[checkpoints]\nkeep = 2\nevery_ms = { source = 0 }\n";
        assert_eq!(locate(text, "checkpoints", "keep"), 3);
        assert_eq!(locate(text, "checkpoints.every_ms", "source"), 4);
        assert_eq!(field_at(text, 3), "checkpoints.keep");
        assert_eq!(field_at(text, 1), "name");
    }
}
