//! Scripted scenarios on three pure cores with a perfect (or cut) network: every
//! proposal is answered — committed, `NotLeader { hint }`, `Dropped`, or
//! `OutcomeUnknown` after a leader change — and a deposed leader that does not know it
//! yet never serves a stale read.

use std::collections::{BTreeMap, BTreeSet};

use raft::prelude::Message;
use raft::StateRole;
use vortex_messages::raft::{ClusterCommand, DropReason, ProposalOutcome, RequestId, Target};
use vortex_messages::Control;
use vortex_raft::{ControlMachine, PeerConfig, RaftCore, RaftStorage, ReadOutcome, StateStore};

struct Cluster {
    cores: Vec<RaftCore<ControlMachine>>,
    isolated: BTreeSet<u64>,
    answers: BTreeMap<RequestId, ProposalOutcome>,
    reads: BTreeMap<u64, ReadOutcome>,
}

impl Cluster {
    fn new() -> Self {
        let voters = [1, 2, 3];
        let cores = voters
            .iter()
            .map(|&id| {
                let mut config = PeerConfig::new(id, &voters);
                // Node 1 times out first, so it is the first leader.
                config.election_timeout = Some(10 + 3 * (id as usize - 1));
                RaftCore::new(
                    &config,
                    RaftStorage::memory(&voters),
                    StateStore::memory(),
                    ControlMachine::default(),
                )
                .unwrap()
            })
            .collect();
        Self {
            cores,
            isolated: BTreeSet::new(),
            answers: BTreeMap::new(),
            reads: BTreeMap::new(),
        }
    }

    fn core(&mut self, id: u64) -> &mut RaftCore<ControlMachine> {
        &mut self.cores[id as usize - 1]
    }

    /// Handles every ready and delivers every message until nothing moves.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut messages: Vec<Message> = Vec::new();
            for core in &mut self.cores {
                let output = core.handle_ready().unwrap();
                messages.extend(output.messages);
                self.answers.extend(output.answers);
                self.reads.extend(output.reads);
            }
            if messages.is_empty() {
                return;
            }
            for message in messages {
                if self.isolated.contains(&message.from) || self.isolated.contains(&message.to) {
                    continue;
                }
                self.cores[message.to as usize - 1].step(message);
            }
        }
        panic!("the cluster never went quiet");
    }

    /// Ticks the nodes in `ids` `ticks` times, pumping after each tick.
    fn tick(&mut self, ids: &[u64], ticks: usize) {
        for _ in 0..ticks {
            for &id in ids {
                self.core(id).tick();
            }
            self.pump();
        }
    }

    fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .cores
            .iter()
            .filter(|core| core.role() == StateRole::Leader)
            .map(|core| core.id())
            .collect();
        match leaders[..] {
            [leader] => Some(leader),
            _ => None,
        }
    }
}

fn pause(name: &str) -> ClusterCommand {
    ClusterCommand {
        target: Target::Everywhere { name: name.into() },
        command: Control::Pause,
    }
}

fn request(seq: u64) -> RequestId {
    RequestId { client: 9, seq }
}

#[test]
fn a_follower_answers_not_leader_with_a_hint_and_nobody_answers_no_leader() {
    let mut cluster = Cluster::new();
    // Before any election: no leader anywhere.
    assert_eq!(
        cluster.core(2).propose(request(1), pause("a")),
        Some(ProposalOutcome::Dropped(DropReason::NoLeader))
    );
    cluster.tick(&[1, 2, 3], 12);
    assert_eq!(cluster.leader(), Some(1));
    assert_eq!(
        cluster.core(2).propose(request(2), pause("a")),
        Some(ProposalOutcome::NotLeader { hint: Some(1) })
    );
    assert_eq!(
        cluster.core(3).read_index(1),
        Some(ReadOutcome::NotLeader { hint: Some(1) })
    );
    // Status is refused before it reaches the log.
    let status = ClusterCommand {
        target: Target::Everywhere { name: "a".into() },
        command: Control::Status,
    };
    assert!(matches!(
        cluster.core(1).propose(request(3), status),
        Some(ProposalOutcome::Dropped(DropReason::Invalid(_)))
    ));
}

#[test]
fn a_proposal_commits_on_every_node_and_a_retry_is_deduplicated() {
    let mut cluster = Cluster::new();
    cluster.tick(&[1, 2, 3], 12);
    assert_eq!(cluster.core(1).propose(request(1), pause("gpu")), None);
    cluster.pump();
    let Some(ProposalOutcome::Committed { index, duplicate }) = cluster.answers.get(&request(1))
    else {
        panic!("not committed: {:?}", cluster.answers);
    };
    assert!(!duplicate);
    let index = *index;
    // The same request id again: committed, but not applied a second time.
    assert_eq!(cluster.core(1).propose(request(1), pause("gpu")), None);
    cluster.pump();
    assert_eq!(
        cluster.answers.get(&request(1)),
        Some(&ProposalOutcome::Committed {
            index: index + 1,
            duplicate: true
        })
    );
    cluster.tick(&[1, 2, 3], 3);
    for core in &cluster.cores {
        assert_eq!(core.replica().applied, index + 1);
        let rows = core.replica().machine.rows_for(core.id());
        assert_eq!(rows.len(), 1);
        assert!(rows[0].1.paused);
        assert_eq!(rows[0].1.index, index, "the duplicate changed nothing");
    }
}

#[test]
fn a_deposed_leader_answers_outcome_unknown_and_never_serves_a_stale_read() {
    let mut cluster = Cluster::new();
    cluster.tick(&[1, 2, 3], 12);
    assert_eq!(cluster.leader(), Some(1));
    // Cut node 1 off; it takes a proposal and a read it can never commit or confirm.
    cluster.isolated.insert(1);
    assert_eq!(cluster.core(1).propose(request(1), pause("gpu")), None);
    assert_eq!(cluster.core(1).read_index(100), None);
    cluster.pump();
    assert!(cluster.answers.is_empty());
    assert!(cluster.reads.is_empty(), "an unconfirmed read was served");
    // The others elect a new leader and commit a write; node 1's clock is stopped, so
    // it still believes it leads.
    cluster.tick(&[2, 3], 40);
    let new_leader = [2, 3]
        .into_iter()
        .find(|&id| cluster.core(id).role() == StateRole::Leader)
        .expect("a new leader");
    let resume = ClusterCommand {
        target: Target::Everywhere { name: "gpu".into() },
        command: Control::Resume,
    };
    assert_eq!(cluster.core(new_leader).propose(request(2), resume), None);
    cluster.pump();
    assert!(cluster.answers[&request(2)].is_committed());
    assert_eq!(
        cluster.core(1).role(),
        StateRole::Leader,
        "node 1 does not know yet"
    );
    assert!(
        cluster.reads.is_empty(),
        "a deposed leader served a stale read"
    );
    // Heal: node 1 learns the new term, steps down, and answers what it had pending.
    cluster.isolated.clear();
    cluster.tick(&[1, 2, 3], 5);
    assert_eq!(cluster.core(1).role(), StateRole::Follower);
    assert_eq!(
        cluster.answers.get(&request(1)),
        Some(&ProposalOutcome::OutcomeUnknown)
    );
    assert_eq!(
        cluster.reads.get(&100),
        Some(&ReadOutcome::Dropped(DropReason::NoLeader))
    );
    // Its entry was overwritten by the new leader's log: the pause never applied.
    let rows = cluster.core(1).replica().machine.rows_for(1);
    assert!(!rows[0].1.paused);
}

#[test]
fn a_read_on_the_leader_sees_every_write_acknowledged_before_it() {
    let mut cluster = Cluster::new();
    cluster.tick(&[1, 2, 3], 12);
    assert_eq!(cluster.core(1).propose(request(1), pause("gpu")), None);
    cluster.pump();
    assert!(cluster.answers[&request(1)].is_committed());
    assert_eq!(cluster.core(1).read_index(7), None);
    cluster.tick(&[1, 2, 3], 2);
    let Some(&ReadOutcome::Ready { index }) = cluster.reads.get(&7) else {
        panic!("the read was not served: {:?}", cluster.reads);
    };
    assert!(index >= 2);
    assert!(cluster.core(1).replica().applied >= index);
}

#[test]
fn a_node_added_by_a_conf_change_catches_up_from_the_log() {
    use raft::prelude::{ConfChange, ConfChangeType};
    let mut cluster = Cluster::new();
    cluster.tick(&[1, 2, 3], 12);
    assert_eq!(cluster.core(1).propose(request(1), pause("gpu")), None);
    cluster.pump();
    // A fourth node starts empty: no configuration, no log.
    let mut config = PeerConfig::new(4, &[]);
    config.election_timeout = Some(30);
    let four = RaftCore::new(
        &config,
        RaftStorage::memory(&[]),
        StateStore::memory(),
        ControlMachine::default(),
    )
    .unwrap();
    cluster.cores.push(four);
    let change = ConfChange {
        change_type: ConfChangeType::AddNode,
        node_id: 4,
        ..ConfChange::default()
    };
    assert_eq!(
        cluster.core(1).propose_conf_change(request(2), change),
        None
    );
    cluster.tick(&[1, 2, 3, 4], 6);
    assert!(
        cluster.answers[&request(2)].is_committed(),
        "{:?}",
        cluster.answers
    );
    let leader_applied = cluster.core(1).replica().applied;
    let four = cluster.core(4);
    assert_eq!(four.replica().applied, leader_applied);
    assert!(four.replica().machine.rows_for(4)[0].1.paused);
    assert_eq!(four.leader(), Some(1));
}
