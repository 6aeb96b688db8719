//! [`ClusterPeer`]: one node of a TCP raft cluster in one call — a scheduler for the
//! ticks, a [`TcpNode`], and the [`RaftPeer`] wired to it. Used by the `raft-node`
//! binary, the `cluster` example and the tests.

use std::time::Duration;

use tokio::net::TcpListener;
use vortex_actors::scheduler::Scheduler;
use vortex_messages::raft::{ClusterCommand, ProposalOutcome, RequestId};
use vortex_runtime::{Addr, AskError, Runtime};

use crate::actor::{PeerOptions, PeerStatus, PeerStorage, RaftPeer, RaftPeerMessage};
use crate::core::PeerConfig;
use crate::tcp::{TcpError, TcpNode, TcpOptions};

/// A raft peer on `rt` that talks TCP.
#[derive(Debug, Clone)]
pub struct ClusterPeer {
    /// The transport (counters, address).
    pub node: TcpNode,
    /// The raft peer actor.
    pub peer: Addr<RaftPeer>,
}

impl ClusterPeer {
    /// Starts the peer: `listener` for incoming peers, `tcp` for the outgoing ones,
    /// `config` and `storage` for raft, one `Tick` every `tick`. Spawn the local actors
    /// the log commands first (the peer brings them to the desired-state table on start).
    pub async fn start(
        rt: &Runtime,
        listener: TcpListener,
        tcp: TcpOptions,
        config: PeerConfig,
        storage: PeerStorage,
        tick: Duration,
    ) -> Result<ClusterPeer, TcpError> {
        let scheduler = Scheduler::spawn(rt, "raft-timer").await?;
        let node = TcpNode::with_listener(rt, listener, tcp).await?;
        let transport = node.clone();
        let options = PeerOptions {
            config,
            storage,
            transport: std::sync::Arc::new(move || Box::new(transport.transport())),
            ticks: Some((scheduler, tick)),
        };
        let peer = RaftPeer::spawn(rt, "raft", options).await?;
        node.attach(peer.clone());
        Ok(ClusterPeer { node, peer })
    }

    /// Proposes `command` on this peer (answered exactly once).
    pub async fn propose(
        &self,
        request: RequestId,
        command: ClusterCommand,
    ) -> Result<ProposalOutcome, AskError> {
        self.peer
            .ask(|reply| RaftPeerMessage::Propose {
                request,
                command,
                reply,
            })
            .await
    }

    /// This peer's raft state.
    pub async fn status(&self) -> Result<PeerStatus, AskError> {
        self.peer.ask(RaftPeerMessage::Status).await
    }
}
