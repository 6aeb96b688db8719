//! The scheduler actor: owns the timer table (through state every incarnation shares),
//! applies `Arm` and `Cancel` messages, and on each `Tick` from its driver advances the
//! table and delivers what fired.
//!
//! - **The table survives a panic.** It lives in `Shared`, which the factory hands to
//!   each new incarnation; an incarnation only borrows it for the length of one message.
//! - **The driver belongs to the incarnation.** `on_start` spawns it and both `on_stop`
//!   and `Drop` (a failed incarnation does not run `on_stop`) abort it, so a restart
//!   restarts it. It sleeps until the earliest deadline the actor published (or until an
//!   earlier one is armed), sends one `Tick` and waits for its answer, so a paused
//!   scheduler is never flooded and an idle one never wakes.
//! - **Delivery runs outside the table's lock**, and every piece of user code (a
//!   message's `Clone` or `Drop`) runs inside `catch_unwind`: a panicking delivery is
//!   counted and costs no other timer.

use std::{
    mem,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{
            AtomicBool, AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
            Ordering::Release,
        },
        Arc, Mutex, MutexGuard, PoisonError,
    },
};

use crossbeam_queue::SegQueue;
use tokio::{sync::Notify, task::JoinHandle, time::Instant};
use vortex_runtime::{Actor, ActorError, Addr, Context, Reply};

use crate::scheduler::{
    clock::{TickClock, NEVER},
    delivery::{Backlogs, Delivered, Fire, Post, Stats},
    state::TimerState,
    Fired, MissedTicks, TimerId, Timers,
};

/// A timer in the table: its shared state and its payload.
pub(crate) struct Armed {
    state: Arc<TimerState>,
    fire: Box<dyn Fire>,
}

/// What every incarnation of one scheduler shares (and what survives its restarts).
pub(crate) struct Shared {
    pub(crate) clock: TickClock,
    table: Mutex<Timers<Armed>>,
    backlogs: Mutex<Backlogs>,
    pub(crate) backlog_limit: usize,
    /// Arms that found the mailbox full, applied with the next message.
    pub(crate) overflow: SegQueue<SchedulerMessage>,
    /// Table ids of cancelled timers, whose entries the actor frees with its next
    /// message. Batched: a handle sends one `Wake` only when the batch was empty.
    freed: SegQueue<TimerId>,
    free_pending: AtomicBool,
    /// The earliest deadline the driver must wake for ([`NEVER`]: none). Written only
    /// by the actor.
    wake: AtomicU64,
    rearmed: Notify,
    pub(crate) stats: Arc<Stats>,
}

impl Shared {
    pub(crate) fn new(clock: TickClock, backlog_limit: usize, stats: Arc<Stats>) -> Self {
        Self {
            clock,
            table: Mutex::new(Timers::new()),
            backlogs: Mutex::new(Backlogs::default()),
            backlog_limit,
            overflow: SegQueue::new(),
            freed: SegQueue::new(),
            free_pending: AtomicBool::new(false),
            wake: AtomicU64::new(NEVER),
            rearmed: Notify::new(),
            stats,
        }
    }

    // The locks are taken only by the scheduler actor, one message at a time; they are
    // what lets a new incarnation take over the table of a failed one. A poisoned lock
    // (a panic in the table itself) still holds a consistent table between calls.
    fn table(&self) -> MutexGuard<'_, Timers<Armed>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn backlogs(&self) -> MutexGuard<'_, Backlogs> {
        self.backlogs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the entry of a cancelled timer to be freed; `true` when the caller must
    /// send a `Wake` (the batch was empty).
    pub(crate) fn free_later(&self, id: TimerId) -> bool {
        self.freed.push(id);
        !self.free_pending.swap(true, AcqRel)
    }

    fn wake_by(&self, deadline: u64) {
        if deadline < self.wake.load(Acquire) {
            self.wake.store(deadline, Release);
            self.rearmed.notify_one();
        }
    }
}

/// Messages of the scheduler actor. [`Scheduler`](crate::scheduler::Scheduler) sends
/// `Arm`; [`TimerHandle`](crate::scheduler::TimerHandle) sends `Wake` after a cancel;
/// the actor's driver sends `Tick`.
pub enum SchedulerMessage {
    /// Arm a timer whose state the caller already allocated.
    Arm(ArmTimer),
    /// Advance to now and deliver what is due; the reply says how many fired.
    Tick(Reply<usize>),
    /// Free the entries of cancelled timers and apply arms that found the mailbox full
    /// (every message does that too; `Wake` is sent when there is no other).
    Wake,
}

/// The body of [`SchedulerMessage::Arm`]: built by the `Scheduler`'s `send_*` methods.
pub struct ArmTimer {
    pub(crate) state: Arc<TimerState>,
    pub(crate) deadline: u64,
    /// 0 for a one-shot.
    pub(crate) period: u64,
    pub(crate) missed: MissedTicks,
    pub(crate) fire: Box<dyn Fire>,
}

/// One expiry to deliver after the table's lock is released.
struct Due {
    fire: Box<dyn Fire>,
    deadline: u64,
    interval: Option<TimerId>,
}

/// The scheduler actor. Spawn it with [`Scheduler::spawn`](crate::scheduler::Scheduler::spawn).
pub struct SchedulerActor {
    shared: Arc<Shared>,
    driver: Option<JoinHandle<()>>,
    // Scratch buffers, kept to reuse their capacity.
    due: Vec<Due>,
    discard: Vec<Box<dyn Fire>>,
}

impl SchedulerActor {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            driver: None,
            due: Vec::new(),
            discard: Vec::new(),
        }
    }

    fn apply(&mut self, message: SchedulerMessage) {
        match message {
            SchedulerMessage::Arm(arm) => self.arm(arm),
            SchedulerMessage::Tick(reply) => reply.send(self.tick()),
            SchedulerMessage::Wake => {}
        }
    }

    fn arm(&mut self, arm: ArmTimer) {
        let ArmTimer {
            state,
            deadline,
            period,
            missed,
            fire,
        } = arm;
        if state.is_cancelled() {
            self.discard.push(fire);
            return;
        }
        let armed = Armed { state, fire };
        let mut table = self.shared.table();
        let id = if period == 0 {
            table.arm_at(deadline, armed)
        } else {
            match table.arm_interval_with(deadline, period, missed, armed) {
                Ok(id) => id,
                Err(_) => unreachable!("the Scheduler refuses a zero period before sending"),
            }
        };
        if !table.get(id).is_some_and(|armed| armed.state.armed(id)) {
            // Cancelled between the check above and now.
            let removed = table.remove(id);
            self.shared.stats.armed.store(table.len(), Relaxed);
            drop(table);
            self.discard.extend(removed.map(|armed| armed.fire));
            return;
        }
        self.shared.stats.armed.store(table.len(), Relaxed);
        drop(table);
        self.shared.wake_by(deadline);
    }

    /// Frees the entries of cancelled timers (see [`Shared::free_later`]).
    fn free_cancelled(&mut self) {
        let shared = &*self.shared;
        if !(shared.free_pending.load(Acquire) && shared.free_pending.swap(false, AcqRel)) {
            return;
        }
        let mut table = shared.table();
        while let Some(id) = shared.freed.pop() {
            self.discard
                .extend(table.remove(id).map(|armed| armed.fire));
        }
        shared.stats.armed.store(table.len(), Relaxed);
    }

    /// Advances to now under the table's lock (collecting), then delivers without it.
    fn tick(&mut self) -> usize {
        let stats = Arc::clone(&self.shared.stats);
        stats.ticks.fetch_add(1, Relaxed);
        let now = Instant::now();
        let (mut due, mut discard) = (mem::take(&mut self.due), mem::take(&mut self.discard));
        let mut cancelled = Vec::new();
        {
            let mut table = self.shared.table();
            let advanced = table.advance_to(self.shared.clock.now_tick(now), |fired| match fired {
                Fired::Once {
                    id,
                    deadline,
                    payload,
                } => {
                    if payload.state.fire(id) {
                        due.push(Due {
                            fire: payload.fire,
                            deadline,
                            interval: None,
                        });
                    } else {
                        discard.push(payload.fire);
                    }
                }
                Fired::Interval {
                    id,
                    deadline,
                    payload,
                } => {
                    if payload.state.is_cancelled() {
                        cancelled.push(id);
                        return;
                    }
                    match catch_unwind(AssertUnwindSafe(|| payload.fire.period())) {
                        Ok(Some(fire)) => due.push(Due {
                            fire,
                            deadline,
                            interval: Some(id),
                        }),
                        Ok(None) => {}
                        Err(_) => {
                            stats.panicked.fetch_add(1, Relaxed);
                        }
                    }
                }
            });
            debug_assert!(advanced.is_ok(), "tokio's clock is monotonic");
            for id in cancelled {
                discard.extend(table.remove(id).map(|armed| armed.fire));
            }
            self.shared
                .wake
                .store(table.next_deadline().unwrap_or(NEVER), Release);
            stats.armed.store(table.len(), Relaxed);
        }
        let (fired, gone) = self.deliver(now, &mut due);
        if !gone.is_empty() {
            let mut table = self.shared.table();
            for id in gone {
                if let Some(armed) = table.remove(id) {
                    armed.state.end(id);
                    discard.push(armed.fire);
                }
            }
            stats.armed.store(table.len(), Relaxed);
        }
        self.due = due;
        self.discard = discard;
        fired
    }

    /// Delivers `due` in order; returns how many went out and the intervals whose
    /// target is gone.
    fn deliver(&mut self, now: Instant, due: &mut Vec<Due>) -> (usize, Vec<TimerId>) {
        let shared = &*self.shared;
        let stats = &shared.stats;
        let (mut fired, mut gone) = (0, Vec::new());
        let mut backlogs = shared.backlogs();
        let mut post = Post {
            now,
            due: now,
            backlogs: &mut backlogs,
            limit: shared.backlog_limit,
            stats,
        };
        for Due {
            fire,
            deadline,
            interval,
        } in due.drain(..)
        {
            if interval.is_some_and(|id| gone.contains(&id)) {
                self.discard.push(fire);
                continue;
            }
            post.due = shared.clock.instant_of(deadline).unwrap_or(now);
            match catch_unwind(AssertUnwindSafe(|| fire.deliver(&mut post))) {
                Ok(Delivered::Sent) => fired += 1,
                Ok(Delivered::Overflowed) => {}
                Ok(Delivered::TargetGone) => {
                    stats.dropped.fetch_add(1, Relaxed);
                    gone.extend(interval);
                }
                Err(_) => {
                    stats.panicked.fetch_add(1, Relaxed);
                }
            }
        }
        stats.fired.fetch_add(fired as u64, Relaxed);
        (fired, gone)
    }

    /// Drops payloads of cancelled timers outside every lock; a panicking `Drop` is
    /// counted, not propagated.
    fn drop_discarded(&mut self) {
        for fire in self.discard.drain(..) {
            if catch_unwind(AssertUnwindSafe(|| drop(fire))).is_err() {
                self.shared.stats.panicked.fetch_add(1, Relaxed);
            }
        }
    }
}

impl Actor for SchedulerActor {
    type Message = SchedulerMessage;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let next = self.shared.table().next_deadline().unwrap_or(NEVER);
        self.shared.wake.store(next, Release);
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
        self.apply(message);
        while let Some(queued) = self.shared.overflow.pop() {
            self.apply(queued);
        }
        self.free_cancelled();
        if !self.discard.is_empty() {
            self.drop_discarded();
        }
        Ok(())
    }

    async fn on_stop(&mut self, _: &mut Context<Self>) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }

    fn describe(&self) -> Option<String> {
        let table = self.shared.table();
        let stats = &self.shared.stats;
        Some(format!(
            "armed={} now_tick={} next_deadline={:?} fired={} dropped_targets={} overflowed={} panicked={}",
            table.len(),
            table.now(),
            table.next_deadline(),
            stats.fired.load(Relaxed),
            stats.dropped.load(Relaxed),
            stats.overflowed.load(Relaxed),
            stats.panicked.load(Relaxed),
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

/// Sleeps until the published deadline (or until an earlier one is armed), then ticks
/// the actor and waits for that tick to be handled.
async fn drive(shared: Arc<Shared>, addr: Addr<SchedulerActor>) {
    loop {
        let rearmed = shared.rearmed.notified();
        tokio::pin!(rearmed);
        rearmed.as_mut().enable();
        let wake = shared.wake.load(Acquire);
        match shared.clock.instant_of(wake) {
            // Nothing armed, or a deadline no instant can hold (`Duration::MAX`): wait
            // for an earlier one.
            None => {
                rearmed.await;
                continue;
            }
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
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
