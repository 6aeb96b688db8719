//! Raft log storage: an enum over an in-memory and an on-disk backend (static
//! dispatch inside `RawNode`, no trait object).
//!
//! * [`RaftStorage::Memory`] — raft-rs's own `MemStorage`; loses everything when the
//!   process ends. For tests and single-process experiments.
//! * [`RaftStorage::Disk`] — [`DiskStorage`]: entries, hard state and conf state in a
//!   journal directory of their own, one atomic journal batch per `Ready`.
//! * [`StateStore`] — where the replica (state machine + applied index) is saved:
//!   in memory, or in a checkpoint store.

mod disk;
mod state;

pub use disk::{DiskStorage, RECORD_CONF_STATE, RECORD_ENTRY, RECORD_HARD_STATE};
pub use state::{StateStore, STATE_CHECKPOINT_NAME};

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage};

use crate::error::RaftResult;

/// What one `Ready` asks to make durable, in one piece.
#[derive(Debug, Default)]
pub struct Persist<'a> {
    /// New log entries (they may replace a conflicting suffix).
    pub entries: &'a [Entry],
    /// The new hard state, if it changed.
    pub hard_state: Option<&'a HardState>,
    /// A new configuration, if one was applied.
    pub conf_state: Option<&'a ConfState>,
}

impl Persist<'_> {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.hard_state.is_none() && self.conf_state.is_none()
    }
}

/// The raft log storage of one peer.
// One per peer, created once and never moved on a hot path: boxing the disk variant
// would buy nothing but an indirection on every read raft makes.
#[allow(clippy::large_enum_variant)]
pub enum RaftStorage {
    /// In memory only.
    Memory(MemStorage),
    /// In a journal directory (see [`DiskStorage`]).
    Disk(DiskStorage),
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RaftStorage::Memory(_) => f.write_str("RaftStorage::Memory"),
            RaftStorage::Disk(storage) => {
                f.debug_tuple("RaftStorage::Disk").field(storage).finish()
            }
        }
    }
}

impl RaftStorage {
    /// An in-memory storage for a new cluster whose voters are `voters`.
    pub fn memory(voters: &[u64]) -> Self {
        RaftStorage::Memory(MemStorage::new_with_conf_state(ConfState::from((
            voters.to_vec(),
            Vec::new(),
        ))))
    }

    /// The in-memory view every read is served from.
    fn cache(&self) -> &MemStorage {
        match self {
            RaftStorage::Memory(storage) => storage,
            RaftStorage::Disk(storage) => storage.cache(),
        }
    }

    /// Makes `persist` durable as one atomic write (Disk), then visible to raft.
    pub fn persist(&mut self, persist: Persist<'_>) -> RaftResult<()> {
        if persist.is_empty() {
            return Ok(());
        }
        if let RaftStorage::Disk(storage) = self {
            storage.write(&persist)?;
        }
        let mut core = self.cache().wl();
        if !persist.entries.is_empty() {
            core.append(persist.entries)?;
        }
        if let Some(hard_state) = persist.hard_state {
            core.set_hardstate(hard_state.clone());
        }
        if let Some(conf_state) = persist.conf_state {
            core.set_conf_state(conf_state.clone());
        }
        Ok(())
    }

    /// Makes a new commit index durable (a `LightReady`'s).
    pub fn persist_commit(&mut self, commit: u64) -> RaftResult<()> {
        let mut hard_state = self.cache().rl().hard_state().clone();
        hard_state.commit = commit;
        self.persist(Persist {
            hard_state: Some(&hard_state),
            ..Persist::default()
        })
    }

    /// The hard state as stored.
    pub fn hard_state(&self) -> HardState {
        self.cache().rl().hard_state().clone()
    }

    /// The configuration as stored.
    pub fn conf_state(&self) -> ConfState {
        self.cache()
            .initial_state()
            .map(|state| state.conf_state)
            .unwrap_or_default()
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.cache().initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.cache().entries(low, high, max_size, context)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.cache().term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.cache().first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.cache().last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.cache().snapshot(request_index, to)
    }
}
