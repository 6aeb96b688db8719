//! Three raft peers, each on its own runtime, over real TCP on loopback: a command
//! commits and is applied once on every node; a peer with the wrong cluster secret is
//! refused and counted and cannot join in; a stopped peer is reported unreachable and
//! the link reconnects when it is back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use vortex_actors::control::auth::Secret;
use vortex_messages::raft::{ClusterCommand, ProposalOutcome, RequestId, Target};
use vortex_messages::{Control, ControlError, ControlReply};
use vortex_raft::tcp::TcpOptions;
use vortex_raft::{ClusterPeer, PeerConfig, PeerStorage};
use vortex_runtime::{Actor, ActorError, Context, Runtime};

const VOTERS: [u64; 3] = [1, 2, 3];

/// Records every batch size it is told.
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
    rt: Runtime,
    peer: ClusterPeer,
    seen: Arc<Mutex<Vec<u32>>>,
}

fn listeners(n: usize) -> Vec<std::net::TcpListener> {
    (0..n)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            listener
        })
        .collect()
}

async fn start(
    id: u64,
    listener: std::net::TcpListener,
    addrs: &BTreeMap<u64, SocketAddr>,
    secret: &[u8],
    storage: PeerStorage,
) -> Node {
    let rt = Runtime::builder().build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    rt.spawn("worker", move || Worker {
        seen: recorder.clone(),
    })
    .await
    .unwrap();
    let peers = addrs
        .iter()
        .filter(|(peer, _)| **peer != id)
        .map(|(peer, addr)| (*peer, *addr))
        .collect();
    let tcp = TcpOptions::new(id, peers, Secret::new(secret.to_vec()).unwrap());
    let mut config = PeerConfig::new(id, &VOTERS);
    config.election_timeout = Some(10 + 3 * id as usize);
    let peer = ClusterPeer::start(
        &rt,
        TcpListener::from_std(listener).unwrap(),
        tcp,
        config,
        storage,
        Duration::from_millis(10),
    )
    .await
    .unwrap();
    Node { rt, peer, seen }
}

fn command(items: u32) -> ClusterCommand {
    ClusterCommand {
        target: Target::Everywhere {
            name: "worker".into(),
        },
        command: Control::SetBatchSize { items },
    }
}

/// Proposes on every node in turn until one (the leader) commits it.
async fn commit(nodes: &[&Node], request: RequestId, items: u32) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for node in nodes {
            match node.peer.propose(request, command(items)).await.unwrap() {
                ProposalOutcome::Committed { index, .. } => return index,
                ProposalOutcome::NotLeader { .. }
                | ProposalOutcome::Dropped(_)
                | ProposalOutcome::OutcomeUnknown => {}
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing committed within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_tcp_commit_and_apply_everywhere_once() {
    let directory = tempfile::tempdir().unwrap();
    let sockets = listeners(3);
    let addrs: BTreeMap<u64, SocketAddr> = VOTERS
        .iter()
        .zip(&sockets)
        .map(|(id, l)| (*id, l.local_addr().unwrap()))
        .collect();
    let mut nodes = Vec::new();
    for (id, listener) in VOTERS.into_iter().zip(sockets) {
        let storage = PeerStorage::disk(directory.path().join(format!("node-{id}")));
        nodes.push(start(id, listener, &addrs, b"cluster secret", storage).await);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    for items in 1..=5 {
        commit(
            &refs,
            RequestId {
                client: 1,
                seq: items as u64,
            },
            items,
        )
        .await;
    }
    wait_for("every node applied all five", || {
        nodes
            .iter()
            .all(|node| node.seen.lock().unwrap().len() >= 5)
    })
    .await;
    for node in &nodes {
        assert_eq!(
            *node.seen.lock().unwrap(),
            vec![1, 2, 3, 4, 5],
            "in log order, once"
        );
        let counters = node.peer.node.counters();
        assert!(counters.sent > 0 && counters.received > 0, "{counters:?}");
        assert_eq!(counters.refused, 0);
        assert_eq!(counters.bad_frames, 0);
    }
    // A retry of an acknowledged request is deduplicated, not applied again.
    let again = commit(&refs, RequestId { client: 1, seq: 5 }, 5).await;
    assert!(again > 0);
    for node in &nodes {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while node.peer.status().await.unwrap().applied < again {
            assert!(tokio::time::Instant::now() < deadline, "retry not applied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for node in &nodes {
        assert_eq!(node.seen.lock().unwrap().len(), 5);
    }

    // Stop the leader's process-equivalent: its runtime and its sockets.
    let mut leader = None;
    for (at, node) in nodes.iter().enumerate() {
        if node.peer.status().await.unwrap().is_leader {
            leader = Some(at);
        }
    }
    let gone = nodes.remove(leader.expect("a leader"));
    let gone_id = gone.peer.status().await.unwrap().id;
    gone.peer.node.close();
    gone.rt.shutdown().await;
    let refs: Vec<&Node> = nodes.iter().collect();
    commit(&refs, RequestId { client: 1, seq: 6 }, 6).await;
    wait_for("both survivors applied 6", || {
        nodes
            .iter()
            .all(|node| node.seen.lock().unwrap().last() == Some(&6))
    })
    .await;
    for node in &nodes {
        assert_eq!(*node.seen.lock().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        let status = node.peer.status().await.unwrap();
        assert_ne!(status.leader, Some(gone_id));
    }
    // The new leader's link to the stopped node fails (a write, then each reconnect,
    // with back-off) and counts it; its heartbeats keep it trying. (Followers send
    // nothing to a peer that is not the leader.)
    wait_for("the dead peer counted unreachable", || {
        nodes.iter().any(|node| {
            let counters = node.peer.node.counters();
            counters.write_failures + counters.connect_failures > 0
        })
    })
    .await;
    for node in nodes {
        node.rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_the_wrong_secret_is_refused_and_counted() {
    let sockets = listeners(3);
    let addrs: BTreeMap<u64, SocketAddr> = VOTERS
        .iter()
        .zip(&sockets)
        .map(|(id, l)| (*id, l.local_addr().unwrap()))
        .collect();
    let mut sockets = sockets.into_iter();
    let one = start(
        1,
        sockets.next().unwrap(),
        &addrs,
        b"right",
        PeerStorage::memory(&VOTERS),
    )
    .await;
    let two = start(
        2,
        sockets.next().unwrap(),
        &addrs,
        b"right",
        PeerStorage::memory(&VOTERS),
    )
    .await;
    let three = start(
        3,
        sockets.next().unwrap(),
        &addrs,
        b"wrong",
        PeerStorage::memory(&VOTERS),
    )
    .await;
    // 1 and 2 form a quorum and commit; 3 is refused by both and never hears them
    // (its own refusals: it refuses them as well).
    commit(&[&one, &two], RequestId { client: 9, seq: 1 }, 7).await;
    wait_for("the impostor refused by both", || {
        one.peer.node.counters().refused > 0 && two.peer.node.counters().refused > 0
    })
    .await;
    wait_for("1 and 2 applied", || {
        [&one, &two]
            .iter()
            .all(|node| *node.seen.lock().unwrap() == vec![7])
    })
    .await;
    assert!(three.seen.lock().unwrap().is_empty(), "3 applied nothing");
    assert_eq!(three.peer.node.counters().received, 0);
    assert!(three.peer.node.counters().connect_failures > 0);
    let status = three.peer.status().await.unwrap();
    assert_eq!(status.applied, 0);
    for node in [one, two, three] {
        node.rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_cannot_commit_and_after_healing_all_agree() {
    let sockets = listeners(3);
    let addrs: BTreeMap<u64, SocketAddr> = VOTERS
        .iter()
        .zip(&sockets)
        .map(|(id, l)| (*id, l.local_addr().unwrap()))
        .collect();
    let mut nodes = Vec::new();
    for (id, listener) in VOTERS.into_iter().zip(sockets) {
        nodes.push(start(id, listener, &addrs, b"s", PeerStorage::memory(&VOTERS)).await);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    commit(&refs, RequestId { client: 3, seq: 1 }, 1).await;
    let mut leader = None;
    for (at, node) in nodes.iter().enumerate() {
        if node.peer.status().await.unwrap().is_leader {
            leader = Some(at);
        }
    }
    let leader = leader.expect("a leader");
    let leader_id = leader as u64 + 1;
    // Cut the leader off from both followers, in both directions.
    for (at, node) in nodes.iter().enumerate() {
        if at == leader {
            for peer in VOTERS.iter().filter(|peer| **peer != leader_id) {
                node.peer.node.block(*peer, true);
            }
        } else {
            node.peer.node.block(leader_id, true);
        }
    }
    // The minority (the old leader) cannot commit: its proposal is never `Committed`.
    let minority = nodes[leader]
        .peer
        .propose(RequestId { client: 3, seq: 99 }, command(99))
        .await
        .unwrap();
    assert!(
        !matches!(minority, ProposalOutcome::Committed { .. }),
        "a minority committed: {minority:?}"
    );
    // The majority elects a leader and commits.
    let majority: Vec<&Node> = nodes
        .iter()
        .enumerate()
        .filter(|(at, _)| *at != leader)
        .map(|(_, node)| node)
        .collect();
    commit(&majority, RequestId { client: 3, seq: 2 }, 2).await;
    assert!(nodes[leader].peer.node.counters().filtered > 0);
    // Heal: everyone agrees on [1, 2]; the minority's 99 is gone.
    for node in &nodes {
        for peer in VOTERS {
            node.peer.node.block(peer, false);
        }
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    commit(&refs, RequestId { client: 3, seq: 3 }, 3).await;
    wait_for("all applied 3", || {
        nodes
            .iter()
            .all(|node| node.seen.lock().unwrap().last() == Some(&3))
    })
    .await;
    for node in &nodes {
        assert_eq!(*node.seen.lock().unwrap(), vec![1, 2, 3]);
    }
    for node in nodes {
        node.rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_and_a_silent_peer_is_a_connect_failure() {
    use vortex_raft::raft::prelude::{Message, MessageType};
    use vortex_raft::Transport;
    // A peer that completes TCP connects (the kernel's backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rt = Runtime::builder().build().unwrap();
    let mut tcp = TcpOptions::new(
        1,
        BTreeMap::from([(2, silent.local_addr().unwrap())]),
        Secret::new(b"s".to_vec()).unwrap(),
    );
    tcp.queue = 4;
    tcp.io_timeout = Duration::from_millis(200);
    let node = vortex_raft::TcpNode::bind(&rt, "127.0.0.1:0".parse().unwrap(), tcp)
        .await
        .unwrap();
    let mut transport = node.transport();
    for _ in 0..1000 {
        let message = Message {
            msg_type: MessageType::MsgHeartbeat,
            from: 1,
            to: 2,
            ..Message::default()
        };
        transport.send(message).unwrap();
    }
    // The link is stuck in its handshake: the queue filled, the rest was dropped.
    assert!(node.counters().dropped_full > 0, "{:?}", node.counters());
    wait_for("the handshake timed out", || {
        node.counters().connect_failures > 0
    })
    .await;
    wait_for("the queued messages were dropped as unreachable", || {
        node.counters().dropped_unreachable > 0
    })
    .await;
    assert_eq!(node.counters().sent, 0);
    // A message for a peer with no address is handed back (raft reports it unreachable).
    let stranger = Message {
        to: 9,
        from: 1,
        ..Message::default()
    };
    assert!(transport.send(stranger).is_err());
    rt.shutdown().await;
}
