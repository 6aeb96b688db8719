//! What a supervisor holds for each child: a type-erased handle to start, halt and watch
//! one incarnation at a time.

use crate::sync::lock;
use std::sync::{atomic::Ordering::SeqCst, Arc, Mutex, Weak};

use futures::future::BoxFuture;
use kameo::actor::{ActorRef, Spawn};
use vortex_messages::{ActorState, Control, ControlError, ControlReply, StatusReport};

use crate::{
    actor::Actor,
    cell::{self, Cell, CellArgs, ControlCommand, ExitReport, InjectFailure, StartReport},
    registry::Registry,
    shared::Shared,
};

/// Resolves with a child's start-up result (`on_start` finished, failed or timed out).
pub(crate) type StartWait = BoxFuture<'static, Result<(), String>>;

/// A start report that also completes the returned [`StartWait`].
pub(crate) fn start_watch(started: StartReport) -> (StartReport, StartWait) {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let report: StartReport = Box::new(move |result: Result<(), String>| {
        started(result.clone());
        let _ = sender.send(result);
    });
    let wait = Box::pin(async move {
        receiver
            .await
            .unwrap_or_else(|_| Err("stopped before its start-up completed".to_owned()))
    });
    (report, wait)
}

/// A supervised child, type-erased.
pub(crate) trait Child: Send + Sync + 'static {
    /// The registered name (for a pool worker: the pool's name).
    fn name(&self) -> &str;
    /// Starts a fresh incarnation without waiting for it. `started` hears how its start-up
    /// went (once); `report` how it ended, if it started. The returned future resolves with
    /// the start-up result too (dropping it changes nothing).
    fn start(&self, report: ExitReport, started: StartReport) -> StartWait;
    /// Like [`Child::start`], but a single actor is built and started in the calling task
    /// (see `cell::start_in_caller`): the caller waits for its own work, not for a cell
    /// to be scheduled. Used for a first start by `Runtime::spawn`, whose caller handles a
    /// failed start itself (the returned future says how it went).
    fn start_in_caller(self: Arc<Self>, report: ExitReport) -> StartWait {
        self.start(report, Box::new(|_| {}))
    }
    /// Halts the running incarnation after its current message and waits until it ended,
    /// its `on_stop` included, within the stop timeout; past it, the incarnation is
    /// aborted. Queued messages stay in the mailbox.
    fn halt(&self) -> BoxFuture<'static, ()>;
    /// Sets the state `Status` shows.
    fn set_state(&self, state: ActorState);
    /// Counts one restart.
    fn note_restart(&self);
    /// It ended for good (policy says no restart): refuse new messages and move what is
    /// still queued to the dead-letter sink, unless other workers still drain the mailbox.
    fn retire(&self);
    /// Kills the running incarnation at once (the runtime was dropped without shutdown).
    fn kill(&self);
    /// It stopped for good and its supervisor forgot it: release its name.
    fn forget(&self) {}
    /// The running incarnation's `describe` detail (asked through its control lane), if
    /// it is running and has one. A pool's `Status` carries its first worker's.
    fn describe(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async { None })
    }
}

/// How long a control command waits for an incarnation that is being replaced.
const REPLACEMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Releases a registered name once its actor or pool stopped for good and its supervisor
/// forgot it.
pub(crate) struct OnForget {
    registry: Weak<Registry>,
    name: Arc<str>,
}

impl OnForget {
    pub(crate) fn new(registry: &Arc<Registry>, name: &Arc<str>) -> Self {
        OnForget {
            registry: Arc::downgrade(registry),
            name: Arc::clone(name),
        }
    }

    pub(crate) fn run(&self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(&self.name);
        }
    }
}

/// One worker slot of an actor: the single cell of an actor, or worker `i` of a pool.
pub(crate) struct ActorChild<A: Actor> {
    pub(crate) shared: Arc<Shared<A>>,
    worker: usize,
    /// The running incarnation's kameo cell.
    current: Mutex<Option<ActorRef<Cell<A>>>>,
    /// Set for single actors: removes the name once it stopped for good.
    on_forget: Option<OnForget>,
}

impl<A: Actor> ActorChild<A> {
    pub(crate) fn new(shared: Arc<Shared<A>>, worker: usize) -> Self {
        ActorChild {
            shared,
            worker,
            current: Mutex::new(None),
            on_forget: None,
        }
    }

    /// A single actor, which runs `on_forget` once it stopped for good.
    pub(crate) fn registered(shared: Arc<Shared<A>>, on_forget: OnForget) -> Self {
        ActorChild {
            on_forget: Some(on_forget),
            ..ActorChild::new(shared, 0)
        }
    }

    /// Spawns the kameo cell of a new incarnation. Its batch loop looks at the mailbox
    /// before it parks: messages queued while no cell ran are handled without a wake-up.
    fn spawn_cell(&self, args: CellArgs<A>) {
        let mut current = lock(&self.current);
        // Its predecessor on this worker has ended: a halt was meant for that one.
        self.shared.mailbox.dispatch.clear_halt(self.worker);
        *current = Some(Cell::<A>::spawn_with_mailbox(
            args,
            kameo::mailbox::unbounded(),
        ));
    }

    /// See [`Child::start_in_caller`]; typed and unboxed for `Runtime::spawn`.
    pub(crate) async fn start_first(&self, report: ExitReport) -> Result<(), String> {
        let built = cell::start_in_caller(&self.shared, self.worker)
            .await
            .map_err(|failure| failure.0)?;
        let args = CellArgs {
            shared: Arc::clone(&self.shared),
            worker: self.worker,
            report,
            started: Box::new(|_| {}),
            built: Some(built),
        };
        self.spawn_cell(args);
        Ok(())
    }

    fn current_cell(&self) -> Option<ActorRef<Cell<A>>> {
        lock(&self.current)
            .as_ref()
            .filter(|cell| cell.is_alive())
            .cloned()
    }

    /// Sends a command through the cell's control lane (so `on_control` sees it), or
    /// answers it from the shared state when no cell is running.
    pub(crate) async fn control(&self, command: Control) -> Result<ControlReply, ControlError> {
        // An actor its supervisor shows as running but whose incarnation is being replaced
        // right now (the old cell gone, the new one not yet reachable) answers from its
        // next incarnation, not from the shared state: a `Checkpoint` sent just after a
        // restart is taken, not refused. Bounded: past `REPLACEMENT_WAIT` (or once the
        // actor is stopping, retired or in back-off) the shared state answers.
        let deadline = tokio::time::Instant::now() + REPLACEMENT_WAIT;
        let mut tries = 0u32;
        loop {
            if let Some(cell) = self.current_cell() {
                match cell.ask(ControlCommand(command.clone())).await {
                    Ok(reply) => return Ok(reply),
                    Err(kameo::error::SendError::HandlerError(error)) => return Err(error),
                    Err(_) => {} // the cell ended meanwhile
                }
            }
            let replacing = matches!(
                self.shared.state(),
                ActorState::Running | ActorState::Starting
            ) && !self.shared.is_retired()
                && !self.shared.is_stopping();
            if !replacing || tokio::time::Instant::now() >= deadline {
                return self.shared.default_control(&command);
            }
            tries += 1;
            if tries < 64 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }

    /// `Stop` to an actor whose type keeps the default `on_control` is answered here: the
    /// cell would give the same answer from the same shared state (close the mailbox,
    /// drain it, stop for good), and it sees the stop before its next batch.
    pub(crate) fn control_now(
        &self,
        command: &Control,
    ) -> Option<Result<ControlReply, ControlError>> {
        (*command == Control::Stop && crate::actor::keeps_default_on_control::<A>())
            .then(|| self.shared.default_control(command))
    }

    /// Makes the running incarnation fail (its supervisor then applies its policy).
    pub(crate) async fn inject_failure(&self, reason: String) -> Result<(), ControlError> {
        let Some(cell) = self.current_cell() else {
            return Err(ControlError::NotRunning {
                actor: self.shared.name.to_string(),
                command: "inject-failure".into(),
                state: self.shared.state(),
            });
        };
        // A tell, not an ask: kameo hands an ask's handler error back to the asker, while a
        // tell's handler error fails the actor, which is the point here.
        cell.tell(InjectFailure(reason))
            .send()
            .await
            .map_err(|_| ControlError::NotRunning {
                actor: self.shared.name.to_string(),
                command: "inject-failure".into(),
                state: self.shared.state(),
            })
    }

    pub(crate) fn status(&self) -> StatusReport {
        self.shared.status()
    }
}

impl<A: Actor> Child for ActorChild<A> {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn start(&self, report: ExitReport, started: StartReport) -> StartWait {
        let (started, wait) = start_watch(started);
        let args = CellArgs {
            shared: Arc::clone(&self.shared),
            worker: self.worker,
            report,
            started,
            built: None,
        };
        self.spawn_cell(args);
        wait
    }

    fn start_in_caller(self: Arc<Self>, report: ExitReport) -> StartWait {
        Box::pin(async move { self.start_first(report).await })
    }

    fn halt(&self) -> BoxFuture<'static, ()> {
        let current = lock(&self.current).take();
        let (shared, worker) = (Arc::clone(&self.shared), self.worker);
        Box::pin(async move {
            if let Some(cell) = current {
                shared.mailbox.dispatch.halt(worker);
                // Until its `on_stop` finished (it detaches from the mailbox there), within
                // the stop timeout: a handler or hook that never returns is aborted.
                let stopped = tokio::time::timeout(
                    shared.config.stop_timeout,
                    cell.wait_for_shutdown_result(),
                )
                .await;
                if stopped.is_err() {
                    tracing::warn!(
                        target: "vortex.restart",
                        actor = %shared.name,
                        timeout = ?shared.config.stop_timeout,
                        "did not stop within the stop timeout; aborted"
                    );
                    cell.kill();
                    // Its `on_stop` will never run: do what it would have done.
                    shared.workers.fetch_sub(1, SeqCst);
                    shared
                        .mailbox
                        .dispatch
                        .detach(worker, !shared.mailbox.is_empty());
                }
            }
        })
    }

    fn set_state(&self, state: ActorState) {
        self.shared.set_state(state);
    }

    fn note_restart(&self) {
        self.shared.stats.add_restart();
    }

    fn retire(&self) {
        if self.shared.workers.load(SeqCst) == 0 {
            self.shared.retire();
        }
    }

    fn kill(&self) {
        if let Some(cell) = self.current_cell() {
            cell.kill();
        }
    }

    fn describe(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            self.current_cell()?;
            match self.control(Control::Status).await {
                Ok(ControlReply::Status(report)) if !report.detail.is_empty() => {
                    Some(report.detail)
                }
                _ => None,
            }
        })
    }

    fn forget(&self) {
        if let Some(on_forget) = &self.on_forget {
            on_forget.run();
        }
    }
}
