//! Supervision trees on kameo: a supervisor is a kameo actor that starts its children in
//! order, hears how each start-up went and how each incarnation ended (cells report from
//! their start-up and from kameo's `on_stop`), and applies the rules in `policy`: restart
//! policy, strategy, restart intensity and exponential back-off. kameo's own
//! `supervision_strategy()` is a static function per actor type and has no back-off, so the
//! strategy is data here, per supervisor instance.
//!
//! - `policy`: the pure rules.
//! - `child`: the type-erased `Child` a supervisor holds.
//! - `cell`: the supervisor cell (trees and pools).
//! - `root`: the runtime's root, which is not an actor (its children are independent).

mod cell;
pub(crate) mod child;
pub(crate) mod policy;
mod root;

use crate::sync::lock;
use std::sync::{
    atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::SeqCst},
    Arc, Mutex,
};

use futures::future::BoxFuture;
use kameo::actor::{ActorRef, Spawn};
use vortex_messages::ActorState;

use crate::cell::{ExitReport, StartReport};
use cell::SupervisorArgs;
pub(crate) use cell::{HaltAll, ScalePool, SupervisorCell};
use child::{start_watch, Child, StartWait};
pub use policy::{Backoff, Intensity, Restart, Strategy};
pub(crate) use root::Root;

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
        lock(&self.children)
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
    /// Child ids, shared by every incarnation of this supervisor.
    pub(crate) ids: Arc<AtomicU64>,
}

/// A supervisor as a child of another supervisor (or of the runtime's root).
pub(crate) struct SupervisorChild {
    pub(crate) plan: SupervisorPlan,
    current: Mutex<Option<ActorRef<SupervisorCell>>>,
    /// Set for pools: releases the pool's name once it stopped for good.
    on_forget: Option<child::OnForget>,
}

impl SupervisorChild {
    pub(crate) fn new(plan: SupervisorPlan) -> Self {
        SupervisorChild {
            plan,
            current: Mutex::new(None),
            on_forget: None,
        }
    }

    /// A pool's supervisor, which runs `on_forget` once the pool stopped for good.
    pub(crate) fn registered(plan: SupervisorPlan, on_forget: child::OnForget) -> Self {
        SupervisorChild {
            on_forget: Some(on_forget),
            ..SupervisorChild::new(plan)
        }
    }

    /// The running supervisor cell, if any.
    pub(crate) fn cell(&self) -> Option<ActorRef<SupervisorCell>> {
        lock(&self.current).clone().filter(ActorRef::is_alive)
    }

    fn spawn(&self, report: ExitReport, started: StartReport) -> ActorRef<SupervisorCell> {
        self.plan.status.set(ActorState::Starting);
        let cell = SupervisorCell::spawn_with_mailbox(
            SupervisorArgs {
                plan: self.plan.clone(),
                report,
                started,
            },
            kameo::mailbox::unbounded(),
        );
        *lock(&self.current) = Some(cell.clone());
        cell
    }
}

impl Child for SupervisorChild {
    fn name(&self) -> &str {
        &self.plan.name
    }

    fn start(&self, report: ExitReport, started: StartReport) -> StartWait {
        let (started, wait) = start_watch(started);
        self.spawn(report, started);
        wait
    }

    fn halt(&self) -> BoxFuture<'static, ()> {
        let current = lock(&self.current).take();
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

    fn retire(&self) {
        // The subtree will never run again: every actor in it refuses mail from now on.
        for (child, _) in self.plan.children().iter() {
            child.retire();
        }
    }

    fn kill(&self) {
        for (child, _) in self.plan.children().iter() {
            child.kill();
        }
        if let Some(cell) = self.cell() {
            cell.kill();
        }
    }

    fn forget(&self) {
        if let Some(on_forget) = &self.on_forget {
            on_forget.run();
        }
    }
}
