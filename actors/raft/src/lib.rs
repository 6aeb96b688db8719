//! The Nexa Vortex raft peer: a replicated, ordered, durable control log for a cluster,
//! on tikv's raft-rs (`raft` 0.7).
//!
//! `Control` commands addressed to `actor@node` (or to a name on every node) are
//! proposed to the log; once committed, every node applies them in log order to its
//! local named actors, exactly once across restarts (see `docs/semantics.md`,
//! "Cluster control log").
//!
//! # Layout
//! * [`core`] — [`RaftCore`]: the pure peer (raft-rs `RawNode`, storage, the apply
//!   step, the bookkeeping that answers every proposal). No tokio, no clock.
//! * [`machine`] — [`StateMachine`], [`Replica`] (applied index + request
//!   deduplication) and [`ControlMachine`], the desired-state table.
//! * [`storage`] — [`RaftStorage`] (`Memory | Disk`), [`DiskStorage`] (one atomic
//!   journal batch per `Ready`) and [`StateStore`] (the replica in a checkpoint store).
//! * [`actor`] — [`RaftPeer`], the thin actor that owns a core: `Tick`, `Raft`,
//!   `Propose`, `ReadIndex`, `ConfChange`, `Unreachable`, `SnapshotStatus`.
//! * [`transport`] — the [`Transport`] trait, [`LocalNetwork`] / [`LocalTransport`]
//!   (in-process delivery between peers), and `seal` / `open`, a raft message in and
//!   out of its wire envelope.
//! * [`tcp`] — [`TcpNode`]: the TCP transport between processes (one link actor per
//!   peer, HMAC-authenticated, bounded queues, reconnect with back-off).
//! * [`cluster`] — [`ClusterPeer`]: a scheduler, a [`TcpNode`] and a [`RaftPeer`] in
//!   one call.
//! * [`error`] — [`RaftError`].
//! * `vortex_messages::raft` — the wire vocabulary (`ClusterCommand`, `Target`,
//!   `RequestId`, `ProposalOutcome`).
//!
//! # Example
//! A single-node cluster in memory: it elects itself, and a proposal commits.
//! ```
//! use vortex_messages::raft::{ClusterCommand, ProposalOutcome, RequestId, Target};
//! use vortex_messages::Control;
//! use vortex_raft::{ControlMachine, PeerConfig, RaftCore, RaftStorage, StateStore};
//!
//! # fn main() -> Result<(), vortex_raft::RaftError> {
//! let config = PeerConfig::new(1, &[1]);
//! let mut core = RaftCore::new(
//!     &config,
//!     RaftStorage::memory(&[1]),
//!     StateStore::memory(),
//!     ControlMachine::default(),
//! )?;
//! core.campaign()?;
//! core.handle_ready()?;
//! let pause = ClusterCommand {
//!     target: Target::Everywhere { name: "gpu-launcher-0".into() },
//!     command: Control::Pause,
//! };
//! let request = RequestId { client: 7, seq: 1 };
//! assert_eq!(core.propose(request, pause), None, "entered the log");
//! let output = core.handle_ready()?;
//! assert!(matches!(output.answers[..], [(r, ProposalOutcome::Committed { .. })] if r == request));
//! assert!(core.replica().machine.rows_for(1)[0].1.paused);
//! # Ok(())
//! # }
//! ```

pub mod actor;
pub mod cluster;
pub mod core;
pub mod error;
pub mod machine;
pub mod storage;
pub mod tcp;
pub mod transport;

pub use crate::actor::{
    PeerOptions, PeerStatus, PeerStorage, RaftPeer, RaftPeerMessage, ReadReply,
};
pub use crate::cluster::ClusterPeer;
pub use crate::core::{AppliedEntry, Output, PeerConfig, RaftCore, ReadOutcome, Role};
pub use crate::error::{RaftError, RaftResult};
pub use crate::machine::{ControlMachine, DesiredState, LogCommand, Replica, StateMachine};
pub use crate::storage::{DiskStorage, RaftStorage, StateStore};
pub use crate::tcp::{TcpCounters, TcpError, TcpNode, TcpOptions, TcpTransport};
pub use crate::transport::{LocalNetwork, LocalTransport, Transport};
pub use raft;
