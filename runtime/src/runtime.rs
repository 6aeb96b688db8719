//! [`Runtime`]: builds the root supervisor, owns the registry and the dead-letter sink,
//! spawns actors, routes control commands by name, and shuts everything down in order.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        atomic::{AtomicU8, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use tokio::runtime::Handle;
use vortex_messages::{
    resource::ResourceGroupStatus, Control, ControlError, ControlNotice, ControlReply, Origin,
    StatusReport,
};

pub use crate::config::RuntimeConfig;
use crate::{
    actor::Actor,
    addr::Addr,
    cell::ExitReport,
    checkpoint::CheckpointSink,
    dead_letter::DeadLetters,
    deadline::Deadlines,
    error::RuntimeError,
    registry::{ActorInfo, Registry, Reservation},
    resource_group::{ResourceGroup, ResourceGroups},
    sample::{ActorSample, ControlCount, ControlCounts},
    shared::Services,
    shared::Shared,
    spec::{ActorSpec, ChildSpec, PoolSpec, SpawnEnv, SupervisorSpec},
    supervisor::{child::Child, Backoff, Intensity, Restart, Root},
};

/// Builds a [`Runtime`]. See [`Runtime::builder`].
#[derive(Default)]
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    handle: Option<Handle>,
    worker_threads: Option<usize>,
    checkpoints: Option<Arc<dyn CheckpointSink>>,
    groups: Vec<(String, usize, Option<Vec<usize>>)>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("config", &self.config)
            .field("worker_threads", &self.worker_threads)
            .field("durable_checkpoints", &self.checkpoints.is_some())
            .finish()
    }
}

impl RuntimeBuilder {
    /// Default data mailbox capacity.
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.config.mailbox_capacity = capacity;
        self
    }

    /// Default batch size.
    pub fn batch_size(mut self, batch: usize) -> Self {
        self.config.batch_size = batch;
        self
    }

    /// Default ask deadline.
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.config.ask_timeout = timeout;
        self
    }

    /// How long an actor's start-up may take (see [`RuntimeConfig::start_timeout`]).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.config.start_timeout = timeout;
        self
    }

    /// How long a stopping actor may take (see [`RuntimeConfig::stop_timeout`]).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.config.stop_timeout = timeout;
        self
    }

    /// Largest pool size.
    pub fn max_pool_workers(mut self, max: u32) -> Self {
        self.config.max_pool_workers = max;
        self
    }

    /// Dead-letter records kept in memory.
    pub fn dead_letters_retained(mut self, retained: usize) -> Self {
        self.config.dead_letters_retained = retained;
        self
    }

    /// Bytes of undelivered messages the dead-letter sink keeps (see
    /// [`RuntimeConfig::dead_letters_retained_bytes`]).
    pub fn dead_letters_retained_bytes(mut self, bytes: usize) -> Self {
        self.config.dead_letters_retained_bytes = bytes;
        self
    }

    /// Root supervisor intensity.
    pub fn root_intensity(mut self, intensity: Intensity) -> Self {
        self.config.root_intensity = intensity;
        self
    }

    /// Root supervisor back-off.
    pub fn root_backoff(mut self, backoff: Backoff) -> Self {
        self.config.root_backoff = backoff;
        self
    }

    /// Runs on this tokio runtime. Without it, the current runtime is used when `build`
    /// is called inside one, and otherwise the runtime creates its own.
    pub fn handle(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// Persists checkpoints here (and restores from here after restarts, also across
    /// process restarts). Without a sink, checkpoints live in memory only.
    pub fn checkpoints(mut self, sink: Arc<dyn CheckpointSink>) -> Self {
        self.checkpoints = Some(sink);
        self
    }

    /// Declares a CPU resource group: an isolated rayon pool of `threads` threads named
    /// `<name>-<i>`, pinned to `cores` (wrapping around) when given. Built by `build`, which
    /// fails with a clear error for an unknown core id or a duplicate name.
    pub fn resource_group(
        mut self,
        name: impl Into<String>,
        threads: usize,
        cores: Option<Vec<usize>>,
    ) -> Self {
        self.groups.push((name.into(), threads, cores));
        self
    }

    /// Worker threads of the runtime's own tokio runtime (when it creates one).
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = Some(threads);
        self
    }

    /// Starts the runtime (its root supervisor).
    pub fn build(self) -> Result<Runtime, RuntimeError> {
        let config = self.config;
        let mut groups = ResourceGroups::new();
        for (name, threads, cores) in self.groups {
            groups
                .create(name, threads, cores)
                .map_err(|error| RuntimeError::InvalidConfig(error.to_string()))?;
        }
        if config.mailbox_capacity == 0 || config.batch_size == 0 {
            return Err(RuntimeError::InvalidConfig(
                "mailbox capacity and batch size must be at least 1".into(),
            ));
        }
        let (handle, owned) = match self.handle.or_else(|| Handle::try_current().ok()) {
            Some(handle) => (handle, None),
            None => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                if let Some(threads) = self.worker_threads {
                    builder.worker_threads(threads.max(1));
                }
                let tokio = builder
                    .enable_all()
                    .thread_name("vortex-worker")
                    .build()
                    .map_err(|error| RuntimeError::InvalidConfig(error.to_string()))?;
                (tokio.handle().clone(), Some(tokio))
            }
        };
        let root = Root::new(config.root_intensity, config.root_backoff, handle.clone());
        let inner = Arc::new(RuntimeInner {
            env: SpawnEnv {
                services: Services {
                    dead_letters: Arc::new(DeadLetters::new(
                        config.dead_letters_retained,
                        config.dead_letters_retained_bytes,
                    )),
                    checkpoints: self.checkpoints,
                    deadlines: Deadlines::start(&handle),
                },
                config,
                registry: Arc::new(Registry::default()),
            },
            groups,
            root,
            handle,
            phase: AtomicU8::new(RUNNING),
            controls: ControlCounts::default(),
            control_notices: tokio::sync::broadcast::channel(CONTROL_NOTICES).0,
        });
        Ok(Runtime {
            inner,
            tokio: owned,
        })
    }
}

/// Notices a control listener may fall behind by before it loses the oldest.
const CONTROL_NOTICES: usize = 256;

const RUNNING: u8 = 0;
const SHUTTING_DOWN: u8 = 1;
const SHUT_DOWN: u8 = 2;

pub(crate) struct RuntimeInner {
    env: SpawnEnv,
    groups: ResourceGroups,
    /// The parent of every top-level actor, pool and tree.
    root: Arc<Root>,
    handle: Handle,
    phase: AtomicU8,
    /// Control commands applied, by actor, command and outcome.
    controls: ControlCounts,
    /// Every command routed by name, with its origin, for control listeners.
    control_notices: tokio::sync::broadcast::Sender<ControlNotice>,
}

/// What [`Runtime::shutdown`] left undelivered, per actor or pool. Those messages are in
/// the dead-letter sink (reason `Undelivered`), so nothing vanishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Actor or pool name → messages still queued when it stopped.
    pub undelivered: BTreeMap<String, usize>,
}

impl ShutdownReport {
    /// All undelivered messages together.
    pub fn total_undelivered(&self) -> usize {
        self.undelivered.values().sum()
    }
}

/// An actor runtime: registry, root supervisor, dead letters. Cheap to share by reference;
/// two runtimes in one process are fully isolated.
///
/// ```
/// use vortex_runtime::{Actor, ActorError, Context, Runtime};
/// use vortex_messages::{Control, ControlReply};
///
/// struct Printer;
/// impl Actor for Printer {
///     type Message = String;
///     async fn handle(&mut self, line: String, _: &mut Context<Self>) -> Result<(), ActorError> {
///         println!("{line}");
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let rt = Runtime::builder().mailbox_capacity(256).build().unwrap();
/// let printer = rt.spawn("printer", || Printer).await.unwrap();
/// printer.tell("hello".to_string()).await.unwrap();
/// assert_eq!(rt.control("printer", Control::Pause).await, Ok(ControlReply::Paused));
/// let report = rt.shutdown().await;
/// assert!(report.total_undelivered() <= 1);
/// # }
/// ```
pub struct Runtime {
    inner: Arc<RuntimeInner>,
    tokio: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// A builder with the defaults of [`RuntimeConfig`].
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// A runtime with every default.
    pub fn new() -> Result<Runtime, RuntimeError> {
        Runtime::builder().build()
    }

    /// The defaults in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.env.config
    }

    /// The tokio runtime the actors run on.
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }

    /// Runs a future to completion on the runtime's tokio runtime (from synchronous code).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match &self.tokio {
            Some(tokio) => tokio.block_on(future),
            None => self.inner.handle.block_on(future),
        }
    }

    /// Spawns a single actor under the root supervisor (one-for-one, permanent) and
    /// waits until its `on_start` finished.
    pub async fn spawn<A: Actor>(
        &self,
        name: impl Into<String>,
        factory: impl Fn() -> A + Send + Sync + 'static,
    ) -> Result<Addr<A>, RuntimeError> {
        self.spawn_actor(ActorSpec::new(name, factory)).await
    }

    /// Spawns a single actor from a spec (capacity, batch size, restart policy).
    pub async fn spawn_actor<A: Actor>(&self, spec: ActorSpec<A>) -> Result<Addr<A>, RuntimeError> {
        self.check_running()?;
        let env = &self.inner.env;
        let mut reservation = Reservation::new(&env.registry);
        let (child, restart) = spec.instantiate_actor(env, &mut reservation)?;
        let addr = Addr {
            shared: Arc::clone(&child.shared),
        };
        let top: Arc<dyn Child> = child.clone();
        self.start_top(&top, restart, &reservation, |report| async move {
            child.start_first(report).await
        })
        .await?;
        Ok(addr)
    }

    /// Spawns a pool of `workers` identical actors sharing one mailbox.
    pub async fn spawn_pool<A: Actor>(
        &self,
        name: impl Into<String>,
        workers: u32,
        factory: impl Fn() -> A + Send + Sync + 'static,
    ) -> Result<Addr<A>, RuntimeError> {
        self.spawn_pool_with(PoolSpec::new(name, workers, factory))
            .await
    }

    /// Spawns a pool from a spec.
    pub async fn spawn_pool_with<A: Actor>(
        &self,
        spec: PoolSpec<A>,
    ) -> Result<Addr<A>, RuntimeError> {
        let name = spec.name().to_owned();
        self.start_child(spec.into()).await?;
        self.lookup(&name)
    }

    /// Starts a supervision tree under the root supervisor. Every name in it is
    /// registered (all or none); find the children with [`Runtime::lookup`].
    pub async fn start_supervisor(&self, spec: SupervisorSpec) -> Result<(), RuntimeError> {
        self.start_child(spec.into()).await
    }

    fn check_running(&self) -> Result<(), RuntimeError> {
        if self.inner.phase.load(SeqCst) != RUNNING {
            return Err(RuntimeError::ShutDown);
        }
        Ok(())
    }

    async fn start_child(&self, spec: ChildSpec) -> Result<(), RuntimeError> {
        self.check_running()?;
        let mut reservation = Reservation::new(&self.inner.env.registry);
        let (child, restart) = spec.instantiate(&self.inner.env, &mut reservation)?;
        let start = |report| Arc::clone(&child).start_in_caller(report);
        self.start_top(&child, restart, &reservation, start).await
    }

    /// Registers the names of `reservation`, lists `child` under the root, and starts it
    /// from this task with `start`: no round trip through a supervisor, so an actor may
    /// spawn actors from its own `on_start` or handlers. The start-up is bounded by the
    /// start timeout. A failed start releases the names.
    async fn start_top<F, Fut>(
        &self,
        child: &Arc<dyn Child>,
        restart: Restart,
        reservation: &Reservation<'_>,
        start: F,
    ) -> Result<(), RuntimeError>
    where
        F: FnOnce(ExitReport) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let registry = &self.inner.env.registry;
        registry.commit(reservation)?;
        let root = &self.inner.root;
        let reason = match root.adopt(Arc::clone(child), restart) {
            None => None,
            Some(key) => match start(root.exit_report(key)).await {
                // A shutdown that began meanwhile may have halted the root's children
                // before this one ran: halt it here, so nothing runs past `shutdown()`.
                Ok(()) if self.inner.phase.load(SeqCst) != RUNNING => {
                    child.halt().await;
                    None
                }
                Ok(()) => return Ok(()),
                Err(reason) => {
                    root.abandon(key);
                    Some(reason)
                }
            },
        };
        registry.remove_all(reservation);
        match reason {
            Some(reason) => Err(RuntimeError::StartFailed {
                name: reservation.first_name(),
                reason,
            }),
            None => Err(RuntimeError::ShutDown),
        }
    }

    /// The typed address of a registered actor or pool.
    pub fn lookup<A: Actor>(&self, name: &str) -> Result<Addr<A>, RuntimeError> {
        let target = self
            .inner
            .env
            .registry
            .get(name)
            .ok_or_else(|| RuntimeError::UnknownActor(name.to_owned()))?;
        let shared = target
            .shared()
            .and_then(|shared| shared.downcast::<Shared<A>>().ok())
            .ok_or_else(|| RuntimeError::WrongType {
                name: name.to_owned(),
                expected: std::any::type_name::<A>(),
            })?;
        Ok(Addr { shared })
    }

    /// Sends a control command to an actor, pool or supervisor by name; no type needed.
    /// An answer slower than the ask timeout is `ControlError::Timeout`. The command's
    /// origin is [`Origin::Program`]; front doors that know better use
    /// [`control_from`](Runtime::control_from).
    pub async fn control(
        &self,
        name: &str,
        command: Control,
    ) -> Result<ControlReply, ControlError> {
        self.observer().control(name, command).await
    }

    /// [`control`](Runtime::control) stamped with who sent the command (`vortex ctl`
    /// passes [`Origin::Operator`], the cluster log [`Origin::ClusterLog`], the autotuner
    /// [`Origin::Autotuner`]). After the actor answered, every
    /// [`control_notices`](Runtime::control_notices) listener gets a [`ControlNotice`].
    pub async fn control_from(
        &self,
        name: &str,
        command: Control,
        origin: Origin,
    ) -> Result<ControlReply, ControlError> {
        self.observer().control_from(name, command, origin).await
    }

    /// Listens to every command routed by name from now on ([`control`](Runtime::control),
    /// [`control_from`](Runtime::control_from), the observer's): one [`ControlNotice`]
    /// per command, after its answer — except `Status`, which changes nothing. A listener that falls more than 256 notices behind
    /// loses the oldest (`RecvError::Lagged`); it never slows a command down.
    pub fn control_notices(&self) -> tokio::sync::broadcast::Receiver<ControlNotice> {
        self.inner.control_notices.subscribe()
    }

    /// Fault injection: makes the named actor's current incarnation fail, exactly as if a
    /// handler had returned an error (no message is lost; its supervisor applies its
    /// restart policy, intensity and back-off). For chaos tests and drills.
    pub async fn inject_failure(&self, name: &str, reason: &str) -> Result<(), ControlError> {
        let target = self
            .inner
            .env
            .registry
            .get(name)
            .ok_or_else(|| ControlError::UnknownActor(name.to_owned()))?;
        target.inject_failure(reason.to_owned()).await
    }

    /// Every registered name with its kind and state, sorted by name.
    pub fn actors(&self) -> Vec<ActorInfo> {
        self.inner
            .env
            .registry
            .all()
            .into_iter()
            .map(|(name, target)| ActorInfo {
                name: name.to_string(),
                kind: target.kind(),
                state: target.status().state,
            })
            .collect()
    }

    /// The status of one actor, pool or supervisor, read from its counters without going
    /// through its control lane (so `on_control` is not consulted and `detail` is empty).
    pub fn status(&self, name: &str) -> Result<StatusReport, ControlError> {
        self.observer().status(name)
    }

    /// A cheap, `'static` handle that reads statuses (for samplers and exporters).
    pub fn observer(&self) -> RuntimeObserver {
        RuntimeObserver {
            inner: Arc::clone(&self.inner),
        }
    }

    /// A resource group declared with [`RuntimeBuilder::resource_group`].
    pub fn resource_group(&self, name: &str) -> Result<Arc<ResourceGroup>, RuntimeError> {
        self.inner
            .groups
            .get(name)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownResourceGroup(name.to_owned()))
    }

    /// The status of every resource group (threads, cores, active and finished tasks).
    pub fn resource_groups(&self) -> Vec<ResourceGroupStatus> {
        self.observer().resource_groups()
    }

    /// The dead-letter sink.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.inner.env.services.dead_letters
    }

    /// Stops intake everywhere, halts every actor after its current message (children
    /// before parents, youngest first), and reports what was still queued. Those messages
    /// go to the dead-letter sink. Calling it again returns an empty report.
    pub async fn shutdown(&self) -> ShutdownReport {
        if self
            .inner
            .phase
            .compare_exchange(RUNNING, SHUTTING_DOWN, SeqCst, SeqCst)
            .is_err()
        {
            return ShutdownReport::default();
        }
        let targets = self.inner.env.registry.all();
        for (_, target) in &targets {
            target.close();
        }
        // Every halt waits for the actor's `on_stop` (bounded by the stop timeout), children
        // before parents, youngest first.
        self.inner.root.halt_all().await;
        let mut report = ShutdownReport::default();
        for (name, target) in &targets {
            let left = target.collect_undelivered();
            if left > 0 {
                report.undelivered.insert(name.to_string(), left);
            }
        }
        self.inner.phase.store(SHUT_DOWN, SeqCst);
        report
    }
}

/// Reads a runtime's statuses and sends control commands by name from anywhere (clone it
/// into a task or a timer). It keeps the registry alive, not the actors.
#[derive(Clone)]
pub struct RuntimeObserver {
    inner: Arc<RuntimeInner>,
}

impl RuntimeObserver {
    /// See [`Runtime::status`].
    pub fn status(&self, name: &str) -> Result<StatusReport, ControlError> {
        self.inner
            .env
            .registry
            .get(name)
            .map(|target| target.status())
            .ok_or_else(|| ControlError::UnknownActor(name.to_owned()))
    }

    /// Every registered actor's status, sorted by name.
    pub fn statuses(&self) -> Vec<StatusReport> {
        self.inner
            .env
            .registry
            .all()
            .into_iter()
            .map(|(_, target)| target.status())
            .collect()
    }

    /// Sends a control command by name (see [`Runtime::control`]).
    pub async fn control(
        &self,
        name: &str,
        command: Control,
    ) -> Result<ControlReply, ControlError> {
        self.control_from(name, command, Origin::Program).await
    }

    /// Sends a control command by name, stamped with its origin (see
    /// [`Runtime::control_from`]).
    pub async fn control_from(
        &self,
        name: &str,
        command: Control,
        origin: Origin,
    ) -> Result<ControlReply, ControlError> {
        let (registered, target) = self
            .inner
            .env
            .registry
            .get_entry(name)
            .ok_or_else(|| ControlError::UnknownActor(name.to_owned()))?;
        let timeout = self.inner.env.config.ask_timeout;
        let command_name = command.name();
        let deadlines = &self.inner.env.services.deadlines;
        // Only commands that change something are announced (see below): the clone is
        // not made for `Status`.
        let notice = (command != Control::Status).then(|| command.clone());
        let reply = match target.control_now(&command) {
            Some(reply) => reply,
            None => match deadlines.timeout(timeout, target.control(command)).await {
                Ok(reply) => reply,
                Err(_) => Err(ControlError::Timeout(name.to_owned())),
            },
        };
        // Counted only for registered names (an unknown name is refused above); the table
        // forgets unregistered names when it grows (see `ControlCounts`).
        let registry = &self.inner.env.registry;
        self.inner
            .controls
            .record(&registered, command_name, reply.is_ok(), |name| {
                registry.contains(name)
            });
        // `Status` changes nothing, and pollers (`vortex top`) send many: listeners would
        // lose the commands that matter behind them. No listener is fine: `send` only
        // fails when nobody listens.
        if let Some(command) = notice {
            if self.inner.control_notices.receiver_count() > 0 {
                let _ = self.inner.control_notices.send(ControlNotice {
                    actor: name.to_owned(),
                    command,
                    origin,
                    succeeded: reply.is_ok(),
                });
            }
        }
        reply
    }

    /// See [`Runtime::control_notices`].
    pub fn control_notices(&self) -> tokio::sync::broadcast::Receiver<ControlNotice> {
        self.inner.control_notices.subscribe()
    }

    /// What an exporter samples: every actor's and pool's counters, registration number
    /// and handler-time distribution, sorted by name (supervisors have none).
    pub fn samples(&self) -> Vec<ActorSample> {
        self.inner
            .env
            .registry
            .all()
            .into_iter()
            .filter_map(|(_, target)| target.sample())
            .collect()
    }

    /// Control commands applied through [`Runtime::control`] or an observer (the `vortex`
    /// command, timers, tools), by actor, command and outcome, since the runtime was built.
    pub fn control_counts(&self) -> Vec<ControlCount> {
        self.inner.controls.all()
    }

    /// The status of every resource group.
    pub fn resource_groups(&self) -> Vec<ResourceGroupStatus> {
        self.inner.groups.statuses()
    }

    /// Dead letters recorded so far.
    pub fn dead_letters(&self) -> u64 {
        self.inner.env.services.dead_letters.count()
    }
}

impl std::fmt::Debug for RuntimeObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeObserver").finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.inner.phase.swap(SHUT_DOWN, SeqCst) != SHUT_DOWN {
            // Dropped without shutdown: refuse intake and kill every cell; never wait.
            for (_, target) in self.inner.env.registry.all() {
                target.close();
            }
            self.inner.root.kill_all();
        }
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
    }
}
