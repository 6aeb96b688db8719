//! The replicated state machine: the [`StateMachine`] trait the core applies log
//! entries to, the [`Replica`] around it (applied index and request deduplication,
//! persisted together), and the production machine, [`ControlMachine`], whose state is
//! the desired-state table of every named actor in the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use vortex_messages::raft::{ClusterCommand, RequestId, Target};
use vortex_messages::Control;

/// A deterministic state machine fed by the raft log. Every node applies the same
/// commands in the same order, so every node holds the same state.
///
/// The whole machine is serialised (bincode 2) with its applied index after every
/// batch of applied entries, so keep it small: it is control state, not data.
pub trait StateMachine: Serialize + DeserializeOwned + Send + 'static {
    /// What a log entry carries.
    type Command: Serialize + DeserializeOwned + Clone + Debug + Send + 'static;
    /// What applying a command asks the node to do locally, after the fact.
    type Effect: Debug + Send + 'static;

    /// Refuses a command before it is proposed (it never enters the log).
    fn validate(&self, command: &Self::Command) -> Result<(), String> {
        let _ = command;
        Ok(())
    }

    /// Applies one committed command, proposed under `request`, at log index `index`.
    /// Must be deterministic. Called at most once per request id.
    fn apply(&mut self, index: u64, request: RequestId, command: Self::Command) -> Self::Effect;
}

/// A command in the log: the command and the request id that deduplicates it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogCommand<C> {
    /// The client's request id.
    pub request: RequestId,
    /// The command.
    pub command: C,
}

/// A state machine with the applied index and the request ids applied so far: what a
/// node persists after applying, and restores on start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replica<M> {
    /// The last log index applied to `machine`.
    pub applied: u64,
    /// Every request id applied so far (a retry of one of them is not applied again).
    pub requests: BTreeSet<RequestId>,
    /// The state machine.
    pub machine: M,
}

impl<M> Replica<M> {
    /// A replica of `machine` with nothing applied.
    pub fn new(machine: M) -> Self {
        Self {
            applied: 0,
            requests: BTreeSet::new(),
            machine,
        }
    }
}

/// What one node wants of one target, after every command applied so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Log index of the last command for this target.
    pub index: u64,
    /// `Pause` (true) or `Resume` (false), whichever came last.
    pub paused: bool,
    /// The last `Scale { n }`.
    pub scale: Option<u32>,
    /// How many `Checkpoint` commands were applied (the last epoch requested).
    pub checkpoint_epoch: u64,
    /// The last `SetBatchSize { items }`.
    pub batch_size: Option<u32>,
    /// The last `SetPrefetchDepth { depth }`.
    pub prefetch_depth: Option<u32>,
    /// A `Stop` was applied.
    pub stopped: bool,
}

impl DesiredState {
    /// The commands that bring a freshly started actor to this state, in order
    /// (`Checkpoint` is a one-off request, not a state, and is not repeated).
    pub fn commands(&self) -> Vec<Control> {
        let mut commands = Vec::new();
        if let Some(n) = self.scale {
            commands.push(Control::Scale { n });
        }
        if let Some(items) = self.batch_size {
            commands.push(Control::SetBatchSize { items });
        }
        if let Some(depth) = self.prefetch_depth {
            commands.push(Control::SetPrefetchDepth { depth });
        }
        if self.paused {
            commands.push(Control::Pause);
        }
        if self.stopped {
            commands.push(Control::Stop);
        }
        commands
    }
}

/// The production state machine: per target, the desired state of a named actor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlMachine {
    /// The desired-state table.
    pub table: BTreeMap<Target, DesiredState>,
}

impl ControlMachine {
    /// The rows that apply to node `node`, oldest change first: replaying their
    /// commands in this order brings the node's actors to the table.
    pub fn rows_for(&self, node: u64) -> Vec<(&Target, &DesiredState)> {
        let mut rows: Vec<_> = self
            .table
            .iter()
            .filter(|(target, _)| target.includes(node))
            .collect();
        rows.sort_by_key(|(_, state)| state.index);
        rows
    }
}

impl StateMachine for ControlMachine {
    type Command = ClusterCommand;
    type Effect = ClusterCommand;

    fn validate(&self, command: &ClusterCommand) -> Result<(), String> {
        if command.target.name().is_empty() {
            return Err("the target name is empty".to_owned());
        }
        match command.command {
            Control::Status => Err("`status` changes nothing and has no place in the log".into()),
            _ => Ok(()),
        }
    }

    fn apply(
        &mut self,
        index: u64,
        _request: RequestId,
        command: ClusterCommand,
    ) -> ClusterCommand {
        let row = self.table.entry(command.target.clone()).or_default();
        row.index = index;
        match &command.command {
            Control::Pause => row.paused = true,
            Control::Resume => row.paused = false,
            Control::Checkpoint => row.checkpoint_epoch += 1,
            Control::Scale { n } => row.scale = Some(*n),
            Control::SetBatchSize { items } => row.batch_size = Some(*items),
            Control::SetPrefetchDepth { depth } => row.prefetch_depth = Some(*depth),
            Control::Stop => row.stopped = true,
            // `validate` keeps `Status` out of the log; a future command changes no row.
            _ => {}
        }
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(name: &str, node: Option<u64>, command: Control) -> ClusterCommand {
        let target = match node {
            Some(node) => Target::Node {
                name: name.into(),
                node,
            },
            None => Target::Everywhere { name: name.into() },
        };
        ClusterCommand { target, command }
    }

    #[test]
    fn the_table_keeps_the_last_state_per_target() {
        let mut machine = ControlMachine::default();
        machine.apply(
            1,
            RequestId { client: 1, seq: 1 },
            command("gpu", Some(1), Control::Pause),
        );
        machine.apply(
            2,
            RequestId { client: 1, seq: 2 },
            command("pool", None, Control::Scale { n: 4 }),
        );
        machine.apply(
            3,
            RequestId { client: 1, seq: 3 },
            command("gpu", Some(1), Control::Resume),
        );
        machine.apply(
            4,
            RequestId { client: 1, seq: 4 },
            command("gpu", Some(2), Control::Pause),
        );
        machine.apply(
            5,
            RequestId { client: 1, seq: 5 },
            command("gpu", Some(1), Control::Checkpoint),
        );
        let rows = machine.rows_for(1);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.scale, Some(4));
        assert!(!rows[1].1.paused);
        assert_eq!(rows[1].1.checkpoint_epoch, 1);
        assert_eq!(rows[1].1.commands(), Vec::<Control>::new());
        let rows = machine.rows_for(2);
        assert_eq!(rows[1].1.commands(), vec![Control::Pause]);
        assert_eq!(machine.rows_for(3).len(), 1);
    }

    #[test]
    fn status_and_empty_names_are_refused() {
        let machine = ControlMachine::default();
        assert!(machine
            .validate(&command("a", None, Control::Status))
            .is_err());
        assert!(machine
            .validate(&command("", None, Control::Pause))
            .is_err());
        assert!(machine
            .validate(&command("a", None, Control::Pause))
            .is_ok());
    }
}
