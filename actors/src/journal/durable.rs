//! [`DurableCheckpoints`]: the runtime's checkpoint sink on disk. A checkpoint is written
//! to the [`CheckpointStore`] (temp file, fsync, rename, fsync directory), then a
//! `CheckpointTaken` record is journaled with `Durability::Each` before the command is
//! acknowledged.

use std::path::Path;

use vortex_messages::Checkpoint;
use vortex_runtime::CheckpointSink;

use crate::journal::{
    CheckpointStore, Durability, Journal, JournalConfig, JournalResult, JournalWriter,
};

/// Journal record kind of `CheckpointTaken` records.
pub const KIND_CHECKPOINT_TAKEN: u16 = 0x0100;

/// Checkpoints in `<dir>/checkpoints/<actor>/<epoch>.ckpt`, journaled in `<dir>/journal`.
pub struct DurableCheckpoints {
    store: CheckpointStore,
    journal: JournalWriter,
}

impl DurableCheckpoints {
    /// Opens (recovering) the store and the journal under `directory`.
    pub fn open(directory: impl AsRef<Path>) -> JournalResult<Self> {
        let directory = directory.as_ref();
        let store = CheckpointStore::open(directory.join("checkpoints"))?;
        let (journal, _report) =
            Journal::open(directory.join("journal"), JournalConfig::default())?;
        Ok(DurableCheckpoints {
            store,
            journal: JournalWriter::spawn(journal)?,
        })
    }

    /// The snapshot store (to list checkpoints per actor).
    pub fn store(&self) -> &CheckpointStore {
        &self.store
    }

    /// The journal writer (to replay `CheckpointTaken` records).
    pub fn journal(&self) -> &JournalWriter {
        &self.journal
    }
}

impl CheckpointSink for DurableCheckpoints {
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), String> {
        let taken = self
            .store
            .save(&checkpoint.actor, checkpoint.epoch, &checkpoint.bytes)
            .map_err(|error| error.to_string())?;
        self.journal
            .append_serialized(KIND_CHECKPOINT_TAKEN, &taken, Durability::Each)
            .wait()
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    fn latest(&self, actor: &str) -> Result<Option<Checkpoint>, String> {
        let stored = self
            .store
            .latest(actor)
            .map_err(|error| error.to_string())?;
        Ok(stored.map(|stored| Checkpoint {
            actor: actor.to_owned(),
            epoch: stored.epoch,
            bytes: stored.bytes,
        }))
    }
}
