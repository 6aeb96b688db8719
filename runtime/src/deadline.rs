//! Ask deadlines without a tokio timer entry per ask: a hashed timing wheel of lock-free
//! queues, swept by one driver task per runtime.
//!
//! An ask that has to wait for its answer *arms* a [`Waiter`] with its deadline's tick
//! (tick = [`RESOLUTION`]; the deadline is rounded *up*, so an ask never times out early).
//! Waiters are reused: each thread keeps a few, and a waiter re-armed for a tick it already
//! has an entry for pushes nothing, so a task asking in a loop touches the wheel about once
//! per tick, not once per ask. The driver sleeps until the first tick whose slot holds
//! entries, and expires each due waiter that is still armed for a due tick (a
//! compare-and-swap on the armed tick, so a waiter re-armed meanwhile for a later tick is
//! left alone). So a deadline costs the asker no lock, no allocation and no timer
//! registration, and the runtime one timer (the driver's) while asks wait.
//!
//! A waiter armed for a tick the driver has already swept (its deadline has passed) is
//! expired by the asker itself: after arming it re-reads the sweep position.

use std::{
    cell::RefCell,
    future::{poll_fn, Future},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst},
        Arc, Weak,
    },
    task::Poll,
    time::Duration,
};

use crossbeam_queue::SegQueue;
use futures::task::AtomicWaker;
use tokio::time::Instant;

/// The wheel's tick: deadlines are enforced to within this much (rounded up).
pub(crate) const RESOLUTION: Duration = Duration::from_millis(2);
/// Slots in the wheel: one turn is `SLOTS × RESOLUTION` (about 2 s); later deadlines go
/// round again.
const SLOTS: u64 = 1024;
/// `Waiter::armed` when no ask waits on it.
const DISARMED: u64 = u64::MAX;
/// `Waiter::armed` once its deadline passed.
const EXPIRED: u64 = u64::MAX - 1;
/// Idle waiters kept per thread.
const POOLED: usize = 32;

static NEXT_WHEEL: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static WAITERS: RefCell<Vec<Arc<Waiter>>> = const { RefCell::new(Vec::new()) };
}

/// What one waiting ask watches: its armed deadline tick, or `EXPIRED`.
struct Waiter {
    armed: AtomicU64,
    waker: AtomicWaker,
    /// The wheel and tick of this waiter's newest entry (written by whoever arms it).
    pushed_wheel: AtomicU64,
    pushed_tick: AtomicU64,
}

impl Waiter {
    fn new() -> Self {
        Waiter {
            armed: AtomicU64::new(DISARMED),
            waker: AtomicWaker::new(),
            pushed_wheel: AtomicU64::new(0),
            pushed_tick: AtomicU64::new(0),
        }
    }

    /// Expires the waiter if it is armed for `tick` or earlier.
    fn expire_if_due(&self, tick: u64) {
        let armed = self.armed.load(SeqCst);
        if armed <= tick
            && self
                .armed
                .compare_exchange(armed, EXPIRED, SeqCst, SeqCst)
                .is_ok()
        {
            self.waker.wake();
        }
    }
}

/// An armed deadline; disarms (and returns its waiter to the thread's pool) on drop.
pub(crate) struct Armed {
    waiter: Option<Arc<Waiter>>,
}

impl Armed {
    /// Registers `cx`'s waker and says whether the deadline has passed.
    pub(crate) fn poll_expired(&self, cx: &mut std::task::Context<'_>) -> bool {
        let waiter = self.waiter.as_ref().expect("armed until dropped");
        waiter.waker.register(cx.waker());
        waiter.armed.load(SeqCst) == EXPIRED
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            waiter.armed.store(DISARMED, SeqCst);
            let _ = WAITERS.try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < POOLED {
                    pool.push(waiter);
                }
            });
        }
    }
}

struct Entry {
    tick: u64,
    waiter: Arc<Waiter>,
}

struct Inner {
    id: u64,
    start: Instant,
    slots: Box<[SegQueue<Entry>]>,
    /// The last tick the driver swept (it sweeps a tick once that tick has begun).
    swept: AtomicU64,
    signal: Arc<Signal>,
}

/// What the driver waits on. The driver holds this strongly and the wheel only weakly, so
/// the wheel (and the driver task) go away with the last address that could ask.
struct Signal {
    /// Entries in the wheel (live or dead), so the driver parks when there are none.
    pending: AtomicUsize,
    /// The tick the driver sleeps until (`u64::MAX`: parked with nothing pending).
    wake_at: AtomicU64,
    nudged: AtomicBool,
    /// Wake every waiting ask once (an actor will never run again: its askers look at it).
    wake_all: AtomicBool,
    driver: AtomicWaker,
    stopped: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.signal.stopped.store(true, SeqCst);
        self.signal.driver.wake();
    }
}

/// The per-runtime deadline wheel. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Deadlines {
    inner: Arc<Inner>,
}

impl Deadlines {
    /// A wheel whose driver runs on `handle` until [`Deadlines::stop`].
    pub(crate) fn start(handle: &tokio::runtime::Handle) -> Self {
        let _entered = handle.enter();
        let signal = Arc::new(Signal {
            pending: AtomicUsize::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            nudged: AtomicBool::new(false),
            wake_all: AtomicBool::new(false),
            driver: AtomicWaker::new(),
            stopped: AtomicBool::new(false),
        });
        let inner = Arc::new(Inner {
            id: NEXT_WHEEL.fetch_add(1, Relaxed),
            start: Instant::now(),
            slots: (0..SLOTS).map(|_| SegQueue::new()).collect(),
            swept: AtomicU64::new(0),
            signal: Arc::clone(&signal),
        });
        handle.spawn(drive(Arc::downgrade(&inner), signal));
        Deadlines { inner }
    }

    /// Arms a waiter that expires at `deadline` (rounded up to the next tick).
    pub(crate) fn arm(&self, deadline: Instant) -> Armed {
        let inner = &*self.inner;
        let since = deadline.saturating_duration_since(inner.start);
        let tick = (since.as_nanos().div_ceil(RESOLUTION.as_nanos()) as u64).min(EXPIRED - 1);
        let waiter = WAITERS
            .try_with(|pool| pool.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Arc::new(Waiter::new()));
        waiter.armed.store(tick, SeqCst);
        let fresh_entry = waiter.pushed_wheel.load(Relaxed) != inner.id
            || waiter.pushed_tick.load(Relaxed) != tick;
        if fresh_entry {
            waiter.pushed_wheel.store(inner.id, Relaxed);
            waiter.pushed_tick.store(tick, Relaxed);
            inner.slots[(tick % SLOTS) as usize].push(Entry {
                tick,
                waiter: Arc::clone(&waiter),
            });
            inner.signal.pending.fetch_add(1, SeqCst);
        }
        let signal = &inner.signal;
        if inner.swept.load(SeqCst) >= tick {
            // The driver swept this tick already (or is sweeping it): the deadline passed.
            waiter.expire_if_due(tick);
        } else if fresh_entry && tick < signal.wake_at.load(SeqCst) {
            signal.nudged.store(true, SeqCst);
            signal.driver.wake();
        }
        Armed {
            waiter: Some(waiter),
        }
    }
}

/// A [`Deadlines::timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

impl Deadlines {
    /// Runs `future` unless `timeout` passes first, timed by the wheel: no tokio timer
    /// entry (a lock on the timer driver to add it and another to remove it), and nothing
    /// armed at all when the future is ready on its first poll. Enforced to within
    /// [`RESOLUTION`], never early.
    pub(crate) async fn timeout<F: Future>(
        &self,
        timeout: Duration,
        future: F,
    ) -> Result<F::Output, TimedOut> {
        let deadline = Instant::now() + timeout;
        let mut future = std::pin::pin!(future);
        let mut armed: Option<Armed> = None;
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            let armed = armed.get_or_insert_with(|| self.arm(deadline));
            if armed.poll_expired(cx) {
                Poll::Ready(Err(TimedOut))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Wakes every waiting ask once, without expiring it, so that each looks again at the
    /// actor it waits for (which may have stopped for good). Runs on the driver.
    pub(crate) fn wake_all(&self) {
        let signal = &self.inner.signal;
        signal.wake_all.store(true, SeqCst);
        signal.nudged.store(true, SeqCst);
        signal.driver.wake();
    }
}

impl Inner {
    fn wake_every_waiter(&self) {
        let mut entries = Vec::new();
        for slot in self.slots.iter() {
            while let Some(entry) = slot.pop() {
                if entry.waiter.armed.load(SeqCst) < EXPIRED {
                    entry.waiter.waker.wake();
                }
                entries.push(entry);
            }
            for entry in entries.drain(..) {
                slot.push(entry);
            }
        }
    }

    fn tick_now(&self) -> u64 {
        (Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos()
            / RESOLUTION.as_nanos()) as u64
    }

    /// Expires every due entry of `tick`'s slot; keeps the later ones for a later turn.
    fn sweep(&self, tick: u64, later: &mut Vec<Entry>) {
        self.swept.fetch_max(tick, SeqCst);
        let slot = &self.slots[(tick % SLOTS) as usize];
        while let Some(entry) = slot.pop() {
            if entry.tick > tick {
                later.push(entry);
                continue;
            }
            entry.waiter.expire_if_due(tick);
            self.signal.pending.fetch_sub(1, SeqCst);
        }
        for entry in later.drain(..) {
            slot.push(entry);
        }
    }

    /// Decides and publishes the tick to sleep until. Publishes first, then looks again: an
    /// asker pushes first, then reads `wake_at`, so either it sees the new value (and nudges
    /// the driver if its tick is earlier) or the second look sees its entry.
    fn publish_wake_at(&self, now: u64) -> u64 {
        let target = || {
            if self.signal.pending.load(SeqCst) == 0 {
                u64::MAX
            } else {
                self.next_busy_tick(now)
            }
        };
        let mut wake_at = target();
        loop {
            self.signal.wake_at.store(wake_at, SeqCst);
            let again = target();
            if again >= wake_at {
                return wake_at;
            }
            wake_at = again;
        }
    }

    /// The first tick after `from` whose slot holds entries (at most one turn ahead).
    fn next_busy_tick(&self, from: u64) -> u64 {
        (from + 1..=from + SLOTS)
            .find(|tick| !self.slots[(tick % SLOTS) as usize].is_empty())
            .unwrap_or(from + SLOTS)
    }
}

async fn drive(wheel: Weak<Inner>, signal: Arc<Signal>) {
    let mut swept = 0u64;
    let mut later = Vec::new();
    while !signal.stopped.load(SeqCst) {
        let Some(inner) = wheel.upgrade() else { return };
        if signal.wake_all.swap(false, SeqCst) {
            inner.wake_every_waiter();
        }
        let now = inner.tick_now();
        // Sweep every tick that began since the last sweep (one turn at most: a turn
        // visits every slot once, and entries keep their own tick).
        for tick in (swept + 1).max(now.saturating_sub(SLOTS - 1))..=now {
            inner.sweep(tick, &mut later);
        }
        swept = swept.max(now);
        let target = inner.publish_wake_at(now);
        let sleep = (target != u64::MAX).then(|| {
            let nanos = target.saturating_mul(RESOLUTION.as_nanos() as u64);
            tokio::time::sleep_until(inner.start + Duration::from_nanos(nanos))
        });
        drop(inner); // sleep holding only the signal
        tokio::pin!(sleep);
        poll_fn(|cx| {
            signal.driver.register(cx.waker());
            if signal.nudged.swap(false, SeqCst) || signal.stopped.load(SeqCst) {
                return Poll::Ready(());
            }
            if target == u64::MAX && signal.pending.load(SeqCst) > 0 {
                return Poll::Ready(());
            }
            match sleep.as_mut().as_pin_mut() {
                Some(sleep) => sleep.poll(cx),
                None => Poll::Pending,
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn expired(armed: &Armed) {
        poll_fn(|cx| {
            if armed.poll_expired(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn an_ask_expires_at_its_deadline_never_before() {
        let deadlines = Deadlines::start(&tokio::runtime::Handle::current());
        let start = Instant::now();
        let armed = deadlines.arm(start + Duration::from_millis(25));
        expired(&armed).await;
        let after = Instant::now() - start;
        assert!(after >= Duration::from_millis(25), "early: {after:?}");
        assert!(
            after <= Duration::from_millis(25) + RESOLUTION * 2,
            "late: {after:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_beyond_a_turn_and_out_of_order_all_expire_in_time() {
        let deadlines = Deadlines::start(&tokio::runtime::Handle::current());
        let start = Instant::now();
        let offsets = [5_000u64, 30, 2_100, 7, 4_096, 1];
        let armed: Vec<_> = offsets
            .iter()
            .map(|ms| deadlines.arm(start + Duration::from_millis(*ms)))
            .collect();
        let mut order: Vec<u64> = offsets.to_vec();
        order.sort_unstable();
        for ms in order {
            let index = offsets.iter().position(|o| *o == ms).unwrap();
            expired(&armed[index]).await;
            let after = Instant::now() - start;
            assert!(
                after >= Duration::from_millis(ms),
                "{ms} ms expired at {after:?}"
            );
            assert!(
                after <= Duration::from_millis(ms) + RESOLUTION * 2,
                "{ms} ms late: {after:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_waiter_is_not_expired_by_its_earlier_entry() {
        let deadlines = Deadlines::start(&tokio::runtime::Handle::current());
        let start = Instant::now();
        // Answered in time: disarmed, back in the pool, its entry still in the wheel.
        drop(deadlines.arm(start + Duration::from_millis(4)));
        // The same waiter, armed for later: the 4 ms entry must not expire it.
        let later = deadlines.arm(start + Duration::from_millis(40));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let early = poll_fn(|cx| Poll::Ready(later.poll_expired(cx))).await;
        assert!(!early, "expired by a stale entry");
        expired(&later).await;
        assert!(Instant::now() - start >= Duration::from_millis(40));
    }

    #[tokio::test(start_paused = true)]
    async fn asks_in_a_loop_push_about_one_entry_per_tick_and_the_driver_parks() {
        let deadlines = Deadlines::start(&tokio::runtime::Handle::current());
        let deadline = Instant::now() + Duration::from_millis(10);
        for _ in 0..1_000 {
            drop(deadlines.arm(deadline));
        }
        let signal = Arc::clone(&deadlines.inner.signal);
        assert_eq!(signal.pending.load(SeqCst), 1, "one entry for 1000 asks");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(signal.pending.load(SeqCst), 0);
        assert_eq!(signal.wake_at.load(SeqCst), u64::MAX, "parked");
        drop(deadlines);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            Arc::strong_count(&signal),
            1,
            "the driver ended with the wheel"
        );
    }
}
