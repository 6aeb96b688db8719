//! [`Scheduler`], the arming side: every arm and cancel is a message to the scheduler
//! actor, sent with `try_tell` so it returns at once; [`TimerHandle`], which cancels.

use std::{
    fmt,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use tokio::time::Instant;
use vortex_messages::Control;
use vortex_runtime::{
    Actor, ActorSpec, Addr, Runtime, RuntimeError, RuntimeObserver, TrySendError,
};

use crate::{
    scheduler::{
        actor::{ArmTimer, SchedulerActor, SchedulerMessage, Shared},
        clock::TickClock,
        delivery::{ControlCommand, Every, Fire, Once, Stats},
        state::TimerState,
        CancelOutcome, Error, MissedTicks,
    },
    telemetry::LatencyHistogram,
};

/// How to spawn a [`Scheduler`]: `SchedulerConfig::default()` and the builder methods.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    tick: Duration,
    mailbox_capacity: usize,
    backlog_per_target: usize,
    lag: Option<LatencyHistogram>,
}

impl Default for SchedulerConfig {
    /// 1 ms ticks, a 4096-message mailbox, 1024 waiting deliveries per full target, a
    /// lag histogram of its own.
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(1),
            mailbox_capacity: 4096,
            backlog_per_target: 1024,
            lag: None,
        }
    }
}

impl SchedulerConfig {
    /// The resolution (at least 1 µs; tokio's own timer wakes at 1 ms granularity).
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// The scheduler actor's mailbox capacity (arms and cancels beyond it wait in an
    /// unbounded lock-free overflow queue: arming never blocks and is never refused).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = capacity.max(1);
        self
    }

    /// How many fired messages may wait for one full target (at least 1); past that,
    /// the newest is dropped and counted in [`Scheduler::overflowed`].
    pub fn backlog_per_target(mut self, limit: usize) -> Self {
        self.backlog_per_target = limit.max(1);
        self
    }

    /// Records timer lateness here, e.g. `MetricsSink::timer_lag()` so that it is
    /// exported as `vortex_timer_lag_seconds`.
    pub fn lag_histogram(mut self, histogram: LatencyHistogram) -> Self {
        self.lag = Some(histogram);
        self
    }
}

/// The scheduler: arm timers that deliver messages to actors.
///
/// ```
/// # use std::time::Duration;
/// # use vortex_runtime::{Actor, ActorError, Context, Runtime};
/// use vortex_actors::scheduler::Scheduler;
/// # struct Ping;
/// # impl Actor for Ping {
/// #     type Message = &'static str;
/// #     async fn handle(&mut self, _: &'static str, _: &mut Context<Self>) -> Result<(), ActorError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let rt = Runtime::builder().build().unwrap();
/// let ping = rt.spawn("ping", || Ping).await.unwrap();
/// let scheduler = Scheduler::spawn(&rt, "scheduler").await.unwrap();
/// let once = scheduler.send_after(Duration::from_millis(5), &ping, "once");
/// let every = scheduler.send_interval(Duration::from_millis(10), &ping, "tick").unwrap();
/// drop(every); // cancels it
/// once.detach(); // keeps it
/// # rt.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Scheduler {
    // One `Arc`, so a handle costs one reference count, not two.
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: Addr<SchedulerActor>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Scheduler")
            .field("name", &self.inner.addr.name())
            .field("armed", &self.armed())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Spawns the scheduler actor named `name` with the default [`SchedulerConfig`].
    pub async fn spawn(rt: &Runtime, name: &str) -> Result<Scheduler, RuntimeError> {
        Self::spawn_with(rt, name, SchedulerConfig::default()).await
    }

    /// Spawns the scheduler actor with a tick of `tick` (the resolution; at least 1 µs).
    pub async fn spawn_with_tick(
        rt: &Runtime,
        name: &str,
        tick: Duration,
    ) -> Result<Scheduler, RuntimeError> {
        Self::spawn_with(rt, name, SchedulerConfig::default().tick(tick)).await
    }

    /// Spawns the scheduler actor named `name` as `config` says.
    pub async fn spawn_with(
        rt: &Runtime,
        name: &str,
        config: SchedulerConfig,
    ) -> Result<Scheduler, RuntimeError> {
        let stats = Arc::new(Stats {
            lag: config.lag.unwrap_or_default(),
            ..Stats::default()
        });
        let clock = TickClock::new(Instant::now(), config.tick);
        let shared = Arc::new(Shared::new(clock, config.backlog_per_target, stats));
        let for_actor = Arc::clone(&shared);
        let spec = ActorSpec::new(name, move || SchedulerActor::new(Arc::clone(&for_actor)))
            .capacity(config.mailbox_capacity);
        let addr = rt.spawn_actor(spec).await?;
        Ok(Scheduler {
            inner: Arc::new(Inner { shared, addr }),
        })
    }

    /// Sends `message` to the actor: at once when there is room, else through the
    /// overflow queue plus a `Wake` (if even that finds the mailbox full, the messages
    /// queued there are handled later and each one drains the overflow queue).
    fn send(&self, message: SchedulerMessage) {
        if let Err(TrySendError::Full(message)) = self.inner.addr.try_tell(message) {
            self.inner.shared.overflow.push(message);
            let _ = self.inner.addr.try_tell(SchedulerMessage::Wake);
        }
        // `Closed`: the scheduler stopped for good; nothing will fire.
    }

    fn arm(
        &self,
        deadline: u64,
        period: u64,
        missed: MissedTicks,
        fire: Box<dyn Fire>,
    ) -> TimerHandle {
        let state = Arc::new(TimerState::new());
        self.send(SchedulerMessage::Arm(ArmTimer {
            state: Arc::clone(&state),
            deadline,
            period,
            missed,
            fire,
        }));
        TimerHandle {
            state,
            scheduler: self.clone(),
            cancel_on_drop: true,
        }
    }

    /// Delivers `message` to `target` once, `delay` from now (never earlier). Any delay
    /// is accepted: one beyond the last tick (`Duration::MAX`) never fires.
    pub fn send_after<A: Actor>(
        &self,
        delay: Duration,
        target: &Addr<A>,
        message: A::Message,
    ) -> TimerHandle {
        let deadline = self
            .inner
            .shared
            .clock
            .deadline_after(Instant::now(), delay);
        let fire = Box::new(Once {
            target: target.clone(),
            message,
        });
        self.arm(deadline, 0, MissedTicks::Burst, fire)
    }

    /// Delivers `message` to `target` once, at `instant` (never earlier).
    pub fn send_at<A: Actor>(
        &self,
        instant: Instant,
        target: &Addr<A>,
        message: A::Message,
    ) -> TimerHandle {
        let deadline = self.inner.shared.clock.tick_at(instant);
        let fire = Box::new(Once {
            target: target.clone(),
            message,
        });
        self.arm(deadline, 0, MissedTicks::Burst, fire)
    }

    /// Delivers a clone of `message` to `target` every `period`, the first one `period`
    /// from now (never earlier), with the default missed-tick policy
    /// ([`MissedTicks::Burst`]). A period that is not a whole number of ticks is rounded
    /// *up* to one (1.5 ms at 1 ms ticks fires every 2 ms); deadline n is exactly
    /// first + n·period in ticks (no drift).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroPeriod`] for a zero `period`; nothing is armed.
    pub fn send_interval<A: Actor>(
        &self,
        period: Duration,
        target: &Addr<A>,
        message: A::Message,
    ) -> Result<TimerHandle, Error>
    where
        A::Message: Clone,
    {
        self.send_interval_with(period, MissedTicks::default(), target, message)
    }

    /// [`send_interval`](Self::send_interval) with the policy `missed` for periods a
    /// late tick (a busy runtime, a `Resume` after a long `Pause`) finds already past.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroPeriod`] for a zero `period`; nothing is armed.
    pub fn send_interval_with<A: Actor>(
        &self,
        period: Duration,
        missed: MissedTicks,
        target: &Addr<A>,
        message: A::Message,
    ) -> Result<TimerHandle, Error>
    where
        A::Message: Clone,
    {
        if period.is_zero() {
            return Err(Error::ZeroPeriod);
        }
        let clock = &self.inner.shared.clock;
        let first = clock.deadline_after(Instant::now(), period);
        let fire = Box::new(Every {
            target: target.clone(),
            message,
        });
        Ok(self.arm(first, clock.ticks_in(period), missed, fire))
    }

    /// Sends `command` to the actor named `name` after `delay` (through `observer`, see
    /// `Runtime::observer`). An unknown name at fire time counts as a dropped target.
    pub fn control_after(
        &self,
        delay: Duration,
        observer: &RuntimeObserver,
        name: &str,
        command: Control,
    ) -> TimerHandle {
        let deadline = self
            .inner
            .shared
            .clock
            .deadline_after(Instant::now(), delay);
        let fire = Box::new(ControlCommand {
            observer: observer.clone(),
            name: name.to_owned(),
            command,
        });
        self.arm(deadline, 0, MissedTicks::Burst, fire)
    }

    /// Timers the scheduler actor holds armed, as of the last message it handled (arms
    /// still in its mailbox are not counted yet).
    pub fn armed(&self) -> usize {
        self.inner.shared.stats.armed.load(Relaxed)
    }

    /// Expiries handed to their target (or to its backlog) so far.
    pub fn fired(&self) -> u64 {
        self.inner.shared.stats.fired.load(Relaxed)
    }

    /// Deliveries dropped because their target was gone (an interval to it ends).
    pub fn dropped_targets(&self) -> u64 {
        self.inner.shared.stats.dropped.load(Relaxed)
    }

    /// Deliveries dropped because their target's backlog was full
    /// ([`SchedulerConfig::backlog_per_target`]).
    pub fn overflowed(&self) -> u64 {
        self.inner.shared.stats.overflowed.load(Relaxed)
    }

    /// Deliveries lost to a panic in user code (a message's `Clone` or `Drop`); no other
    /// timer is affected.
    pub fn panicked_deliveries(&self) -> u64 {
        self.inner.shared.stats.panicked.load(Relaxed)
    }

    /// Ticks the scheduler actor has handled (one per wake-up of its driver).
    pub fn ticks(&self) -> u64 {
        self.inner.shared.stats.ticks.load(Relaxed)
    }

    /// Timer lateness (hand-over minus the deadline's tick), the histogram behind
    /// `vortex_timer_lag_seconds`.
    pub fn lag(&self) -> &LatencyHistogram {
        &self.inner.shared.stats.lag
    }

    /// The resolution.
    pub fn tick(&self) -> Duration {
        self.inner.shared.clock.tick()
    }

    /// The scheduler actor's address.
    pub fn addr(&self) -> &Addr<SchedulerActor> {
        &self.inner.addr
    }
}

/// A timer armed through a [`Scheduler`]. Dropping it cancels the timer, unless it was
/// [`detach`](TimerHandle::detach)ed.
///
/// Cancelling never waits and never fails: it flips the timer's shared state (checked at
/// fire time, so the timer can no longer fire), then queues the table entry to be freed
/// on the scheduler's lock-free free list and, when that batch was empty, sends the
/// scheduler a `Wake` (best effort: if the mailbox is full, the messages in it free the
/// batch). It is safe from `Drop`, from inside a delivery, and with the scheduler's
/// mailbox full.
#[must_use = "dropping a TimerHandle cancels the timer; call detach() to keep it"]
pub struct TimerHandle {
    state: Arc<TimerState>,
    scheduler: Scheduler,
    cancel_on_drop: bool,
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TimerHandle")
            .field("state", &self.state)
            .field("cancel_on_drop", &self.cancel_on_drop)
            .finish_non_exhaustive()
    }
}

impl TimerHandle {
    /// Cancels the timer: `Cancelled` (it will never fire) or `AlreadyFired` (a one-shot
    /// that fired — its message is delivered or on its way — an interval that ended, or
    /// a timer already cancelled). Idempotent.
    pub fn cancel(&self) -> CancelOutcome {
        let (outcome, armed_as) = self.state.cancel();
        if let Some(id) = armed_as {
            if self.scheduler.inner.shared.free_later(id) {
                // Full: the messages queued are handled later and free the batch.
                let _ = self.scheduler.inner.addr.try_tell(SchedulerMessage::Wake);
            }
        }
        outcome
    }

    /// Keeps the timer armed after the handle is dropped.
    pub fn detach(mut self) {
        self.cancel_on_drop = false;
    }
}

impl Drop for TimerHandle {
    fn drop(&mut self) {
        if self.cancel_on_drop {
            let _ = self.cancel();
        }
    }
}
