//! [`DiskStorage`]: the raft log in a journal directory of its own.
//!
//! Every record is one raft protobuf message (`Entry`, `HardState` or `ConfState`) in
//! raft's own encoding, under its own record kind. All the records of one `Ready` go
//! into one atomic, fsynced journal batch ([`Journal::append_batch`]): after a crash
//! either the whole `Ready` is on disk or none of it, so a hard state is never kept
//! without the entries it commits. Reads are served from an in-memory copy
//! (raft-rs's `MemStorage`) that opening rebuilds by replaying the journal in order.
//!
//! This journal is not the pipeline's journal and has no retention: raft log
//! compaction (and with it raft snapshots) is part 2's work.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::prelude::{ConfState, Entry, HardState};
use raft::storage::MemStorage;
use vortex_actors::journal::io::{FileSystem, RealFileSystem};
use vortex_actors::journal::{Durability, Journal, JournalConfig, PendingRecord};

use super::Persist;
use crate::error::{RaftError, RaftResult};

/// Journal record kind of one log entry.
pub const RECORD_ENTRY: u16 = 0x5201;
/// Journal record kind of a hard state (term, vote, commit).
pub const RECORD_HARD_STATE: u16 = 0x5202;
/// Journal record kind of a configuration (voters, learners).
pub const RECORD_CONF_STATE: u16 = 0x5203;

/// Raft log storage in a journal directory.
pub struct DiskStorage {
    cache: MemStorage,
    journal: Journal,
    directory: PathBuf,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStorage")
            .field("directory", &self.directory)
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

impl DiskStorage {
    /// Opens the raft journal in `directory` on the real file system. A new (empty)
    /// directory starts a cluster whose voters are `voters`; an existing one ignores
    /// `voters` and recovers what it holds.
    pub fn open(directory: impl AsRef<Path>, voters: &[u64]) -> RaftResult<Self> {
        Self::open_with(
            Arc::new(RealFileSystem),
            directory,
            JournalConfig::default(),
            voters,
        )
    }

    /// Like [`DiskStorage::open`], on `fs` with the journal laid out as `config` says
    /// (the simulation uses the power-loss double and small segments).
    pub fn open_with(
        fs: Arc<dyn FileSystem>,
        directory: impl AsRef<Path>,
        config: JournalConfig,
        voters: &[u64],
    ) -> RaftResult<Self> {
        let directory = directory.as_ref().to_path_buf();
        let (journal, _report) = Journal::open_with(fs, &directory, config)?;
        let mut storage = Self {
            cache: MemStorage::new(),
            journal,
            directory,
        };
        if storage.journal.last_seq() == 0 {
            let conf_state = ConfState::from((voters.to_vec(), Vec::new()));
            storage.write(&Persist {
                conf_state: Some(&conf_state),
                ..Persist::default()
            })?;
            storage.cache.wl().set_conf_state(conf_state);
        } else {
            storage.replay()?;
        }
        Ok(storage)
    }

    /// The journal directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    pub(super) fn cache(&self) -> &MemStorage {
        &self.cache
    }

    /// Rebuilds the in-memory copy from the journal, in write order.
    fn replay(&mut self) -> RaftResult<()> {
        let mut core = self.cache.wl();
        // Without compaction the log starts at index 1; `last` is its last index.
        let mut last = 0;
        for record in self.journal.replay(1) {
            let record = record?;
            match record.kind {
                RECORD_ENTRY => {
                    let entry = decode::<Entry>(&record.payload, "entry")?;
                    if entry.index == 0 || entry.index > last + 1 {
                        return Err(RaftError::Corrupt(format!(
                            "entry {} does not follow the log's last index {last}",
                            entry.index
                        )));
                    }
                    // An entry at or below `last` replaces that suffix, as it did
                    // when it was written.
                    last = entry.index;
                    core.append(std::slice::from_ref(&entry))?;
                }
                RECORD_HARD_STATE => {
                    core.set_hardstate(decode::<HardState>(&record.payload, "hard state")?)
                }
                RECORD_CONF_STATE => {
                    core.set_conf_state(decode::<ConfState>(&record.payload, "conf state")?)
                }
                other => {
                    return Err(RaftError::Corrupt(format!(
                        "unknown record kind {other:#x} at seq {}",
                        record.seq
                    )))
                }
            }
        }
        Ok(())
    }

    /// Writes `persist` as one atomic, fsynced batch.
    pub(super) fn write(&mut self, persist: &Persist<'_>) -> RaftResult<()> {
        let mut records = Vec::with_capacity(persist.entries.len() + 2);
        for entry in persist.entries {
            records.push(record(RECORD_ENTRY, entry)?);
        }
        if let Some(conf_state) = persist.conf_state {
            records.push(record(RECORD_CONF_STATE, conf_state)?);
        }
        if let Some(hard_state) = persist.hard_state {
            records.push(record(RECORD_HARD_STATE, hard_state)?);
        }
        self.journal.append_batch(&records)?;
        Ok(())
    }
}

fn record(kind: u16, message: &impl protobuf::Message) -> RaftResult<PendingRecord> {
    let bytes = message
        .write_to_bytes()
        .map_err(|error| RaftError::Corrupt(format!("cannot encode: {error}")))?;
    Ok(PendingRecord::raw(kind, bytes).with_durability(Durability::Each))
}

fn decode<M: protobuf::Message>(bytes: &[u8], what: &str) -> RaftResult<M> {
    M::parse_from_bytes(bytes)
        .map_err(|error| RaftError::Corrupt(format!("a stored {what} does not decode: {error}")))
}
