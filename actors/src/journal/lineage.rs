//! What the journal actor's incarnations share: the directory and configuration, the
//! current writer, the last [`RecoveryReport`], and how many times the journal was
//! opened. Each incarnation opens the journal anew (`Lineage::open_next`): it closes
//! the previous writer, waits for its thread to exit (so two writers never touch one
//! directory), and recovers what that writer left.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::journal::io::{FileSystem, RealFileSystem};
use crate::journal::writer::WriterFailure;
use crate::journal::{
    Journal, JournalConfig, JournalReader, JournalResult, JournalStatus, JournalWriter,
    RecoveryReport, RetentionPolicy, WriterConfig,
};
use crate::telemetry::{MetricsSink, TelemetryEvent, TelemetryHandle};

/// A retention policy the journal actor applies on its own, every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSchedule {
    /// What to remove.
    pub policy: RetentionPolicy,
    /// How often to apply it.
    pub every: Duration,
}

/// How the journal actor opens, writes, trims and reports its journal.
#[derive(Clone)]
pub struct JournalActorConfig {
    /// Segment layout and recovery mode.
    pub journal: JournalConfig,
    /// The writer thread's queue.
    pub writer: WriterConfig,
    /// Retention applied on the actor's own schedule (default: none).
    pub retention: Option<RetentionSchedule>,
    /// The file system (default: the real one; tests pass the crash double).
    pub fs: Arc<dyn FileSystem>,
    /// Where every `fdatasync` is recorded (`vortex_journal_fsync_latency_seconds`).
    pub metrics: Option<MetricsSink>,
    /// Where `JournalRecovered` and `JournalFsynced` events go (best effort).
    pub telemetry: Option<TelemetryHandle>,
}

impl Default for JournalActorConfig {
    fn default() -> Self {
        Self::from(JournalConfig::default())
    }
}

impl From<JournalConfig> for JournalActorConfig {
    fn from(journal: JournalConfig) -> Self {
        Self {
            journal,
            writer: WriterConfig::default(),
            retention: None,
            fs: Arc::new(RealFileSystem),
            metrics: None,
            telemetry: None,
        }
    }
}

impl std::fmt::Debug for JournalActorConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JournalActorConfig")
            .field("journal", &self.journal)
            .field("writer", &self.writer)
            .field("retention", &self.retention)
            .field("metrics", &self.metrics.is_some())
            .field("telemetry", &self.telemetry.is_some())
            .finish_non_exhaustive()
    }
}

/// One opened journal: its writer, and where the writer's failure will be told.
pub(crate) struct Opened {
    pub(crate) writer: Arc<JournalWriter>,
    pub(crate) failures: oneshot::Receiver<WriterFailure>,
    pub(crate) opens: u64,
}

#[derive(Default)]
struct State {
    current: Option<Arc<JournalWriter>>,
    first: Option<Opened>,
    recovery: Option<RecoveryReport>,
    opens: u64,
}

/// Shared by every incarnation of one journal actor and by its [`JournalHandle`].
pub(crate) struct Lineage {
    pub(crate) name: String,
    directory: PathBuf,
    pub(crate) config: JournalActorConfig,
    state: Mutex<State>,
}

impl Lineage {
    pub(crate) fn new(name: &str, directory: PathBuf, config: JournalActorConfig) -> Self {
        Self {
            name: name.to_owned(),
            directory,
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the journal for the next incarnation (blocking: call it off the async
    /// workers). Closes the previous writer and waits for its thread first.
    pub(crate) fn open_next(&self) -> JournalResult<Opened> {
        let previous = self.lock().current.clone();
        if let Some(previous) = previous {
            if let Err(error) = previous.wait_stopped() {
                // Already waited for (a normal stop), or it panicked: either way it is gone.
                tracing::debug!(journal = %self.name, %error, "previous journal writer");
            }
        }
        let (mut journal, report) = Journal::open_with(
            Arc::clone(&self.config.fs),
            &self.directory,
            self.config.journal.clone(),
        )?;
        self.observe_fsyncs(&mut journal);
        let (told, failures) = oneshot::channel();
        let writer = JournalWriter::spawn_watched(journal, self.config.writer, move |failure| {
            // The incarnation may be gone already; then nobody needs telling.
            let _ = told.send(failure);
        })?;
        let writer = Arc::new(writer);
        let opens = {
            let mut state = self.lock();
            state.opens += 1;
            state.current = Some(Arc::clone(&writer));
            state.recovery = Some(report.clone());
            state.opens
        };
        report.log(&self.name, opens);
        if let Some(telemetry) = &self.config.telemetry {
            let event = TelemetryEvent::from(report.to_event(&self.name, opens));
            // Best effort: a full publisher loses the event, the log line stays.
            let _ = telemetry.try_publish(event);
        }
        Ok(Opened {
            writer,
            failures,
            opens,
        })
    }

    fn observe_fsyncs(&self, journal: &mut Journal) {
        let (metrics, telemetry) = (self.config.metrics.clone(), self.config.telemetry.clone());
        if metrics.is_none() && telemetry.is_none() {
            return;
        }
        journal.observe_fsyncs(Arc::new(move |fsynced| {
            let event = TelemetryEvent::JournalFsynced(fsynced.clone());
            if let Some(metrics) = &metrics {
                metrics.observe(&event);
            }
            if let Some(telemetry) = &telemetry {
                let _ = telemetry.try_publish(event);
            }
        }));
    }

    /// Keeps the first incarnation's journal, opened by `spawn` (so that a journal that
    /// cannot be opened fails the spawn, not the actor).
    pub(crate) fn set_first(&self, opened: Opened) {
        self.lock().first = Some(opened);
    }

    pub(crate) fn take_first(&self) -> Option<Opened> {
        self.lock().first.take()
    }

    /// The writer of the newest incarnation.
    pub(crate) fn current(&self) -> Option<Arc<JournalWriter>> {
        self.lock().current.clone()
    }

    pub(crate) fn recovery(&self) -> Option<RecoveryReport> {
        self.lock().recovery.clone()
    }

    pub(crate) fn opens(&self) -> u64 {
        self.lock().opens
    }
}

/// Reads the journal of a running [`JournalActor`](crate::journal::JournalActor)
/// across its restarts: every call goes to the newest incarnation's journal.
#[derive(Clone)]
pub struct JournalHandle {
    pub(crate) lineage: Arc<Lineage>,
}

impl std::fmt::Debug for JournalHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JournalHandle")
            .field("journal", &self.lineage.name)
            .field("opens", &self.opens())
            .finish()
    }
}

impl JournalHandle {
    /// A reader of the newest incarnation's journal (a reader taken before a restart
    /// keeps reading the files, but sees no record appended after it).
    pub fn reader(&self) -> JournalReader {
        self.lineage
            .current()
            .expect("a spawned journal actor has a writer")
            .reader()
            .clone()
    }

    /// The journal's state now.
    pub fn status(&self) -> JournalStatus {
        self.reader().status()
    }

    /// What recovery found the last time the journal was opened.
    pub fn recovery(&self) -> Option<RecoveryReport> {
        self.lineage.recovery()
    }

    /// How many times the journal was opened: 1, plus one per restart of the actor.
    pub fn opens(&self) -> u64 {
        self.lineage.opens()
    }
}
