//! [`RaftPeer`]: the thin actor that owns a [`RaftCore`] and is the only thing that
//! touches it.
//!
//! Every message is one step of the core followed by one `Ready`: the messages go to
//! the [`Transport`], the answers to the askers, and each applied command to the local
//! actor it names, through the runtime's registry, in log order. While more messages
//! wait in the mailbox, a step leaves its `Ready` to the next one (up to 256 steps), so
//! a burst of proposals shares one journal write and fsync. With [`PeerStorage::Disk`]
//! the step runs on tokio's blocking pool (`spawn_blocking`), so a journal `fdatasync`
//! never blocks a tokio worker; the in-memory storage runs inline.
//!
//! Each incarnation reopens the storage in `on_start`, brings the local actors to the
//! desired-state table, and only then applies entries after the restored applied index.
//! A storage failure fails the actor (its supervisor restarts it, reopening from disk)
//! after answering everything pending with [`ProposalOutcome::OutcomeUnknown`].

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft::prelude::{ConfChange, Message};
use raft::storage::MemStorage;
use raft::SnapshotStatus;
use vortex_actors::journal::io::FileSystem;
use vortex_actors::journal::JournalConfig;
use vortex_actors::scheduler::{Scheduler, TimerHandle};
use vortex_messages::raft::{ClusterCommand, DropReason, ProposalOutcome, RequestId};
use vortex_runtime::{
    Actor, ActorError, ActorSpec, Addr, Context, Reply, Runtime, RuntimeError, RuntimeObserver,
};

use crate::core::{Output, PeerConfig, RaftCore, ReadOutcome};
use crate::error::{RaftError, RaftResult};
use crate::machine::ControlMachine;
use crate::storage::{DiskStorage, RaftStorage, StateStore};
use crate::transport::Transport;

/// The answer to [`RaftPeerMessage::ReadIndex`]: the applied index and the
/// desired-state table, linearizably, or why the read was not served.
pub type ReadReply = Result<(u64, ControlMachine), ReadOutcome>;

/// Messages of the raft peer.
pub enum RaftPeerMessage {
    /// Advance the logical clock one tick (the scheduler sends it, see
    /// [`PeerOptions::ticks`]).
    Tick,
    /// A raft message from another peer (the transport delivers it).
    Raft(Box<Message>),
    /// Propose a command; answered exactly once.
    Propose {
        /// Deduplicates retries.
        request: RequestId,
        /// The command.
        command: ClusterCommand,
        /// The answer.
        reply: Reply<ProposalOutcome>,
    },
    /// A linearizable read of the desired-state table.
    ReadIndex(Reply<ReadReply>),
    /// Propose a membership change; answered like a proposal.
    ConfChange {
        /// Deduplicates retries.
        request: RequestId,
        /// The change.
        change: ConfChange,
        /// The answer.
        reply: Reply<ProposalOutcome>,
    },
    /// The transport could not reach this peer.
    Unreachable(u64),
    /// How sending a snapshot to a peer ended.
    SnapshotStatus {
        /// The peer.
        peer: u64,
        /// Finished or failed.
        status: SnapshotStatus,
    },
    /// This peer's raft state.
    Status(Reply<PeerStatus>),
}

/// A peer's raft state, as [`RaftPeerMessage::Status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Raft id.
    pub id: u64,
    /// Current term.
    pub term: u64,
    /// True while this peer is the leader.
    pub is_leader: bool,
    /// The leader it follows, if known.
    pub leader: Option<u64>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
}

/// Where a peer keeps its log and replica.
#[derive(Clone)]
pub enum PeerStorage {
    /// In memory (kept across restarts of the actor, lost with the process).
    Memory {
        /// The log.
        log: MemStorage,
        /// The replica.
        state: StateStore,
    },
    /// On disk: the log journal in `<directory>/log`, the replica in the checkpoint
    /// store `<directory>/state`.
    Disk {
        /// The peer's directory.
        directory: PathBuf,
        /// The file system (the real one, or the power-loss double in tests).
        fs: Arc<dyn FileSystem>,
        /// How the log journal is laid out.
        journal: JournalConfig,
    },
}

impl std::fmt::Debug for PeerStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerStorage::Memory { .. } => f.write_str("PeerStorage::Memory"),
            PeerStorage::Disk { directory, .. } => f
                .debug_struct("PeerStorage::Disk")
                .field("directory", directory)
                .finish_non_exhaustive(),
        }
    }
}

impl PeerStorage {
    /// In-memory storage for a new cluster of `voters`.
    pub fn memory(voters: &[u64]) -> Self {
        match RaftStorage::memory(voters) {
            RaftStorage::Memory(log) => PeerStorage::Memory {
                log,
                state: StateStore::memory(),
            },
            RaftStorage::Disk(_) => unreachable!("RaftStorage::memory is in memory"),
        }
    }

    /// On-disk storage in `directory` on the real file system.
    pub fn disk(directory: impl Into<PathBuf>) -> Self {
        PeerStorage::Disk {
            directory: directory.into(),
            fs: Arc::new(vortex_actors::journal::io::RealFileSystem),
            journal: JournalConfig::default(),
        }
    }

    fn open(&self, voters: &[u64]) -> RaftResult<(RaftStorage, StateStore)> {
        match self {
            PeerStorage::Memory { log, state } => {
                Ok((RaftStorage::Memory(log.clone()), state.clone()))
            }
            PeerStorage::Disk {
                directory,
                fs,
                journal,
            } => {
                let log = DiskStorage::open_with(
                    Arc::clone(fs),
                    directory.join("log"),
                    journal.clone(),
                    voters,
                )?;
                let state = StateStore::open_with(Arc::clone(fs), directory.join("state"))?;
                Ok((RaftStorage::Disk(log), state))
            }
        }
    }
}

/// Makes a peer's transport, once per incarnation.
pub type TransportFactory = Arc<dyn Fn() -> Box<dyn Transport> + Send + Sync>;

/// What a raft peer is built from.
#[derive(Clone)]
pub struct PeerOptions {
    /// Raft configuration.
    pub config: PeerConfig,
    /// Log and replica storage.
    pub storage: PeerStorage,
    /// The transport.
    pub transport: TransportFactory,
    /// Where `Tick`s come from: a scheduler and the tick period (the peer re-arms a
    /// one-shot timer after each tick). `None`: the owner sends `Tick` itself.
    pub ticks: Option<(Scheduler, Duration)>,
}

impl std::fmt::Debug for PeerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerOptions")
            .field("config", &self.config)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// The raft peer actor. Spawn it with [`RaftPeer::spawn`].
pub struct RaftPeer {
    options: Arc<PeerOptions>,
    observer: RuntimeObserver,
    core: Option<RaftCore<ControlMachine>>,
    blocking: bool,
    transport: Box<dyn Transport>,
    proposals: BTreeMap<RequestId, VecDeque<Reply<ProposalOutcome>>>,
    reads: BTreeMap<u64, Reply<ReadReply>>,
    next_read: u64,
    ticker: Option<TimerHandle>,
    /// More messages wait in the mailbox (set at the start of each `handle`).
    more_queued: bool,
    /// Steps whose `Ready` was left for a later step (see [`MAX_DEFERRED_STEPS`]).
    deferred: usize,
}

/// While more messages wait, up to this many steps leave their `Ready` to the next one,
/// so that proposals queued together share one journal write (and one fsync) and one
/// round of messages. The last message of a burst always handles the `Ready`.
const MAX_DEFERRED_STEPS: usize = 256;

impl RaftPeer {
    /// Spawns the peer as the actor `name` on `rt`. Its commands go to the actors of
    /// `rt` by name. Spawn it after the local actors it controls: on start it brings
    /// them to the desired-state table.
    pub async fn spawn(
        rt: &Runtime,
        name: &str,
        options: PeerOptions,
    ) -> Result<Addr<RaftPeer>, RuntimeError> {
        let options = Arc::new(options);
        let observer = rt.observer();
        rt.spawn_actor(ActorSpec::new(name, move || RaftPeer {
            transport: (options.transport)(),
            options: Arc::clone(&options),
            observer: observer.clone(),
            core: None,
            blocking: matches!(options.storage, PeerStorage::Disk { .. }),
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_read: 0,
            ticker: None,
            more_queued: false,
            deferred: 0,
        }))
        .await
    }

    fn arm_tick(&mut self, addr: &Addr<RaftPeer>) {
        if let Some((scheduler, period)) = &self.options.ticks {
            self.ticker = Some(scheduler.send_after(*period, addr, RaftPeerMessage::Tick));
        }
    }

    /// Runs `step` on the core (pure and in memory, so inline) and handles the `Ready`
    /// that follows, if any: off the tokio workers when the storage is on disk, because
    /// a `Ready` may write and fsync.
    async fn run<X>(
        &mut self,
        step: impl FnOnce(&mut RaftCore<ControlMachine>) -> X,
    ) -> Result<X, ActorError> {
        let Some(mut core) = self.core.take() else {
            return Err("the raft core is not open".into());
        };
        let answer = step(&mut core);
        if !core.has_ready() {
            self.core = Some(core);
            return Ok(answer);
        }
        if self.more_queued && self.deferred < MAX_DEFERRED_STEPS {
            // Another message follows: its step handles this `Ready` too.
            self.deferred += 1;
            self.core = Some(core);
            return Ok(answer);
        }
        self.deferred = 0;
        let (core, output) = if self.blocking {
            tokio::task::spawn_blocking(move || {
                let output = core.handle_ready();
                (core, output)
            })
            .await?
        } else {
            let output = core.handle_ready();
            (core, output)
        };
        self.core = Some(core);
        match output {
            Ok(output) => {
                self.deliver(output).await;
                Ok(answer)
            }
            Err(error) => {
                self.fail_pending();
                Err(error.into())
            }
        }
    }

    async fn deliver(&mut self, output: Output<ClusterCommand>) {
        let Output {
            messages,
            answers,
            reads,
            applied,
        } = output;
        for message in messages {
            if let Err(message) = self.transport.send(message) {
                if let Some(core) = &mut self.core {
                    core.report_unreachable(message.to);
                }
            }
        }
        // Effects before answers: `Committed` means this node has also handed the
        // command to its local actor (and the actor answered or timed out).
        let id = self.options.config.id;
        for entry in applied {
            let Some(command) = entry.effect else {
                continue;
            };
            if command.target.includes(id) {
                control(&self.observer, &command).await;
            }
        }
        for (request, outcome) in answers {
            self.answer(request, outcome);
        }
        for (read, outcome) in reads {
            self.answer_read(read, outcome);
        }
    }

    fn answer(&mut self, request: RequestId, outcome: ProposalOutcome) {
        if let Some(waiting) = self.proposals.get_mut(&request) {
            if let Some(reply) = waiting.pop_front() {
                reply.send(outcome);
            }
            if waiting.is_empty() {
                self.proposals.remove(&request);
            }
        }
    }

    fn answer_read(&mut self, read: u64, outcome: ReadOutcome) {
        let Some(reply) = self.reads.remove(&read) else {
            return;
        };
        match (outcome, &self.core) {
            (ReadOutcome::Ready { index }, Some(core)) => {
                reply.send(Ok((index, core.replica().machine.clone())));
            }
            (ReadOutcome::Ready { .. }, None) => {
                reply.send(Err(ReadOutcome::Dropped(DropReason::Stopping)));
            }
            (outcome, _) => reply.send(Err(outcome)),
        }
    }

    /// Answers everything pending: the core is gone (failure) or going (stop).
    fn fail_pending(&mut self) {
        for (_, waiting) in std::mem::take(&mut self.proposals) {
            for reply in waiting {
                reply.send(ProposalOutcome::OutcomeUnknown);
            }
        }
        for (_, reply) in std::mem::take(&mut self.reads) {
            reply.send(Err(ReadOutcome::Dropped(DropReason::Stopping)));
        }
    }

    fn status(&self) -> Option<PeerStatus> {
        self.core.as_ref().map(|core| PeerStatus {
            id: core.id(),
            term: core.term(),
            is_leader: core.role() == raft::StateRole::Leader,
            leader: core.leader(),
            commit: core.commit(),
            applied: core.replica().applied,
        })
    }

    async fn open(&mut self) -> RaftResult<()> {
        let options = Arc::clone(&self.options);
        let open = move || -> RaftResult<RaftCore<ControlMachine>> {
            let (log, state) = options.storage.open(&options.config.voters)?;
            RaftCore::new(&options.config, log, state, ControlMachine::default())
        };
        let core = if self.blocking {
            tokio::task::spawn_blocking(open)
                .await
                .map_err(|error| RaftError::Config(format!("opening panicked: {error}")))??
        } else {
            open()?
        };
        // Bring the local actors to the table before anything after `applied` runs.
        let id = self.options.config.id;
        let mut bring_up = Vec::new();
        for (target, state) in core.replica().machine.rows_for(id) {
            for command in state.commands() {
                bring_up.push(ClusterCommand {
                    target: target.clone(),
                    command,
                });
            }
        }
        self.core = Some(core);
        for command in &bring_up {
            control(&self.observer, command).await;
        }
        Ok(())
    }
}

/// Sends an applied command to the local actor it names. A failure (no such actor, a
/// timeout) is logged: the command is in the table either way, and a restart of this
/// node brings the actor to the table.
async fn control(observer: &RuntimeObserver, command: &ClusterCommand) {
    let name = command.target.name();
    match observer.control(name, command.command.clone()).await {
        Ok(reply) => tracing::debug!(name, ?reply, "cluster command applied"),
        Err(error) => {
            tracing::warn!(name, %error, command = %command.command, "cluster command failed")
        }
    }
}

impl Actor for RaftPeer {
    type Message = RaftPeerMessage;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.open().await?;
        self.arm_tick(ctx.addr());
        Ok(())
    }

    async fn handle(
        &mut self,
        message: RaftPeerMessage,
        ctx: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        self.more_queued = ctx.addr().mailbox_len() > 0;
        match message {
            RaftPeerMessage::Tick => {
                self.run(|core| core.tick()).await?;
                self.arm_tick(ctx.addr());
            }
            RaftPeerMessage::Raft(message) => self.run(move |core| core.step(*message)).await?,
            RaftPeerMessage::Propose {
                request,
                command,
                reply,
            } => {
                self.proposals.entry(request).or_default().push_back(reply);
                if let Some(outcome) = self.run(move |core| core.propose(request, command)).await? {
                    self.answer(request, outcome);
                }
            }
            RaftPeerMessage::ConfChange {
                request,
                change,
                reply,
            } => {
                self.proposals.entry(request).or_default().push_back(reply);
                let answer = self
                    .run(move |core| core.propose_conf_change(request, change))
                    .await?;
                if let Some(outcome) = answer {
                    self.answer(request, outcome);
                }
            }
            RaftPeerMessage::ReadIndex(reply) => {
                let read = self.next_read;
                self.next_read += 1;
                self.reads.insert(read, reply);
                if let Some(outcome) = self.run(move |core| core.read_index(read)).await? {
                    self.answer_read(read, outcome);
                }
            }
            RaftPeerMessage::Unreachable(peer) => {
                self.run(move |core| core.report_unreachable(peer)).await?
            }
            RaftPeerMessage::SnapshotStatus { peer, status } => {
                self.run(move |core| core.report_snapshot(peer, status))
                    .await?
            }
            RaftPeerMessage::Status(reply) => {
                // A `Ready` left by an earlier step is handled before the report.
                self.run(|_| ()).await?;
                if let Some(status) = self.status() {
                    reply.send(status);
                }
            }
        }
        Ok(())
    }

    async fn on_stop(&mut self, _ctx: &mut Context<Self>) {
        self.ticker = None;
        if let Some(core) = &mut self.core {
            let output = core.abandon();
            for (request, outcome) in output.answers {
                self.answer(request, outcome);
            }
            for (read, outcome) in output.reads {
                self.answer_read(read, outcome);
            }
        }
        self.fail_pending();
    }

    fn describe(&self) -> Option<String> {
        self.status().map(|status| {
            format!(
                "raft id {} term {} {} leader {:?} commit {} applied {}",
                status.id,
                status.term,
                if status.is_leader {
                    "leader"
                } else {
                    "follower"
                },
                status.leader,
                status.commit,
                status.applied
            )
        })
    }
}

impl Drop for RaftPeer {
    fn drop(&mut self) {
        // A failed incarnation does not run `on_stop`: still, nobody waits forever.
        self.fail_pending();
    }
}
