//! Supervision trees on kameo: a supervisor is a kameo actor that starts its children in
//! order, hears how each incarnation ended (cells report from kameo's `on_stop`), and
//! applies the rules in `policy`: restart policy, strategy, restart intensity and
//! exponential back-off. kameo's own `supervision_strategy()` is a static function per
//! actor type and has no back-off, so the strategy is data here, per supervisor instance.

pub(crate) mod child;
pub(crate) mod policy;

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::SeqCst},
        Arc, Mutex, PoisonError,
    },
};

use futures::future::BoxFuture;
use kameo::{
    actor::{ActorRef, Spawn, WeakActorRef},
    error::ActorStopReason,
    message::{Context as KameoContext, Message},
};
use tokio::time::Instant;
use vortex_messages::{ActorState, ControlError};

use crate::cell::{Exit, ExitReport};
use child::Child;
use policy::{restart_set, wants_restart, RestartBudget, Verdict};
pub use policy::{Backoff, Intensity, Restart, Strategy};

/// A supervisor's children in start order, with their restart policies.
pub(crate) type ChildList = Arc<Mutex<Vec<(Arc<dyn Child>, Restart)>>>;

/// Builds worker `index` of a pool (used by `Scale`).
pub(crate) type WorkerMaker = Arc<dyn Fn(usize) -> Arc<dyn Child> + Send + Sync>;

/// Counters and state of one supervisor, readable without asking it.
#[derive(Default)]
pub(crate) struct SupervisorStatus {
    state: AtomicU8,
    /// Times this supervisor itself was restarted by its parent.
    pub(crate) restarts: AtomicU64,
    /// Restarts this supervisor performed on its children.
    pub(crate) restarts_performed: AtomicU64,
    pub(crate) escalations: AtomicU64,
    pub(crate) children: AtomicU32,
}

impl SupervisorStatus {
    pub(crate) fn state(&self) -> ActorState {
        match self.state.load(SeqCst) {
            0 => ActorState::Starting,
            1 => ActorState::Running,
            2 => ActorState::Stopped,
            _ => ActorState::Failed,
        }
    }
    fn set(&self, state: ActorState) {
        let value = match state {
            ActorState::Starting => 0,
            ActorState::Running => 1,
            ActorState::Stopped => 2,
            _ => 3,
        };
        self.state.store(value, SeqCst);
    }
}

impl SupervisorPlan {
    /// The children list, locked (nothing panics while holding it; recover if it did).
    fn children(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<dyn Child>, Restart)>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything a supervisor is made of; kept by its [`SupervisorChild`] so that a restart
/// of the supervisor itself builds an identical one over the same children.
#[derive(Clone)]
pub(crate) struct SupervisorPlan {
    pub(crate) name: Arc<str>,
    pub(crate) strategy: Strategy,
    pub(crate) intensity: Intensity,
    pub(crate) backoff: Backoff,
    pub(crate) children: ChildList,
    pub(crate) worker_maker: Option<WorkerMaker>,
    pub(crate) max_workers: u32,
    pub(crate) status: Arc<SupervisorStatus>,
}

struct Slot {
    id: u64,
    child: Arc<dyn Child>,
    restart: Restart,
    generation: u64,
    live: bool,
}

/// The kameo actor behind every supervisor (and every pool).
pub(crate) struct SupervisorCell {
    plan: SupervisorPlan,
    slots: Vec<Slot>,
    next_id: u64,
    next_worker: usize,
    budget: RestartBudget,
    pending: BTreeSet<u64>,
    restart_token: u64,
    report: Option<ExitReport>,
    exit: Option<Exit>,
    this: ActorRef<SupervisorCell>,
}

/// An exit report that tells `supervisor` how incarnation `generation` of child `id` ended,
/// so that a late report from an old incarnation is recognised and ignored.
fn exit_report(supervisor: ActorRef<SupervisorCell>, id: u64, generation: u64) -> ExitReport {
    Box::new(move |exit| {
        let _ = supervisor
            .tell(ChildExited {
                id,
                generation,
                exit,
            })
            .try_send();
    })
}

pub(crate) struct SupervisorArgs {
    pub(crate) plan: SupervisorPlan,
    pub(crate) report: Option<ExitReport>,
}

/// A child ended (sent by the child's cell from kameo's `on_stop`).
pub(crate) struct ChildExited {
    pub(crate) id: u64,
    pub(crate) generation: u64,
    pub(crate) exit: Exit,
}

/// Back-off elapsed: restart the pending children (if `token` is still current).
struct RestartDue {
    token: u64,
}

/// Adds and starts a child (the root supervisor, for `Runtime::spawn`).
pub(crate) struct AddChild {
    pub(crate) child: Arc<dyn Child>,
    pub(crate) restart: Restart,
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
            next_worker: initial.len(),
            plan,
            slots: Vec::new(),
            next_id: 0,
            budget,
            pending: BTreeSet::new(),
            restart_token: 0,
            report: args.report,
            exit: None,
            this,
        };
        for (child, restart) in initial {
            if let Err(reason) = cell.add_and_start(child, restart).await {
                cell.halt_all().await;
                return Err(reason);
            }
        }
        cell.plan.status.set(ActorState::Running);
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
            report(exit);
        }
        Ok(())
    }
}

impl SupervisorCell {
    async fn add_and_start(
        &mut self,
        child: Arc<dyn Child>,
        restart: Restart,
    ) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push(Slot {
            id,
            child,
            restart,
            generation: 0,
            live: false,
        });
        self.plan.status.children.fetch_add(1, SeqCst);
        let index = self.slots.len() - 1;
        self.start_slot(index).await
    }

    fn report_for(&self, index: usize) -> ExitReport {
        exit_report(
            self.this.clone(),
            self.slots[index].id,
            self.slots[index].generation,
        )
    }

    async fn start_slot(&mut self, index: usize) -> Result<(), String> {
        self.slots[index].generation += 1;
        let report = self.report_for(index);
        let started = self.slots[index].child.start(report).await;
        self.slots[index].live = started.is_ok();
        started.map_err(|reason| format!("`{}`: {reason}", self.slots[index].child.name()))
    }

    async fn halt_all(&mut self) {
        for slot in self.slots.iter_mut().rev() {
            slot.generation += 1; // late exit reports of this incarnation are stale now
            slot.child.halt().await;
            slot.live = false;
        }
    }

    /// A child ended: apply policy, intensity, strategy and back-off.
    async fn child_exited(&mut self, index: usize, exit: Exit, ctx: &mut KameoContext<Self, ()>) {
        let slot = &mut self.slots[index];
        slot.live = false;
        if !wants_restart(slot.restart, &exit) {
            let state = match exit {
                Exit::Failed(_) => ActorState::Failed,
                _ => ActorState::Stopped,
            };
            slot.child.set_state(state);
            slot.child.retire();
            if !matches!(exit, Exit::Failed(_)) {
                // Stopped for good: forget it, so its memory and its name are released
                // (a failed child stays listed as `Failed` for operators to see).
                let slot = self.slots.remove(index);
                self.plan
                    .children()
                    .retain(|(child, _)| !Arc::ptr_eq(child, &slot.child));
                self.plan.status.children.fetch_sub(1, SeqCst);
                slot.child.forget();
            }
            return;
        }
        match self.budget.record(Instant::now()) {
            Verdict::Escalate => self.escalate(&exit, ctx).await,
            Verdict::RestartAfter(delay) => self.schedule_restart(index, &exit, delay).await,
        }
    }

    async fn schedule_restart(&mut self, index: usize, exit: &Exit, delay: std::time::Duration) {
        let live: Vec<bool> = self.slots.iter().map(|slot| slot.live).collect();
        let set = restart_set(self.plan.strategy, index, &live);
        // Halt the siblings that restart with it, youngest first.
        for &sibling in set.iter().rev().filter(|&&i| i != index) {
            let slot = &mut self.slots[sibling];
            slot.generation += 1;
            slot.child.halt().await;
            slot.live = false;
        }
        for &member in &set {
            self.slots[member].child.set_state(ActorState::Restarting);
            self.pending.insert(self.slots[member].id);
        }
        tracing::info_span!(
            "vortex.restart",
            supervisor = %self.plan.name,
            child = %self.slots[index].child.name()
        )
        .in_scope(|| {
            tracing::warn!(
                target: "vortex.restart",
                reason = ?exit,
                delay_ms = delay.as_millis() as u64,
                restarting = set.len(),
                "restarting after failure"
            )
        });
        self.restart_token += 1;
        // The timer task is detached on purpose: a stale token makes it a no-op.
        drop(
            self.this
                .tell(RestartDue {
                    token: self.restart_token,
                })
                .send_after(delay),
        );
    }

    async fn escalate(&mut self, exit: &Exit, ctx: &mut KameoContext<Self, ()>) {
        let reason = format!(
            "restart intensity exceeded ({} restarts within {:?}); last failure: {exit:?}",
            self.plan.intensity.max_restarts, self.plan.intensity.within
        );
        tracing::info_span!("vortex.escalate", supervisor = %self.plan.name)
            .in_scope(|| tracing::error!(target: "vortex.restart", %reason, "escalating"));
        self.plan.status.escalations.fetch_add(1, SeqCst);
        self.pending.clear();
        self.halt_all().await;
        for slot in &self.slots {
            slot.child.set_state(ActorState::Failed);
        }
        self.plan.status.set(ActorState::Failed);
        if self.report.is_some() {
            self.exit = Some(Exit::Failed(reason));
            ctx.stop();
        }
    }

    async fn restart_pending(&mut self, ctx: &mut KameoContext<Self, ()>) {
        let due = std::mem::take(&mut self.pending);
        for index in 0..self.slots.len() {
            if !due.contains(&self.slots[index].id) {
                continue;
            }
            self.slots[index].child.note_restart();
            self.plan.status.restarts_performed.fetch_add(1, SeqCst);
            if let Err(reason) = self.start_slot(index).await {
                tracing::warn!(target: "vortex.restart", supervisor = %self.plan.name, %reason, "restart failed");
                self.child_exited(index, Exit::Failed(reason), ctx).await;
            }
        }
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
        let from = self.slots.len() as u32;
        while (self.slots.len() as u32) < wanted {
            let child = maker(self.next_worker);
            self.next_worker += 1;
            let restart = self
                .slots
                .first()
                .map_or(Restart::Permanent, |slot| slot.restart);
            self.plan.children().push((Arc::clone(&child), restart));
            if let Err(reason) = self.add_and_start(child, restart).await {
                tracing::warn!(pool = %self.plan.name, %reason, "new pool worker failed to start");
            }
        }
        while (self.slots.len() as u32) > wanted {
            // Retire the youngest worker: it finishes its current message; the queue stays.
            if let Some(slot) = self.slots.pop() {
                self.plan.children().pop();
                self.pending.remove(&slot.id);
                slot.child.halt().await;
                self.plan.status.children.fetch_sub(1, SeqCst);
            }
        }
        Ok((from, wanted))
    }
}

impl Message<ChildExited> for SupervisorCell {
    type Reply = ();

    async fn handle(&mut self, message: ChildExited, ctx: &mut KameoContext<Self, ()>) {
        let Some(index) = self
            .slots
            .iter()
            .position(|slot| slot.id == message.id && slot.generation == message.generation)
        else {
            return; // a halted or replaced incarnation
        };
        if matches!(message.exit, Exit::Halted) {
            self.slots[index].live = false;
            return;
        }
        self.child_exited(index, message.exit, ctx).await;
    }
}

impl Message<RestartDue> for SupervisorCell {
    type Reply = ();

    async fn handle(&mut self, message: RestartDue, ctx: &mut KameoContext<Self, ()>) {
        if message.token == self.restart_token {
            self.restart_pending(ctx).await;
        }
    }
}

impl Message<AddChild> for SupervisorCell {
    type Reply = Result<(), String>;

    async fn handle(
        &mut self,
        message: AddChild,
        _: &mut KameoContext<Self, Self::Reply>,
    ) -> Self::Reply {
        self.plan
            .children()
            .push((Arc::clone(&message.child), message.restart));
        let started = self.add_and_start(message.child, message.restart).await;
        if started.is_err() {
            // The caller gets the error and unregisters the name: forget the child.
            self.slots.pop();
            self.plan.children().pop();
            self.plan.status.children.fetch_sub(1, SeqCst);
        }
        started
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

    async fn handle(&mut self, _: HaltAll, ctx: &mut KameoContext<Self, ()>) {
        self.pending.clear();
        self.halt_all().await;
        self.plan.status.set(ActorState::Stopped);
        self.exit = Some(Exit::Halted);
        ctx.stop();
    }
}

/// A supervisor as a child of another supervisor (or of the runtime's root).
pub(crate) struct SupervisorChild {
    pub(crate) plan: SupervisorPlan,
    current: Mutex<Option<ActorRef<SupervisorCell>>>,
}

impl SupervisorChild {
    pub(crate) fn new(plan: SupervisorPlan) -> Self {
        SupervisorChild {
            plan,
            current: Mutex::new(None),
        }
    }

    /// The running supervisor cell, if any.
    pub(crate) fn cell(&self) -> Option<ActorRef<SupervisorCell>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(ActorRef::is_alive)
    }

    /// Spawns it as a root (no parent to report to). Must run inside a tokio runtime.
    pub(crate) fn spawn_root(&self) -> ActorRef<SupervisorCell> {
        self.spawn(None)
    }

    fn spawn(&self, report: Option<ExitReport>) -> ActorRef<SupervisorCell> {
        self.plan.status.set(ActorState::Starting);
        let cell = SupervisorCell::spawn_with_mailbox(
            SupervisorArgs {
                plan: self.plan.clone(),
                report,
            },
            kameo::mailbox::unbounded(),
        );
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(cell.clone());
        cell
    }
}

impl Child for SupervisorChild {
    fn name(&self) -> &str {
        &self.plan.name
    }

    fn start(&self, report: ExitReport) -> BoxFuture<'static, Result<(), String>> {
        let cell = self.spawn(Some(report));
        Box::pin(async move { child::await_startup(&cell).await })
    }

    fn halt(&self) -> BoxFuture<'static, ()> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Box::pin(async move {
            if let Some(cell) = current {
                let _ = cell.ask(HaltAll).await;
                let _ = cell.wait_for_shutdown_result().await;
            }
        })
    }

    fn set_state(&self, state: ActorState) {
        self.plan.status.set(state);
        if matches!(state, ActorState::Failed) {
            for (child, _) in self.plan.children().iter() {
                child.set_state(ActorState::Failed);
            }
        }
    }

    fn note_restart(&self) {
        self.plan.status.restarts.fetch_add(1, SeqCst);
    }

    fn retire(&self) {}

    fn kill(&self) {
        for (child, _) in self.plan.children().iter() {
            child.kill();
        }
        if let Some(cell) = self.cell() {
            cell.kill();
        }
    }
}
