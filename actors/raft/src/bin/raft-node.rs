//! `raft-node`: one node of a raft cluster over TCP, as a process, driven by lines on
//! stdin. It runs a local actor `worker` that the log commands, and prints what it
//! applies. The fault tests start it three times; it also shows how to run a cluster by
//! hand:
//!
//! ```text
//! raft-node --id 1 --listen 127.0.0.1:7101 --peer 2=127.0.0.1:7102 --peer 3=127.0.0.1:7103 \
//!           --data /tmp/raft-1 --secret-file cluster.secret [--tick-ms 25] [--election-ticks 10]
//! ```
//!
//! stdin, one command per line:
//! * `propose <client> <seq> <items>` — propose `SetBatchSize { items }` for `worker` on
//!   every node; answers `outcome <client> <seq> committed <index> <duplicate>`,
//!   `outcome <client> <seq> not-leader <hint|none>`, `... dropped <reason>` or
//!   `... unknown`.
//! * `status` — answers `status id=<id> role=<leader|follower> term=<t> leader=<id|none>
//!   commit=<c> applied=<a>`.
//!
//! stdout also carries `apply <items>` for each command the local `worker` receives (the
//! lines before `ready` are the restart bringing it to the desired-state table) and
//! `ready id=<id> addr=<addr>` once the node runs. End of stdin stops it (exit 0); bad
//! arguments exit 2.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use vortex_actors::control::auth::Secret;
use vortex_messages::raft::{ClusterCommand, ProposalOutcome, RequestId, Target};
use vortex_messages::{Control, ControlError, ControlReply};
use vortex_raft::tcp::TcpOptions;
use vortex_raft::{ClusterPeer, PeerConfig, PeerStorage};
use vortex_runtime::{Actor, ActorError, Context, Runtime};

struct Args {
    id: u64,
    listen: SocketAddr,
    peers: BTreeMap<u64, SocketAddr>,
    data: PathBuf,
    secret: PathBuf,
    tick: Duration,
    election_ticks: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut id, mut listen, mut data, mut secret) = (None, None, None, None);
    let mut peers = BTreeMap::new();
    let mut tick = Duration::from_millis(25);
    let mut election_ticks = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--id" => id = Some(value()?.parse().map_err(|e| format!("--id: {e}"))?),
            "--listen" => listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--peer" => {
                let peer = value()?;
                let (peer_id, addr) = peer
                    .split_once('=')
                    .ok_or(format!("--peer {peer}: expected ID=ADDR"))?;
                let peer_id: u64 = peer_id.parse().map_err(|e| format!("--peer: {e}"))?;
                let addr = addr.parse().map_err(|e| format!("--peer: {e}"))?;
                peers.insert(peer_id, addr);
            }
            "--data" => data = Some(PathBuf::from(value()?)),
            "--secret-file" => secret = Some(PathBuf::from(value()?)),
            "--tick-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("--tick-ms: {e}"))?;
                tick = Duration::from_millis(ms.max(1));
            }
            "--election-ticks" => {
                election_ticks = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--election-ticks: {e}"))?,
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        id: id.ok_or("--id is required")?,
        listen: listen.ok_or("--listen is required")?,
        peers,
        data: data.ok_or("--data is required")?,
        secret: secret.ok_or("--secret-file is required")?,
        tick,
        election_ticks,
    })
}

/// The local actor the log commands: prints each batch size it is told.
struct Worker;

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
            println!("apply {items}");
            return Some(Ok(ControlReply::Resumed));
        }
        None
    }
}

fn outcome_line(outcome: &ProposalOutcome) -> String {
    match outcome {
        ProposalOutcome::Committed { index, duplicate } => format!("committed {index} {duplicate}"),
        ProposalOutcome::NotLeader { hint } => match hint {
            Some(hint) => format!("not-leader {hint}"),
            None => "not-leader none".to_owned(),
        },
        ProposalOutcome::Dropped(reason) => format!("dropped {reason:?}"),
        ProposalOutcome::OutcomeUnknown => "unknown".to_owned(),
        other => format!("other {other:?}"),
    }
}

async fn serve(args: Args, rt: &Runtime) -> Result<(), String> {
    let secret = Secret::from_file(&args.secret).map_err(|e| e.to_string())?;
    rt.spawn("worker", || Worker)
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let mut voters: Vec<u64> = args.peers.keys().copied().collect();
    voters.push(args.id);
    voters.sort_unstable();
    let mut config = PeerConfig::new(args.id, &voters);
    config.election_timeout = args.election_ticks;
    let node = ClusterPeer::start(
        rt,
        listener,
        TcpOptions::new(args.id, args.peers.clone(), secret),
        config,
        PeerStorage::disk(&args.data),
        args.tick,
    )
    .await
    .map_err(|e| e.to_string())?;
    println!("ready id={} addr={}", args.id, node.node.local_addr());

    let (lines, mut input) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = input.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["propose", client, seq, items] => {
                let (Ok(client), Ok(seq), Ok(items)) = (client.parse(), seq.parse(), items.parse())
                else {
                    println!("error bad propose line: {line}");
                    continue;
                };
                let command = ClusterCommand {
                    target: Target::Everywhere {
                        name: "worker".into(),
                    },
                    command: Control::SetBatchSize { items },
                };
                // Answer without holding up the next line (proposals pipeline).
                let peer = node.clone();
                tokio::spawn(async move {
                    let line = match peer.propose(RequestId { client, seq }, command).await {
                        Ok(outcome) => outcome_line(&outcome),
                        Err(error) => format!("unknown ask failed: {error}"),
                    };
                    println!("outcome {client} {seq} {line}");
                });
            }
            ["status"] => match node.status().await {
                Ok(status) => println!(
                    "status id={} role={} term={} leader={} commit={} applied={}",
                    status.id,
                    if status.is_leader {
                        "leader"
                    } else {
                        "follower"
                    },
                    status.term,
                    status.leader.map_or("none".to_owned(), |l| l.to_string()),
                    status.commit,
                    status.applied
                ),
                Err(error) => println!("error status: {error}"),
            },
            [] => {}
            _ => println!("error unknown command: {line}"),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("raft-node: {error}");
            return ExitCode::from(2);
        }
    };
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("raft-node: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let result = serve(args, &rt).await;
        rt.shutdown().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raft-node: {error}");
            ExitCode::FAILURE
        }
    }
}
