//! The cluster control log's vocabulary: what is proposed, and how a proposal or a
//! read is answered.
//!
//! A [`ClusterCommand`] is a [`Control`] command addressed to an actor on one node or
//! to a name on every node ([`Target`]). It is proposed with a [`RequestId`] that the
//! replicated state machine deduplicates, so a client may retry a proposal whose
//! outcome is unknown. Every proposal is answered with one [`ProposalOutcome`].

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::control::Control;

/// Identifies one client request across retries: the state machine applies a request id
/// at most once, however many times it is proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// The client (unique per client process; a random 64-bit number is fine).
    pub client: u64,
    /// The client's own sequence number for this request.
    pub seq: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.client, self.seq)
    }
}

/// Where a cluster command applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    /// The actor (or pool) registered as `name` on the node with raft id `node`
    /// (`name@node`).
    Node {
        /// The registered name.
        name: String,
        /// The raft id of the node.
        node: u64,
    },
    /// The actor (or pool) registered as `name` on every node.
    Everywhere {
        /// The registered name.
        name: String,
    },
}

impl Target {
    /// The registered name the command goes to.
    pub fn name(&self) -> &str {
        match self {
            Target::Node { name, .. } | Target::Everywhere { name } => name,
        }
    }

    /// Whether the node with raft id `node` applies commands for this target.
    pub fn includes(&self, node: u64) -> bool {
        match self {
            Target::Node { node: target, .. } => *target == node,
            Target::Everywhere { .. } => true,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node { name, node } => write!(f, "{name}@{node}"),
            Target::Everywhere { name } => write!(f, "{name}@*"),
        }
    }
}

/// A control command for the cluster log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterCommand {
    /// Where it applies.
    pub target: Target,
    /// What to do. `Status` is refused (it changes nothing, so it has no place in a log).
    pub command: Control,
}

/// Why a proposal never entered the log (it will never be applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// No leader is known (an election is in progress): retry later.
    #[error("no leader is known")]
    NoLeader,
    /// The leader is handing leadership to another node.
    #[error("leadership is being transferred")]
    Transferring,
    /// This node is a learner, which may not propose.
    #[error("this node is a learner")]
    Learner,
    /// The command cannot go into the log (for example `Status`, or an encoding error).
    #[error("invalid command: {0}")]
    Invalid(String),
    /// raft-rs refused the proposal (for example the uncommitted-size limit).
    #[error("refused by raft: {0}")]
    Refused(String),
    /// Another entry was committed at the index this proposal had: it was overwritten.
    #[error("overwritten by a newer leader's entry")]
    Overwritten,
    /// The peer is stopping.
    #[error("the raft peer is stopping")]
    Stopping,
}

/// The answer to a proposal (and to a read-index request). Nobody waits forever: a
/// proposal gets exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProposalOutcome {
    /// The entry committed at `index` and this node applied it. `duplicate` is true when
    /// the request id had been applied before (the command did not run a second time).
    Committed {
        /// Log index of the entry.
        index: u64,
        /// The request id had already been applied.
        duplicate: bool,
    },
    /// This node is not the leader; `hint` is the leader it knows of, if any.
    NotLeader {
        /// Raft id of the leader this node follows.
        hint: Option<u64>,
    },
    /// The proposal never entered the log (or was overwritten): it is not applied.
    Dropped(DropReason),
    /// The proposal entered the log, but the leader changed before it committed: it
    /// may still commit. Retry with the same request id; the state machine applies it
    /// at most once.
    OutcomeUnknown,
}

impl ProposalOutcome {
    /// True for [`ProposalOutcome::Committed`].
    pub fn is_committed(&self) -> bool {
        matches!(self, ProposalOutcome::Committed { .. })
    }
}

/// A raft message between peers, as it travels on the wire: raft-rs's protobuf
/// encoding of `eraftpb::Message` in a serialisable envelope (`vortex_raft::transport`
/// builds and opens it), so a transport frames it like every other wire type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftEnvelope {
    /// The sending peer's raft id.
    pub from: u64,
    /// The receiving peer's raft id.
    pub to: u64,
    /// The protobuf-encoded raft message.
    pub message: Vec<u8>,
}
