//! Control commands, replies and errors: the one protocol every actor answers.
//!
//! A command reaches an actor through its control lane (a small, separate mailbox), so it
//! is seen within one batch even when the data mailbox is full. The same types are used
//! in-process (`Runtime::control`), by the `vortex` command line and by the cluster log.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A command addressed to an actor or pool by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Control {
    /// Stop draining the data mailbox within one batch; queued messages are kept and
    /// producers feel back-pressure once it is full.
    Pause,
    /// Continue draining after a `Pause`.
    Resume,
    /// Ask the actor for a snapshot of its state (its `snapshot` hook).
    Checkpoint,
    /// Grow or shrink a pool to `n` workers. A typed error for a single actor.
    Scale {
        /// The number of workers wanted.
        n: u32,
    },
    /// Report state, mailbox depth and counters.
    Status,
    /// Stop gracefully: refuse new messages, handle what is queued, then stop for good.
    Stop,
    /// A knob: items per batch from now on, for an actor that makes batches (a source).
    /// The autotuner turns it; actors that make no batches answer `Unsupported`.
    SetBatchSize {
        /// Items per batch wanted (at least 1).
        items: u32,
    },
    /// A knob: how many prepared batches a device launcher may hold ahead of the one it
    /// is running. Actors that hold no batches ahead answer `Unsupported`.
    SetPrefetchDepth {
        /// Batches held ahead wanted (at least 1).
        depth: u32,
    },
}

impl Control {
    /// The command's name, lower case, as the command line spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Checkpoint => "checkpoint",
            Control::Scale { .. } => "scale",
            Control::Status => "status",
            Control::Stop => "stop",
            Control::SetBatchSize { .. } => "set-batch-size",
            Control::SetPrefetchDepth { .. } => "set-prefetch-depth",
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Control::Scale { n } => write!(f, "scale {n}"),
            Control::SetBatchSize { items } => write!(f, "set-batch-size {items}"),
            Control::SetPrefetchDepth { depth } => write!(f, "set-prefetch-depth {depth}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Who sent a control command. Every front door stamps its commands: `vortex ctl` as
/// [`Origin::Operator`], the autotuner as [`Origin::Autotuner`], the cluster log as
/// [`Origin::ClusterLog`]; plain in-process calls (`Runtime::control`) are
/// [`Origin::Program`]. Actors do not see it; it exists so that one controller can tell
/// its own commands from a person's (the autotuner leaves a knob alone for a while after
/// someone else turned it) and so that logs and `Status` can say who did what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Origin {
    /// In-process code calling `Runtime::control` (the default).
    #[default]
    Program,
    /// A person, through `vortex ctl` or another operator tool.
    Operator {
        /// Who, as the tool knows them (a user name, `uid:1000`, empty when unknown).
        user: String,
    },
    /// An autotuner actor.
    Autotuner {
        /// The autotuner's registered name.
        actor: String,
    },
    /// An entry of the replicated cluster control log.
    ClusterLog {
        /// The log index of the entry.
        index: u64,
    },
}

impl Origin {
    /// A person through `vortex ctl` (or another operator tool).
    pub fn operator(user: impl Into<String>) -> Self {
        Origin::Operator { user: user.into() }
    }

    /// The autotuner registered as `actor`.
    pub fn autotuner(actor: impl Into<String>) -> Self {
        Origin::Autotuner {
            actor: actor.into(),
        }
    }

    /// The cluster log entry at `index`.
    pub fn cluster_log(index: u64) -> Self {
        Origin::ClusterLog { index }
    }

    /// Whether a command of this origin came from an autotuner (any autotuner).
    pub fn is_autotuner(&self) -> bool {
        matches!(self, Origin::Autotuner { .. })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Program => f.write_str("program"),
            Origin::Operator { user } if user.is_empty() => f.write_str("operator"),
            Origin::Operator { user } => write!(f, "operator {user}"),
            Origin::Autotuner { actor } => write!(f, "autotuner {actor}"),
            Origin::ClusterLog { index } => write!(f, "cluster log #{index}"),
        }
    }
}

/// A command addressed to an actor by name, stamped with its [`Origin`]: what the control
/// socket and the cluster log carry (`Runtime::control_from` takes its three parts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControlRequest {
    /// The registered name of the actor, pool or supervisor.
    pub actor: String,
    /// The command.
    pub command: Control,
    /// Who sent it.
    pub origin: Origin,
}

impl ControlRequest {
    /// A request for `actor` to carry out `command`, sent by `origin`.
    pub fn new(actor: impl Into<String>, command: Control, origin: Origin) -> Self {
        ControlRequest {
            actor: actor.into(),
            command,
            origin,
        }
    }
}

/// What a runtime tells its control listeners after each command it routed by name
/// (`Runtime::control_notices`): who sent what to whom, and whether it was carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlNotice {
    /// The registered name the command addressed.
    pub actor: String,
    /// The command.
    pub command: Control,
    /// Who sent it.
    pub origin: Origin,
    /// Whether the actor carried it out (`Ok` reply).
    pub succeeded: bool,
}

/// The answer to a [`Control`] command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ControlReply {
    /// The actor no longer drains its mailbox.
    Paused,
    /// The actor drains its mailbox again.
    Resumed,
    /// The actor's snapshot.
    Checkpointed(Checkpoint),
    /// The pool now has `to` workers (it had `from`).
    Scaled {
        /// Workers before the command.
        from: u32,
        /// Workers after the command.
        to: u32,
    },
    /// The actor's state and counters.
    Status(StatusReport),
    /// The actor accepted the stop; it handles what is queued and then stops.
    Stopping,
    /// A reply from an actor's own `on_control` override, as text.
    Custom(String),
}

/// A snapshot returned by `Control::Checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The actor's registered name.
    pub actor: String,
    /// Monotonic per actor, starting at 1; a later epoch is a later state.
    pub epoch: u64,
    /// The bytes the actor's `snapshot` hook produced.
    pub bytes: Vec<u8>,
}

/// What kind of thing a registered name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ActorKind {
    /// A single actor with its own mailbox.
    Actor,
    /// A pool of identical workers sharing one mailbox.
    Pool,
    /// A supervisor: it owns children and restarts them.
    Supervisor,
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActorKind::Actor => "actor",
            ActorKind::Pool => "pool",
            ActorKind::Supervisor => "supervisor",
        })
    }
}

/// The life-cycle state of an actor, as `Status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ActorState {
    /// Spawned; `on_start` has not finished yet.
    Starting,
    /// Draining its mailbox.
    Running,
    /// Holding its mailbox after `Control::Pause`.
    Paused,
    /// Failed and waiting (back-off) to be restarted by its supervisor.
    Restarting,
    /// Handling what is left after `Control::Stop` or shutdown.
    Stopping,
    /// Stopped for good.
    Stopped,
    /// Failed and not restarted (restart policy or intensity exhausted).
    Failed,
}

impl fmt::Display for ActorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActorState::Starting => "starting",
            ActorState::Running => "running",
            ActorState::Paused => "paused",
            ActorState::Restarting => "restarting",
            ActorState::Stopping => "stopping",
            ActorState::Stopped => "stopped",
            ActorState::Failed => "failed",
        })
    }
}

/// An actor's state and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The registered name.
    pub name: String,
    /// Actor, pool or supervisor.
    pub kind: ActorKind,
    /// The life-cycle state.
    pub state: ActorState,
    /// Messages queued in the data mailbox now.
    pub mailbox_depth: u64,
    /// The data mailbox's capacity.
    pub mailbox_capacity: u64,
    /// Messages whose handler returned `Ok`.
    pub handled: u64,
    /// Time spent in handlers so far, in microseconds (measured per batch).
    pub handler_micros: u64,
    /// Restarts performed by the supervisor, over the actor's life.
    pub restarts: u64,
    /// Messages that went to the dead-letter sink.
    pub dead_letters: u64,
    /// Workers (1 for a single actor, the pool size for a pool, children for a supervisor).
    pub workers: u32,
    /// Subsystem-specific detail from the actor's `describe` hook (e.g. a journal's
    /// segments and fsync latency), empty when it has none.
    pub detail: String,
}

/// Why a control command could not be carried out. Travels in replies, so it is data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ControlError {
    /// No actor, pool or supervisor is registered under this name.
    #[error("unknown actor `{0}`")]
    UnknownActor(String),
    /// The command does not apply to this kind of actor (e.g. `Scale` on a single actor).
    #[error("`{command}` is not supported by `{actor}` ({reason})")]
    Unsupported {
        /// The actor's name.
        actor: String,
        /// The command's name.
        command: String,
        /// Why.
        reason: String,
    },
    /// The actor is not running (restarting, stopped or failed), so it cannot do this now.
    #[error("`{actor}` cannot take `{command}` while {state}")]
    NotRunning {
        /// The actor's name.
        actor: String,
        /// The command's name.
        command: String,
        /// The state it is in.
        state: ActorState,
    },
    /// The actor has no `snapshot` hook (it returned `None`).
    #[error("`{0}` has no snapshot to take")]
    NoSnapshot(String),
    /// A `Scale` to zero workers, or beyond the pool's maximum.
    #[error("cannot scale `{actor}` to {requested} workers (allowed 1..={max})")]
    InvalidScale {
        /// The pool's name.
        actor: String,
        /// What was asked for.
        requested: u32,
        /// The largest size allowed.
        max: u32,
    },
    /// The actor did not answer within the deadline.
    #[error("`{0}` did not answer the control command in time")]
    Timeout(String),
    /// The actor's own `on_control` hook rejected the command.
    #[error("`{actor}` rejected the command: {reason}")]
    Rejected {
        /// The actor's name.
        actor: String,
        /// The reason it gave.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn knobs_round_trip_through_the_wire_and_keep_their_names() {
        let table = [
            (
                Control::SetBatchSize { items: 32 },
                "set-batch-size",
                "set-batch-size 32",
            ),
            (
                Control::SetPrefetchDepth { depth: 3 },
                "set-prefetch-depth",
                "set-prefetch-depth 3",
            ),
            (Control::Scale { n: 4 }, "scale", "scale 4"),
            (Control::Resume, "resume", "resume"),
        ];
        for (command, name, shown) in table {
            let bytes = wire::encode(&command).expect("encode");
            let back: Control = wire::decode(&bytes).expect("decode");
            assert_eq!(back, command);
            assert_eq!(back.name(), name);
            assert_eq!(back.to_string(), shown);
        }
    }

    #[test]
    fn origins_round_trip_and_say_who() {
        let table = [
            (Origin::Program, "program"),
            (Origin::operator("ada"), "operator ada"),
            (Origin::operator(""), "operator"),
            (Origin::autotuner("autotuner"), "autotuner autotuner"),
            (Origin::cluster_log(42), "cluster log #42"),
        ];
        for (origin, shown) in table {
            let request =
                ControlRequest::new("preprocess", Control::Scale { n: 3 }, origin.clone());
            let bytes = wire::encode(&request).expect("encode");
            let back: ControlRequest = wire::decode(&bytes).expect("decode");
            assert_eq!(back, request);
            assert_eq!(origin.to_string(), shown);
            assert_eq!(origin.is_autotuner(), shown.starts_with("autotuner"));
        }
        assert_eq!(Origin::default(), Origin::Program);
    }

    #[test]
    fn knobs_are_distinct_on_the_wire() {
        let batch = wire::encode(&Control::SetBatchSize { items: 2 }).expect("encode");
        let prefetch = wire::encode(&Control::SetPrefetchDepth { depth: 2 }).expect("encode");
        assert_ne!(batch, prefetch);
    }
}
