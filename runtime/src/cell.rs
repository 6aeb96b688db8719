//! The cell: the kameo actor that hosts one incarnation of a user actor, and drives its own
//! batch loop.
//!
//! kameo's own mailbox is the *control lane*: it carries control commands, fault injection
//! and kameo's lifecycle signals. Data messages live in the address's mailbox. The cell
//! overrides [`kameo::Actor::next`], which is how kameo asks an actor for its next signal,
//! and runs this loop there:
//!
//! 1. after a batch or a command, every command waiting in the control lane is returned to
//!    kameo (handled at once), before anything else;
//! 2. otherwise, unless paused, it pops and handles one *batch*: at most `batch_size`
//!    messages, handled one after another, then back to step 1;
//! 3. with nothing to do it parks on both the control lane and the data mailbox's wake-up
//!    slot (see `mailbox::dispatch`). Woken by data, it goes to step 2; woken by a
//!    command, it first handles one batch of what was already queued (messages sent before
//!    the command), then the command.
//!
//! So a control command waits behind at most one batch, however many wake-ups, `Resume`s
//! or commands came before it, and nothing is sent through kameo to make a cell drain:
//! there is no wake-up message and no lock on the wake-up path.
//!
//! This module knows nothing of supervisors: a cell reports how it ended through the
//! [`ExitReport`] it was started with.

use std::{
    future::poll_fn,
    panic::AssertUnwindSafe,
    sync::{atomic::Ordering::SeqCst, Arc, Weak},
    task::Poll,
};

use futures::FutureExt;
use kameo::{
    actor::{ActorRef, WeakActorRef},
    error::ActorStopReason,
    mailbox::{MailboxReceiver, Signal},
    message::{Context as KameoContext, Message},
};
use tracing::Instrument;
use vortex_messages::{ActorState, Control, ControlError, ControlReply};

use crate::{
    actor::{Actor, Context, Ending},
    addr::Addr,
    dead_letter::{panic_text, DeadLetterReason},
    mailbox::Reader,
    shared::Shared,
};

/// How one incarnation of a cell (or of a supervisor) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It stopped for good on request: `Control::Stop` after draining its mailbox, or
    /// `Context::stop`.
    Stopped,
    /// The actor asked for a fresh incarnation (`Context::restart`).
    Normal,
    /// Its supervisor halted it (restart of a sibling, scale-down, shutdown).
    Halted,
    /// It failed: handler error or panic, start failure, escalation from below.
    Failed(String),
}

/// Where a cell reports its exit, once, after its `on_stop` hook finished. Not sent when
/// its start-up failed (that goes to the [`StartReport`]).
pub(crate) enum ExitReport {
    /// A function of its own (a supervisor cell's: it sends a message).
    Call(Box<dyn FnOnce(Exit) + Send>),
    /// A receiver many children share, told which child this is (`key`, `generation`):
    /// nothing allocated per incarnation (the runtime's root).
    Keyed(Weak<dyn ExitSink>, usize, u64),
}

/// A receiver of [`ExitReport::Keyed`] reports.
pub(crate) trait ExitSink: Send + Sync {
    /// Incarnation `generation` of child `key` ended with `exit`.
    fn exited(&self, key: usize, generation: u64, exit: Exit);
}

impl ExitReport {
    /// Delivers the report (a receiver that is gone is not told).
    pub(crate) fn send(self, exit: Exit) {
        match self {
            ExitReport::Call(report) => report(exit),
            ExitReport::Keyed(sink, key, generation) => {
                if let Some(sink) = sink.upgrade() {
                    sink.exited(key, generation, exit);
                }
            }
        }
    }
}

/// Where a cell reports how its start-up went (factory, `restore`, `on_start` within the
/// start timeout), once.
pub(crate) type StartReport = Box<dyn FnOnce(Result<(), String>) + Send>;

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
    pub(crate) report: ExitReport,
    pub(crate) started: StartReport,
    /// An actor its spawner already built and started (see [`start_in_caller`]): the
    /// cell skips its own start-up and `started` is not called.
    pub(crate) built: Option<(A, Context<A>)>,
}

/// Builds and starts an incarnation in the calling task — factory, `restore`, `on_start`,
/// within the start timeout — and marks it live, so the caller learns the outcome without a
/// round trip through a cell that has not run yet. Used for an actor's first start by
/// `Runtime::spawn`; restarts start inside the cell (a supervisor never waits for them).
pub(crate) async fn start_in_caller<A: Actor>(
    shared: &Arc<Shared<A>>,
    worker: usize,
) -> Result<(A, Context<A>), CellFailure> {
    let mut ctx = Context::new(
        Addr {
            shared: Arc::clone(shared),
        },
        worker,
    );
    let actor = build_within_timeout(shared, &mut ctx).await?;
    go_live(shared);
    Ok((actor, ctx))
}

async fn build_within_timeout<A: Actor>(
    shared: &Arc<Shared<A>>,
    ctx: &mut Context<A>,
) -> Result<A, CellFailure> {
    (shared.deadlines)
        .timeout(shared.config.start_timeout, build_actor(shared, ctx))
        .await
        .unwrap_or_else(|_| {
            Err(CellFailure(format!(
                "on_start did not finish within the start timeout ({:?})",
                shared.config.start_timeout
            )))
        })
}

/// A started incarnation counts as a live worker and shows its state.
fn go_live<A: Actor>(shared: &Shared<A>) {
    shared.workers.fetch_add(1, SeqCst);
    if !shared.is_stopping() {
        shared.set_live_state();
    }
}

/// The kameo actor: one pointer to its [`State`]. kameo keeps an actor by value in its
/// task, in several places of the task's state at once (start-up result, running state,
/// stop result), and moves it between them: a boxed state keeps every cell's task small
/// and those moves cheap.
pub(crate) struct Cell<A: Actor>(Box<State<A>>);

/// Everything one incarnation holds.
pub(crate) struct State<A: Actor> {
    actor: A,
    ctx: Context<A>,
    reader: Reader<A::Message>,
    shared: Arc<Shared<A>>,
    worker: usize,
    /// A message popped while parking, handled first by the next batch.
    stash: Option<A::Message>,
    /// kameo's start-up signal was seen: batches may run.
    started: bool,
    /// Control signals taken from the control lane but not yet returned to kameo, in
    /// order: those that arrived before kameo's start-up signal (a command sent right after
    /// `Runtime::spawn` returned), and the one that woke a parked cell. Each is returned
    /// after at most one batch of the data queued with it, as any command waits behind one
    /// batch. (A queue, not an inline slot: a signal is large, and the cell's size is
    /// copied with every move of its task.)
    held: std::collections::VecDeque<Signal<Cell<A>>>,
    /// Return waiting control signals before the next batch.
    control_turn: bool,
    /// The last batch ended on an empty pop: look again only when parking (which pops
    /// after it marked the cell idle, so nothing pushed meanwhile is missed).
    ran_dry: bool,
    exit: Option<Exit>,
    report: Option<ExitReport>,
    /// This type's default `on_control` has been recorded (see `actor::DEFAULT_ON_CONTROL`).
    knows_default_on_control: bool,
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

    async fn on_start(args: CellArgs<A>, _: ActorRef<Self>) -> Result<Self, CellFailure> {
        State::start(args).await.map(|state| Cell(Box::new(state)))
    }

    async fn next(
        &mut self,
        _: WeakActorRef<Self>,
        mailbox_rx: &mut MailboxReceiver<Self>,
    ) -> Result<Option<Signal<Self>>, CellFailure> {
        self.0.next(mailbox_rx).await
    }

    async fn on_stop(
        &mut self,
        _: WeakActorRef<Self>,
        reason: ActorStopReason,
    ) -> Result<(), CellFailure> {
        self.0.stop(reason).await;
        Ok(())
    }
}

impl<A: Actor> State<A> {
    async fn start(args: CellArgs<A>) -> Result<Self, CellFailure> {
        let shared = args.shared;
        let (actor, ctx) = match args.built {
            Some(built) => built,
            None => {
                let mut ctx = Context::new(
                    Addr {
                        shared: Arc::clone(&shared),
                    },
                    args.worker,
                );
                // Boxed: a start inside the cell (restarts, pool workers, tree children) is
                // the rarer path, and its state would otherwise enlarge every cell's task.
                let actor = match Box::pin(build_within_timeout(&shared, &mut ctx)).await {
                    Ok(actor) => actor,
                    Err(failure) => {
                        (args.started)(Err(failure.0.clone()));
                        return Err(failure);
                    }
                };
                (args.started)(Ok(()));
                go_live(&shared);
                (actor, ctx)
            }
        };
        Ok(State {
            actor,
            ctx,
            reader: shared.mailbox.reader(),
            shared,
            worker: args.worker,
            stash: None,
            started: false,
            held: std::collections::VecDeque::new(),
            control_turn: false,
            ran_dry: false,
            exit: None,
            report: Some(args.report),
            knows_default_on_control: false,
        })
    }

    async fn next(
        &mut self,
        mailbox_rx: &mut MailboxReceiver<Cell<A>>,
    ) -> Result<Option<Signal<Cell<A>>>, CellFailure> {
        if !self.started {
            // Until kameo has seen its own start-up signal, no batch runs: a batch that
            // failed now would end a cell kameo never reported as started. kameo sends that
            // signal after its `on_start`, so a command sent as soon as `Runtime::spawn`
            // returned can be queued before it: such a command is kept for later, not
            // handled ahead of the data sent before it.
            loop {
                match mailbox_rx.recv().await {
                    Some(Signal::StartupFinished) => {
                        self.started = true;
                        return Ok(Some(Signal::StartupFinished));
                    }
                    Some(signal) => self.held.push_back(signal),
                    None => return Ok(None),
                }
            }
        }
        loop {
            // Whether the control lane was found empty since the last batch.
            let mut looked = false;
            if self.control_turn {
                // After a batch or a command, every command waiting in the control lane is
                // returned before the next batch: each waits behind one batch at most.
                let waiting = self.held.pop_front();
                if let Some(signal) = waiting.or_else(|| mailbox_rx.try_recv().ok()) {
                    return Ok(Some(signal));
                }
                self.control_turn = false;
                looked = true;
            }
            if let Some(first) = self.next_message() {
                match self.run_batch(first).await {
                    Batch::Done => {
                        self.control_turn = true;
                        continue;
                    }
                    Batch::Exit(exit) => {
                        self.exit = Some(exit);
                        return Ok(None);
                    }
                    Batch::Failed(reason) => {
                        self.exit = Some(Exit::Failed(reason.clone()));
                        return Err(CellFailure(reason));
                    }
                }
            }
            if let Some(exit) = self.exit_due() {
                self.exit = Some(exit);
                return Ok(None);
            }
            let waiting = match self.held.pop_front() {
                Some(signal) => Some(signal),
                None if looked => None,
                None => mailbox_rx.try_recv().ok(),
            };
            if let Some(signal) = waiting {
                self.control_turn = true;
                return Ok(Some(signal));
            }
            tokio::select! {
                biased;
                signal = mailbox_rx.recv() => match signal {
                    // Woken by a command: one batch of what was queued first (data sent
                    // before the command is handled before it), then the command.
                    Some(signal) => self.held.push_back(signal),
                    None => return Ok(None),
                },
                () = self.wait_for_work() => {}
            }
        }
    }

    async fn stop(&mut self, reason: ActorStopReason) {
        if let Some(message) = self.stash.take() {
            // Popped while parking and never handled: it is still owed to a consumer. The
            // supervisor decides (restart: next incarnation; for good: undelivered).
            self.shared
                .dead_letter(DeadLetterReason::Undelivered, Some(message));
        }
        self.shared.workers.fetch_sub(1, SeqCst);
        self.shared
            .mailbox
            .dispatch
            .detach(self.worker, !self.shared.mailbox.is_empty());
        let exit = self.exit.take().unwrap_or_else(|| match reason {
            ActorStopReason::Panicked(error) => Exit::Failed(format!("cell panicked: {error}")),
            _ => Exit::Halted,
        });
        if !matches!(exit, Exit::Failed(_)) {
            let _ = AssertUnwindSafe(self.actor.on_stop(&mut self.ctx))
                .catch_unwind()
                .await;
        }
        if let Some(report) = self.report.take() {
            report.send(exit);
        }
    }
}

/// The outcome of one batch.
enum Batch {
    /// Handled every message it took; look for control commands, then for more.
    Done,
    /// The handler failed on a message.
    Failed(String),
    /// The actor called `Context::stop` (`Stopped`) or `Context::restart` (`Normal`).
    Exit(Exit),
}

impl<A: Actor> State<A> {
    /// Whether its supervisor halted this incarnation (see `Dispatch::halt`).
    #[inline]
    fn halted(&self) -> bool {
        self.shared.mailbox.dispatch.is_halted(self.worker)
    }

    /// Why this incarnation must end now, if it must.
    fn exit_due(&self) -> Option<Exit> {
        if self.halted() {
            return Some(Exit::Halted);
        }
        if self.shared.is_stopping() && self.shared.mailbox.is_empty() {
            self.shared.set_state(ActorState::Stopped);
            return Some(Exit::Stopped);
        }
        None
    }

    /// The first message of the next batch: the stashed one (already taken: handled even
    /// if a halt or a pause arrived meanwhile), else the oldest queued, unless this
    /// incarnation must end or is paused.
    fn next_message(&mut self) -> Option<A::Message> {
        if let Some(message) = self.stash.take() {
            return Some(message);
        }
        let paused = self.shared.is_paused() && !self.shared.is_stopping();
        if std::mem::take(&mut self.ran_dry) || paused || self.halted() {
            return None;
        }
        self.shared.mailbox.pop(&mut self.reader)
    }

    /// Parks until there is work or a reason to look again (halt, `Resume`, `Stop`). A
    /// message found while parking is stashed, so a cancelled wait loses nothing.
    async fn wait_for_work(&mut self) {
        let State {
            shared,
            reader,
            stash,
            worker,
            ..
        } = self;
        let dispatch = &shared.mailbox.dispatch;
        let halted = || dispatch.is_halted(*worker);
        shared.mailbox.parking(reader);
        poll_fn(|cx| {
            if stash.is_some() || halted() {
                return Poll::Ready(());
            }
            if shared.is_paused() && !shared.is_stopping() {
                dispatch.listen(*worker, cx.waker());
                return if shared.is_paused() && !halted() {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                };
            }
            dispatch.park(*worker, cx.waker());
            shared.mailbox.wake_senders();
            if let Some(message) = shared.mailbox.pop(reader) {
                dispatch.busy(*worker);
                *stash = Some(message);
                return Poll::Ready(());
            }
            if halted()
                || (shared.is_stopping() && shared.mailbox.is_empty())
                || (shared.is_paused() && !shared.is_stopping())
            {
                dispatch.busy(*worker);
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    }

    /// Handles up to one batch, starting with `first`. Counters are updated once per batch.
    async fn run_batch(&mut self, first: A::Message) -> Batch {
        let span =
            tracing::trace_span!("vortex.handle", actor = %self.shared.name, worker = self.worker);
        self.handle_batch(first).instrument(span).await
    }

    async fn handle_batch(&mut self, first: A::Message) -> Batch {
        let batch = self.shared.config.batch;
        // Two clock reads per batch (not per message) feed the handler-time metrics.
        let started = std::time::Instant::now();
        let mut handled = 0u64;
        let mut next = Some(first);
        let mut outcome = Batch::Done;
        let mut taken = 0;
        while let Some(message) = next.take() {
            taken += 1;
            let result = AssertUnwindSafe(self.actor.handle(message, &mut self.ctx))
                .catch_unwind()
                .await;
            let reason = match result {
                Ok(Ok(())) => {
                    handled += 1;
                    match self.ctx.take_ending() {
                        Ending::No => {}
                        Ending::Stop => {
                            outcome = Batch::Exit(Exit::Stopped);
                            break;
                        }
                        Ending::Restart => {
                            outcome = Batch::Exit(Exit::Normal);
                            break;
                        }
                    }
                    if taken < batch && !self.halted() {
                        next = self.shared.mailbox.pop(&mut self.reader);
                        self.ran_dry = next.is_none();
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
        }
        self.shared.stats.add_handled(handled);
        self.shared.stats.add_handler_time(started.elapsed());
        if taken >= batch && self.has_siblings() && !self.shared.mailbox.is_empty() {
            // More may be waiting than this worker takes in one batch: let a parked
            // sibling help (a no-op for single actors, which have no sibling to wake).
            self.shared.mailbox.dispatch.notify();
        }
        outcome
    }

    fn has_siblings(&self) -> bool {
        self.shared.mailbox.dispatch.max_workers() > 1
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
        self.0.exit = Some(Exit::Failed(reason.clone()));
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
        let state = &mut *self.0;
        let span = tracing::info_span!("vortex.control", actor = %state.shared.name, command = command.name());
        state.control(command).instrument(span).await
    }
}

impl<A: Actor> State<A> {
    async fn control(&mut self, command: Control) -> Result<ControlReply, ControlError> {
        if let Some(reply) = self.actor.on_control(&command, &mut self.ctx).await {
            return reply;
        }
        if self.ctx.take_default_on_control() && !self.knows_default_on_control {
            self.knows_default_on_control = true;
            crate::actor::learn_default_on_control::<A>();
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
