//! [`StateStore`]: where a node keeps its [`Replica`](crate::machine::Replica) — the
//! state machine together with its applied index — between runs.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use vortex_actors::journal::io::{FileSystem, RealFileSystem};
use vortex_actors::journal::CheckpointStore;

use crate::error::RaftResult;

/// The checkpoint-store name the replica is saved under (epoch = applied index).
pub const STATE_CHECKPOINT_NAME: &str = "raft-state";

/// The latest saved replica: its applied index and bytes.
type Saved = Option<(u64, Vec<u8>)>;

/// Where the replica is saved after every batch of applied entries.
#[derive(Debug, Clone)]
pub enum StateStore {
    /// In memory: the latest bytes, shared by clones (they survive a restart of the
    /// peer in this process, not the process).
    Memory(Arc<Mutex<Saved>>),
    /// In a [`CheckpointStore`]: one file per applied index, written atomically; older
    /// ones are removed once the newer one is durable.
    Disk(CheckpointStore),
}

impl StateStore {
    /// An empty in-memory store.
    pub fn memory() -> Self {
        StateStore::Memory(Arc::default())
    }

    /// A store in the checkpoint directory `root` on the real file system.
    pub fn open(root: impl AsRef<Path>) -> RaftResult<Self> {
        Self::open_with(Arc::new(RealFileSystem), root)
    }

    /// A store in the checkpoint directory `root` on `fs`.
    pub fn open_with(fs: Arc<dyn FileSystem>, root: impl AsRef<Path>) -> RaftResult<Self> {
        Ok(StateStore::Disk(CheckpointStore::open_with(fs, root)?))
    }

    /// The latest saved replica bytes with their applied index.
    pub fn load(&self) -> RaftResult<Option<(u64, Vec<u8>)>> {
        match self {
            StateStore::Memory(latest) => Ok(latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()),
            StateStore::Disk(store) => Ok(store
                .latest(STATE_CHECKPOINT_NAME)?
                .map(|stored| (stored.epoch, stored.bytes))),
        }
    }

    /// Saves the replica bytes for `applied`, durably, then drops older ones.
    pub fn save(&mut self, applied: u64, bytes: Vec<u8>) -> RaftResult<()> {
        match self {
            StateStore::Memory(latest) => {
                *latest.lock().unwrap_or_else(PoisonError::into_inner) = Some((applied, bytes))
            }
            StateStore::Disk(store) => {
                store.save_replacing(STATE_CHECKPOINT_NAME, applied, &bytes)?;
                for epoch in store.list(STATE_CHECKPOINT_NAME)? {
                    if epoch < applied {
                        store.remove(STATE_CHECKPOINT_NAME, epoch)?;
                    }
                }
            }
        }
        Ok(())
    }
}
