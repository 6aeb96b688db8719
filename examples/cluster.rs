//! A three-node raft cluster on loopback TCP, in one process (three runtimes): commands
//! go through the replicated log, the leader is killed, a new leader takes over, the
//! killed node restarts from its directory and catches up — and every committed command
//! is applied exactly once on every node. Finishes by itself (exit 1 if a check fails).
//!
//! ```text
//! cargo run --example cluster
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use vortex::actors::control::auth::Secret;
use vortex::messages::raft::{ClusterCommand, ProposalOutcome, RequestId, Target};
use vortex::prelude::*;
use vortex::raft::tcp::TcpOptions;
use vortex::raft::{ClusterPeer, PeerConfig, PeerStorage};

const TICK: Duration = Duration::from_millis(20);

/// The actor the log commands on each node: records every batch size it is told.
struct Worker {
    seen: Arc<Mutex<Vec<u32>>>,
}

impl Actor for Worker {
    type Message = ();

    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }

    async fn on_control(
        &mut self,
        command: &Control,
        _: &mut Context<Self>,
    ) -> Option<Result<ControlReply, ControlError>> {
        if let Control::SetBatchSize { items } = command {
            self.seen.lock().unwrap().push(*items);
            return Some(Ok(ControlReply::Resumed));
        }
        None
    }
}

struct Node {
    id: u64,
    rt: Runtime,
    raft: ClusterPeer,
    seen: Arc<Mutex<Vec<u32>>>,
}

async fn start(
    id: u64,
    addrs: &BTreeMap<u64, SocketAddr>,
    data: &Path,
    secret: &Secret,
) -> anyhow::Result<Node> {
    let rt = Runtime::builder().build()?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    rt.spawn("worker", move || Worker {
        seen: recorder.clone(),
    })
    .await?;
    // A restarted node rebinds its port: the old listener closes asynchronously.
    let deadline = Instant::now() + Duration::from_secs(5);
    let listener = loop {
        match tokio::net::TcpListener::bind(addrs[&id]).await {
            Ok(listener) => break listener,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => return Err(error).context("rebinding the node's port"),
        }
    };
    let peers = addrs
        .iter()
        .filter(|(peer, _)| **peer != id)
        .map(|(peer, addr)| (*peer, *addr))
        .collect();
    let voters: Vec<u64> = addrs.keys().copied().collect();
    let mut config = PeerConfig::new(id, &voters);
    config.election_timeout = Some(10 + 2 * id as usize);
    let raft = ClusterPeer::start(
        &rt,
        listener,
        TcpOptions::new(id, peers, secret.clone()),
        config,
        PeerStorage::disk(data.join(format!("node-{id}"))),
        TICK,
    )
    .await?;
    Ok(Node { id, rt, raft, seen })
}

async fn leader(nodes: &[Node]) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for (at, node) in nodes.iter().enumerate() {
            if node.raft.status().await?.is_leader {
                return Ok(at);
            }
        }
        if Instant::now() > deadline {
            bail!("no leader within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Proposes `SetBatchSize { items }` for `worker` everywhere, on the leader, until it
/// commits (a retry carries the same request id, so it is applied once).
async fn commit(nodes: &[Node], items: u32) -> anyhow::Result<u64> {
    let command = ClusterCommand {
        target: Target::Everywhere {
            name: "worker".into(),
        },
        command: Control::SetBatchSize { items },
    };
    let request = RequestId {
        client: 1,
        seq: u64::from(items),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let at = leader(nodes).await?;
        match nodes[at].raft.propose(request, command.clone()).await? {
            ProposalOutcome::Committed { index, .. } => return Ok(index),
            outcome if Instant::now() > deadline => bail!("{items} not committed: {outcome:?}"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn wait_applied(node: &Node, expected: &[u32]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.seen.lock().unwrap().len() < expected.len() {
        if Instant::now() > deadline {
            bail!(
                "node {} applied only {:?}",
                node.id,
                node.seen.lock().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = node.seen.lock().unwrap().clone();
    if seen != expected {
        bail!("node {} applied {seen:?}, expected {expected:?}", node.id);
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let secret = Secret::new(b"example cluster secret".to_vec())?;
    let addrs: BTreeMap<u64, SocketAddr> = {
        let probes: Vec<_> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        (1..=3)
            .zip(probes.iter().map(|l| l.local_addr()))
            .map(|(id, addr)| addr.map(|addr| (id, addr)))
            .collect::<Result<_, _>>()?
    };
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(id, &addrs, data.path(), &secret).await?);
    }
    println!(
        "started 3 nodes on {:?}",
        addrs.values().collect::<Vec<_>>()
    );

    for items in 1..=5 {
        let index = commit(&nodes, items).await?;
        println!("committed batch size {items} at index {index}");
    }
    for node in &nodes {
        wait_applied(node, &[1, 2, 3, 4, 5]).await?;
    }

    let at = leader(&nodes).await?;
    let killed = nodes.remove(at);
    println!("killing the leader, node {}", killed.id);
    killed.raft.node.close();
    killed.rt.shutdown().await;
    let down = Instant::now();
    let new = leader(&nodes).await?;
    println!("node {} leads after {:?}", nodes[new].id, down.elapsed());

    for items in 6..=8 {
        let index = commit(&nodes, items).await?;
        println!("committed batch size {items} at index {index}");
    }
    let all: Vec<u32> = (1..=8).collect();
    for node in &nodes {
        wait_applied(node, &all).await?;
    }

    println!("restarting node {} from its directory", killed.id);
    let restarted = start(killed.id, &addrs, data.path(), &secret).await?;
    // Brought to the table (batch size 5) on start, then only what it missed.
    wait_applied(&restarted, &[5, 6, 7, 8]).await?;
    let before = killed.seen.lock().unwrap().clone();
    if before != [1, 2, 3, 4, 5] {
        bail!("the killed node had applied {before:?}");
    }
    nodes.push(restarted);
    for node in &nodes {
        let status = node.raft.status().await?;
        println!(
            "node {}: term {} leader {:?} commit {} applied {}",
            status.id, status.term, status.leader, status.commit, status.applied
        );
    }
    println!("every committed command was applied exactly once on every node");
    for node in nodes {
        node.raft.node.close();
        node.rt.shutdown().await;
    }
    Ok(())
}
