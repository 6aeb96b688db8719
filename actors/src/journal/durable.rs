//! [`DurableCheckpoints`]: the runtime's checkpoint sink on disk.
//!
//! A save writes the snapshot to the [`CheckpointStore`] (temp file, fsync, rename,
//! fsync directory), then journals a `CheckpointTaken` record with `Durability::Each`
//! before it is acknowledged. The journal record is the commit point: [`latest`] offers
//! only an epoch the journal recorded, whose file verifies against the record's CRC —
//! never a snapshot whose record failed. A recorded epoch whose file is corrupt or gone
//! falls back to the next older recorded one (logged, and counted in
//! [`DurableCheckpoints::fallbacks`]). After each save, files of epochs older than the
//! newest `keep_epochs` recorded ones are pruned (default [`DEFAULT_KEEP_EPOCHS`]).
//!
//! Saving is idempotent per (actor, epoch): the same bytes again is `Ok` and makes them
//! durable again; different bytes for a recorded epoch are a conflict; an epoch whose
//! record never made it may be saved again with other bytes (the runtime never reuses an
//! epoch within a process, but a new process may). A journal poisoned by a failed fsync
//! is reopened, with recovery, by the next save.
//!
//! [`latest`]: CheckpointSink::latest

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vortex_messages::journal::CheckpointTaken;
use vortex_messages::Checkpoint;
use vortex_runtime::CheckpointSink;

use crate::journal::io::{FileSystem, RealFileSystem};
use crate::journal::{
    CheckpointStore, Durability, Journal, JournalConfig, JournalError, JournalResult,
    JournalWriter, RecoveryReport,
};
use crate::telemetry::{TelemetryEvent, TelemetryHandle};

/// Journal record kind of `CheckpointTaken` records.
pub const KIND_CHECKPOINT_TAKEN: u16 = 0x0100;

/// Recorded epochs kept per actor unless configured otherwise.
pub const DEFAULT_KEEP_EPOCHS: usize = 3;

/// How [`DurableCheckpoints`] keeps and reports its files.
#[derive(Clone)]
pub struct CheckpointOptions {
    /// Recorded epochs kept per actor (at least 1); older files are pruned after each
    /// save. Default [`DEFAULT_KEEP_EPOCHS`].
    pub keep_epochs: usize,
    /// Where the journal's `JournalRecovered` events go (best effort).
    pub telemetry: Option<TelemetryHandle>,
    /// The file system (default: the real one; tests pass the crash double).
    pub fs: Arc<dyn FileSystem>,
    /// The checkpoint journal's layout (default: [`JournalConfig::default`]).
    pub journal: JournalConfig,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        Self {
            journal: JournalConfig::default(),
            keep_epochs: DEFAULT_KEEP_EPOCHS,
            telemetry: None,
            fs: Arc::new(RealFileSystem),
        }
    }
}

impl std::fmt::Debug for CheckpointOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CheckpointOptions")
            .field("keep_epochs", &self.keep_epochs)
            .field("telemetry", &self.telemetry.is_some())
            .finish_non_exhaustive()
    }
}

/// Recorded checkpoints per actor, by epoch.
type Recorded = HashMap<String, BTreeMap<u64, CheckpointTaken>>;

struct State {
    journal: Arc<JournalWriter>,
    recorded: Recorded,
    recovery: RecoveryReport,
    opens: u64,
}

/// Checkpoints in `<dir>/checkpoints/<actor>/<epoch>.ckpt`, journaled in `<dir>/journal`.
pub struct DurableCheckpoints {
    store: CheckpointStore,
    journal_directory: PathBuf,
    options: CheckpointOptions,
    state: Mutex<State>,
    fallbacks: AtomicU64,
}

impl DurableCheckpoints {
    /// Opens (recovering) the store and the journal under `directory`.
    pub fn open(directory: impl AsRef<Path>) -> JournalResult<Self> {
        Self::open_with(directory, CheckpointOptions::default())
    }

    /// Opens (recovering) the store and the journal under `directory`, as `options` say.
    pub fn open_with(
        directory: impl AsRef<Path>,
        options: CheckpointOptions,
    ) -> JournalResult<Self> {
        let directory = directory.as_ref();
        let store =
            CheckpointStore::open_with(Arc::clone(&options.fs), directory.join("checkpoints"))?;
        let journal_directory = directory.join("journal");
        let state = open_journal(&store, &journal_directory, &options, 1)?;
        Ok(DurableCheckpoints {
            store,
            journal_directory,
            options,
            state: Mutex::new(state),
            fallbacks: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The snapshot store (to list checkpoints per actor).
    pub fn store(&self) -> &CheckpointStore {
        &self.store
    }

    /// The journal writer (to replay `CheckpointTaken` records); replaced when a
    /// poisoned journal is reopened.
    pub fn journal(&self) -> Arc<JournalWriter> {
        Arc::clone(&self.lock().journal)
    }

    /// What recovery found the last time the journal was opened.
    pub fn recovery(&self) -> RecoveryReport {
        self.lock().recovery.clone()
    }

    /// How many times the journal was opened (1, plus one per reopen after a poison).
    pub fn opens(&self) -> u64 {
        self.lock().opens
    }

    /// How many times [`CheckpointSink::latest`] skipped a corrupt or missing recorded
    /// epoch for an older one.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Relaxed)
    }

    /// The epochs the journal recorded for `actor` (and whose files were not pruned),
    /// ascending.
    pub fn recorded_epochs(&self, actor: &str) -> Vec<u64> {
        self.lock()
            .recorded
            .get(actor)
            .map(|epochs| epochs.keys().copied().collect())
            .unwrap_or_default()
    }

    /// One line for logs: the journal's status and its last recovery.
    pub fn summary(&self) -> String {
        let state = self.lock();
        format!(
            "opens={} fallbacks={} recovery: {}",
            state.opens,
            self.fallbacks(),
            state.recovery.summary()
        )
    }

    fn save_locked(&self, state: &mut State, checkpoint: &Checkpoint) -> JournalResult<()> {
        if state.journal.reader().poisoned().is_some() {
            let opens = state.opens + 1;
            // The poisoned writer's thread must be gone before its directory is reopened.
            if let Err(error) = state.journal.wait_stopped() {
                tracing::debug!(%error, "poisoned checkpoint journal writer");
            }
            *state = open_journal(&self.store, &self.journal_directory, &self.options, opens)?;
        }
        let (actor, epoch, bytes) = (&checkpoint.actor, checkpoint.epoch, &checkpoint.bytes);
        if let Some(taken) = state
            .recorded
            .get(actor)
            .and_then(|epochs| epochs.get(&epoch))
        {
            if taken.crc == crc32c::crc32c(bytes) && taken.bytes == bytes.len() as u64 {
                // Already committed: make sure the file is durable; do not record it twice.
                self.store.save(actor, epoch, bytes)?;
                return Ok(());
            }
            if self.verifies(actor, taken) {
                return Err(JournalError::CheckpointConflict {
                    actor: actor.clone(),
                    epoch,
                });
            }
            // Recorded, but its file is corrupt or gone: nothing left to protect. The new
            // record, later in the journal, supersedes the old one.
        }
        // Not usable as recorded: whatever the epoch holds is left from a failed save.
        let taken = self.store.save_replacing(actor, epoch, bytes)?;
        let recorded = state
            .journal
            .append_serialized(KIND_CHECKPOINT_TAKEN, &taken, Durability::Each)
            .wait();
        if let Err(error) = recorded {
            // The record may yet reach the disk (a reopen makes what the page cache kept
            // durable): remove the file, so that a save that answered an error can never
            // be restored. If even that fails, the record alone decides.
            if let Err(removal) = self.store.remove(actor, epoch) {
                tracing::warn!(actor, epoch, %removal, "unrecorded checkpoint not removed");
            }
            return Err(error);
        }
        state
            .recorded
            .entry(actor.clone())
            .or_default()
            .insert(epoch, taken);
        self.prune(state, actor);
        Ok(())
    }

    /// Whether `taken`'s file is there and matches its record.
    fn verifies(&self, actor: &str, taken: &CheckpointTaken) -> bool {
        self.store
            .load(actor, taken.epoch)
            .is_ok_and(|stored| stored.crc == taken.crc)
    }

    /// Removes the files of epochs older than the newest `keep_epochs` recorded ones.
    /// A failure is logged: the save it follows is durable either way.
    fn prune(&self, state: &mut State, actor: &str) {
        let Some(epochs) = state.recorded.get_mut(actor) else {
            return;
        };
        let keep = self.options.keep_epochs.max(1);
        let Some(&oldest_kept) = epochs.keys().rev().nth(keep - 1) else {
            return;
        };
        let on_disk = match self.store.list(actor) {
            Ok(on_disk) => on_disk,
            Err(error) => {
                tracing::warn!(actor, %error, "checkpoint pruning: listing failed");
                return;
            }
        };
        for epoch in on_disk.into_iter().filter(|&epoch| epoch < oldest_kept) {
            match self.store.remove(actor, epoch) {
                Ok(()) => {
                    epochs.remove(&epoch);
                }
                Err(error) => tracing::warn!(actor, epoch, %error, "checkpoint pruning failed"),
            }
        }
        epochs.retain(|&epoch, _| epoch >= oldest_kept);
    }
}

/// Opens (recovering) the journal, reports the recovery, and reads which checkpoints it
/// recorded (those whose files were since pruned are left out).
fn open_journal(
    store: &CheckpointStore,
    directory: &Path,
    options: &CheckpointOptions,
    opens: u64,
) -> JournalResult<State> {
    let (journal, recovery) =
        Journal::open_with(Arc::clone(&options.fs), directory, options.journal.clone())?;
    let name = directory.display().to_string();
    recovery.log(&name, opens);
    if let Some(telemetry) = &options.telemetry {
        let _ = telemetry.try_publish(TelemetryEvent::from(recovery.to_event(&name, opens)));
    }
    let mut recorded = Recorded::new();
    for record in journal.replay(1) {
        let record = record?;
        if record.kind == KIND_CHECKPOINT_TAKEN {
            let taken: CheckpointTaken = record.decode()?;
            recorded
                .entry(taken.actor.clone())
                .or_default()
                .insert(taken.epoch, taken);
        }
    }
    for (actor, epochs) in &mut recorded {
        let on_disk = store.list(actor)?;
        epochs.retain(|epoch, _| on_disk.contains(epoch));
    }
    Ok(State {
        journal: Arc::new(JournalWriter::spawn(journal)?),
        recorded,
        recovery,
        opens,
    })
}

impl CheckpointSink for DurableCheckpoints {
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), String> {
        let mut state = self.lock();
        self.save_locked(&mut state, checkpoint)
            .map_err(|error| error.to_string())
    }

    fn latest(&self, actor: &str) -> Result<Option<Checkpoint>, String> {
        let recorded: Vec<CheckpointTaken> = self
            .lock()
            .recorded
            .get(actor)
            .map(|epochs| epochs.values().rev().cloned().collect())
            .unwrap_or_default();
        for taken in recorded {
            let reason = match self.store.load(actor, taken.epoch) {
                Ok(stored) if stored.crc == taken.crc => {
                    return Ok(Some(Checkpoint {
                        actor: actor.to_owned(),
                        epoch: stored.epoch,
                        bytes: stored.bytes,
                    }))
                }
                Ok(_) => "its bytes differ from the journal's record".to_owned(),
                Err(
                    error @ (JournalError::CheckpointCorrupt { .. }
                    | JournalError::CheckpointNotFound { .. }),
                ) => error.to_string(),
                Err(error) => return Err(error.to_string()),
            };
            self.fallbacks.fetch_add(1, Relaxed);
            tracing::warn!(
                actor,
                epoch = taken.epoch,
                reason,
                "recorded checkpoint unusable; falling back to an older epoch"
            );
        }
        Ok(None)
    }
}
