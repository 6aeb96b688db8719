//! Commit throughput and latency of a three-node raft cluster over loopback TCP: three
//! vortex runtimes in one process, one proposer or 64 concurrent ones proposing on the
//! leader; each with durable storage (the log journal fsyncs every `Ready`) and, as the
//! same-run baseline, in-memory storage (the same cluster without the disk). Criterion
//! reports commits/s; p50/p99 commit latency (proposal → `Committed`, which waits for a
//! quorum's fsync and the local apply) is printed per variant.
//!
//! ```text
//! cargo bench -p vortex-raft --bench commit -- --measurement-time 2 --warm-up-time 1
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vortex_actors::control::auth::Secret;
use vortex_messages::raft::{ClusterCommand, ProposalOutcome, RequestId, Target};
use vortex_messages::{Control, ControlError, ControlReply};
use vortex_raft::tcp::TcpOptions;
use vortex_raft::{ClusterPeer, PeerConfig, PeerStorage};
use vortex_runtime::{Actor, ActorError, Context, Runtime};

struct Worker;

impl Actor for Worker {
    type Message = ();

    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }

    async fn on_control(
        &mut self,
        _: &Control,
        _: &mut Context<Self>,
    ) -> Option<Result<ControlReply, ControlError>> {
        Some(Ok(ControlReply::Resumed))
    }
}

struct Cluster {
    nodes: Vec<(Runtime, ClusterPeer)>,
    _data: tempfile::TempDir,
}

async fn cluster(disk: bool) -> Cluster {
    let data = tempfile::tempdir().unwrap();
    let listeners: Vec<_> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: BTreeMap<u64, SocketAddr> = (1..=3)
        .zip(listeners.iter().map(|l| l.local_addr().unwrap()))
        .collect();
    let mut nodes = Vec::new();
    for (id, listener) in (1..=3).zip(listeners) {
        listener.set_nonblocking(true).unwrap();
        let rt = Runtime::builder().build().unwrap();
        rt.spawn("worker", || Worker).await.unwrap();
        let peers = addrs
            .iter()
            .filter(|(peer, _)| **peer != id)
            .map(|(peer, addr)| (*peer, *addr))
            .collect();
        let mut config = PeerConfig::new(id, &[1, 2, 3]);
        config.election_timeout = Some(10 + 2 * id as usize);
        let storage = if disk {
            PeerStorage::disk(data.path().join(format!("node-{id}")))
        } else {
            PeerStorage::memory(&[1, 2, 3])
        };
        let peer = ClusterPeer::start(
            &rt,
            tokio::net::TcpListener::from_std(listener).unwrap(),
            TcpOptions::new(id, peers, Secret::new(b"bench".to_vec()).unwrap()),
            config,
            storage,
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        nodes.push((rt, peer));
    }
    Cluster { nodes, _data: data }
}

impl Cluster {
    async fn leader(&self) -> ClusterPeer {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (_, peer) in &self.nodes {
                if peer.status().await.unwrap().is_leader {
                    return peer.clone();
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// `count` proposals one after the other on the leader; the latency of each.
async fn propose(cluster: &Cluster, client: u64, count: u64, latencies: &Mutex<Vec<Duration>>) {
    let command = ClusterCommand {
        target: Target::Everywhere {
            name: "worker".into(),
        },
        command: Control::SetBatchSize { items: 1 },
    };
    let mut leader = cluster.leader().await;
    let mut mine = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let request = RequestId {
            client,
            seq: SEQ.fetch_add(1, Relaxed),
        };
        let start = Instant::now();
        loop {
            match leader.propose(request, command.clone()).await.unwrap() {
                ProposalOutcome::Committed { .. } => break,
                _ => leader = cluster.leader().await,
            }
        }
        mine.push(start.elapsed());
    }
    latencies.lock().unwrap().extend(mine);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn commits(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_commit_3_nodes_tcp");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    for disk in [false, true] {
        // One tokio runtime per cluster (see the closing note of issue 21: a memory
        // cluster started after a disk cluster shut down on the same runtime stalled).
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cluster = Arc::new(tokio.block_on(cluster(disk)));
        for proposers in [1u64, 64] {
            let latencies = Arc::new(Mutex::new(Vec::new()));
            let name = format!(
                "{}_{proposers}_proposers",
                if disk { "disk" } else { "memory" }
            );
            group.bench_function(&name, |b| {
                b.to_async(&tokio).iter_custom(|iters| {
                    let (cluster, latencies) = (Arc::clone(&cluster), Arc::clone(&latencies));
                    async move {
                        let each = iters.div_ceil(proposers);
                        let start = Instant::now();
                        let mut tasks = Vec::new();
                        for client in 0..proposers {
                            let (cluster, latencies) =
                                (Arc::clone(&cluster), Arc::clone(&latencies));
                            tasks.push(tokio::spawn(async move {
                                propose(&cluster, client, each, &latencies).await
                            }));
                        }
                        for task in tasks {
                            task.await.unwrap();
                        }
                        // Time per commit, for `iters` of them.
                        start
                            .elapsed()
                            .mul_f64(iters as f64 / (each * proposers) as f64)
                    }
                })
            });
            let mut sorted = latencies.lock().unwrap().clone();
            sorted.sort_unstable();
            if !sorted.is_empty() {
                println!(
                    "{name}: {} commits, latency p50 {:?} p99 {:?}",
                    sorted.len(),
                    percentile(&sorted, 0.50),
                    percentile(&sorted, 0.99)
                );
            }
        }
        let cluster = Arc::try_unwrap(cluster).ok().expect("no proposer left");
        tokio.block_on(async {
            for (rt, peer) in cluster.nodes {
                peer.node.close();
                rt.shutdown().await;
            }
        });
    }
    group.finish();
}

criterion_group!(benches, commits);
criterion_main!(benches);
