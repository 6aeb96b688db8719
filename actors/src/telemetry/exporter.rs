//! [`RuntimeExporter`]: the runtime's metrics, sampled and served by two supervised
//! actors.
//!
//! ```text
//!   supervisor "<name>" (one-for-one, 10 restarts in 10 s, back-off 10 ms → 1 s)
//!     ├─ SamplerActor "<name>-sampler"   Tick (own ticker, every period) → RuntimeSampler
//!     └─ HttpActor    "<name>-http"      serves /metrics, /healthz, /status (hyper)
//! ```
//!
//! What a restart must not lose lives outside the incarnations: the sampler's baselines
//! (a fresh sampler would count every counter twice) and the bound listening socket (a
//! restarted server serves on the same address, with no window in which another process
//! could take the port). A failure of either actor (a panic, an injected failure, the
//! accept loop ending) restarts only that actor.
//!
//! The sampler reads every actor's counters (atomics in the runtime; no lock and no
//! message on the hot path) with [`RuntimeObserver::samples`] and the runtime's count of
//! applied control commands, and brings the `vortex_` series up to date.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering::Relaxed},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use prometheus_client::metrics::counter::Counter;
use tokio::{
    net::TcpListener,
    sync::{oneshot, Notify},
    task::{AbortHandle, JoinHandle},
    time::Instant,
};
use vortex_messages::{ActorKind, ActorState, Control, ControlError};
use vortex_runtime::{Actor, ActorError, Context};
use vortex_runtime::{
    ActorSample, ActorSpec, Backoff, ControlCount, HandlerTimesSnapshot, Intensity, Runtime,
    RuntimeObserver, Strategy, SupervisorSpec,
};

use crate::telemetry::http::{accept_loop, bind, Endpoints};
use crate::telemetry::{
    now_micros, ActorMetrics, ActorRestarted, DeadLettered, ExporterConfig, MailboxDepthSampled,
    MetricsSink, Name, PoolMetrics, Registry, TelemetryError, TelemetryEvent, TelemetryHandle,
};

/// Brings metrics up to date from sampled runtime counters. Keeps a baseline per actor
/// registration, so a name reused after `Stop` keeps its counters rising (the new
/// registration's counts are added on top), and removes the series of actors that have
/// been gone longer than the series grace.
pub struct RuntimeSampler {
    sink: MetricsSink,
    seen: HashMap<String, Sampled>,
    controls: HashMap<(String, &'static str, bool), ControlSeen>,
    grace: Duration,
    events: Option<TelemetryHandle>,
}

impl std::fmt::Debug for RuntimeSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeSampler")
            .field("actors", &self.seen.len())
            .field("grace", &self.grace)
            .field("publishes_events", &self.events.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct Sampled {
    metrics: ActorMetrics,
    pool: Option<PoolMetrics>,
    registration: u64,
    handled: u64,
    restarts: u64,
    dead_letters: u64,
    handler: HandlerTimesSnapshot,
    last_seen: Instant,
}

#[derive(Debug)]
struct ControlSeen {
    counter: Option<Counter>,
    counted: u64,
    last_change: Instant,
}

impl RuntimeSampler {
    /// A sampler writing into `sink`, removing vanished actors' series after 5 minutes.
    pub fn new(sink: MetricsSink) -> Self {
        RuntimeSampler {
            sink,
            seen: HashMap::new(),
            controls: HashMap::new(),
            grace: ExporterConfig::default().series_grace,
            events: None,
        }
    }

    /// How long the series of an actor that is no longer registered stay exported.
    pub fn series_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Also publishes what each round observed as typed events (`MailboxDepthSampled`,
    /// and `ActorRestarted` / `DeadLettered` for every new restart or dead letter).
    pub fn publish_to(mut self, publisher: TelemetryHandle) -> Self {
        self.events = Some(publisher);
        self
    }

    /// Actors whose series are exported now (alive, or gone for less than the grace).
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }

    /// Samples `observer`'s runtime once and applies the round.
    pub fn sample(&mut self, observer: &RuntimeObserver) {
        self.apply(
            &observer.samples(),
            &observer.control_counts(),
            Instant::now(),
        );
    }

    /// Applies one round taken at `now`: counters grow by what happened since the last
    /// round of the same registration; series of actors absent for longer than the grace
    /// are removed.
    pub fn apply(&mut self, samples: &[ActorSample], controls: &[ControlCount], now: Instant) {
        for sample in samples {
            self.apply_one(sample, now);
        }
        self.apply_controls(controls, now);
        let (sink, grace) = (&self.sink, self.grace);
        self.seen.retain(|name, sampled| {
            let keep = now.saturating_duration_since(sampled.last_seen) <= grace;
            if !keep {
                sink.remove_actor(name);
            }
            keep
        });
        let seen = &self.seen;
        for ((actor, command, succeeded), control) in &mut self.controls {
            let idle = now.saturating_duration_since(control.last_change) > grace;
            if idle && !seen.contains_key(actor) && control.counter.take().is_some() {
                sink.remove_control_applied(actor, command, *succeeded);
            }
        }
    }

    fn apply_one(&mut self, sample: &ActorSample, now: Instant) {
        let status = &sample.status;
        let sink = &self.sink;
        let sampled = self
            .seen
            .entry(status.name.clone())
            .or_insert_with(|| Sampled {
                metrics: sink.actor(&status.name),
                pool: None,
                registration: sample.registration,
                handled: 0,
                restarts: 0,
                dead_letters: 0,
                handler: HandlerTimesSnapshot::default(),
                last_seen: now,
            });
        if sampled.registration != sample.registration {
            // The name was registered again (after `Stop`): a new set of runtime counters
            // that starts at zero. The exported counters go on rising from where they are.
            sampled.registration = sample.registration;
            sampled.handled = 0;
            sampled.restarts = 0;
            sampled.dead_letters = 0;
            sampled.handler = HandlerTimesSnapshot::default();
        }
        sampled.last_seen = now;
        let metrics = &sampled.metrics;
        metrics.add_handled(status.handled.saturating_sub(sampled.handled));
        metrics.add_restarts(status.restarts.saturating_sub(sampled.restarts));
        metrics.add_dead_letters(status.dead_letters.saturating_sub(sampled.dead_letters));
        metrics.set_mailbox_depth(status.mailbox_depth);
        let handler = &sample.handler_batches;
        let delta: Vec<u64> = handler
            .buckets
            .iter()
            .zip(sampled.handler.buckets.iter())
            .map(|(now, before)| now.saturating_sub(*before))
            .collect();
        metrics.add_handler_batches(
            &delta,
            handler.sum_nanos.saturating_sub(sampled.handler.sum_nanos),
        );
        if status.kind == ActorKind::Pool {
            sampled
                .pool
                .get_or_insert_with(|| sink.pool(&status.name))
                .set_size(status.workers as usize);
        }
        if let Some(events) = &self.events {
            publish_round(events, sample, sampled);
        }
        sampled.handled = sampled.handled.max(status.handled);
        sampled.restarts = sampled.restarts.max(status.restarts);
        sampled.dead_letters = sampled.dead_letters.max(status.dead_letters);
        sampled.handler = *handler;
    }

    fn apply_controls(&mut self, controls: &[ControlCount], now: Instant) {
        for control in controls {
            let key = (control.actor.clone(), control.command, control.succeeded);
            let seen = self.controls.entry(key).or_insert(ControlSeen {
                counter: None,
                counted: 0,
                last_change: now,
            });
            let delta = control.count.saturating_sub(seen.counted);
            if delta == 0 && seen.counter.is_some() {
                continue;
            }
            if delta > 0 {
                seen.last_change = now;
            }
            let alive = self.seen.contains_key(&control.actor);
            if seen.counter.is_none() && (delta > 0 || alive) {
                let counter =
                    self.sink
                        .control_applied(&control.actor, control.command, control.succeeded);
                // A series created again after its removal starts where the runtime is.
                counter.inc_by(seen.counted);
                seen.counter = Some(counter);
            }
            if let Some(counter) = &seen.counter {
                counter.inc_by(delta);
            }
            seen.counted = control.count;
        }
    }
}

/// Publishes one sampled round of `sample` as typed events (best effort: a full publisher
/// mailbox drops the sample, never blocks the sampler).
fn publish_round(events: &TelemetryHandle, sample: &ActorSample, sampled: &Sampled) {
    let status = &sample.status;
    let at_micros = now_micros();
    let actor: Name = Arc::from(status.name.as_str());
    let send = |event: TelemetryEvent| {
        let _ = events.try_publish(event);
    };
    send(TelemetryEvent::from(MailboxDepthSampled {
        at_micros,
        actor: Arc::clone(&actor),
        depth: status.mailbox_depth,
        capacity: status.mailbox_capacity,
    }));
    for attempt in sampled.restarts..status.restarts {
        send(TelemetryEvent::from(ActorRestarted {
            at_micros,
            actor: Arc::clone(&actor),
            reason: Arc::from("supervised restart"),
            attempt: u32::try_from(attempt + 1).unwrap_or(u32::MAX),
            backoff_micros: 0,
        }));
    }
    for _ in sampled.dead_letters..status.dead_letters {
        send(TelemetryEvent::from(DeadLettered {
            at_micros,
            actor: Arc::clone(&actor),
            reason: Arc::from("handler failed or message undelivered"),
        }));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Aborts a task when the incarnation that owns it ends (also after a failure, when
/// `on_stop` does not run).
struct OwnedTask(JoinHandle<()>);

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What every incarnation of the sampler shares.
struct SamplerShared {
    sampler: Mutex<RuntimeSampler>,
    observer: RuntimeObserver,
    period: Duration,
    sample_now: Notify,
    sampled: Notify,
}

/// The sampler actor: a ticker (owned by the incarnation) sends it `Tick` every period
/// or when [`RuntimeExporter::sample_now`] asks; each `Tick` applies one round.
pub struct SamplerActor {
    shared: Arc<SamplerShared>,
    _ticker: Option<OwnedTask>,
}

/// Messages of [`SamplerActor`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SamplerMessage {
    /// Sample the runtime once.
    Tick,
}

impl Actor for SamplerActor {
    type Message = SamplerMessage;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let (addr, shared) = (ctx.addr().clone(), Arc::clone(&self.shared));
        self._ticker = Some(OwnedTask(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(shared.period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = shared.sample_now.notified() => {}
                }
                if addr.tell(SamplerMessage::Tick).await.is_err() {
                    break;
                }
            }
        })));
        Ok(())
    }

    async fn handle(
        &mut self,
        message: SamplerMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            SamplerMessage::Tick => {
                lock(&self.shared.sampler).sample(&self.shared.observer);
                self.shared.sampled.notify_waiters();
            }
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(format!(
            "period={:?} tracked={}",
            self.shared.period,
            lock(&self.shared.sampler).tracked()
        ))
    }
}

/// What every incarnation of the HTTP server shares: the bound listener (taken out on
/// [`RuntimeExporter::shutdown`], which closes the port).
struct HttpShared {
    listener: Mutex<Option<Arc<TcpListener>>>,
    local_addr: SocketAddr,
    config: Arc<ExporterConfig>,
    endpoints: Endpoints,
}

/// The HTTP server actor: each incarnation runs the accept loop on the shared listener;
/// the loop ending for any reason fails the actor, and its supervisor restarts it. A
/// normal stop (`Stop`, shutdown) ends the loop gracefully: in-flight answers get the
/// shutdown grace, and `on_stop` returns once the loop let go of the listener.
pub struct HttpActor {
    shared: Arc<HttpShared>,
    running: Option<Running>,
}

/// The accept loop of one incarnation.
struct Running {
    /// Reports how the loop ended; aborted (dropped) first when the incarnation goes.
    watcher: OwnedTask,
    server: AbortHandle,
    stop: oneshot::Sender<()>,
    stopping: Arc<AtomicBool>,
    ended: oneshot::Receiver<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // After a failure (no `on_stop`): cut the loop and its connections at once.
        self.watcher.0.abort();
        self.server.abort();
    }
}

/// Messages of [`HttpActor`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HttpMessage {
    /// The accept loop ended (it panicked or returned): fail, to be restarted.
    ServerEnded(String),
}

impl Actor for HttpActor {
    type Message = HttpMessage;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let Some(listener) = lock(&self.shared.listener).clone() else {
            return Err("the exporter was shut down: its listener is closed".into());
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&self.shared.config),
            self.shared.endpoints.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let abort = server.abort_handle();
        let (addr, stopping) = (ctx.addr().clone(), Arc::new(AtomicBool::new(false)));
        let (ended_tx, ended) = oneshot::channel();
        let watching = Arc::clone(&stopping);
        let watcher = tokio::spawn(async move {
            let outcome = server.await;
            if watching.load(Relaxed) {
                let _ = ended_tx.send(());
                return;
            }
            let reason = match outcome {
                Ok(()) => "the accept loop returned".to_owned(),
                Err(error) if error.is_cancelled() => return,
                Err(error) => format!("the accept loop failed: {error}"),
            };
            let _ = addr.tell(HttpMessage::ServerEnded(reason)).await;
        });
        self.running = Some(Running {
            watcher: OwnedTask(watcher),
            server: abort,
            stop,
            stopping,
            ended,
        });
        Ok(())
    }

    async fn handle(
        &mut self,
        message: HttpMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            HttpMessage::ServerEnded(reason) => Err(reason.into()),
        }
    }

    async fn on_stop(&mut self, _: &mut Context<Self>) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        running.stopping.store(true, Relaxed);
        let (stop, _) = oneshot::channel();
        let _ = std::mem::replace(&mut running.stop, stop).send(());
        let grace = self.shared.config.shutdown_grace + Duration::from_secs(1);
        let _ = tokio::time::timeout(grace, &mut running.ended).await;
    }

    fn describe(&self) -> Option<String> {
        Some(format!("addr={}", self.shared.local_addr))
    }
}

/// A running exporter: the supervised sampler and HTTP server actors.
#[derive(Debug)]
pub struct RuntimeExporter {
    local_addr: SocketAddr,
    sink: MetricsSink,
    sampler: Arc<SamplerShared>,
    http: Arc<HttpShared>,
    observer: RuntimeObserver,
    name: String,
}

impl std::fmt::Debug for SamplerShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerShared")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HttpShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpShared")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RuntimeExporter {
    /// Binds `config.addr`, then starts the supervisor `config.name` with the sampler
    /// (`<name>-sampler`, every `period`) and the HTTP server (`<name>-http`) in `rt`.
    pub async fn start(
        rt: &Runtime,
        config: ExporterConfig,
        period: Duration,
    ) -> Result<Self, TelemetryError> {
        let mut registry = Registry::default();
        let sink = MetricsSink::register(&mut registry);
        let listener = Arc::new(bind(config.addr).await?);
        let local_addr = listener.local_addr()?;
        let observer = rt.observer();
        let name = config.name.clone();
        let sampler = Arc::new(SamplerShared {
            sampler: Mutex::new(
                RuntimeSampler::new(sink.clone()).series_grace(config.series_grace),
            ),
            observer: observer.clone(),
            period,
            sample_now: Notify::new(),
            sampled: Notify::new(),
        });
        let http = Arc::new(HttpShared {
            listener: Mutex::new(Some(listener)),
            local_addr,
            endpoints: Endpoints::new(Arc::new(registry)).with_status(observer.clone()),
            config: Arc::new(config),
        });
        let (for_sampler, for_http) = (Arc::clone(&sampler), Arc::clone(&http));
        let spec = SupervisorSpec::new(name.clone(), Strategy::OneForOne)
            .intensity(Intensity::new(10, Duration::from_secs(10)))
            .backoff(Backoff::exponential(
                Duration::from_millis(10),
                Duration::from_secs(1),
            ))
            .child(ActorSpec::new(format!("{name}-sampler"), move || {
                SamplerActor {
                    shared: Arc::clone(&for_sampler),
                    _ticker: None,
                }
            }))
            .child(ActorSpec::new(format!("{name}-http"), move || HttpActor {
                shared: Arc::clone(&for_http),
                running: None,
            }));
        rt.start_supervisor(spec)
            .await
            .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
        tracing::info!(%local_addr, supervisor = %name, "metrics exporter listening");
        Ok(RuntimeExporter {
            local_addr,
            sink,
            sampler,
            http,
            observer,
            name,
        })
    }

    /// The bound address (useful with port 0); a restarted server keeps it.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics sink, for subsystems that feed event-based metrics (telemetry events).
    pub fn sink(&self) -> &MetricsSink {
        &self.sink
    }

    /// The names of the sampler and HTTP server actors (for control and fault injection).
    pub fn actor_names(&self) -> [String; 2] {
        [
            format!("{}-sampler", self.name),
            format!("{}-http", self.name),
        ]
    }

    /// Samples at once and waits until that round is applied.
    pub async fn sample_now(&self) {
        let applied = self.sampler.sampled.notified();
        tokio::pin!(applied);
        applied.as_mut().enable();
        self.sampler.sample_now.notify_one();
        applied.await;
    }

    /// Stops the sampler and the server (in-flight responses get the shutdown grace) and
    /// closes the listening socket.
    pub async fn shutdown(self) -> Result<(), TelemetryError> {
        let grace = self.http.config.shutdown_grace;
        let listener = lock(&self.http.listener).take();
        for name in self.actor_names() {
            match self.observer.control(&name, Control::Stop).await {
                Ok(_) | Err(ControlError::UnknownActor(_)) => {}
                Err(error) => return Err(TelemetryError::Exporter(error.to_string())),
            }
            let deadline = Instant::now() + grace + Duration::from_secs(1);
            while Instant::now() < deadline {
                match self.observer.status(&name) {
                    Ok(status)
                        if !matches!(status.state, ActorState::Stopped | ActorState::Failed) =>
                    {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    _ => break,
                }
            }
        }
        // The port closes when the last holder lets go: the loop has (its `on_stop`
        // waited for it), so this is the one left, unless a stop timed out.
        drop(listener);
        Ok(())
    }
}
