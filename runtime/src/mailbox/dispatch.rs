//! Who drains a mailbox, and how producers wake them without lost wake-ups.
//!
//! A single actor has a `scheduled` flag: a producer wakes the cell only when it flips the
//! flag from false to true, so under load (the cell already scheduled) a send costs one
//! shared load and no wake-up at all. The cell clears the flag when it finds the mailbox
//! empty and then looks at the length once more; both sides use sequentially consistent
//! operations, so either the producer sees the cleared flag or the cell sees the message.
//!
//! A pool keeps a queue of idle worker indices instead: a producer pops one and wakes it;
//! a worker that runs dry pushes itself back and re-checks the mailbox. Stale entries (a
//! worker retired or restarting) are skipped; a duplicate entry costs one spurious drain.

use std::sync::{
    atomic::{AtomicBool, Ordering::SeqCst},
    Arc, Mutex, PoisonError,
};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

/// Something that can be told "there is work": a kameo cell's handle.
pub(crate) trait Wake: Send + Sync {
    /// Asks the consumer to drain. Must not block.
    fn wake(&self);
}

/// The wake-up strategy of a mailbox.
// One per mailbox, never moved after creation: boxing the pool variant would only add an
// indirection, so the size difference between the variants is accepted.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Dispatch {
    /// One consumer, one flag.
    Single {
        scheduled: CachePadded<AtomicBool>,
        target: Mutex<Option<Arc<dyn Wake>>>,
    },
    /// Many consumers sharing the mailbox.
    Pool {
        idle: ArrayQueue<usize>,
        targets: Mutex<Vec<Option<Arc<dyn Wake>>>>,
    },
}

impl Dispatch {
    /// Dispatch for a single actor.
    pub(crate) fn single() -> Self {
        Dispatch::Single {
            // Scheduled until the first cell starts: its start drains unconditionally.
            scheduled: CachePadded::new(AtomicBool::new(true)),
            target: Mutex::new(None),
        }
    }

    /// Dispatch for a pool of at most `max_workers` live workers.
    pub(crate) fn pool(max_workers: usize) -> Self {
        Dispatch::Pool {
            idle: ArrayQueue::new(max_workers.max(1) * 2),
            targets: Mutex::new(Vec::new()),
        }
    }

    /// After a push: wake a consumer if none is scheduled.
    #[inline]
    pub(crate) fn notify(&self) {
        match self {
            Dispatch::Single { scheduled, target } => {
                if !scheduled.load(SeqCst) && !scheduled.swap(true, SeqCst) {
                    if let Some(target) = lock(target).as_ref() {
                        target.wake();
                    }
                }
            }
            Dispatch::Pool { .. } => {
                self.wake_idle_worker();
            }
        }
    }

    /// Pool only: wakes one idle, live worker if there is one. Returns whether it did.
    pub(crate) fn wake_idle_worker(&self) -> bool {
        let Dispatch::Pool { idle, targets } = self else {
            return false;
        };
        while let Some(index) = idle.pop() {
            let target = lock(targets).get(index).cloned().flatten();
            if let Some(target) = target {
                target.wake();
                return true;
            }
        }
        false
    }

    /// Installs the cell that drains for worker `index` (0 for a single actor).
    pub(crate) fn attach(&self, index: usize, wake: Arc<dyn Wake>) {
        match self {
            Dispatch::Single { target, .. } => *lock(target) = Some(wake),
            Dispatch::Pool { targets, .. } => {
                let mut targets = lock(targets);
                if targets.len() <= index {
                    targets.resize_with(index + 1, || None);
                }
                targets[index] = Some(wake);
            }
        }
    }

    /// Removes worker `index`'s cell; producers skip it from now on.
    pub(crate) fn detach(&self, index: usize) {
        match self {
            Dispatch::Single { target, .. } => *lock(target) = None,
            Dispatch::Pool { targets, .. } => {
                if let Some(slot) = lock(targets).get_mut(index) {
                    *slot = None;
                }
            }
        }
    }

    /// Wakes every attached consumer (after `Resume`, `Stop` or shutdown).
    pub(crate) fn wake_all(&self) {
        let targets: Vec<Arc<dyn Wake>> = match self {
            Dispatch::Single { target, .. } => lock(target).iter().cloned().collect(),
            Dispatch::Pool { targets, .. } => lock(targets).iter().flatten().cloned().collect(),
        };
        for target in targets {
            target.wake();
        }
    }

    /// The consumer `index` found the mailbox empty. Returns `true` when it must drain
    /// again (a message arrived meanwhile and it re-claimed the work).
    pub(crate) fn went_idle(&self, index: usize, len: impl Fn() -> bool) -> bool {
        match self {
            Dispatch::Single { scheduled, .. } => {
                scheduled.store(false, SeqCst);
                len() && !scheduled.swap(true, SeqCst)
            }
            Dispatch::Pool { idle, .. } => {
                // A full idle queue already holds this worker (duplicates are harmless).
                let _ = idle.push(index);
                if len() {
                    self.wake_idle_worker();
                }
                false
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover rather than cascade if it did.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
