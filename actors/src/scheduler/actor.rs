//! The scheduler actor: drives a [`Timers`] table from tokio's monotonic clock and delivers
//! what fires to typed addresses or, by name, as control commands.
//!
//! The table lives outside the actor's cell (shared by the [`Scheduler`] handle), so a
//! supervised restart keeps every timer — interval timers go on ticking. Arming and
//! cancelling lock the table directly from the caller: `cancel` answers at once and, once
//! it says `Cancelled`, the timer never fires. A small driver task sleeps until the next
//! deadline (or indefinitely when nothing is armed) and then sends the actor a `Tick`; the
//! actor advances the table and delivers. A paused scheduler holds its `Tick`s, so `Pause`
//! holds firing and `Resume` fires everything that came due, in order.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use tokio::{sync::Notify, task::JoinHandle, time::Instant};
use vortex_messages::Control;
use vortex_runtime::{
    Actor, ActorError, ActorSpec, Addr, Context, Reply, Runtime, RuntimeError, RuntimeObserver,
    TrySendError,
};

use crate::scheduler::{CancelOutcome, Error, Fired, TimerId, Timers};

/// What a fired timer does: deliver and say whether the target still exists.
type Delivery = Box<dyn FnMut() -> Delivered + Send>;

enum Delivered {
    Sent,
    TargetGone,
}

struct Shared {
    table: Mutex<Timers<Delivery>>,
    epoch: Instant,
    tick: Duration,
    rearmed: Notify,
    fired: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Timers<Delivery>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ticks since the epoch, rounded down: a timer due at tick t fires once t has begun.
    fn now_tick(&self) -> u64 {
        (Instant::now()
            .saturating_duration_since(self.epoch)
            .as_nanos()
            / self.tick.as_nanos()) as u64
    }

    /// The tick of `instant`, rounded up, so that a timer never fires early.
    fn tick_at(&self, instant: Instant) -> u64 {
        let nanos = instant.saturating_duration_since(self.epoch).as_nanos();
        nanos.div_ceil(self.tick.as_nanos()) as u64
    }

    fn ticks(&self, duration: Duration) -> u64 {
        duration.as_nanos().div_ceil(self.tick.as_nanos()) as u64
    }

    fn instant_of(&self, tick: u64) -> Instant {
        self.epoch + self.tick * u32::try_from(tick).unwrap_or(u32::MAX)
    }
}

/// Messages of the scheduler actor (sent by its driver).
pub enum SchedulerMessage {
    /// Advance to now and deliver what is due; the reply says how many fired.
    Tick(Reply<usize>),
}

/// The scheduler actor. Spawn it with [`Scheduler::spawn`].
pub struct SchedulerActor {
    shared: Arc<Shared>,
    driver: Option<JoinHandle<()>>,
}

impl Actor for SchedulerActor {
    type Message = SchedulerMessage;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.driver = Some(tokio::spawn(drive(
            Arc::clone(&self.shared),
            ctx.addr().clone(),
        )));
        Ok(())
    }

    async fn handle(
        &mut self,
        message: SchedulerMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        let SchedulerMessage::Tick(reply) = message;
        let fired = advance(&self.shared)?;
        reply.send(fired);
        Ok(())
    }

    async fn on_stop(&mut self, _: &mut Context<Self>) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }

    fn describe(&self) -> Option<String> {
        let table = self.shared.table();
        Some(format!(
            "armed={} now_tick={} next_deadline={:?} fired={} dropped_targets={}",
            table.len(),
            table.now(),
            table.next_deadline(),
            self.shared.fired.load(Relaxed),
            self.shared.dropped.load(Relaxed)
        ))
    }
}

impl Drop for SchedulerActor {
    fn drop(&mut self) {
        // A failed incarnation does not run `on_stop`; its driver must not outlive it.
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }
}

/// Advances the table to now and delivers what fired, in order.
fn advance(shared: &Shared) -> Result<usize, Error> {
    let now = shared.now_tick();
    let mut gone = Vec::new();
    let mut table = shared.table();
    let fired = table.advance_to(now, |fired| {
        let (id, delivered) = match fired {
            Fired::Once {
                id, mut payload, ..
            } => (id, payload()),
            Fired::Interval { id, payload, .. } => (id, payload()),
        };
        if matches!(delivered, Delivered::TargetGone) {
            gone.push(id);
        }
    })?;
    for id in gone {
        let _ = table.cancel(id);
        shared.dropped.fetch_add(1, Relaxed);
    }
    drop(table);
    shared.fired.fetch_add(fired as u64, Relaxed);
    Ok(fired)
}

/// Sleeps until the next deadline (or until something is armed), then ticks the actor and
/// waits for that tick to be handled — a paused scheduler is not flooded with ticks.
async fn drive(shared: Arc<Shared>, addr: Addr<SchedulerActor>) {
    loop {
        let rearmed = shared.rearmed.notified();
        tokio::pin!(rearmed);
        rearmed.as_mut().enable();
        let next = shared.table().next_deadline();
        match next {
            None => {
                rearmed.await;
                continue;
            }
            Some(tick) => {
                tokio::select! {
                    () = tokio::time::sleep_until(shared.instant_of(tick)) => {}
                    () = &mut rearmed => continue,
                }
            }
        }
        let (reply, handled) = Reply::channel();
        if addr.tell(SchedulerMessage::Tick(reply)).await.is_err() {
            return;
        }
        let _ = handled.await;
    }
}

/// A timer armed through a [`Scheduler`]. Dropping it cancels the timer, unless it was
/// [`detach`](TimerHandle::detach)ed.
#[must_use = "dropping a TimerHandle cancels the timer; call detach() to keep it"]
pub struct TimerHandle {
    id: TimerId,
    shared: Arc<Shared>,
    cancel_on_drop: bool,
}

impl TimerHandle {
    /// Cancels the timer: `Cancelled` (it will never fire) or `AlreadyFired` (a one-shot
    /// that fired, or a timer already cancelled). Idempotent.
    pub fn cancel(&self) -> CancelOutcome {
        self.shared.table().cancel(self.id)
    }

    /// Keeps the timer armed after the handle is dropped; returns its id.
    pub fn detach(mut self) -> TimerId {
        self.cancel_on_drop = false;
        self.id
    }

    /// The timer's id.
    pub fn id(&self) -> TimerId {
        self.id
    }
}

impl Drop for TimerHandle {
    fn drop(&mut self) {
        if self.cancel_on_drop {
            let _ = self.shared.table().cancel(self.id);
        }
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
    shared: Arc<Shared>,
    addr: Addr<SchedulerActor>,
}

impl Scheduler {
    /// Spawns the scheduler actor named `name` with 1 ms ticks.
    pub async fn spawn(rt: &Runtime, name: &str) -> Result<Scheduler, RuntimeError> {
        Self::spawn_with_tick(rt, name, Duration::from_millis(1)).await
    }

    /// Spawns the scheduler actor with a tick of `tick` (the resolution; at least 1 µs).
    pub async fn spawn_with_tick(
        rt: &Runtime,
        name: &str,
        tick: Duration,
    ) -> Result<Scheduler, RuntimeError> {
        let shared = Arc::new(Shared {
            table: Mutex::new(Timers::new()),
            epoch: Instant::now(),
            tick: tick.max(Duration::from_micros(1)),
            rearmed: Notify::new(),
            fired: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let for_actor = Arc::clone(&shared);
        let addr = rt
            .spawn_actor(ActorSpec::new(name, move || SchedulerActor {
                shared: Arc::clone(&for_actor),
                driver: None,
            }))
            .await?;
        Ok(Scheduler { shared, addr })
    }

    fn arm(&self, deadline: u64, delivery: Delivery) -> TimerHandle {
        let id = self.shared.table().arm_at(deadline, delivery);
        self.shared.rearmed.notify_one();
        self.handle(id)
    }

    fn handle(&self, id: TimerId) -> TimerHandle {
        TimerHandle {
            id,
            shared: Arc::clone(&self.shared),
            cancel_on_drop: true,
        }
    }

    /// Delivers `message` to `target` once, `delay` from now (never earlier).
    pub fn send_after<A: Actor>(
        &self,
        delay: Duration,
        target: &Addr<A>,
        message: A::Message,
    ) -> TimerHandle {
        self.send_at(Instant::now() + delay, target, message)
    }

    /// Delivers `message` to `target` once, at `instant` (never earlier).
    pub fn send_at<A: Actor>(
        &self,
        instant: Instant,
        target: &Addr<A>,
        message: A::Message,
    ) -> TimerHandle {
        let (target, mut message) = (target.clone(), Some(message));
        let deadline = self.shared.tick_at(instant);
        self.arm(
            deadline,
            Box::new(move || match message.take() {
                Some(message) => deliver(&target, message),
                None => Delivered::Sent,
            }),
        )
    }

    /// Delivers a clone of `message` to `target` every `period`, first one `period` from
    /// now; deadline n is exactly start + n·period (no drift).
    pub fn send_interval<A: Actor>(
        &self,
        period: Duration,
        target: &Addr<A>,
        message: A::Message,
    ) -> Result<TimerHandle, Error>
    where
        A::Message: Clone,
    {
        let target = target.clone();
        let period_ticks = self.shared.ticks(period);
        let first = self.shared.now_tick() + period_ticks;
        let id = self.shared.table().arm_interval(
            first,
            period_ticks,
            Box::new(move || deliver(&target, message.clone())),
        )?;
        self.shared.rearmed.notify_one();
        Ok(self.handle(id))
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
        let (observer, name, shared) =
            (observer.clone(), name.to_owned(), Arc::clone(&self.shared));
        let mut command = Some(command);
        let deadline = self.shared.tick_at(Instant::now() + delay);
        self.arm(
            deadline,
            Box::new(move || {
                if let Some(command) = command.take() {
                    let (observer, name, shared) =
                        (observer.clone(), name.clone(), Arc::clone(&shared));
                    tokio::spawn(async move {
                        if observer.control(&name, command).await.is_err() {
                            shared.dropped.fetch_add(1, Relaxed);
                        }
                    });
                }
                Delivered::Sent
            }),
        )
    }

    /// Timers armed now.
    pub fn armed(&self) -> usize {
        self.shared.table().len()
    }

    /// Expiries delivered so far.
    pub fn fired(&self) -> u64 {
        self.shared.fired.load(Relaxed)
    }

    /// Timers dropped because their target was gone.
    pub fn dropped_targets(&self) -> u64 {
        self.shared.dropped.load(Relaxed)
    }

    /// The scheduler actor's address.
    pub fn addr(&self) -> &Addr<SchedulerActor> {
        &self.addr
    }
}

/// Delivers without blocking the scheduler: `try_tell`, and when the mailbox is full a
/// task that waits (back-pressure for that target only; the message is never dropped).
fn deliver<A: Actor>(target: &Addr<A>, message: A::Message) -> Delivered {
    match target.try_tell(message) {
        Ok(()) => Delivered::Sent,
        Err(TrySendError::Full(message)) => {
            let target = target.clone();
            tokio::spawn(async move {
                let _ = target.tell(message).await;
            });
            Delivered::Sent
        }
        Err(TrySendError::Closed(_)) => Delivered::TargetGone,
    }
}
