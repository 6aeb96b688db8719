//! The state an address owns and every incarnation of its cell shares: mailbox, counters,
//! flags, the factory that builds a fresh actor, and the latest checkpoint.

use crate::sync::lock;
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst},
        Arc, Mutex,
    },
    time::Duration,
};

use vortex_messages::{
    ActorKind, ActorState, Checkpoint, Control, ControlError, ControlReply, StatusReport,
};

use crate::{
    actor::Actor,
    checkpoint::CheckpointSink,
    dead_letter::{DeadLetter, DeadLetterReason, DeadLetters},
    deadline::Deadlines,
    mailbox::Mailbox,
    sample::{next_registration, ActorSample, HandlerTimes},
};

/// Per-actor settings, resolved from the spec and the runtime's defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActorConfig {
    pub(crate) capacity: usize,
    pub(crate) batch: usize,
    pub(crate) ask_timeout: Duration,
    /// How long `on_start` (with the factory and `restore`) may take.
    pub(crate) start_timeout: Duration,
    /// How long a halted incarnation may take to finish its message and `on_stop`.
    pub(crate) stop_timeout: Duration,
}

/// Counters, written once per batch by the draining cell.
#[derive(Default)]
pub(crate) struct Stats {
    handled: AtomicU64,
    handler_nanos: AtomicU64,
    dead_letters: AtomicU64,
    restarts: AtomicU64,
    /// Handler time per batch drain, for exporters (see `sample.rs`).
    handler_times: HandlerTimes,
}

impl Stats {
    pub(crate) fn add_handled(&self, n: u64) {
        if n > 0 {
            self.handled.fetch_add(n, Relaxed);
        }
    }
    pub(crate) fn handled(&self) -> u64 {
        self.handled.load(Relaxed)
    }
    pub(crate) fn add_handler_time(&self, elapsed: std::time::Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.handler_nanos.fetch_add(nanos, Relaxed);
        // Called once per batch drain: the drain's time is one sample of the distribution.
        self.handler_times.record(elapsed);
    }
    pub(crate) fn handler_micros(&self) -> u64 {
        self.handler_nanos.load(Relaxed) / 1_000
    }
    pub(crate) fn add_restart(&self) {
        self.restarts.fetch_add(1, Relaxed);
    }
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Relaxed)
    }
    pub(crate) fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Relaxed)
    }
}

pub(crate) type Factory<A> = dyn Fn() -> A + Send + Sync;

/// Everything an address owns.
pub(crate) struct Shared<A: Actor> {
    pub(crate) name: Arc<str>,
    pub(crate) kind: ActorKind,
    pub(crate) mailbox: Mailbox<A::Message>,
    pub(crate) config: ActorConfig,
    pub(crate) factory: Box<Factory<A>>,
    pub(crate) stats: Stats,
    state: AtomicU8,
    paused: AtomicBool,
    stopping: AtomicBool,
    /// It will never run again: its mailbox is closed and emptied for good.
    retired: AtomicBool,
    /// Live workers (1 for a single actor).
    pub(crate) workers: AtomicU32,
    epoch: AtomicU64,
    latest: Mutex<Option<Checkpoint>>,
    pub(crate) dead_letters: Arc<DeadLetters>,
    pub(crate) checkpoints: Option<Arc<dyn CheckpointSink>>,
    /// The runtime's ask-deadline wheel.
    pub(crate) deadlines: Deadlines,
    /// Unique to this registration (see `ActorSample::registration`).
    registration: u64,
}

/// What every actor of a runtime shares with the runtime.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) dead_letters: Arc<DeadLetters>,
    pub(crate) checkpoints: Option<Arc<dyn CheckpointSink>>,
    pub(crate) deadlines: Deadlines,
}

impl<A: Actor> Shared<A> {
    pub(crate) fn new(
        name: Arc<str>,
        kind: ActorKind,
        mailbox: Mailbox<A::Message>,
        config: ActorConfig,
        factory: Box<Factory<A>>,
        services: Services,
    ) -> Self {
        let Services {
            dead_letters,
            checkpoints,
            deadlines,
        } = services;
        Shared {
            name,
            kind,
            mailbox,
            config,
            factory,
            stats: Stats::default(),
            state: AtomicU8::new(encode_state(ActorState::Starting)),
            paused: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            workers: AtomicU32::new(0),
            epoch: AtomicU64::new(0),
            latest: Mutex::new(None),
            dead_letters,
            checkpoints,
            deadlines,
            registration: next_registration(),
        }
    }

    /// The counters an exporter samples (see `RuntimeObserver::samples`).
    pub(crate) fn sample(&self) -> ActorSample {
        ActorSample {
            status: self.status(),
            registration: self.registration,
            handler_batches: self.stats.handler_times.snapshot(),
        }
    }

    pub(crate) fn state(&self) -> ActorState {
        decode_state(self.state.load(SeqCst))
    }

    pub(crate) fn set_state(&self, state: ActorState) {
        self.state.store(encode_state(state), SeqCst);
    }

    /// The state a running cell should show (paused or running).
    pub(crate) fn set_live_state(&self) {
        self.set_state(if self.is_paused() {
            ActorState::Paused
        } else {
            ActorState::Running
        });
    }

    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Relaxed)
    }

    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(SeqCst)
    }

    /// `Stop`: refuse new messages, handle what is queued, then stop for good.
    pub(crate) fn request_stop(&self) {
        self.stopping.store(true, SeqCst);
        self.paused.store(false, SeqCst);
        self.mailbox.close();
        self.set_state(ActorState::Stopping);
        self.mailbox.dispatch.wake_all();
    }

    /// Records a message that was taken but not handled.
    pub(crate) fn dead_letter(&self, reason: DeadLetterReason, message: Option<A::Message>) {
        self.stats.dead_letters.fetch_add(1, Relaxed);
        self.dead_letters.push(DeadLetter {
            actor: self.name.to_string(),
            reason,
            message_type: std::any::type_name::<A::Message>(),
            message: message.map(|message| Box::new(message) as Box<dyn std::any::Any + Send>),
        });
    }

    /// Stores a fresh snapshot under the next epoch: in memory, and durably through the
    /// runtime's [`CheckpointSink`] when one is configured (off the async workers).
    pub(crate) async fn store_checkpoint(
        &self,
        bytes: Vec<u8>,
    ) -> Result<Checkpoint, ControlError> {
        let checkpoint = Checkpoint {
            actor: self.name.to_string(),
            epoch: self.epoch.fetch_add(1, SeqCst) + 1,
            bytes,
        };
        if let Some(sink) = &self.checkpoints {
            let (sink, saved) = (Arc::clone(sink), checkpoint.clone());
            let outcome = tokio::task::spawn_blocking(move || sink.save(&saved))
                .await
                .unwrap_or_else(|error| Err(format!("checkpoint writer panicked: {error}")));
            if let Err(reason) = outcome {
                // The epoch stays used: a later checkpoint never reuses a number that may
                // be partly on disk.
                return Err(ControlError::Rejected {
                    actor: self.name.to_string(),
                    reason: format!("checkpoint {} not saved: {reason}", checkpoint.epoch),
                });
            }
        }
        *lock(&self.latest) = Some(checkpoint.clone());
        Ok(checkpoint)
    }

    /// The latest checkpoint, if any: the one taken in this runtime, else the sink's
    /// (after a process restart). Also moves the epoch counter past it.
    pub(crate) async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, String> {
        let in_memory = lock(&self.latest).clone();
        let latest = match (in_memory, &self.checkpoints) {
            (Some(checkpoint), _) => Some(checkpoint),
            (None, None) => None,
            (None, Some(sink)) => {
                let (sink, name) = (Arc::clone(sink), self.name.to_string());
                tokio::task::spawn_blocking(move || sink.latest(&name))
                    .await
                    .unwrap_or_else(|error| Err(format!("checkpoint reader panicked: {error}")))?
            }
        };
        if let Some(checkpoint) = &latest {
            self.epoch.fetch_max(checkpoint.epoch, SeqCst);
        }
        Ok(latest)
    }

    /// Whether it will never run again (see [`Shared::collect_undelivered`]).
    #[inline]
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(SeqCst)
    }

    /// It will never run again: closes the mailbox for good, moves every queued message to
    /// the dead-letter sink as `Undelivered` (returns how many), and, if there were any,
    /// wakes every waiting ask so that one whose request lies among them fails with
    /// `Stopped` at once, instead of waiting for its deadline while the dead-letter sink
    /// holds its reply. (With nothing queued, no ask can be waiting for this actor: a
    /// request handled earlier was answered or dropped, a later one meets a closed mailbox.)
    pub(crate) fn retire(&self) -> usize {
        self.mailbox.close();
        let count = self.collect_undelivered();
        self.retired.store(true, SeqCst);
        if count > 0 {
            self.deadlines.wake_all();
        }
        count
    }

    /// Moves every queued message of a closed mailbox to the dead-letter sink as
    /// `Undelivered`; returns how many.
    pub(crate) fn collect_undelivered(&self) -> usize {
        if self.mailbox.is_empty() {
            // Nothing queued and (closed) nothing can be: only the ring to give back.
            self.mailbox.release_ring();
            return 0;
        }
        let mut reader = self.mailbox.reader();
        let left = self.mailbox.take_all(&mut reader);
        let count = left.len();
        for message in left {
            self.dead_letter(DeadLetterReason::Undelivered, Some(message));
        }
        count
    }

    pub(crate) fn status(&self) -> StatusReport {
        StatusReport {
            name: self.name.to_string(),
            kind: self.kind,
            state: self.state(),
            mailbox_depth: self.mailbox.len() as u64,
            mailbox_capacity: self.mailbox.capacity() as u64,
            handled: self.stats.handled(),
            handler_micros: self.stats.handler_micros(),
            restarts: self.stats.restarts(),
            dead_letters: self.stats.dead_letters() + self.mailbox.rejected(),
            workers: self.workers.load(SeqCst),
            detail: String::new(),
        }
    }

    /// The default answer to a command that needs no actor state (see docs/semantics.md).
    pub(crate) fn default_control(&self, command: &Control) -> Result<ControlReply, ControlError> {
        match command {
            Control::Pause => {
                self.paused.store(true, SeqCst);
                if matches!(self.state(), ActorState::Running) {
                    self.set_state(ActorState::Paused);
                }
                Ok(ControlReply::Paused)
            }
            Control::Resume => {
                self.paused.store(false, SeqCst);
                if matches!(self.state(), ActorState::Paused) {
                    self.set_state(ActorState::Running);
                }
                self.mailbox.dispatch.wake_all();
                Ok(ControlReply::Resumed)
            }
            Control::Status => Ok(ControlReply::Status(self.status())),
            Control::Stop => {
                self.request_stop();
                Ok(ControlReply::Stopping)
            }
            Control::Scale { .. } => Err(ControlError::Unsupported {
                actor: self.name.to_string(),
                command: command.name().to_owned(),
                reason: "only pools scale".to_owned(),
            }),
            Control::Checkpoint => Err(ControlError::NotRunning {
                actor: self.name.to_string(),
                command: command.name().to_owned(),
                state: self.state(),
            }),
            _ => Err(ControlError::Unsupported {
                actor: self.name.to_string(),
                command: command.name().to_owned(),
                reason: "unknown command".to_owned(),
            }),
        }
    }
}

fn encode_state(state: ActorState) -> u8 {
    match state {
        ActorState::Starting => 0,
        ActorState::Running => 1,
        ActorState::Paused => 2,
        ActorState::Restarting => 3,
        ActorState::Stopping => 4,
        ActorState::Stopped => 5,
        _ => 6,
    }
}

fn decode_state(value: u8) -> ActorState {
    match value {
        0 => ActorState::Starting,
        1 => ActorState::Running,
        2 => ActorState::Paused,
        3 => ActorState::Restarting,
        4 => ActorState::Stopping,
        5 => ActorState::Stopped,
        _ => ActorState::Failed,
    }
}
