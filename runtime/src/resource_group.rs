//! Resource groups: isolated, optionally core-pinned rayon pools for CPU-heavy work.
//!
//! Every group owns its own [`rayon::ThreadPool`]. Work submitted through a group runs on
//! that pool's threads only: never on rayon's global pool and never on tokio's workers
//! ([`ResourceGroup::run_async`] hands the result back through a tokio oneshot). Parallel
//! iterators used inside a task (`par_chunks`, …) run on the same pool, because rayon
//! sends nested work to the pool of the current worker thread.
//!
//! Tasks are counted with a drop guard created when the task is submitted and dropped
//! when it ends, so `active_tasks` stays exact when a task panics: the guard's `Drop`
//! sees `std::thread::panicking()` and counts the task as panicked instead of completed.
//!
//! The [`rayon`] crate is re-exported: nested parallel work stays on the group only when
//! it uses the same rayon as the group's pool (a different major version has its own,
//! global pool), so use `vortex_runtime::resource_group::rayon` inside tasks.
//!
//! ```
//! use vortex_runtime::resource_group::{rayon::prelude::*, ResourceGroup};
//!
//! let group = ResourceGroup::new("decode", 2, None)?;
//! let total: u64 = group.run(|| (0..1_000_u64).into_par_iter().sum())?;
//! assert_eq!((total, group.completed_tasks()), (499_500, 1));
//! # Ok::<(), vortex_runtime::ResourceError>(())
//! ```

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use core_affinity::CoreId;
use rayon::{ThreadPool, ThreadPoolBuilder};
use tokio::sync::oneshot;

pub use rayon;
use vortex_messages::resource::ResourceGroupStatus;

use crate::resource_error::ResourceError;

/// How long [`ResourceGroup::new`] waits for every worker thread to report that it
/// started (and pinned itself). Thread start takes microseconds; this only bounds a
/// broken system.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Task counters shared between a group and the guards of its in-flight tasks.
#[derive(Debug, Default)]
struct TaskCounters {
    active: AtomicUsize,
    completed: AtomicU64,
    panicked: AtomicU64,
    /// Held only to pair with `idle`; it guards no data, the counters are atomics.
    idle_lock: Mutex<()>,
    idle: Condvar,
}

impl TaskCounters {
    fn begin(self: &Arc<Self>) -> TaskGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        TaskGuard {
            counters: Arc::clone(self),
        }
    }

    fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lock = self
            .idle_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The last guard takes `idle_lock` before notifying, and we hold it from the check
        // until `wait_timeout` releases it, so the wake-up cannot slip in between.
        while self.active.load(Ordering::Acquire) != 0 {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return false;
            }
            lock = self
                .idle
                .wait_timeout(lock, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Counts one task from submission to end, panics included.
struct TaskGuard {
    counters: Arc<TaskCounters>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let counters = &self.counters;
        if std::thread::panicking() {
            counters.panicked.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.completed.fetch_add(1, Ordering::Relaxed);
        }
        // Release: whoever sees the new `active` value also sees the outcome above.
        if counters.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _lock = counters
                .idle_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            counters.idle.notify_all();
        }
    }
}

/// An isolated rayon pool with a name, optional core pinning and task counters.
#[derive(Debug)]
pub struct ResourceGroup {
    name: String,
    threads: usize,
    cores: Option<Vec<usize>>,
    pool: ThreadPool,
    counters: Arc<TaskCounters>,
}

impl ResourceGroup {
    /// Builds a group of `threads` threads named `<name>-<index>`.
    ///
    /// With `cores`, thread `i` is pinned to `cores[i % cores.len()]` (wrapping around
    /// when there are more threads than cores). Every core id must be one of
    /// `core_affinity::get_core_ids()` — the cores the *calling thread* may run on — or
    /// this fails with [`ResourceError::UnknownCore`]. `new` returns only after every
    /// thread has started and pinned itself; a thread that cannot pin itself makes `new`
    /// fail with [`ResourceError::PinFailed`].
    pub fn new(
        name: impl Into<String>,
        threads: usize,
        cores: Option<Vec<usize>>,
    ) -> Result<Self, ResourceError> {
        let name = name.into();
        if threads == 0 {
            return Err(ResourceError::ZeroThreads { group: name });
        }
        let core_ids = match &cores {
            Some(cores) => Some(validate_cores(&name, cores)?),
            None => None,
        };
        let (reports, started) = mpsc::channel();
        let pool = build_pool(&name, threads, core_ids, reports)?;
        wait_for_start(&name, threads, &started)?;
        Ok(Self {
            name,
            threads,
            cores,
            pool,
            counters: Arc::default(),
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The requested cores, if the threads are pinned.
    pub fn cores(&self) -> Option<&[usize]> {
        self.cores.as_deref()
    }

    /// Runs `task` on the pool without waiting for it (fire and forget).
    ///
    /// A panic in `task` is counted in [`panicked_tasks`](Self::panicked_tasks); the pool's
    /// panic handler swallows it, so the worker thread and the process live on.
    pub fn spawn<F>(&self, task: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let guard = self.counters.begin();
        self.pool.spawn(move || {
            let _guard = guard;
            task();
        });
    }

    /// Runs `task` on the pool, blocks until it returns and hands back its value.
    ///
    /// Like `rayon::ThreadPool::install`: a panic in `task` resumes on the caller. Use
    /// [`run`](Self::run) to get a panic as an error instead.
    pub fn install<F, R>(&self, task: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let guard = self.counters.begin();
        self.pool.install(move || {
            let _guard = guard;
            task()
        })
    }

    /// Runs `task` on the pool and blocks until it returns; a panic becomes
    /// [`ResourceError::TaskPanicked`].
    pub fn run<F, R>(&self, task: F) -> Result<R, ResourceError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let guard = self.counters.begin();
        self.pool
            .install(move || {
                catch_unwind(AssertUnwindSafe(move || {
                    let _guard = guard;
                    task()
                }))
            })
            .map_err(|payload| panicked(&self.name, payload.as_ref()))
    }

    /// Runs `task` on the pool and returns a future of its value, for async callers.
    ///
    /// The work starts at once, whether or not the future is polled; the future only
    /// waits on a tokio oneshot, so no tokio worker does the CPU work. A panic becomes
    /// [`ResourceError::TaskPanicked`]. The counters are updated before the future
    /// completes.
    pub fn run_async<F, R>(
        &self,
        task: F,
    ) -> impl Future<Output = Result<R, ResourceError>> + Send + 'static
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let guard = self.counters.begin();
        let group = self.name.clone();
        self.pool.spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(move || {
                let _guard = guard;
                task()
            }));
            // The receiver may be gone (the caller dropped the future): nothing to tell.
            let _ = sender.send(outcome.map_err(|payload| panicked(&group, payload.as_ref())));
        });
        let group = self.name.clone();
        async move {
            receiver
                .await
                .unwrap_or(Err(ResourceError::TaskDropped { group }))
        }
    }

    /// Runs `task` once on every worker thread, passing the thread's index, and collects
    /// the results in index order. Meant for per-thread set-up and inspection; these
    /// calls are not counted as tasks.
    pub fn broadcast<F, R>(&self, task: F) -> Vec<R>
    where
        F: Fn(usize) -> R + Sync,
        R: Send,
    {
        self.pool.broadcast(|context| task(context.index()))
    }

    /// Tasks submitted and not yet finished (queued or running).
    pub fn active_tasks(&self) -> usize {
        self.counters.active.load(Ordering::Acquire)
    }

    /// Tasks that returned normally.
    pub fn completed_tasks(&self) -> u64 {
        self.counters.completed.load(Ordering::Relaxed)
    }

    /// Tasks that panicked.
    pub fn panicked_tasks(&self) -> u64 {
        self.counters.panicked.load(Ordering::Relaxed)
    }

    /// Blocks until no task is active or `timeout` passes; `true` when idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.counters.wait_idle(timeout)
    }

    /// A snapshot for the runtime's status report.
    pub fn status(&self) -> ResourceGroupStatus {
        ResourceGroupStatus {
            name: self.name.clone(),
            threads: self.threads,
            cores: self.cores.clone(),
            active_tasks: self.active_tasks(),
            completed: self.completed_tasks(),
            panicked: self.panicked_tasks(),
        }
    }
}

fn validate_cores(group: &str, cores: &[usize]) -> Result<Vec<CoreId>, ResourceError> {
    if cores.is_empty() {
        return Err(ResourceError::EmptyCoreList {
            group: group.to_owned(),
        });
    }
    let available: Vec<usize> = core_affinity::get_core_ids()
        .ok_or_else(|| ResourceError::CoreIdsUnavailable {
            group: group.to_owned(),
        })?
        .into_iter()
        .map(|core| core.id)
        .collect();
    if let Some(&core) = cores.iter().find(|core| !available.contains(core)) {
        return Err(ResourceError::UnknownCore {
            group: group.to_owned(),
            core,
            available,
        });
    }
    Ok(cores.iter().map(|&id| CoreId { id }).collect())
}

fn build_pool(
    group: &str,
    threads: usize,
    cores: Option<Vec<CoreId>>,
    reports: mpsc::Sender<Result<(), ResourceError>>,
) -> Result<ThreadPool, ResourceError> {
    let thread_prefix = group.to_owned();
    let start_group = group.to_owned();
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |index| format!("{thread_prefix}-{index}"))
        .start_handler(move |index| {
            // `new` waits for one report per thread; it may have given up already.
            let _ = reports.send(pin_current_thread(&start_group, index, cores.as_deref()));
        })
        // Without a panic handler rayon aborts the process when a spawned task panics.
        // The task's guard has already counted the panic and the panic hook printed it.
        .panic_handler(|_payload| {})
        .build()
        .map_err(|error| ResourceError::PoolBuild {
            group: group.to_owned(),
            reason: error.to_string(),
        })
}

fn pin_current_thread(
    group: &str,
    index: usize,
    cores: Option<&[CoreId]>,
) -> Result<(), ResourceError> {
    let Some(cores) = cores else {
        return Ok(());
    };
    let core = cores[index % cores.len()];
    if core_affinity::set_for_current(core) {
        Ok(())
    } else {
        Err(ResourceError::PinFailed {
            group: group.to_owned(),
            thread: index,
            core: core.id,
        })
    }
}

fn wait_for_start(
    group: &str,
    threads: usize,
    started: &mpsc::Receiver<Result<(), ResourceError>>,
) -> Result<(), ResourceError> {
    let deadline = Instant::now() + START_DEADLINE;
    for reported in 0..threads {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match started.recv_timeout(remaining) {
            Ok(report) => report?,
            Err(_) => {
                return Err(ResourceError::StartTimeout {
                    group: group.to_owned(),
                    started: reported,
                    threads,
                })
            }
        }
    }
    Ok(())
}

fn panicked(group: &str, payload: &(dyn Any + Send)) -> ResourceError {
    let message = if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "<non-string panic payload>".to_owned()
    };
    ResourceError::TaskPanicked {
        group: group.to_owned(),
        message,
    }
}

/// The least-loaded of `groups`: the one with the fewest active tasks (queued or
/// running), the first of them on a tie; `None` for an empty slice. What a stage that
/// may run on several CPU groups calls per job (the seed spec's `get_best_group`).
pub fn least_loaded(groups: &[Arc<ResourceGroup>]) -> Option<&Arc<ResourceGroup>> {
    groups.iter().min_by_key(|group| group.active_tasks())
}

/// Resource groups by name, so that a topology can refer to a group by its name.
///
/// The owner (a program's set-up code) fills it with `&mut self` calls; once the
/// pipeline runs, groups are shared as `Arc<ResourceGroup>` and the registry no longer
/// changes.
#[derive(Debug, Default)]
pub struct ResourceGroups {
    groups: BTreeMap<String, Arc<ResourceGroup>>,
}

impl ResourceGroups {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a group (see [`ResourceGroup::new`]) and registers it. The name is checked
    /// first, so a duplicate starts no threads.
    pub fn create(
        &mut self,
        name: impl Into<String>,
        threads: usize,
        cores: Option<Vec<usize>>,
    ) -> Result<Arc<ResourceGroup>, ResourceError> {
        let name = name.into();
        self.ensure_free(&name)?;
        self.insert(ResourceGroup::new(name, threads, cores)?)
    }

    /// Registers an already built group under its own name.
    pub fn insert(&mut self, group: ResourceGroup) -> Result<Arc<ResourceGroup>, ResourceError> {
        self.ensure_free(group.name())?;
        let group = Arc::new(group);
        self.groups
            .insert(group.name().to_owned(), Arc::clone(&group));
        Ok(group)
    }

    /// The group with this name, if any.
    pub fn get(&self, name: &str) -> Option<&Arc<ResourceGroup>> {
        self.groups.get(name)
    }

    /// The group with this name, or [`ResourceError::UnknownGroup`].
    pub fn lookup(&self, name: &str) -> Result<Arc<ResourceGroup>, ResourceError> {
        self.groups
            .get(name)
            .cloned()
            .ok_or_else(|| ResourceError::UnknownGroup {
                name: name.to_owned(),
            })
    }

    /// Unregisters a group; its threads stop once the last `Arc` is dropped.
    pub fn remove(&mut self, name: &str) -> Option<Arc<ResourceGroup>> {
        self.groups.remove(name)
    }

    /// Registered groups in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ResourceGroup>> {
        self.groups.values()
    }

    /// Number of registered groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is registered.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The least-loaded of the groups named `names` (see [`least_loaded`]), or
    /// [`ResourceError::UnknownGroup`] for the first name not registered (an empty list
    /// is reported as the unknown group `""`).
    pub fn best_of(&self, names: &[&str]) -> Result<Arc<ResourceGroup>, ResourceError> {
        let groups = names
            .iter()
            .map(|name| self.lookup(name))
            .collect::<Result<Vec<_>, _>>()?;
        least_loaded(&groups)
            .cloned()
            .ok_or_else(|| ResourceError::UnknownGroup {
                name: String::new(),
            })
    }

    /// A status snapshot of every group, in name order.
    pub fn statuses(&self) -> Vec<ResourceGroupStatus> {
        self.iter().map(|group| group.status()).collect()
    }

    fn ensure_free(&self, name: &str) -> Result<(), ResourceError> {
        if self.groups.contains_key(name) {
            return Err(ResourceError::DuplicateGroup {
                name: name.to_owned(),
            });
        }
        Ok(())
    }
}
