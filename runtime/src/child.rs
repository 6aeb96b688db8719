//! What a supervisor holds for each child: a type-erased handle to start, halt and watch
//! one incarnation at a time, plus the exit report a cell sends when it ends.

use std::{
    any::Any,
    sync::{
        atomic::{AtomicBool, Ordering::SeqCst},
        Arc, Mutex, PoisonError, Weak,
    },
};

use futures::future::BoxFuture;
use kameo::actor::{ActorRef, Spawn};
use vortex_messages::{ActorState, Control, ControlError, ControlReply, StatusReport};

use crate::{
    actor::Actor,
    cell::{Cell, CellArgs, ControlCommand, Drain, InjectFailure},
    dead_letter::DeadLetterReason,
    registry::Registry,
    shared::Shared,
    supervisor::{ChildExited, SupervisorCell},
};

/// How one incarnation of a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It stopped for good on request (`Control::Stop`) after draining its mailbox.
    Stopped,
    /// The actor ended this incarnation itself (`Context::stop`).
    Normal,
    /// Its supervisor halted it (restart of a sibling, scale-down, shutdown).
    Halted,
    /// It failed: handler error or panic, start failure, escalation from below.
    Failed(String),
}

/// Where a cell reports its exit: its supervisor, with the child's id and generation so
/// that a late report from an old incarnation is recognised and ignored.
#[derive(Clone)]
pub(crate) struct ExitReport {
    pub(crate) supervisor: ActorRef<SupervisorCell>,
    pub(crate) id: u64,
    pub(crate) generation: u64,
}

impl ExitReport {
    pub(crate) fn send(&self, exit: Exit) {
        let _ = self
            .supervisor
            .tell(ChildExited {
                id: self.id,
                generation: self.generation,
                exit,
            })
            .try_send();
    }
}

/// A supervised child, type-erased.
pub(crate) trait Child: Send + Sync + 'static {
    /// The registered name (for a pool worker: the pool's name).
    fn name(&self) -> &str;
    /// Starts a fresh incarnation; resolves once its `on_start` finished.
    fn start(&self, report: ExitReport) -> BoxFuture<'static, Result<(), String>>;
    /// Halts the running incarnation after its current message and waits for it to end.
    /// Queued messages stay in the mailbox.
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
}

/// The running incarnation: its kameo cell and its halt flag.
type Incarnation<A> = (ActorRef<Cell<A>>, Arc<AtomicBool>);

/// One worker slot of an actor: the single cell of an actor, or worker `i` of a pool.
pub(crate) struct ActorChild<A: Actor> {
    pub(crate) shared: Arc<Shared<A>>,
    worker: usize,
    current: Mutex<Option<Incarnation<A>>>,
    /// Set for single actors: where to remove the name once it stopped for good.
    registry: Option<Weak<Registry>>,
}

impl<A: Actor> ActorChild<A> {
    pub(crate) fn new(shared: Arc<Shared<A>>, worker: usize) -> Self {
        ActorChild {
            shared,
            worker,
            current: Mutex::new(None),
            registry: None,
        }
    }

    /// A single actor, whose name leaves `registry` once it stopped for good.
    pub(crate) fn registered(shared: Arc<Shared<A>>, registry: Weak<Registry>) -> Self {
        ActorChild {
            registry: Some(registry),
            ..ActorChild::new(shared, 0)
        }
    }

    fn current_cell(&self) -> Option<ActorRef<Cell<A>>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(cell, _)| cell.is_alive())
            .map(|(cell, _)| cell.clone())
    }

    /// Sends a command through the cell's control lane (so `on_control` sees it), or
    /// answers it from the shared state when no cell is running.
    pub(crate) async fn control(&self, command: Control) -> Result<ControlReply, ControlError> {
        if let Some(cell) = self.current_cell() {
            match cell.ask(ControlCommand(command.clone())).await {
                Ok(reply) => return Ok(reply),
                Err(kameo::error::SendError::HandlerError(error)) => return Err(error),
                Err(_) => {} // the cell ended meanwhile: answer from the shared state
            }
        }
        self.shared.default_control(&command)
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

    /// Moves every queued message to the dead-letter sink as undelivered; returns how many.
    pub(crate) fn collect_undelivered(&self) -> usize {
        collect_undelivered(&self.shared)
    }
}

impl<A: Actor> Child for ActorChild<A> {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn start(&self, report: ExitReport) -> BoxFuture<'static, Result<(), String>> {
        let halt = Arc::new(AtomicBool::new(false));
        let args = CellArgs {
            shared: Arc::clone(&self.shared),
            worker: self.worker,
            halt: Arc::clone(&halt),
            report,
        };
        let cell = Cell::<A>::spawn_with_mailbox(args, kameo::mailbox::unbounded());
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some((cell.clone(), halt));
        Box::pin(async move {
            await_startup(&cell).await?;
            // Drain once unconditionally: messages may have queued while no cell ran.
            let _ = cell.tell(Drain).try_send();
            Ok(())
        })
    }

    fn halt(&self) -> BoxFuture<'static, ()> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Box::pin(async move {
            if let Some((cell, halt)) = current {
                halt.store(true, SeqCst);
                let _ = cell.tell(Drain).try_send();
                cell.wait_for_shutdown().await;
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
            self.shared.mailbox.close();
            self.collect_undelivered();
        }
    }

    fn kill(&self) {
        if let Some(cell) = self.current_cell() {
            cell.kill();
        }
    }

    fn forget(&self) {
        if let Some(registry) = self.registry.as_ref().and_then(Weak::upgrade) {
            registry.remove(std::slice::from_ref(&self.shared.name));
        }
    }
}

/// Waits until kameo finished starting `cell`, or reports why it never will (its start
/// hook failed, or it stopped before its start-up completed).
pub(crate) async fn await_startup<A>(cell: &ActorRef<A>) -> Result<(), String>
where
    A: kameo::Actor,
    A::Error: Clone + std::fmt::Display,
{
    tokio::select! {
        started = cell.wait_for_startup_result() => started.map_err(|error| error.to_string()),
        () = cell.wait_for_shutdown() => match cell.get_startup_result() {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(error.to_string()),
            None => Err("stopped before its start-up completed".to_owned()),
        },
    }
}

/// Moves every queued message of a closed mailbox to the dead-letter sink.
pub(crate) fn collect_undelivered<A: Actor>(shared: &Shared<A>) -> usize {
    let mut reader = shared.mailbox.reader();
    let left = shared.mailbox.take_all(&mut reader);
    let count = left.len();
    for message in left {
        shared.dead_letter(DeadLetterReason::Undelivered, Some(message));
    }
    count
}

/// Lets the registry hand out typed addresses: `Arc<dyn Any>` of the shared state.
pub(crate) fn erase<A: Actor>(shared: &Arc<Shared<A>>) -> Arc<dyn Any + Send + Sync> {
    Arc::clone(shared) as Arc<dyn Any + Send + Sync>
}
