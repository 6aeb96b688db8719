//! The cell: the kameo actor that hosts one incarnation of a user actor.
//!
//! kameo's own mailbox is the *control lane*: it carries `Drain` wake-ups and control
//! commands. Data messages live in the address's mailbox. A `Drain` handles at most one
//! batch and then queues the next `Drain` behind whatever control commands arrived
//! meanwhile, so a command is answered within one batch even when the data mailbox is full.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst},
        Arc,
    },
};

use futures::FutureExt;
use kameo::{
    actor::{ActorRef, WeakActorRef},
    error::ActorStopReason,
    message::{Context as KameoContext, Message},
};
use tracing::Instrument;
use vortex_messages::{ActorState, Control, ControlError, ControlReply};

use crate::{
    actor::{Actor, Context},
    addr::Addr,
    child::{Exit, ExitReport},
    dead_letter::{panic_text, DeadLetterReason},
    mailbox::{Reader, Wake},
    shared::Shared,
};

/// Control-lane message: drain one batch of the data mailbox.
pub(crate) struct Drain;

/// Control-lane message: a control command.
pub(crate) struct ControlCommand(pub(crate) Control);

/// Control-lane message: fail now, as if a handler had failed (fault injection).
pub(crate) struct InjectFailure(pub(crate) String);

/// Why a cell failed, as kameo sees it.
#[derive(Debug, Clone)]
pub(crate) struct CellFailure(pub(crate) String);

impl std::fmt::Display for CellFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) struct CellArgs<A: Actor> {
    pub(crate) shared: Arc<Shared<A>>,
    pub(crate) worker: usize,
    pub(crate) halt: Arc<AtomicBool>,
    pub(crate) report: ExitReport,
}

pub(crate) struct Cell<A: Actor> {
    actor: A,
    ctx: Context<A>,
    reader: Reader<A::Message>,
    shared: Arc<Shared<A>>,
    worker: usize,
    halt: Arc<AtomicBool>,
    exit: Option<Exit>,
    report: ExitReport,
    this: ActorRef<Cell<A>>,
}

struct CellWaker<A: Actor>(ActorRef<Cell<A>>);

impl<A: Actor> Wake for CellWaker<A> {
    fn wake(&self) {
        let _ = self.0.tell(Drain).try_send();
    }
}

async fn build_actor<A: Actor>(
    shared: &Arc<Shared<A>>,
    ctx: &mut Context<A>,
) -> Result<A, CellFailure> {
    let mut actor = std::panic::catch_unwind(AssertUnwindSafe(|| (shared.factory)()))
        .map_err(|payload| CellFailure(format!("factory panicked: {}", panic_text(&*payload))))?;
    let latest = shared
        .latest_checkpoint()
        .await
        .map_err(|reason| CellFailure(format!("cannot read the latest checkpoint: {reason}")))?;
    if let Some(checkpoint) = latest {
        actor.restore(&checkpoint.bytes).map_err(|error| {
            CellFailure(format!(
                "restore from epoch {} failed: {error}",
                checkpoint.epoch
            ))
        })?;
    }
    match AssertUnwindSafe(actor.on_start(ctx)).catch_unwind().await {
        Ok(Ok(())) => Ok(actor),
        Ok(Err(error)) => Err(CellFailure(format!("on_start failed: {error}"))),
        Err(payload) => Err(CellFailure(format!(
            "on_start panicked: {}",
            panic_text(&*payload)
        ))),
    }
}

impl<A: Actor> kameo::Actor for Cell<A> {
    type Args = CellArgs<A>;
    type Error = CellFailure;

    async fn on_start(args: CellArgs<A>, this: ActorRef<Self>) -> Result<Self, CellFailure> {
        let shared = args.shared;
        let mut ctx = Context::new(
            Addr {
                shared: Arc::clone(&shared),
            },
            args.worker,
        );
        let actor = build_actor(&shared, &mut ctx).await?;
        shared
            .mailbox
            .dispatch
            .attach(args.worker, Arc::new(CellWaker(this.clone())));
        shared.workers.fetch_add(1, SeqCst);
        if !shared.is_stopping() {
            shared.set_live_state();
        }
        // The first drain is sent by whoever started the cell, once kameo has finished
        // starting it (see `ActorChild::start`): a `Drain` queued here would run before
        // kameo's own start-up signal, and a cell failing on it would never be "started".
        Ok(Cell {
            actor,
            ctx,
            reader: shared.mailbox.reader(),
            shared,
            worker: args.worker,
            halt: args.halt,
            exit: None,
            report: args.report,
            this,
        })
    }

    async fn on_stop(
        &mut self,
        _: WeakActorRef<Self>,
        reason: ActorStopReason,
    ) -> Result<(), CellFailure> {
        self.shared.mailbox.dispatch.detach(self.worker);
        self.shared.workers.fetch_sub(1, SeqCst);
        let exit = self.exit.take().unwrap_or_else(|| match reason {
            ActorStopReason::Panicked(error) => Exit::Failed(format!("cell panicked: {error}")),
            _ => Exit::Halted,
        });
        if !matches!(exit, Exit::Failed(_)) {
            let _ = AssertUnwindSafe(self.actor.on_stop(&mut self.ctx))
                .catch_unwind()
                .await;
        }
        self.report.send(exit);
        Ok(())
    }
}

/// The outcome of one batch.
enum Batch {
    /// Took a full batch: more may be waiting.
    Full,
    /// Ran the mailbox dry.
    Dry,
    /// The handler failed on a message.
    Failed(String),
    /// The actor called `Context::stop`.
    Exit,
}

impl<A: Actor> Cell<A> {
    /// Handles up to one batch. Counters are updated once per batch, not per message.
    async fn run_batch(&mut self) -> Batch {
        let batch = self.shared.config.batch;
        // Two clock reads per batch (not per message) feed the handler-time metrics.
        let started = std::time::Instant::now();
        let mut taken = 0;
        let mut outcome = Batch::Full;
        while taken < batch {
            if self.halt.load(Relaxed) {
                outcome = Batch::Dry;
                break;
            }
            let Some(message) = self.reader.pop() else {
                outcome = Batch::Dry;
                break;
            };
            taken += 1;
            let handled = AssertUnwindSafe(self.actor.handle(message, &mut self.ctx))
                .catch_unwind()
                .await;
            let reason = match handled {
                Ok(Ok(())) => {
                    if self.ctx.take_stop() {
                        outcome = Batch::Exit;
                        break;
                    }
                    continue;
                }
                Ok(Err(error)) => DeadLetterReason::Failed(error.to_string()),
                Err(payload) => DeadLetterReason::Panicked(panic_text(&*payload)),
            };
            let text = match &reason {
                DeadLetterReason::Failed(text) | DeadLetterReason::Panicked(text) => text.clone(),
                DeadLetterReason::Undelivered => String::new(),
            };
            self.shared.dead_letter(reason, None);
            outcome = Batch::Failed(text);
            break;
        }
        let failed = usize::from(matches!(outcome, Batch::Failed(_)));
        self.shared.stats.add_handled((taken - failed) as u64);
        if taken > 0 {
            self.shared.stats.add_handler_time(started.elapsed());
        }
        self.shared.mailbox.release(taken);
        outcome
    }

    fn stop_with(&mut self, exit: Exit, ctx: &mut KameoContext<Self, Result<(), CellFailure>>) {
        self.exit = Some(exit);
        ctx.stop();
    }

    fn redrain(&self) {
        let _ = self.this.tell(Drain).try_send();
    }
}

impl<A: Actor> Message<Drain> for Cell<A> {
    type Reply = Result<(), CellFailure>;

    async fn handle(&mut self, _: Drain, ctx: &mut KameoContext<Self, Self::Reply>) -> Self::Reply {
        if self.halt.load(Relaxed) {
            self.stop_with(Exit::Halted, ctx);
            return Ok(());
        }
        let stopping = self.shared.is_stopping();
        if self.shared.is_paused() && !stopping {
            // Stay "scheduled": producers will not wake a paused cell; Resume does.
            return Ok(());
        }
        let span =
            tracing::trace_span!("vortex.handle", actor = %self.shared.name, worker = self.worker);
        match self.run_batch().instrument(span).await {
            Batch::Failed(reason) => {
                self.exit = Some(Exit::Failed(reason.clone()));
                Err(CellFailure(reason))
            }
            Batch::Exit => {
                self.stop_with(Exit::Normal, ctx);
                Ok(())
            }
            _ if self.halt.load(Relaxed) => {
                self.stop_with(Exit::Halted, ctx);
                Ok(())
            }
            Batch::Full => {
                if self.shared.mailbox.len() > self.shared.config.batch {
                    self.shared.mailbox.dispatch.wake_idle_worker();
                }
                self.redrain();
                Ok(())
            }
            Batch::Dry => {
                if self.shared.is_stopping() && self.shared.mailbox.is_empty() {
                    self.shared.set_state(ActorState::Stopped);
                    self.stop_with(Exit::Stopped, ctx);
                } else if self.shared.is_stopping()
                    || self
                        .shared
                        .mailbox
                        .dispatch
                        .went_idle(self.worker, || !self.shared.mailbox.is_empty())
                {
                    // Stopping: keep draining until empty. Idle: a message raced the
                    // transition and this cell re-claimed the work.
                    self.redrain();
                }
                Ok(())
            }
        }
    }
}

impl<A: Actor> Message<InjectFailure> for Cell<A> {
    type Reply = Result<(), CellFailure>;

    async fn handle(
        &mut self,
        InjectFailure(reason): InjectFailure,
        _: &mut KameoContext<Self, Self::Reply>,
    ) -> Self::Reply {
        let reason = format!("injected failure: {reason}");
        self.exit = Some(Exit::Failed(reason.clone()));
        Err(CellFailure(reason))
    }
}

impl<A: Actor> Message<ControlCommand> for Cell<A> {
    type Reply = Result<ControlReply, ControlError>;

    async fn handle(
        &mut self,
        ControlCommand(command): ControlCommand,
        _: &mut KameoContext<Self, Self::Reply>,
    ) -> Self::Reply {
        let span = tracing::info_span!("vortex.control", actor = %self.shared.name, command = command.name());
        self.control(command).instrument(span).await
    }
}

impl<A: Actor> Cell<A> {
    async fn control(&mut self, command: Control) -> Result<ControlReply, ControlError> {
        if let Some(reply) = self.actor.on_control(&command, &mut self.ctx).await {
            return reply;
        }
        match command {
            Control::Checkpoint => match self.actor.snapshot() {
                Some(bytes) => self
                    .shared
                    .store_checkpoint(bytes)
                    .await
                    .map(ControlReply::Checkpointed),
                None => Err(ControlError::NoSnapshot(self.shared.name.to_string())),
            },
            Control::Status => {
                let mut report = self.shared.status();
                report.detail = self.actor.describe().unwrap_or_default();
                Ok(ControlReply::Status(report))
            }
            other => self.shared.default_control(&other),
        }
    }
}
