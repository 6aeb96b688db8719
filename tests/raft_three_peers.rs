//! Three raft peers in one process, each with its own runtime, connected by the
//! in-memory transport: a committed `Pause` reaches the named actor on every node, and
//! a restarted node brings its actors to the desired-state table and then applies only
//! what it missed (each command exactly once).

mod support;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use vortex::actors::scheduler::Scheduler;
use vortex::messages::raft::{ClusterCommand, ProposalOutcome, RequestId, Target};
use vortex::prelude::*;
use vortex::raft::transport::LocalNetwork;
use vortex::raft::{PeerConfig, PeerOptions, PeerStatus, PeerStorage, RaftPeer, RaftPeerMessage};

/// A named actor that counts the control commands it receives.
struct Worker {
    pauses: Arc<AtomicU64>,
    resumes: Arc<AtomicU64>,
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
        match command {
            Control::Pause => self.pauses.fetch_add(1, SeqCst),
            Control::Resume => self.resumes.fetch_add(1, SeqCst),
            _ => 0,
        };
        // Keep the runtime's own handling (the actor really pauses).
        None
    }
}

struct Node {
    rt: Runtime,
    peer: Addr<RaftPeer>,
    pauses: Arc<AtomicU64>,
    resumes: Arc<AtomicU64>,
}

const VOTERS: [u64; 3] = [1, 2, 3];

async fn start(id: u64, network: &LocalNetwork, storage: PeerStorage) -> Node {
    let rt = Runtime::builder().build().unwrap();
    let pauses = Arc::new(AtomicU64::new(0));
    let resumes = Arc::new(AtomicU64::new(0));
    let (p, r) = (pauses.clone(), resumes.clone());
    rt.spawn("worker", move || Worker {
        pauses: p.clone(),
        resumes: r.clone(),
    })
    .await
    .unwrap();
    let scheduler = Scheduler::spawn(&rt, "timer").await.unwrap();
    let transport_network = network.clone();
    let mut config = PeerConfig::new(id, &VOTERS);
    config.election_timeout = Some(10 + 2 * id as usize);
    let options = PeerOptions {
        config,
        storage,
        transport: Arc::new(move || Box::new(transport_network.transport(id))),
        ticks: Some((scheduler, Duration::from_millis(10))),
    };
    let peer = RaftPeer::spawn(&rt, "raft", options).await.unwrap();
    network.register(id, peer.clone());
    Node {
        rt,
        peer,
        pauses,
        resumes,
    }
}

async fn status(node: &Node) -> Option<PeerStatus> {
    node.peer.ask(RaftPeerMessage::Status).await.ok()
}

/// Proposes on whichever node leads, retrying `NotLeader` and `Dropped` (which never
/// entered the log) until the command commits.
async fn propose(nodes: &[&Node], request: RequestId, command: ClusterCommand) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for node in nodes {
            let outcome = node
                .peer
                .ask(|reply| RaftPeerMessage::Propose {
                    request,
                    command: command.clone(),
                    reply,
                })
                .await
                .unwrap();
            match outcome {
                ProposalOutcome::Committed { index, .. } => return index,
                ProposalOutcome::NotLeader { .. }
                | ProposalOutcome::Dropped(_)
                | ProposalOutcome::OutcomeUnknown => {}
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn everywhere(command: Control) -> ClusterCommand {
    ClusterCommand {
        target: Target::Everywhere {
            name: "worker".into(),
        },
        command,
    }
}

fn state(node: &Node) -> ActorState {
    node.rt.status("worker").unwrap().state
}

#[tokio::test(start_paused = true)]
async fn a_committed_pause_reaches_the_named_actor_on_every_node() {
    let network = LocalNetwork::new();
    let mut nodes = Vec::new();
    for id in VOTERS {
        nodes.push(start(id, &network, PeerStorage::memory(&VOTERS)).await);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    let request = RequestId { client: 1, seq: 1 };
    let index = propose(&refs, request, everywhere(Control::Pause)).await;
    assert!(index >= 2, "after the leader's empty entry");
    support::wait_until_virtual("every worker paused", Duration::from_secs(10), || {
        nodes.iter().all(|node| state(node) == ActorState::Paused)
    })
    .await;
    // A node-addressed command reaches only that node.
    let resume_two = ClusterCommand {
        target: Target::Node {
            name: "worker".into(),
            node: 2,
        },
        command: Control::Resume,
    };
    propose(&refs, RequestId { client: 1, seq: 2 }, resume_two).await;
    support::wait_until_virtual("worker@2 resumed", Duration::from_secs(10), || {
        state(&nodes[1]) == ActorState::Running
    })
    .await;
    support::wait_until_async(
        "every node applied both",
        Duration::from_secs(10),
        || async {
            let mut done = true;
            for node in &nodes {
                done &= status(node).await.unwrap().applied > index;
            }
            done
        },
    )
    .await;
    assert_eq!(state(&nodes[0]), ActorState::Paused);
    assert_eq!(state(&nodes[2]), ActorState::Paused);
    for node in &nodes {
        assert_eq!(node.pauses.load(SeqCst), 1, "applied exactly once");
    }
    for node in nodes {
        node.rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_restores_its_actors_and_applies_only_what_it_missed() {
    let directory = tempfile::tempdir().unwrap();
    let disk = |id: u64| PeerStorage::disk(directory.path().join(format!("node-{id}")));
    let network = LocalNetwork::new();
    let one = start(1, &network, disk(1)).await;
    let two = start(2, &network, disk(2)).await;
    let three = start(3, &network, disk(3)).await;
    propose(
        &[&one, &two, &three],
        RequestId { client: 2, seq: 1 },
        everywhere(Control::Pause),
    )
    .await;
    support::wait_until("every worker paused", Duration::from_secs(20), || {
        [&one, &two, &three]
            .iter()
            .all(|node| state(node) == ActorState::Paused)
    })
    .await;
    let applied_before = status(&three).await.unwrap().applied;
    // Node 3 goes away; the cluster moves on without it.
    three.rt.shutdown().await;
    network.isolate(3, true);
    propose(
        &[&one, &two],
        RequestId { client: 2, seq: 2 },
        everywhere(Control::Resume),
    )
    .await;
    // Node 3 comes back with a fresh worker (running, the default) from its disk.
    network.isolate(3, false);
    let three = start(3, &network, disk(3)).await;
    support::wait_until("worker@3 caught up", Duration::from_secs(20), || {
        three.resumes.load(SeqCst) == 1
    })
    .await;
    // On start it was brought to the table (paused, as of its applied index), then it
    // applied the one entry it missed; nothing before its applied index ran again.
    assert_eq!(three.pauses.load(SeqCst), 1);
    assert_eq!(state(&three), ActorState::Running);
    let after = status(&three).await.unwrap();
    assert!(after.applied > applied_before);
    for node in [one, two, three] {
        node.rt.shutdown().await;
    }
}
