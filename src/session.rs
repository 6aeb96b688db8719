//! What a pipeline run keeps in its data directory, and the services that use it:
//!
//! ```text
//! <data_dir>/
//!   journal/          the journal: `CheckpointTaken` records and every control command
//!                     served on the control socket (`ControlJournaled`, kind 0x0200)
//!   checkpoints/      actor snapshots, one file per epoch (the newest `keep` kept)
//!   control.sock      the control socket (mode 0600) while the run lasts
//!   manifest.json     the run manifest: topology, versions, start/end, results
//!   lock              held (flock) by the run using the directory: a second is refused
//! ```
//!
//! [`Session::open`] opens (recovering) the journal and checkpoints before the runtime is
//! built, so the runtime restores every actor from its latest checkpoint as it spawns —
//! a run on a data directory that holds an earlier run resumes it.
//! [`Session::start_services`] starts the control server, the scheduler and the periodic
//! checkpoints; [`Session::finish`] stops them, flushes the journal and writes the
//! manifest.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::actors::control::server::MAX_SOCKET_PATH;
use crate::actors::control::{
    ControlServer, ControlServerConfig, ControlServerError, ControlServices,
};
use crate::actors::journal::{CheckpointOptions, Durability, DurableCheckpoints, JournalConfig};
use crate::actors::scheduler::Scheduler;
use crate::actors::telemetry::TelemetryHandle;
use crate::demo::{ControlSettings, DemoConfig};
use crate::prelude::*;
use crate::runtime::{CheckpointSink, RuntimeObserver};
use vortex_messages::journal::ControlJournaled;
use vortex_messages::telemetry::{ControlApplied, TelemetryEvent};

/// Journal record kind of [`ControlJournaled`] records.
pub const KIND_CONTROL_JOURNALED: u16 = 0x0200;

/// The control socket's file name in the data directory.
pub const SOCKET_FILE: &str = "control.sock";

/// The lock file that keeps a second run off a data directory in use.
pub const LOCK_FILE: &str = "lock";

/// The run manifest's file name in the data directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The run manifest, written to `<data_dir>/manifest.json` when a run starts (without
/// `ended_at` and results) and again when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// 1 for the first run on this data directory, then one more per run.
    pub run: u64,
    /// The topology's name.
    pub topology: String,
    /// The topology file, if one was given.
    pub topology_file: Option<PathBuf>,
    /// The `vortex` version.
    pub version: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_at: u64,
    /// Seconds since the Unix epoch when it ended (none while it runs, or if it crashed).
    pub ended_at: Option<u64>,
    /// Actors restored from a checkpoint at start, with the epoch.
    pub restored: Vec<(String, u64)>,
    /// What the run did (none while it runs).
    pub results: Option<RunResults>,
}

/// The results part of a [`RunManifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResults {
    /// Batches the source sent.
    pub sent: u64,
    /// Batches the sink received.
    pub received: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Batches lost (0 unless something is wrong).
    pub lost: u64,
    /// Control commands served on the control socket.
    pub control_commands: u64,
    /// Why the run ended (`finished`, `stopped`).
    pub ended_by: String,
}

/// Why a session could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The data directory could not be created or written.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The journal or checkpoints could not be opened.
    #[error("journal in {path}: {reason}")]
    Journal {
        /// The data directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The control server could not start.
    #[error(transparent)]
    Control(#[from] crate::actors::control::ControlServerError),
    /// Another process is running on this data directory (it holds `<data_dir>/lock`).
    #[error("data directory {0} is in use by another run")]
    InUse(PathBuf),
    /// The control server's secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] crate::actors::control::AuthError),
    /// The scheduler could not start.
    #[error("scheduler: {0}")]
    Scheduler(String),
}

impl From<SessionError> for RuntimeError {
    fn from(error: SessionError) -> Self {
        RuntimeError::InvalidConfig(error.to_string())
    }
}

/// A run's data directory, journal, checkpoints and control services.
pub struct Session {
    data_dir: PathBuf,
    /// Holds the exclusive `flock` on `<data_dir>/lock` for the session's life.
    _lock: std::fs::File,
    _temporary: Option<tempfile::TempDir>,
    checkpoints: Arc<DurableCheckpoints>,
    manifest: RunManifest,
    control: Option<ControlServer>,
    scheduler: Option<Scheduler>,
    timers: Vec<crate::actors::scheduler::TimerHandle>,
    commands: Arc<AtomicU64>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("data_dir", &self.data_dir)
            .field("run", &self.manifest.run)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Session {
    /// Creates (or reopens) the data directory, recovers its journal and checkpoints, and
    /// writes the starting manifest.
    pub fn open(config: &DemoConfig) -> Result<Session, SessionError> {
        let (data_dir, temporary) = match &config.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("vortex-run-")
                    .tempdir()
                    .map_err(|source| SessionError::DataDir {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temporary.path().to_owned(), Some(temporary))
            }
        };
        if let Some(control) = &config.control {
            // Refused before anything starts, not after the pipeline is up.
            let socket = control
                .socket
                .clone()
                .unwrap_or_else(|| data_dir.join(SOCKET_FILE));
            let len = socket.as_os_str().len();
            if len > MAX_SOCKET_PATH {
                return Err(SessionError::Control(
                    ControlServerError::SocketPathTooLong {
                        path: socket,
                        len,
                        max: MAX_SOCKET_PATH,
                    },
                ));
            }
        }
        std::fs::create_dir_all(&data_dir).map_err(|source| SessionError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let lock = lock_data_dir(&data_dir)?;
        let mut journal = JournalConfig::default();
        if let Some(bytes) = config.journal_segment_bytes {
            journal.segment_bytes = bytes;
        }
        let options = CheckpointOptions {
            keep_epochs: config.keep_checkpoints.max(1),
            journal,
            ..CheckpointOptions::default()
        };
        let checkpoints = DurableCheckpoints::open_with(&data_dir, options).map_err(|error| {
            SessionError::Journal {
                path: data_dir.clone(),
                reason: error.to_string(),
            }
        })?;
        let previous = read_manifest(&data_dir)
            .map(|manifest| manifest.run)
            .unwrap_or(0);
        let manifest = RunManifest {
            run: previous + 1,
            topology: config.topology_name.clone(),
            topology_file: config.topology_file.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: now_secs(),
            ended_at: None,
            restored: Vec::new(),
            results: None,
        };
        let session = Session {
            _lock: lock,
            data_dir,
            _temporary: temporary,
            checkpoints: Arc::new(checkpoints),
            manifest,
            control: None,
            scheduler: None,
            timers: Vec::new(),
            commands: Arc::new(AtomicU64::new(0)),
        };
        session.write_manifest()?;
        Ok(session)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Which run on this data directory this is (1 for the first).
    pub fn run_number(&self) -> u64 {
        self.manifest.run
    }

    /// The runtime's checkpoint sink.
    pub fn checkpoint_sink(&self) -> Arc<dyn CheckpointSink> {
        Arc::clone(&self.checkpoints) as Arc<dyn CheckpointSink>
    }

    /// The latest checkpoint epoch of each of `actors` that has one: what the runtime
    /// restored them from as they spawned. Recorded in the manifest.
    pub fn note_restored(&mut self, actors: &[String]) -> Vec<(String, u64)> {
        let restored: Vec<(String, u64)> = actors
            .iter()
            .filter_map(|actor| match self.checkpoints.latest(actor) {
                Ok(Some(checkpoint)) => Some((actor.clone(), checkpoint.epoch)),
                _ => None,
            })
            .collect();
        self.manifest.restored = restored.clone();
        restored
    }

    /// Starts the control server, the scheduler and the periodic checkpoints.
    pub async fn start_services(
        &mut self,
        rt: &Runtime,
        config: &DemoConfig,
        telemetry: Option<TelemetryHandle>,
    ) -> Result<(), SessionError> {
        if let Some(settings) = &config.control {
            self.control = Some(self.start_control(rt, settings, telemetry).await?);
        }
        if !config.checkpoint_every.is_empty() {
            let tick = config.scheduler_tick.max(Duration::from_millis(1));
            let scheduler = Scheduler::spawn_with_tick(rt, "scheduler", tick)
                .await
                .map_err(|error| SessionError::Scheduler(error.to_string()))?;
            let checkpointer = rt
                .spawn("checkpointer", {
                    let observer = rt.observer();
                    move || Checkpointer {
                        observer: observer.clone(),
                    }
                })
                .await
                .map_err(|error| SessionError::Scheduler(error.to_string()))?;
            for (actor, period) in &config.checkpoint_every {
                let timer = scheduler
                    .send_interval(*period, &checkpointer, CheckpointTick(actor.clone()))
                    .map_err(|error| SessionError::Scheduler(error.to_string()))?;
                self.timers.push(timer);
            }
            self.scheduler = Some(scheduler);
        }
        Ok(())
    }

    async fn start_control(
        &self,
        rt: &Runtime,
        settings: &ControlSettings,
        telemetry: Option<TelemetryHandle>,
    ) -> Result<ControlServer, SessionError> {
        let socket = settings
            .socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join(SOCKET_FILE));
        let config = ControlServerConfig {
            socket: Some(socket),
            tcp: settings.tcp.clone(),
        };
        let journal = Arc::clone(&self.checkpoints);
        let events = telemetry.clone();
        let commands = Arc::clone(&self.commands);
        let audit = Arc::new(move |record: ControlJournaled| {
            commands.fetch_add(1, Relaxed);
            if let Some(events) = &events {
                let _ = events.try_publish(TelemetryEvent::ControlApplied(ControlApplied {
                    at_micros: crate::actors::preprocessor::now_micros(),
                    actor: record.actor.as_str().into(),
                    command: record.command.name().into(),
                    succeeded: record.outcome == "ok",
                }));
            }
            // Durable per record; not waited for here (the writer acknowledges from its
            // thread), and flushed at the latest when the session finishes.
            let _ = journal.journal().append_serialized(
                KIND_CONTROL_JOURNALED,
                &record,
                Durability::Each,
            );
        });
        let services = ControlServices {
            observer: rt.observer(),
            telemetry,
            audit: Some(audit),
        };
        Ok(ControlServer::start(config, services).await?)
    }

    /// The control server's Unix socket, if it serves one.
    pub fn control_socket(&self) -> Option<&Path> {
        self.control
            .as_ref()
            .and_then(|server| server.socket_path())
    }

    /// The control server's TCP address, if it serves one.
    pub fn control_tcp(&self) -> Option<std::net::SocketAddr> {
        self.control.as_ref().and_then(|server| server.tcp_addr())
    }

    /// Stops the periodic checkpoints and the control server (no command arrives after
    /// this), so the pipeline can drain. Returns the control commands served (every
    /// one is in the journal).
    pub async fn stop_services(&mut self) -> u64 {
        for timer in self.timers.drain(..) {
            let _ = timer.cancel();
        }
        if let Some(control) = self.control.take() {
            control.shutdown().await;
        }
        self.commands.load(Relaxed)
    }

    /// Flushes the journal and writes the final manifest.
    pub async fn finish(mut self, results: RunResults) -> Result<PathBuf, SessionError> {
        self.stop_services().await;
        self.scheduler = None;
        let checkpoints = Arc::clone(&self.checkpoints);
        // Closing the writer syncs what is queued; wait for its thread off the workers.
        let _ = tokio::task::spawn_blocking(move || {
            let journal = checkpoints.journal();
            journal.close();
            journal.wait_stopped()
        })
        .await;
        self.manifest.ended_at = Some(now_secs());
        self.manifest.results = Some(results);
        self.write_manifest()?;
        Ok(self.data_dir.join(MANIFEST_FILE))
    }

    fn write_manifest(&self) -> Result<(), SessionError> {
        let path = self.data_dir.join(MANIFEST_FILE);
        let staging = self.data_dir.join("manifest.json.new");
        let error = |source| SessionError::DataDir {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(&self.manifest).expect("a manifest serialises");
        let file = std::fs::File::create(&staging).map_err(error)?;
        std::io::Write::write_all(&mut &file, text.as_bytes()).map_err(error)?;
        file.sync_all().map_err(error)?;
        std::fs::rename(&staging, &path).map_err(error)?;
        if let Ok(directory) = std::fs::File::open(&self.data_dir) {
            let _ = directory.sync_all();
        }
        Ok(())
    }
}

/// Takes the exclusive lock on `<data_dir>/lock` (released when the process exits, even
/// by SIGKILL), so two runs never write one journal.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, SessionError> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SessionError::DataDir {
            path: path.clone(),
            source,
        })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(SessionError::InUse(data_dir.to_owned())),
        Err(error) => Err(SessionError::DataDir {
            path,
            source: error.into(),
        }),
    }
}

/// The manifest of the latest run on `data_dir`, if one was written.
pub fn read_manifest(data_dir: &Path) -> Option<RunManifest> {
    let text = std::fs::read_to_string(data_dir.join(MANIFEST_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The message the scheduler sends the checkpointer: take a checkpoint of this actor.
#[derive(Debug, Clone)]
struct CheckpointTick(String);

/// Turns scheduler ticks into `Control::Checkpoint` commands by name.
struct Checkpointer {
    observer: RuntimeObserver,
}

impl Actor for Checkpointer {
    type Message = CheckpointTick;

    async fn handle(
        &mut self,
        CheckpointTick(actor): CheckpointTick,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        if let Err(error) = self.observer.control(&actor, Control::Checkpoint).await {
            tracing::warn!(%actor, %error, "periodic checkpoint failed");
        }
        Ok(())
    }
}
