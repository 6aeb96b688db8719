//! The [`Actor`] trait users implement, and the [`Context`] a handler sees.

use std::{any::TypeId, collections::BTreeSet, future::Future, sync::RwLock};

use vortex_messages::{Control, ControlError, ControlReply};

use crate::addr::Addr;

/// What a failing handler or hook returns. Any error converts into it with `?`.
///
/// A handler error is a failure like a panic: the message goes to the dead-letter sink and
/// the supervisor decides whether to restart the actor.
pub type ActorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A typed actor: state plus a handler for one message type.
///
/// Only [`handle`](Actor::handle) is required. Every hook has a default.
///
/// ```
/// use vortex_runtime::{Actor, ActorError, Context, Reply};
///
/// #[derive(Default)]
/// struct Counter { total: u64 }
///
/// enum CounterMessage { Add(u64), Get(Reply<u64>) }
///
/// impl Actor for Counter {
///     type Message = CounterMessage;
///
///     async fn handle(&mut self, message: CounterMessage, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
///         match message {
///             CounterMessage::Add(n) => self.total += n,
///             CounterMessage::Get(reply) => reply.send(self.total),
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Actor: Send + Sized + 'static {
    /// The one message type this actor handles (usually an enum).
    type Message: Send + 'static;

    /// Handles one message. An `Err` or a panic is a failure the supervisor sees.
    fn handle(
        &mut self,
        message: Self::Message,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send;

    /// Runs before the first message, in every incarnation (also after a restart, after
    /// [`restore`](Actor::restore)). An `Err` is a failure.
    fn on_start(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs when the actor stops normally (`Stop`, shutdown, a supervisor stopping it).
    /// It does not run after a handler panicked: the state may be broken then.
    fn on_stop(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// The state to keep in a checkpoint; `None` (the default) means "no snapshot".
    fn snapshot(&mut self) -> Option<Vec<u8>> {
        None
    }

    /// Restores state from the latest checkpoint after a supervised restart, before
    /// [`on_start`](Actor::on_start). An `Err` is a start failure.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        let _ = snapshot;
        Ok(())
    }

    /// Extra, subsystem-specific text for `Control::Status` (`StatusReport::detail`).
    fn describe(&self) -> Option<String> {
        None
    }

    /// Overrides the default answer to a control command. Return `None` to keep the
    /// default (see `docs/semantics.md`), or `Some(reply)` to answer yourself.
    fn on_control(
        &mut self,
        command: &Control,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Option<Result<ControlReply, ControlError>>> + Send {
        let _ = command;
        // Tells the cell that this type keeps the default (see `keeps_default_on_control`).
        ctx.default_on_control = true;
        async { None }
    }
}

/// What a handler knows about the actor it runs in.
pub struct Context<A: Actor> {
    addr: Addr<A>,
    worker: usize,
    ending: Ending,
    /// Set by the default `on_control` when it runs.
    default_on_control: bool,
}

/// How a handler asked its incarnation to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It did not.
    No,
    /// `Context::stop`: for good.
    Stop,
    /// `Context::restart`: a fresh incarnation, as the restart policy allows.
    Restart,
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(addr: Addr<A>, worker: usize) -> Self {
        Context {
            addr,
            worker,
            ending: Ending::No,
            default_on_control: false,
        }
    }

    /// This actor's own address (for a pool: the pool's shared address).
    pub fn addr(&self) -> &Addr<A> {
        &self.addr
    }

    /// The registered name.
    pub fn name(&self) -> &str {
        self.addr.name()
    }

    /// The worker's index in its pool (0 for a single actor).
    pub fn worker_index(&self) -> usize {
        self.worker
    }

    /// Stops this actor for good after the current message, whatever its restart policy:
    /// its mailbox closes, what is still queued goes to the dead-letter sink as
    /// `Undelivered`, `on_stop` runs, and its name is released. (`Control::Stop` is the
    /// graceful stop that first handles what is queued.) For a pool worker: this worker
    /// retires; the pool goes on with the others.
    pub fn stop(&mut self) {
        self.ending = Ending::Stop;
    }

    /// Ends this incarnation normally after the current message: a `Permanent` actor gets a
    /// fresh one (counted against its restart intensity, after its back-off) that drains
    /// the same mailbox; a `Transient` or `Temporary` one (restarted only after failures, or
    /// never) stops for good, its queued messages going to the dead-letter sink. `on_stop`
    /// runs first.
    pub fn restart(&mut self) {
        self.ending = Ending::Restart;
    }

    pub(crate) fn take_ending(&mut self) -> Ending {
        std::mem::replace(&mut self.ending, Ending::No)
    }

    /// Whether the trait's default `on_control` ran since the last call (and clears it).
    pub(crate) fn take_default_on_control(&mut self) -> bool {
        std::mem::take(&mut self.default_on_control)
    }
}

/// Actor types known to keep the trait's default `on_control`: learned the first time one
/// of them answered a command with it (its body marks the context). For those, the
/// runtime may apply a command whose default needs no actor state (`Stop`) without a
/// round trip through the cell: the reply and the effect are exactly those the cell would
/// give. Process-wide on purpose: whether a type overrides a trait method is a property
/// of the type, the same in every runtime.
static DEFAULT_ON_CONTROL: RwLock<BTreeSet<TypeId>> = RwLock::new(BTreeSet::new());

/// Whether actors of type `A` are known to keep the default `on_control`.
pub(crate) fn keeps_default_on_control<A: Actor>() -> bool {
    DEFAULT_ON_CONTROL
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&TypeId::of::<A>())
}

/// Records that actors of type `A` keep the default `on_control`.
pub(crate) fn learn_default_on_control<A: Actor>() {
    DEFAULT_ON_CONTROL
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(TypeId::of::<A>());
}
