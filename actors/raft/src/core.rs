//! [`RaftCore`]: the pure raft peer — raft-rs's `RawNode`, the log storage, the
//! replica and the bookkeeping that answers every proposal. No I/O of its own beyond
//! the storage it was given, no tokio, no clock: the owner calls [`RaftCore::tick`],
//! feeds it messages and requests, then calls [`RaftCore::handle_ready`] and carries out
//! the [`Output`] (send the messages, deliver the answers, run the effects).
//!
//! The `Ready` is handled as raft-rs's `five_mem_node` example does, with one change:
//! a `Ready`'s entries and hard state are made durable *before* its committed entries
//! are applied, so that the replica's applied index, saved after applying, never runs
//! ahead of the commit index on disk.

use std::collections::BTreeMap;

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, Config, Entry, EntryType, Message, RawNode};
use raft::{SnapshotStatus, StateRole, Storage};
use serde::{Deserialize, Serialize};
use vortex_messages::raft::{DropReason, ProposalOutcome, RequestId};
use vortex_messages::wire;

use crate::error::{RaftError, RaftResult};
use crate::machine::{LogCommand, Replica, StateMachine};
use crate::storage::{Persist, RaftStorage, StateStore};

/// How a peer is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// This peer's raft id (not 0).
    pub id: u64,
    /// The voters of a new cluster (ignored when the storage already holds a
    /// configuration). Empty for a node that joins an existing cluster: it waits until
    /// a leader that added it (`ConfChange` `AddNode`) replicates the log to it.
    pub voters: Vec<u64>,
    /// Ticks between heartbeats. Default 2.
    pub heartbeat_tick: usize,
    /// Ticks without a leader before a follower campaigns. Default 10.
    pub election_tick: usize,
    /// A fixed election timeout in ticks (at least `election_tick`), instead of raft-rs's
    /// random one in `[election_tick, 2 × election_tick)`. raft-rs draws it from a
    /// thread-local RNG; the simulation fixes it per node so that a seed replays exactly.
    pub election_timeout: Option<usize>,
    /// Largest encoded command accepted by `propose`. Default 64 KiB.
    pub max_command_bytes: usize,
}

impl PeerConfig {
    /// A peer `id` of a new cluster of `voters`, with the defaults.
    pub fn new(id: u64, voters: &[u64]) -> Self {
        Self {
            id,
            voters: voters.to_vec(),
            heartbeat_tick: 2,
            election_tick: 10,
            election_timeout: None,
            max_command_bytes: 64 << 10,
        }
    }

    fn raft_config(&self, applied: u64) -> RaftResult<Config> {
        let mut config = Config {
            id: self.id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader cut off from a quorum steps down (and answers what it had
            // pending), and a partitioned node rejoining cannot depose a good leader.
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        if let Some(timeout) = self.election_timeout {
            config.min_election_tick = timeout;
            config.max_election_tick = timeout + 1;
        }
        config
            .validate()
            .map_err(|error| RaftError::Config(error.to_string()))?;
        Ok(config)
    }
}

/// The role of a peer, as raft-rs reports it.
pub type Role = StateRole;

/// The answer to a read-index request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Linearizable: this node has applied at least up to `index`, the commit index the
    /// leader confirmed with a quorum after the read arrived. Read the replica now.
    Ready {
        /// The confirmed commit index.
        index: u64,
    },
    /// This node is not the leader; `hint` is the leader it knows of.
    NotLeader {
        /// The leader's raft id, if one is known.
        hint: Option<u64>,
    },
    /// The read was not served (for example the leader changed first): retry.
    Dropped(DropReason),
}

/// One applied log entry, for the owner to act on.
#[derive(Debug)]
pub struct AppliedEntry<E> {
    /// Its log index.
    pub index: u64,
    /// Its request id.
    pub request: RequestId,
    /// The effect of applying it; `None` for a duplicate request id (not applied again)
    /// and for configuration changes.
    pub effect: Option<E>,
}

/// What the owner must do after [`RaftCore::handle_ready`] (or after a request that was
/// answered at once).
#[derive(Debug)]
pub struct Output<E> {
    /// Raft messages to send to other peers (by `Message::to`).
    pub messages: Vec<Message>,
    /// Answers to proposals.
    pub answers: Vec<(RequestId, ProposalOutcome)>,
    /// Answers to read-index requests, by the caller's read id.
    pub reads: Vec<(u64, ReadOutcome)>,
    /// Entries applied to the replica, in log order.
    pub applied: Vec<AppliedEntry<E>>,
}

impl<E> Default for Output<E> {
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            answers: Vec::new(),
            reads: Vec::new(),
            applied: Vec::new(),
        }
    }
}

impl<E> Output<E> {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.answers.is_empty()
            && self.reads.is_empty()
            && self.applied.is_empty()
    }
}

/// A proposal in the log, not yet committed.
#[derive(Debug, Clone, Copy)]
struct Pending {
    request: RequestId,
}

/// The request id of a configuration change travels in the entry's context.
#[derive(Debug, Serialize, Deserialize)]
struct ConfContext {
    request: RequestId,
}

/// The pure raft peer. See the module documentation.
pub struct RaftCore<M: StateMachine> {
    node: RawNode<RaftStorage>,
    state: StateStore,
    replica: Replica<M>,
    /// Proposals of this leader by log index.
    proposals: BTreeMap<u64, Pending>,
    /// Reads sent into raft, not yet confirmed.
    reads: BTreeMap<u64, ()>,
    /// Reads confirmed at an index this node has not applied yet.
    confirmed: Vec<(u64, u64)>,
    max_command_bytes: usize,
    was_leader: bool,
}

impl<M: StateMachine> std::fmt::Debug for RaftCore<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftCore")
            .field("id", &self.id())
            .field("role", &self.role())
            .field("term", &self.term())
            .field("applied", &self.replica.applied)
            .finish_non_exhaustive()
    }
}

impl<M: StateMachine> RaftCore<M> {
    /// Opens a peer on `log`, restoring the replica from `state` (or starting from
    /// `initial` with nothing applied). Entries after the restored applied index are
    /// applied again as raft hands them out committed.
    pub fn new(
        config: &PeerConfig,
        log: RaftStorage,
        state: StateStore,
        initial: M,
    ) -> RaftResult<Self> {
        let replica = match state.load()? {
            Some((applied, bytes)) => {
                let replica: Replica<M> = wire::decode(&bytes)?;
                if replica.applied != applied {
                    return Err(RaftError::Corrupt(format!(
                        "the state saved for index {applied} says it applied {}",
                        replica.applied
                    )));
                }
                replica
            }
            None => Replica::new(initial),
        };
        let commit = log.hard_state().commit;
        if replica.applied > commit {
            return Err(RaftError::Corrupt(format!(
                "applied index {} is past the stored commit index {commit}",
                replica.applied
            )));
        }
        let raft_config = config.raft_config(replica.applied)?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&raft_config, log, &logger)?;
        Ok(Self {
            node,
            state,
            replica,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed: Vec::new(),
            max_command_bytes: config.max_command_bytes,
            was_leader: false,
        })
    }

    /// This peer's raft id.
    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    /// Its role now.
    pub fn role(&self) -> Role {
        self.node.raft.state
    }

    /// Its current term.
    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The leader it knows of.
    pub fn leader(&self) -> Option<u64> {
        Some(self.node.raft.leader_id).filter(|&id| id != raft::INVALID_ID)
    }

    /// Its commit index.
    pub fn commit(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// The replica: state machine, applied index, applied request ids.
    pub fn replica(&self) -> &Replica<M> {
        &self.replica
    }

    /// The log entry at `index`, if stored.
    pub fn entry(&self, index: u64) -> Option<Entry> {
        self.node
            .store()
            .entries(
                index,
                index + 1,
                None,
                raft::GetEntriesContext::empty(false),
            )
            .ok()
            .and_then(|mut entries| entries.pop())
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// Makes this peer campaign now (tests; a new single-node cluster).
    pub fn campaign(&mut self) -> RaftResult<()> {
        Ok(self.node.campaign()?)
    }

    /// Steps a message from another peer. A message raft-rs refuses (from a removed
    /// peer, or a local message type) is dropped, as a network would.
    pub fn step(&mut self, message: Message) {
        if let Err(error) = self.node.step(message) {
            tracing::debug!(id = self.id(), %error, "raft message dropped");
        }
    }

    /// Reports that sending to `peer` failed.
    pub fn report_unreachable(&mut self, peer: u64) {
        self.node.report_unreachable(peer);
    }

    /// Reports how sending a snapshot to `peer` ended.
    pub fn report_snapshot(&mut self, peer: u64, status: SnapshotStatus) {
        self.node.report_snapshot(peer, status);
    }

    /// Why this peer cannot propose now, if it cannot.
    fn refusal(&self) -> Option<ProposalOutcome> {
        let raft = &self.node.raft;
        if raft.state == StateRole::Leader {
            if raft.lead_transferee.is_some() {
                return Some(ProposalOutcome::Dropped(DropReason::Transferring));
            }
            return None;
        }
        if raft.prs().conf().learners().contains(&raft.id) {
            return Some(ProposalOutcome::Dropped(DropReason::Learner));
        }
        Some(match self.leader() {
            Some(hint) => ProposalOutcome::NotLeader { hint: Some(hint) },
            None => ProposalOutcome::Dropped(DropReason::NoLeader),
        })
    }

    /// Proposes `command` under `request`. Returns the answer at once when the proposal
    /// cannot enter the log; otherwise the answer comes out of a later `handle_ready`
    /// (committed, overwritten, or unknown after a leader change).
    pub fn propose(&mut self, request: RequestId, command: M::Command) -> Option<ProposalOutcome> {
        if let Err(reason) = self.replica.machine.validate(&command) {
            return Some(ProposalOutcome::Dropped(DropReason::Invalid(reason)));
        }
        let data = match wire::encode(&LogCommand { request, command }) {
            Ok(data) if data.len() <= self.max_command_bytes => data,
            Ok(data) => {
                return Some(ProposalOutcome::Dropped(DropReason::Invalid(format!(
                    "the command is {} bytes, more than {}",
                    data.len(),
                    self.max_command_bytes
                ))))
            }
            Err(error) => {
                return Some(ProposalOutcome::Dropped(DropReason::Invalid(
                    error.to_string(),
                )))
            }
        };
        self.enter(request, |node| node.propose(Vec::new(), data))
    }

    /// Proposes a configuration change under `request`; answered like a proposal.
    pub fn propose_conf_change(
        &mut self,
        request: RequestId,
        change: ConfChange,
    ) -> Option<ProposalOutcome> {
        let context = match wire::encode(&ConfContext { request }) {
            Ok(context) => context,
            Err(error) => {
                return Some(ProposalOutcome::Dropped(DropReason::Invalid(
                    error.to_string(),
                )))
            }
        };
        self.enter(request, |node| node.propose_conf_change(context, change))
    }

    fn enter(
        &mut self,
        request: RequestId,
        propose: impl FnOnce(&mut RawNode<RaftStorage>) -> raft::Result<()>,
    ) -> Option<ProposalOutcome> {
        if let Some(refusal) = self.refusal() {
            return Some(refusal);
        }
        let before = self.node.raft.raft_log.last_index();
        if let Err(error) = propose(&mut self.node) {
            return Some(ProposalOutcome::Dropped(DropReason::Refused(
                error.to_string(),
            )));
        }
        let index = self.node.raft.raft_log.last_index();
        if index == before {
            return Some(ProposalOutcome::Dropped(DropReason::Refused(
                "nothing was appended".to_owned(),
            )));
        }
        self.proposals.insert(index, Pending { request });
        None
    }

    /// Starts a linearizable read under the caller's `read` id. Answered at once when
    /// this peer cannot serve it, else by a later `handle_ready` once the leader has
    /// confirmed its commit index with a quorum and this peer has applied up to it.
    pub fn read_index(&mut self, read: u64) -> Option<ReadOutcome> {
        if self.node.raft.state != StateRole::Leader {
            return Some(match self.leader() {
                Some(hint) => ReadOutcome::NotLeader { hint: Some(hint) },
                None => ReadOutcome::Dropped(DropReason::NoLeader),
            });
        }
        if !self.node.raft.commit_to_current_term() {
            // raft-rs drops such a read silently; say so instead.
            return Some(ReadOutcome::Dropped(DropReason::NoLeader));
        }
        self.reads.insert(read, ());
        self.node.read_index(read.to_be_bytes().to_vec());
        None
    }

    /// True when `handle_ready` has something to do.
    pub fn has_ready(&self) -> bool {
        self.node.has_ready()
    }

    /// Handles raft's `Ready`, if any: persists, applies, and returns what the owner
    /// must do. A storage error is fatal: drop this core and reopen from storage.
    pub fn handle_ready(&mut self) -> RaftResult<Output<M::Effect>> {
        let mut output = Output::default();
        if !self.node.has_ready() {
            return Ok(output);
        }
        let applied_before = self.replica.applied;
        let mut ready = self.node.ready();
        if let Some(soft) = ready.ss() {
            let leader = soft.raft_state == StateRole::Leader;
            if self.was_leader && !leader {
                self.deposed(&mut output);
            }
            self.was_leader = leader;
        }
        output.messages.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            return Err(RaftError::Config(
                "a raft snapshot arrived, and this peer does not compact its log, so it \
                 never asks for one"
                    .to_owned(),
            ));
        }
        let entries = ready.take_entries();
        self.node.mut_store().persist(Persist {
            entries: &entries,
            hard_state: ready.hs(),
            conf_state: None,
        })?;
        self.apply(ready.take_committed_entries(), &mut output)?;
        for state in ready.take_read_states() {
            let mut id = [0; 8];
            if state.request_ctx.len() == 8 {
                id.copy_from_slice(&state.request_ctx);
                let read = u64::from_be_bytes(id);
                if self.reads.remove(&read).is_some() {
                    self.confirmed.push((read, state.index));
                }
            }
        }
        output.messages.extend(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().persist_commit(commit)?;
        }
        output.messages.extend(light.take_messages());
        self.apply(light.take_committed_entries(), &mut output)?;
        self.node.advance_apply();
        if self.replica.applied != applied_before {
            let bytes = wire::encode(&self.replica)?;
            self.state.save(self.replica.applied, bytes)?;
        }
        let applied = self.replica.applied;
        self.confirmed.retain(|&(read, index)| {
            if index <= applied {
                output.reads.push((read, ReadOutcome::Ready { index }));
                false
            } else {
                true
            }
        });
        Ok(output)
    }

    /// This peer stopped being leader: what it proposed may or may not commit, and its
    /// unconfirmed reads will never be confirmed.
    fn deposed(&mut self, output: &mut Output<M::Effect>) {
        for (_, pending) in std::mem::take(&mut self.proposals) {
            output
                .answers
                .push((pending.request, ProposalOutcome::OutcomeUnknown));
        }
        for (read, ()) in std::mem::take(&mut self.reads) {
            output
                .reads
                .push((read, ReadOutcome::Dropped(DropReason::NoLeader)));
        }
    }

    fn apply(&mut self, entries: Vec<Entry>, output: &mut Output<M::Effect>) -> RaftResult<()> {
        for entry in entries {
            if entry.index <= self.replica.applied {
                continue;
            }
            let applied = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => None,
                EntryType::EntryNormal => Some(self.apply_command(&entry)?),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    Some(self.apply_conf_change(&entry)?)
                }
            };
            self.replica.applied = entry.index;
            // A proposal at this index is answered now; one at an earlier index that is
            // still pending was overwritten by a newer leader.
            let rest = self.proposals.split_off(&(entry.index + 1));
            let done = std::mem::replace(&mut self.proposals, rest);
            for (index, pending) in done {
                let outcome = match &applied {
                    Some(applied) if index == entry.index && applied.request == pending.request => {
                        ProposalOutcome::Committed {
                            index,
                            duplicate: applied.effect.is_none()
                                && entry.get_entry_type() == EntryType::EntryNormal,
                        }
                    }
                    _ => ProposalOutcome::Dropped(DropReason::Overwritten),
                };
                output.answers.push((pending.request, outcome));
            }
            if let Some(applied) = applied {
                output.applied.push(applied);
            }
        }
        Ok(())
    }

    fn apply_command(&mut self, entry: &Entry) -> RaftResult<AppliedEntry<M::Effect>> {
        let LogCommand { request, command } = wire::decode::<LogCommand<M::Command>>(&entry.data)
            .map_err(|error| {
            RaftError::Corrupt(format!("entry {} does not decode: {error}", entry.index))
        })?;
        let effect = if self.replica.requests.insert(request) {
            Some(self.replica.machine.apply(entry.index, request, command))
        } else {
            None
        };
        Ok(AppliedEntry {
            index: entry.index,
            request,
            effect,
        })
    }

    fn apply_conf_change(&mut self, entry: &Entry) -> RaftResult<AppliedEntry<M::Effect>> {
        let corrupt =
            |what: &str| RaftError::Corrupt(format!("entry {} holds a bad {what}", entry.index));
        let request = wire::decode::<ConfContext>(&entry.context)
            .map_err(|_| corrupt("request id"))?
            .request;
        let conf_state = if entry.get_entry_type() == EntryType::EntryConfChange {
            let change =
                ConfChange::parse_from_bytes(&entry.data).map_err(|_| corrupt("conf change"))?;
            self.node.apply_conf_change(&change)?
        } else {
            let change =
                ConfChangeV2::parse_from_bytes(&entry.data).map_err(|_| corrupt("conf change"))?;
            self.node.apply_conf_change(&change)?
        };
        self.replica.requests.insert(request);
        self.node.mut_store().persist(Persist {
            conf_state: Some(&conf_state),
            ..Persist::default()
        })?;
        Ok(AppliedEntry {
            index: entry.index,
            request,
            effect: None,
        })
    }

    /// Answers every outstanding proposal and read (the owner is stopping): proposals in
    /// the log have an unknown outcome, reads are dropped.
    pub fn abandon(&mut self) -> Output<M::Effect> {
        let mut output = Output::default();
        self.deposed(&mut output);
        for (read, _) in std::mem::take(&mut self.confirmed) {
            output
                .reads
                .push((read, ReadOutcome::Dropped(DropReason::Stopping)));
        }
        output
    }
}
