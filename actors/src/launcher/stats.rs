//! [`LauncherStats`]: one launcher's counters and live state, shared (lock-free where it
//! is read per batch) between the launcher, the router and whoever reports on it. It
//! outlives the launcher's incarnations, so a supervised restart keeps the counts and
//! the rotation state.

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed},
        Mutex, PoisonError,
    },
    time::Duration,
};

use tokio::sync::Notify;

use crate::launcher::core::{FaultBudget, FaultWindow, StallMeter};

/// One launcher's counters and live state.
#[derive(Debug)]
pub struct LauncherStats {
    pub(crate) queued: AtomicU64,
    pub(crate) max_queued: AtomicU64,
    pub(crate) prefetch_depth: AtomicU32,
    pub(crate) in_rotation: AtomicBool,
    batches: AtomicU64,
    items: AtomicU64,
    faults: AtomicU64,
    dead_lettered: AtomicU64,
    probes: AtomicU64,
    compute_micros: AtomicU64,
    copy_micros: AtomicU64,
    pub(crate) stall: Mutex<StallMeter>,
    pub(crate) fault_window: Mutex<FaultWindow>,
    /// Signalled when room appears, the prefetch depth changes or the rotation changes:
    /// a router waiting for a launcher with room wakes on it.
    pub(crate) changed: Notify,
}

impl LauncherStats {
    pub(crate) fn new(prefetch_depth: u32, budget: FaultBudget) -> Self {
        LauncherStats {
            queued: AtomicU64::new(0),
            max_queued: AtomicU64::new(0),
            prefetch_depth: AtomicU32::new(prefetch_depth),
            in_rotation: AtomicBool::new(true),
            batches: AtomicU64::new(0),
            items: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            compute_micros: AtomicU64::new(0),
            copy_micros: AtomicU64::new(0),
            stall: Mutex::new(StallMeter::default()),
            fault_window: Mutex::new(FaultWindow::new(budget)),
            changed: Notify::new(),
        }
    }

    /// Reserves a place ahead for one batch if fewer than the prefetch depth are queued.
    pub(crate) fn try_reserve(&self) -> bool {
        let depth = u64::from(self.prefetch_depth.load(Relaxed));
        let reserved = self.queued.fetch_update(Relaxed, Relaxed, |queued| {
            (queued < depth).then_some(queued + 1)
        });
        match reserved {
            Ok(before) => {
                self.max_queued.fetch_max(before + 1, Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Gives a reserved place back (the batch was taken, or could not be sent).
    pub(crate) fn release(&self) {
        let _ = self
            .queued
            .fetch_update(Relaxed, Relaxed, |queued| queued.checked_sub(1));
        self.changed.notify_waiters();
    }

    pub(crate) fn record_finished(&self, items: u32, copy: Duration, compute: Duration) {
        self.batches.fetch_add(1, Relaxed);
        self.items.fetch_add(u64::from(items), Relaxed);
        self.copy_micros.fetch_add(micros(copy), Relaxed);
        self.compute_micros.fetch_add(micros(compute), Relaxed);
    }

    pub(crate) fn record_fault(&self) {
        self.faults.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_dead_letter(&self) {
        self.dead_lettered.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_probe(&self) {
        self.probes.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_rotation(&self, in_rotation: bool) {
        self.in_rotation.store(in_rotation, Relaxed);
        self.changed.notify_waiters();
    }

    /// Whether the router may send this launcher batches.
    pub fn in_rotation(&self) -> bool {
        self.in_rotation.load(Relaxed)
    }

    /// The prefetch depth in force.
    pub fn prefetch_depth(&self) -> u32 {
        self.prefetch_depth.load(Relaxed)
    }

    /// Batches finished so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Relaxed)
    }

    /// Batches that went to the dead-letter sink so far.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Relaxed)
    }

    /// The data-stall ratio so far (see `StallMeter`).
    pub fn data_stall_ratio(&self) -> f64 {
        self.stall
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ratio()
    }

    /// Forgets the data-stall history: the next batch starts a new measurement (between
    /// benchmark rounds, or after the pipeline was reconfigured).
    pub fn restart_stall_meter(&self) {
        *self.stall.lock().unwrap_or_else(PoisonError::into_inner) = StallMeter::default();
    }

    /// A consistent-enough copy of every counter (each read atomically on its own).
    pub fn snapshot(&self) -> LauncherSnapshot {
        LauncherSnapshot {
            batches: self.batches(),
            items: self.items.load(Relaxed),
            faults: self.faults.load(Relaxed),
            dead_lettered: self.dead_lettered(),
            probes: self.probes.load(Relaxed),
            queued: self.queued.load(Relaxed),
            max_queued: self.max_queued.load(Relaxed),
            prefetch_depth: self.prefetch_depth(),
            in_rotation: self.in_rotation(),
            compute: Duration::from_micros(self.compute_micros.load(Relaxed)),
            copy: Duration::from_micros(self.copy_micros.load(Relaxed)),
            data_stall_ratio: self.data_stall_ratio(),
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A copy of a launcher's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct LauncherSnapshot {
    /// Batches finished.
    pub batches: u64,
    /// Items in those batches.
    pub items: u64,
    /// Device faults.
    pub faults: u64,
    /// Batches put in the dead-letter sink (faults, and outputs the next stage refused).
    pub dead_lettered: u64,
    /// Probe batches run on `Resume`.
    pub probes: u64,
    /// Batches held ahead now.
    pub queued: u64,
    /// The most batches ever held ahead at once.
    pub max_queued: u64,
    /// The prefetch depth in force.
    pub prefetch_depth: u32,
    /// Whether the router may send it batches.
    pub in_rotation: bool,
    /// Kernel time, all batches together.
    pub compute: Duration,
    /// Copy time, all batches together.
    pub copy: Duration,
    /// Fraction of its active time the launcher waited for input.
    pub data_stall_ratio: f64,
}

impl fmt::Display for LauncherSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batches={} items={} faults={} dead_lettered={} probes={} queued={} max_queued={} \
             prefetch={} compute_ms={:.1} copy_ms={:.1} stall={:.1}%",
            self.batches,
            self.items,
            self.faults,
            self.dead_lettered,
            self.probes,
            self.queued,
            self.max_queued,
            self.prefetch_depth,
            self.compute.as_secs_f64() * 1e3,
            self.copy.as_secs_f64() * 1e3,
            self.data_stall_ratio * 100.0
        )
    }
}
