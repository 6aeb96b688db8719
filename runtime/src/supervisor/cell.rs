//! The supervisor cell: the kameo actor behind every supervisor, every pool and the root.
//!
//! It never waits for a child's start inside a handler: a child is started and its
//! start-up result comes back as a [`ChildStarted`] message (the cell reports it from its
//! own start-up, bounded by the start timeout). That is what lets an actor spawn actors
//! from `on_start` or from a handler without deadlocking its supervisor. Halting a child
//! is awaited, but bounded by the stop timeout (past it the child is aborted), so no
//! handler of a supervisor waits without a deadline.
//!
//! Restarts of a restart set (one-for-all, rest-for-one) run one after another in start
//! order: the next starts when the previous reported its start-up, failed or not. Each
//! child has its own back-off sequence (and timer), so one crash-looping child never
//! delays another's first restart. Restarts count against the supervisor's intensity, as
//! in OTP. (The runtime's root, whose children each have their own budget, is not a
//! supervisor cell: see `root`.)

use std::{
    collections::VecDeque,
    sync::{atomic::Ordering::SeqCst, Arc},
    time::Duration,
};

use kameo::{
    actor::{ActorRef, WeakActorRef},
    error::ActorStopReason,
    message::{Context as KameoContext, Message},
};
use tokio::time::Instant;
use vortex_messages::{ActorState, ControlError};

use super::{
    child::Child,
    policy::{restart_set, wants_restart, RestartBudget, Verdict},
    Intensity, Restart, SupervisorPlan,
};
use crate::cell::{Exit, ExitReport, StartReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Started; its start-up result has not come back yet.
    Starting,
    Running,
    /// Waiting for its restart (back-off, or its turn in a restart set).
    Pending,
    /// Not running and not coming back on its own (halted, failed for good).
    Down,
}

struct Slot {
    id: u64,
    child: Arc<dyn Child>,
    restart: Restart,
    generation: u64,
    state: SlotState,
    /// Back-off sequence of this child (and, at the root, its restart intensity).
    budget: RestartBudget,
    /// The current restart timer; an older `RestartDue` is stale.
    token: u64,
    /// The pool worker index it holds, for pools.
    worker: Option<usize>,
}

pub(crate) struct SupervisorArgs {
    pub(crate) plan: SupervisorPlan,
    pub(crate) report: ExitReport,
    pub(crate) started: StartReport,
}

/// The kameo actor behind every supervisor (and every pool).
pub(crate) struct SupervisorCell {
    plan: SupervisorPlan,
    slots: Vec<Slot>,
    /// The supervisor-wide intensity.
    budget: RestartBudget,
    /// Children due for a restart (id, restart token), in start order, started one at a
    /// time; an entry whose token is no longer the child's is stale.
    queue: VecDeque<(u64, u64)>,
    /// The child of the restart queue whose start-up is in progress.
    starting: Option<u64>,
    report: Option<ExitReport>,
    exit: Option<Exit>,
    this: ActorRef<SupervisorCell>,
}

/// A child's start-up finished (sent from the child's own start-up).
pub(crate) struct ChildStarted {
    id: u64,
    generation: u64,
    result: Result<(), String>,
}

/// A child ended (sent by the child's cell from kameo's `on_stop`).
pub(crate) struct ChildExited {
    id: u64,
    generation: u64,
    exit: Exit,
}

/// Back-off elapsed: queue these children (in start order) for their restart.
struct RestartDue {
    members: Vec<(u64, u64)>,
}

/// Resizes a pool.
pub(crate) struct ScalePool(pub(crate) u32);

/// Halts every child, youngest first, then stops the supervisor.
pub(crate) struct HaltAll;

impl kameo::Actor for SupervisorCell {
    type Args = SupervisorArgs;
    type Error = String;

    async fn on_start(args: SupervisorArgs, this: ActorRef<Self>) -> Result<Self, String> {
        let plan = args.plan;
        let budget = RestartBudget::new(plan.intensity, plan.backoff);
        let initial: Vec<_> = plan.children().clone();
        let mut cell = SupervisorCell {
            plan,
            slots: Vec::new(),
            budget,
            queue: VecDeque::new(),
            starting: None,
            report: Some(args.report),
            exit: None,
            this,
        };
        // A tree starts its children in order, each once the previous finished starting
        // (this is the supervisor's own start-up, bounded by each child's start timeout).
        for (child, restart) in initial {
            let id = cell.add_slot(child, restart);
            let started = cell.start_slot(id, None).await;
            if let Err(reason) = started {
                cell.halt_all().await;
                let reason = format!("`{}` failed to start: {reason}", cell.name_of(id));
                (args.started)(Err(reason.clone()));
                return Err(reason);
            }
        }
        cell.plan.status.set(ActorState::Running);
        (args.started)(Ok(()));
        Ok(cell)
    }

    async fn on_stop(
        &mut self,
        _: WeakActorRef<Self>,
        reason: ActorStopReason,
    ) -> Result<(), String> {
        let exit = self.exit.take().unwrap_or(match reason {
            ActorStopReason::Panicked(error) => {
                Exit::Failed(format!("supervisor panicked: {error}"))
            }
            _ => Exit::Halted,
        });
        if let Some(report) = self.report.take() {
            report.send(exit);
        }
        Ok(())
    }
}

impl SupervisorCell {
    fn index_of(&self, id: u64) -> Option<usize> {
        self.slots.iter().position(|slot| slot.id == id)
    }

    fn name_of(&self, id: u64) -> String {
        self.index_of(id)
            .map(|index| self.slots[index].child.name().to_owned())
            .unwrap_or_default()
    }

    fn add_slot(&mut self, child: Arc<dyn Child>, restart: Restart) -> u64 {
        let id = self.plan.ids.fetch_add(1, SeqCst);
        // Restarts count against the supervisor's intensity; a child's own budget only
        // keeps its back-off sequence.
        let intensity = Intensity::new(u32::MAX, Duration::from_secs(1));
        let worker = self.plan.worker_maker.as_ref().map(|_| self.free_worker());
        self.slots.push(Slot {
            id,
            child,
            restart,
            generation: 0,
            state: SlotState::Down,
            budget: RestartBudget::new(intensity, self.plan.backoff),
            token: 0,
            worker,
        });
        self.plan.status.children.fetch_add(1, SeqCst);
        id
    }

    /// The lowest pool worker index no slot holds.
    fn free_worker(&self) -> usize {
        (0..)
            .find(|index| !self.slots.iter().any(|slot| slot.worker == Some(*index)))
            .unwrap_or(0)
    }

    /// Starts a fresh incarnation of child `id`. Its start-up result reaches this
    /// supervisor as a [`ChildStarted`] message (and `also`, when given); the returned
    /// future resolves with it too.
    fn start_slot(&mut self, id: u64, also: Option<StartReport>) -> super::child::StartWait {
        let index = self.index_of(id).expect("a slot being started exists");
        let slot = &mut self.slots[index];
        slot.generation += 1;
        slot.state = SlotState::Starting;
        let generation = slot.generation;
        let report = exit_report(self.this.clone(), id, generation);
        let supervisor = self.this.clone();
        let started: StartReport = Box::new(move |result: Result<(), String>| {
            if let Some(also) = also {
                also(result.clone());
            }
            let _ = supervisor
                .tell(ChildStarted {
                    id,
                    generation,
                    result,
                })
                .try_send();
        });
        slot.child.start(report, started)
    }

    async fn halt_slot(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.generation += 1; // late reports of this incarnation are stale now
        slot.token += 1; // and so is a pending restart timer
        slot.state = SlotState::Down;
        slot.child.halt().await;
    }

    async fn halt_all(&mut self) {
        self.queue.clear();
        self.starting = None;
        for index in (0..self.slots.len()).rev() {
            self.halt_slot(index).await;
        }
    }

    /// Starts queued restarts one at a time, in the order they were queued.
    fn pump(&mut self) {
        while self.starting.is_none() {
            let Some((id, token)) = self.queue.pop_front() else {
                return;
            };
            let Some(index) = self.index_of(id) else {
                continue;
            };
            if self.slots[index].state != SlotState::Pending || self.slots[index].token != token {
                continue;
            }
            self.slots[index].child.note_restart();
            self.plan.status.restarts_performed.fetch_add(1, SeqCst);
            drop(self.start_slot(id, None));
            self.starting = Some(id);
        }
    }

    async fn child_started(&mut self, id: u64, result: Result<(), String>, ctx: &mut Ctx) {
        if self.starting == Some(id) {
            self.starting = None;
        }
        if let Some(index) = self.index_of(id) {
            match result {
                Ok(()) => self.slots[index].state = SlotState::Running,
                Err(reason) => {
                    tracing::warn!(target: "vortex.restart", supervisor = %self.plan.name,
                        child = %self.slots[index].child.name(), %reason, "start failed");
                    let exit = Exit::Failed(format!("start failed: {reason}"));
                    self.child_down(index, exit, ctx).await;
                }
            }
        }
        // The next restart of the queue, in start order, whether this one failed or not.
        self.pump();
    }

    fn remove_slot(&mut self, index: usize) -> Slot {
        let slot = self.slots.remove(index);
        self.plan
            .children()
            .retain(|(child, _)| !Arc::ptr_eq(child, &slot.child));
        self.plan.status.children.fetch_sub(1, SeqCst);
        slot
    }

    /// A child ended, or its restart failed to start: policy, intensity, strategy, back-off.
    async fn child_down(&mut self, index: usize, exit: Exit, ctx: &mut Ctx) {
        self.slots[index].state = SlotState::Down;
        if !wants_restart(self.slots[index].restart, &exit) {
            self.end_for_good(index, exit);
            return;
        }
        let now = Instant::now();
        let verdict = self.slots[index].budget.record(now);
        if self.budget.record(now) == Verdict::Escalate {
            self.escalate(&exit, ctx).await;
            return;
        }
        // A child's own budget has an unbounded intensity: it only times the back-off.
        if let Verdict::RestartAfter(delay) = verdict {
            self.schedule_restart(index, &exit, delay).await;
        }
    }

    /// It will never run again: failed children stay listed as `Failed` (their mailbox
    /// closed and emptied), stopped ones are forgotten and release their name.
    fn end_for_good(&mut self, index: usize, exit: Exit) {
        let slot = &mut self.slots[index];
        slot.state = SlotState::Down;
        slot.token += 1;
        let failed = matches!(exit, Exit::Failed(_));
        slot.child.set_state(if failed {
            ActorState::Failed
        } else {
            ActorState::Stopped
        });
        slot.child.retire();
        if !failed {
            self.remove_slot(index).child.forget();
        }
    }

    async fn schedule_restart(&mut self, index: usize, exit: &Exit, delay: Duration) {
        // A child waiting for its own restart belongs to the set too: the set restarts
        // again, in start order, from the top.
        let members_of: Vec<bool> = self
            .slots
            .iter()
            .map(|slot| slot.state != SlotState::Down)
            .collect();
        let live: Vec<bool> = self
            .slots
            .iter()
            .map(|slot| matches!(slot.state, SlotState::Running | SlotState::Starting))
            .collect();
        let set = restart_set(self.plan.strategy, index, &members_of);
        let failed_id = self.slots[index].id;
        // Halt the siblings that go down with it, youngest first (each bounded by its stop
        // timeout). A `Temporary` sibling goes down with it but is never restarted.
        let mut ids: Vec<u64> = set.iter().map(|&member| self.slots[member].id).collect();
        for &member in set.iter().rev() {
            if member != index && live[member] {
                self.halt_slot(member).await;
            }
        }
        ids.retain(|&id| {
            let Some(member) = self.index_of(id) else {
                return false;
            };
            if id != failed_id && self.slots[member].restart == Restart::Temporary {
                self.end_for_good(member, Exit::Halted);
                return false;
            }
            true
        });
        let mut members = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(member) = self.index_of(id) else {
                continue;
            };
            let slot = &mut self.slots[member];
            slot.child.set_state(ActorState::Restarting);
            slot.state = SlotState::Pending;
            slot.token += 1;
            members.push((id, slot.token));
        }
        let name = self.name_of(failed_id);
        tracing::info_span!("vortex.restart", supervisor = %self.plan.name, child = %name)
            .in_scope(|| {
                tracing::warn!(
                    target: "vortex.restart",
                    reason = ?exit,
                    delay_ms = delay.as_millis() as u64,
                    restarting = members.len(),
                    "restarting after failure"
                )
            });
        // One timer per restart set, with the failed child's own back-off: another child's
        // crash loop never postpones it. Detached on purpose: a stale token is a no-op.
        drop(self.this.tell(RestartDue { members }).send_after(delay));
    }

    async fn escalate(&mut self, exit: &Exit, ctx: &mut Ctx) {
        let reason = format!(
            "restart intensity exceeded ({} restarts within {:?}); last failure: {exit:?}",
            self.plan.intensity.max_restarts, self.plan.intensity.within
        );
        tracing::info_span!("vortex.escalate", supervisor = %self.plan.name)
            .in_scope(|| tracing::error!(target: "vortex.restart", %reason, "escalating"));
        self.plan.status.escalations.fetch_add(1, SeqCst);
        // Stop the restart loop at once: no pending restart survives (tokens), no queued
        // start runs, every incarnation is halted before the parent hears of it.
        self.halt_all().await;
        for slot in &mut self.slots {
            slot.token += 1;
            slot.child.set_state(ActorState::Failed);
        }
        self.plan.status.set(ActorState::Failed);
        self.exit = Some(Exit::Failed(reason));
        ctx.stop();
    }

    async fn scale(&mut self, wanted: u32) -> Result<(u32, u32), ControlError> {
        let Some(maker) = self.plan.worker_maker.clone() else {
            return Err(ControlError::Unsupported {
                actor: self.plan.name.to_string(),
                command: "scale".into(),
                reason: "only pools scale".into(),
            });
        };
        if wanted == 0 || wanted > self.plan.max_workers {
            return Err(ControlError::InvalidScale {
                actor: self.plan.name.to_string(),
                requested: wanted,
                max: self.plan.max_workers,
            });
        }
        let from = self.running();
        let mut starts = Vec::new();
        let mut started = 0;
        while (self.slots.len() as u32) < wanted {
            let index = self.free_worker();
            let child = maker(index);
            let restart = self
                .slots
                .first()
                .map_or(Restart::Permanent, |slot| slot.restart);
            self.plan.children().push((Arc::clone(&child), restart));
            let id = self.add_slot(child, restart);
            starts.push(self.start_slot(id, None));
        }
        // Bounded by each worker's start timeout; a failure is the pool's restart policy's
        // (its `ChildStarted` follows), and the reply counts what runs.
        for start in starts {
            match start.await {
                Ok(()) => started += 1,
                Err(reason) => {
                    tracing::warn!(pool = %self.plan.name, %reason, "new pool worker failed to start")
                }
            }
        }
        while (self.slots.len() as u32) > wanted {
            // Retire the youngest worker: it finishes its current message; the queue stays.
            let index = self.slots.len() - 1;
            self.halt_slot(index).await;
            self.remove_slot(index);
        }
        // New workers' `ChildStarted` is still in this mailbox: count their start-ups here.
        Ok((from, self.running() + started))
    }

    fn running(&self) -> u32 {
        self.slots
            .iter()
            .filter(|slot| slot.state == SlotState::Running)
            .count() as u32
    }
}

type Ctx = KameoContext<SupervisorCell, ()>;

/// An exit report that tells `supervisor` how incarnation `generation` of child `id` ended,
/// so that a late report from an old incarnation is recognised and ignored.
fn exit_report(supervisor: ActorRef<SupervisorCell>, id: u64, generation: u64) -> ExitReport {
    ExitReport::Call(Box::new(move |exit| {
        let _ = supervisor
            .tell(ChildExited {
                id,
                generation,
                exit,
            })
            .try_send();
    }))
}

impl Message<ChildStarted> for SupervisorCell {
    type Reply = ();

    async fn handle(&mut self, message: ChildStarted, ctx: &mut Ctx) {
        let current = self
            .index_of(message.id)
            .is_some_and(|index| self.slots[index].generation == message.generation);
        if current {
            self.child_started(message.id, message.result, ctx).await;
        }
    }
}

impl Message<ChildExited> for SupervisorCell {
    type Reply = ();

    async fn handle(&mut self, message: ChildExited, ctx: &mut Ctx) {
        let Some(index) = self
            .slots
            .iter()
            .position(|slot| slot.id == message.id && slot.generation == message.generation)
        else {
            return; // a halted or replaced incarnation
        };
        if matches!(message.exit, Exit::Halted) {
            self.slots[index].state = SlotState::Down;
            return;
        }
        self.child_down(index, message.exit, ctx).await;
        if self.plan.worker_maker.is_some() && self.slots.is_empty() {
            // A pool whose last worker stopped for good (`Stop`) stops with it; its parent
            // forgets it and its name is released.
            self.plan.status.set(ActorState::Stopped);
            self.exit = Some(Exit::Stopped);
            ctx.stop();
        }
    }
}

impl Message<RestartDue> for SupervisorCell {
    type Reply = ();

    async fn handle(&mut self, message: RestartDue, _: &mut Ctx) {
        for (id, token) in message.members {
            let due = self
                .index_of(id)
                .is_some_and(|index| self.slots[index].token == token);
            if due {
                self.queue.push_back((id, token));
            }
        }
        self.pump();
    }
}

impl Message<ScalePool> for SupervisorCell {
    type Reply = Result<(u32, u32), ControlError>;

    async fn handle(
        &mut self,
        message: ScalePool,
        _: &mut KameoContext<Self, Self::Reply>,
    ) -> Self::Reply {
        self.scale(message.0).await
    }
}

impl Message<HaltAll> for SupervisorCell {
    type Reply = ();

    async fn handle(&mut self, _: HaltAll, ctx: &mut Ctx) {
        self.halt_all().await;
        self.plan.status.set(ActorState::Stopped);
        self.exit = Some(Exit::Halted);
        ctx.stop();
    }
}
