//! The deterministic simulation: n raft cores in one thread, virtual ticks, a simulated
//! network and simulated disks, all driven by one seeded RNG.
//!
//! * **Network**: every message is delayed 0–`MAX_DELAY` steps (so messages reorder),
//!   dropped or duplicated with small probabilities, and lost across a partition.
//! * **Disks**: each node's log journal and replica checkpoints live on its own
//!   `MemoryFileSystem` (journal part 1's power-loss double). A crash keeps only what
//!   was synced (pages of unsynced writes survive or not, torn at sector boundaries, as
//!   the crash seed says); a power cut armed after k mutating calls makes the node's
//!   storage fail in the middle of a `Ready`, and the node then crashes.
//! * **Clients**: three clients, one operation at a time each, `Put`/`Get` on three keys
//!   of a test-only key-value machine on the same log; reads use raft's read index.
//!
//! raft-rs draws election timeouts from a thread-local RNG; each node gets a fixed,
//! distinct timeout chosen from the seed instead, so a seed replays exactly.

pub(crate) mod linearizability;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use raft::prelude::Message;
use raft::StateRole;
use serde::{Deserialize, Serialize};
use vortex_actors::journal::io::MemoryFileSystem;
use vortex_actors::journal::JournalConfig;
use vortex_messages::raft::{ProposalOutcome, RequestId};
use vortex_raft::{
    DiskStorage, PeerConfig, RaftCore, RaftStorage, ReadOutcome, StateMachine, StateStore,
};

use linearizability::{Op, Operation};

/// The test-only key-value machine: registers, and the order requests were applied in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Kv {
    values: BTreeMap<u8, u64>,
    log: Vec<RequestId>,
}

/// A write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Put {
    key: u8,
    value: u64,
}

impl StateMachine for Kv {
    type Command = Put;
    type Effect = ();

    fn apply(&mut self, _index: u64, request: RequestId, command: Put) {
        self.values.insert(command.key, command.value);
        self.log.push(request);
    }
}

/// How hard a run pushes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Faults {
    /// Per message, out of 1000.
    pub drop: u64,
    /// Per message, out of 1000.
    pub duplicate: u64,
    /// Largest delay in steps.
    pub max_delay: u64,
    /// Per step, out of 1000: start a partition (if none).
    pub partition: u64,
    /// Per step, out of 1000: crash a live node.
    pub crash: u64,
    /// Per step, out of 1000: arm a power cut on a live node's disk.
    pub power_cut: u64,
    /// Per step, out of 1000: pause a live node's process for a while.
    pub pause: u64,
    /// Per step, out of 1000: halve a node's clock rate for a while.
    pub slow_clock: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            drop: 50,
            duplicate: 20,
            max_delay: 3,
            partition: 4,
            crash: 3,
            power_cut: 2,
            pause: 3,
            slow_clock: 3,
        }
    }
}

/// What a run did (and proved).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// The seed.
    pub seed: u64,
    /// Steps run (faulty phase plus the quiet phase).
    pub steps: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages dropped (randomly, by a partition, or to a down node).
    pub dropped: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Crashes (including those caused by power cuts).
    pub crashes: u64,
    /// Power cuts armed.
    pub power_cuts: u64,
    /// Process pauses.
    pub pauses: u64,
    /// Slow-clock periods.
    pub slow_clocks: u64,
    /// Retries of a write in doubt that found it already applied.
    pub deduplicated: u64,
    /// Distinct (term, leader) pairs seen.
    pub leaders: u64,
    /// Writes acknowledged as committed.
    pub acknowledged: u64,
    /// Writes whose outcome was unknown.
    pub unknown: u64,
    /// Reads served.
    pub reads: u64,
    /// Highest commit index reached.
    pub commit: u64,
}

/// A splitmix64 generator: tiny and seedable.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

struct Node {
    id: u64,
    config: PeerConfig,
    fs: MemoryFileSystem,
    core: Option<RaftCore<Kv>>,
    down_until: u64,
    /// A process pause (a long GC, a stopped VM): no ticks, no messages, no clients.
    paused_until: u64,
    /// A slow clock: until then, the node ticks only every other step.
    slow_until: u64,
    /// Log indices verified against the committed map.
    checked: u64,
    /// Length of this node's applied request sequence verified against the canonical
    /// one.
    verified: usize,
}

/// A write, across the attempts a client makes with the same request id.
#[derive(Debug, Clone, Copy)]
struct Write {
    request: RequestId,
    key: u8,
    value: u64,
    call: u64,
}

enum Pending {
    Put {
        node: u64,
        write: Write,
        retry: bool,
    },
    Get {
        node: u64,
        key: u8,
        read: u64,
        call: u64,
    },
}

struct Client {
    id: u64,
    seq: u64,
    pending: Option<Pending>,
    /// A write whose outcome is unknown: retried with the same request id until it is
    /// known to be committed (the state machine applies it at most once).
    in_doubt: Option<Write>,
    hint: Option<u64>,
}

struct InFlight {
    at: u64,
    order: u64,
    message: Message,
}

/// One simulated cluster.
pub(crate) struct Sim {
    seed: u64,
    /// Faulty steps of this run (for the replay command).
    steps: u64,
    rng: Rng,
    faults: Faults,
    voters: Vec<u64>,
    nodes: Vec<Node>,
    network: Vec<InFlight>,
    order: u64,
    groups: Option<Vec<u8>>,
    heal_at: u64,
    now: u64,
    clock: u64,
    clients: Vec<Client>,
    next_value: u64,
    history: Vec<Operation>,
    acknowledged: BTreeSet<RequestId>,
    leaders: BTreeMap<u64, u64>,
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    /// The longest applied request sequence seen, and its members.
    canonical: Vec<RequestId>,
    canonical_set: BTreeSet<RequestId>,
    report: Report,
}

const ELECTION_TICK: usize = 10;

impl Sim {
    /// A cluster of `n` nodes, everything chosen by `seed`.
    pub(crate) fn new(seed: u64, n: u64, faults: Faults) -> Self {
        let mut rng = Rng(seed);
        let voters: Vec<u64> = (1..=n).collect();
        // Distinct fixed election timeouts from [ELECTION_TICK, ELECTION_TICK + 2n).
        let mut timeouts: Vec<usize> = (ELECTION_TICK..ELECTION_TICK + 2 * n as usize).collect();
        for i in (1..timeouts.len()).rev() {
            timeouts.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let nodes = voters
            .iter()
            .map(|&id| {
                let mut config = PeerConfig::new(id, &voters);
                config.election_tick = ELECTION_TICK;
                config.heartbeat_tick = 2;
                config.election_timeout = Some(timeouts[id as usize - 1]);
                Node {
                    id,
                    config,
                    fs: MemoryFileSystem::new(),
                    core: None,
                    down_until: 0,
                    paused_until: 0,
                    slow_until: 0,
                    checked: 0,
                    verified: 0,
                }
            })
            .collect();
        let clients = (1..=3)
            .map(|id| Client {
                id,
                seq: 0,
                pending: None,
                in_doubt: None,
                hint: None,
            })
            .collect();
        let mut sim = Self {
            seed,
            steps: 0,
            rng,
            faults,
            voters,
            nodes,
            network: Vec::new(),
            order: 0,
            groups: None,
            heal_at: 0,
            now: 0,
            clock: 0,
            clients,
            next_value: 1,
            history: Vec::new(),
            acknowledged: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            canonical: Vec::new(),
            canonical_set: BTreeSet::new(),
            report: Report {
                seed,
                ..Report::default()
            },
        };
        for index in 0..sim.nodes.len() {
            sim.open(index);
        }
        sim
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "raft simulation: seed {} ({} nodes, {} steps) step {}: {what}\n  replay: \
             VORTEX_RAFT_SEED={} VORTEX_RAFT_NODES={} VORTEX_RAFT_STEPS={} \
             cargo test -p vortex-raft --test simulation replay -- --nocapture",
            self.seed,
            self.nodes.len(),
            self.steps,
            self.now,
            self.seed,
            self.nodes.len(),
            self.steps
        )
    }

    fn open(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let fs = Arc::new(node.fs.clone());
        let journal = JournalConfig {
            segment_bytes: 256 << 10,
            ..JournalConfig::default()
        };
        let opened = DiskStorage::open_with(fs.clone(), "/raft/log", journal, &self.voters)
            .and_then(|log| {
                let state = StateStore::open_with(fs, "/raft/state")?;
                RaftCore::new(&node.config, RaftStorage::Disk(log), state, Kv::default())
            });
        match opened {
            Ok(core) => {
                node.core = Some(core);
                node.checked = 0;
                node.verified = 0;
            }
            Err(error) => {
                let id = node.id;
                self.fail(format!("node {id} does not reopen after a crash: {error}"))
            }
        }
    }

    fn crash(&mut self, index: usize) {
        let crash_seed = self.rng.next();
        let down = 1 + self.rng.below(40);
        let node = &mut self.nodes[index];
        node.core = None;
        node.fs = node.fs.crash(crash_seed);
        node.down_until = self.now + down;
        self.report.crashes += 1;
        let id = node.id;
        // Whatever a client waited for on this node: a write may or may not be in
        // the log (unknown); a read had no effect.
        for client in &mut self.clients {
            let on_node = match &client.pending {
                Some(Pending::Put { node, .. } | Pending::Get { node, .. }) => *node == id,
                None => false,
            };
            if on_node {
                if let Some(Pending::Put { write, .. }) = client.pending.take() {
                    client.in_doubt = Some(write);
                    self.report.unknown += 1;
                }
            }
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Runs `steps` faulty steps, then heals everything and runs until quiet, then
    /// checks the end-of-run invariants.
    pub(crate) fn run(mut self, steps: u64) -> Report {
        self.steps = steps;
        for _ in 0..steps {
            self.step(true);
        }
        // Quiet phase: heal, disarm the power cuts, restart, no new faults or
        // operations.
        self.groups = None;
        for node in &self.nodes {
            node.fs.cut_power_after(None);
        }
        let mut quiet = 0;
        loop {
            self.step(false);
            quiet += 1;
            if self.settled() {
                break;
            }
            if quiet > 2000 {
                self.fail("the cluster did not settle within 2000 quiet steps");
            }
        }
        self.finish();
        self.report.steps = self.now;
        self.report
    }

    fn settled(&self) -> bool {
        let pending = self
            .clients
            .iter()
            .any(|client| client.pending.is_some() || client.in_doubt.is_some());
        let applied: BTreeSet<u64> = self
            .nodes
            .iter()
            .map(|node| node.core.as_ref().map_or(0, |core| core.replica().applied))
            .collect();
        let leader = self.nodes.iter().any(|node| {
            node.core
                .as_ref()
                .is_some_and(|core| core.role() == StateRole::Leader)
        });
        let commit = self
            .nodes
            .iter()
            .filter_map(|node| node.core.as_ref())
            .map(|core| core.commit())
            .max();
        !pending && applied.len() == 1 && leader && applied.iter().next().copied() == commit
    }

    fn step(&mut self, faulty: bool) {
        self.now += 1;
        if faulty {
            self.inject();
        } else {
            for index in 0..self.nodes.len() {
                if self.nodes[index].core.is_none() {
                    self.open(index);
                }
            }
        }
        let now = self.now;
        for node in &mut self.nodes {
            if !faulty {
                node.paused_until = 0;
            }
            if !faulty {
                node.slow_until = 0;
            }
            if node.paused_until > now || (node.slow_until > now && now & 1 == 0) {
                continue;
            }
            if let Some(core) = &mut node.core {
                core.tick();
            }
        }
        self.deliver();
        self.clients_act(faulty);
        for index in 0..self.nodes.len() {
            self.ready(index);
        }
        self.check_leaders();
    }

    fn inject(&mut self) {
        if self.groups.is_some() && self.now >= self.heal_at {
            self.groups = None;
        }
        if self.groups.is_none() && self.rng.chance(self.faults.partition) {
            let groups: Vec<u8> = self
                .nodes
                .iter()
                .map(|_| (self.rng.below(2)) as u8)
                .collect();
            self.groups = Some(groups);
            self.heal_at = self.now + 10 + self.rng.below(80);
            self.report.partitions += 1;
        }
        for index in 0..self.nodes.len() {
            if self.rng.chance(self.faults.slow_clock) {
                self.nodes[index].slow_until = self.now + 20 + self.rng.below(100);
                self.report.slow_clocks += 1;
            }
            let live = self.nodes[index].core.is_some();
            if live && self.rng.chance(self.faults.crash) {
                self.crash(index);
            } else if live && self.rng.chance(self.faults.pause) {
                self.nodes[index].paused_until = self.now + 5 + self.rng.below(40);
                self.report.pauses += 1;
            } else if live && self.rng.chance(self.faults.power_cut) {
                let calls = 1 + self.rng.below(12);
                self.nodes[index].fs.cut_power_after(Some(calls));
                self.report.power_cuts += 1;
            } else if !live && self.now >= self.nodes[index].down_until {
                self.open(index);
            }
        }
    }

    fn connected(&self, from: u64, to: u64) -> bool {
        match &self.groups {
            None => true,
            Some(groups) => groups[from as usize - 1] == groups[to as usize - 1],
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let mut due: Vec<InFlight> = Vec::new();
        let mut waiting = Vec::with_capacity(self.network.len());
        for flight in self.network.drain(..) {
            if flight.at <= now {
                due.push(flight);
            } else {
                waiting.push(flight);
            }
        }
        self.network = waiting;
        due.sort_by_key(|flight| (flight.at, flight.order));
        for flight in due {
            let (from, to) = (flight.message.from, flight.message.to);
            if !self.connected(from, to) {
                self.report.dropped += 1;
                continue;
            }
            if self.nodes[to as usize - 1].paused_until > now {
                // Its socket buffers overflowed while it was paused.
                self.report.dropped += 1;
                continue;
            }
            match &mut self.nodes[to as usize - 1].core {
                Some(core) => core.step(flight.message),
                None => {
                    self.report.dropped += 1;
                    if let Some(sender) = &mut self.nodes[from as usize - 1].core {
                        sender.report_unreachable(to);
                    }
                }
            }
        }
    }

    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            self.report.messages += 1;
            if self.rng.chance(self.faults.drop) {
                self.report.dropped += 1;
                continue;
            }
            let copies = if self.rng.chance(self.faults.duplicate) {
                self.report.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = self.rng.below(self.faults.max_delay + 1);
                self.order += 1;
                self.network.push(InFlight {
                    at: self.now + 1 + delay,
                    order: self.order,
                    message: message.clone(),
                });
            }
        }
    }

    fn clients_act(&mut self, new_operations: bool) {
        for c in 0..self.clients.len() {
            if self.clients[c].pending.is_some() || !self.rng.chance(300) {
                continue;
            }
            let node = match self.clients[c].hint {
                Some(hint) if self.rng.chance(500) => hint,
                _ => 1 + self.rng.below(self.nodes.len() as u64),
            };
            if self.nodes[node as usize - 1].paused_until > self.now {
                continue;
            }
            if let Some(write) = self.clients[c].in_doubt {
                self.propose(c, node, write, true);
                continue;
            }
            if !new_operations {
                continue;
            }
            let key = self.rng.below(3) as u8;
            let is_put = self.rng.chance(600);
            self.clients[c].seq += 1;
            let request = RequestId {
                client: self.clients[c].id,
                seq: self.clients[c].seq,
            };
            let call = self.tick();
            if is_put {
                let value = self.next_value;
                self.next_value += 1;
                let write = Write {
                    request,
                    key,
                    value,
                    call,
                };
                self.propose(c, node, write, false);
            } else {
                let Some(core) = &mut self.nodes[node as usize - 1].core else {
                    continue;
                };
                let read = request.client << 32 | request.seq;
                match core.read_index(read) {
                    None => {
                        self.clients[c].pending = Some(Pending::Get {
                            node,
                            key,
                            read,
                            call,
                        })
                    }
                    Some(ReadOutcome::NotLeader { hint }) => self.clients[c].hint = hint,
                    Some(_) => self.clients[c].hint = None,
                }
            }
        }
    }

    /// One attempt at `write` on `node`. An attempt that never entered the log changes
    /// nothing: a first attempt is forgotten, a retry stays in doubt.
    fn propose(&mut self, c: usize, node: u64, write: Write, retry: bool) {
        let Some(core) = &mut self.nodes[node as usize - 1].core else {
            return;
        };
        let command = Put {
            key: write.key,
            value: write.value,
        };
        match core.propose(write.request, command) {
            None => self.clients[c].pending = Some(Pending::Put { node, write, retry }),
            Some(ProposalOutcome::NotLeader { hint }) => self.clients[c].hint = hint,
            Some(_) => self.clients[c].hint = None,
        }
    }

    fn ready(&mut self, index: usize) {
        if self.nodes[index].paused_until > self.now {
            return;
        }
        let Some(core) = &mut self.nodes[index].core else {
            return;
        };
        let output = match core.handle_ready() {
            Ok(output) => output,
            Err(_) if self.nodes[index].fs.power_is_off() => {
                // The disk lost power in the middle of this `Ready`: the node dies.
                self.crash(index);
                return;
            }
            Err(error) => {
                let id = self.nodes[index].id;
                self.fail(format!("node {id} failed without a power cut: {error}"))
            }
        };
        self.send(output.messages);
        for (request, outcome) in output.answers {
            self.answer_put(request, outcome);
        }
        for (read, outcome) in output.reads {
            self.answer_get(index, read, outcome);
        }
        self.check_log(index);
    }

    fn answer_put(&mut self, request: RequestId, outcome: ProposalOutcome) {
        let Some(client) = self.clients.iter_mut().find(|client| {
            matches!(&client.pending, Some(Pending::Put { write, .. }) if write.request == request)
        }) else {
            return;
        };
        let Some(Pending::Put { write, retry, .. }) = client.pending.take() else {
            return;
        };
        match outcome {
            ProposalOutcome::Committed { duplicate, .. } => {
                client.in_doubt = None;
                self.report.deduplicated += u64::from(duplicate);
                self.clock += 1;
                self.acknowledged.insert(request);
                self.report.acknowledged += 1;
                self.history.push(Operation {
                    key: write.key,
                    op: Op::Put(write.value),
                    call: write.call,
                    ret: Some(self.clock),
                });
            }
            ProposalOutcome::OutcomeUnknown => {
                client.in_doubt = Some(write);
                self.report.unknown += 1;
            }
            // This attempt never entered the log (or was overwritten): a first attempt
            // had no effect; a retry leaves the write in doubt.
            _ => {
                if !retry {
                    client.in_doubt = None;
                }
            }
        }
    }

    fn answer_get(&mut self, index: usize, read: u64, outcome: ReadOutcome) {
        let Some(client) = self.clients.iter_mut().find(
            |client| matches!(&client.pending, Some(Pending::Get { read: r, .. }) if *r == read),
        ) else {
            return;
        };
        let Some(Pending::Get { key, call, .. }) = client.pending.take() else {
            return;
        };
        if let ReadOutcome::Ready { .. } = outcome {
            let core = self.nodes[index].core.as_ref().expect("the node answered");
            let value = core
                .replica()
                .machine
                .values
                .get(&key)
                .copied()
                .unwrap_or(0);
            self.clock += 1;
            self.history.push(Operation {
                key,
                op: Op::Get(value),
                call,
                ret: Some(self.clock),
            });
            self.report.reads += 1;
        }
    }

    /// Committed entries never change: every entry a node has applied matches the
    /// first copy of that index anyone applied.
    fn check_log(&mut self, index: usize) {
        let node = &self.nodes[index];
        let Some(core) = &node.core else {
            return;
        };
        let applied = core.replica().applied;
        self.report.commit = self.report.commit.max(core.commit());
        let mut failure = None;
        for log_index in node.checked + 1..=applied {
            let Some(entry) = core.entry(log_index) else {
                failure = Some(format!("node {} applied {log_index} but lost it", node.id));
                break;
            };
            let value = (entry.term, entry.data.to_vec());
            match self.committed.get(&log_index) {
                Some(first) if *first != value => {
                    failure = Some(format!(
                        "committed entry {log_index} changed on node {}: term {} vs {}",
                        node.id, first.0, value.0
                    ));
                    break;
                }
                Some(_) => {}
                None => {
                    self.committed.insert(log_index, value);
                }
            }
        }
        if let Some(failure) = failure {
            self.fail(failure);
        }
        self.nodes[index].checked = applied;
        self.check_sequence(index);
    }

    /// Applied sequences are identical prefixes with no duplicates, at every step: each
    /// node's sequence of applied request ids is a prefix of the canonical one, or
    /// extends it with requests it does not hold yet.
    fn check_sequence(&mut self, index: usize) {
        let node = &self.nodes[index];
        let Some(core) = &node.core else {
            return;
        };
        let log = &core.replica().machine.log;
        let mut failure = None;
        for (position, request) in log.iter().enumerate().skip(node.verified) {
            match self.canonical.get(position) {
                Some(expected) if expected != request => {
                    failure = Some(format!(
                        "node {} applied {request} at position {position}, others {expected}",
                        node.id
                    ));
                    break;
                }
                Some(_) => {}
                None => {
                    if !self.canonical_set.insert(*request) {
                        failure = Some(format!("request {request} was applied twice"));
                        break;
                    }
                    self.canonical.push(*request);
                }
            }
        }
        let verified = log.len();
        if let Some(failure) = failure {
            self.fail(failure);
        }
        self.nodes[index].verified = verified;
    }

    /// At most one leader per term.
    fn check_leaders(&mut self) {
        for node in &self.nodes {
            let Some(core) = &node.core else { continue };
            if core.role() != StateRole::Leader {
                continue;
            }
            match self.leaders.get(&core.term()) {
                Some(&leader) if leader != node.id => {
                    let term = core.term();
                    self.fail(format!(
                        "two leaders in term {term}: {leader} and {}",
                        node.id
                    ))
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(core.term(), node.id);
                    self.report.leaders += 1;
                }
            }
        }
    }

    fn finish(&mut self) {
        for client in &mut self.clients {
            if let Some(write) = client.in_doubt.take() {
                self.history.push(Operation {
                    key: write.key,
                    op: Op::Put(write.value),
                    call: write.call,
                    ret: None,
                });
            }
        }
        // Applied sequences are identical prefixes with no duplicates.
        let logs: Vec<&Vec<RequestId>> = self
            .nodes
            .iter()
            .filter_map(|node| node.core.as_ref().map(|core| &core.replica().machine.log))
            .collect();
        let longest = logs
            .iter()
            .max_by_key(|log| log.len())
            .copied()
            .cloned()
            .unwrap_or_default();
        for (node, log) in logs.iter().enumerate() {
            if longest[..log.len()] != log[..] {
                self.fail(format!("node {} applied a different sequence", node + 1));
            }
        }
        let distinct: BTreeSet<&RequestId> = longest.iter().collect();
        if distinct.len() != longest.len() {
            self.fail("a request was applied twice");
        }
        // Every acknowledged write is applied everywhere once the network heals.
        for log in &logs {
            let applied: BTreeSet<&RequestId> = log.iter().collect();
            if let Some(missing) = self
                .acknowledged
                .iter()
                .find(|request| !applied.contains(request))
            {
                self.fail(format!(
                    "acknowledged request {missing} is not applied everywhere"
                ));
            }
        }
        // The client history is linearizable.
        if let Err(key) = linearizability::check(&self.history) {
            self.fail(format!("the history of key {key} is not linearizable"));
        }
    }
}
