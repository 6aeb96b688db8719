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

/// A control command that arrived from outside the process (the control socket) and what
/// came of it; `vortex run` journals one per command, so the journal is the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlJournaled {
    /// Where it came from (`unix` or the TCP peer's address).
    pub peer: String,
    /// The client's request id.
    pub request: u64,
    /// The actor it was addressed to.
    pub actor: String,
    /// The command.
    pub command: crate::control::Control,
    /// `ok` or the error's text.
    pub outcome: String,
}
