//! Records the journal and checkpoint store emit: plain data, journaled as bincode 2.

use serde::{Deserialize, Serialize};

/// A checkpoint was written durably; the caller journals this record so that replay
/// knows which snapshot to restore from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckpointTaken {
    /// The actor whose state was saved.
    pub actor: String,
    /// The checkpoint epoch (one file per epoch).
    pub epoch: u64,
    /// Length of the snapshot in bytes.
    pub bytes: u64,
    /// CRC-32C of the snapshot bytes.
    pub crc: u32,
}
