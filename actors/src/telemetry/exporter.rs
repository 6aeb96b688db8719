//! [`RuntimeExporter`]: the runtime's metrics, served. A sampler task reads every actor's
//! counters (atomics in the runtime; no lock and no message on the hot path) every
//! `period`, brings the `vortex_` series up to date, and a [`MetricsServer`] serves them
//! with `/healthz` on a loopback address by default.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{sync::Notify, task::JoinHandle};
use vortex_messages::{ActorKind, StatusReport};
use vortex_runtime::{Runtime, RuntimeObserver};

use crate::telemetry::{
    now_micros, ActorMetrics, ActorRestarted, DeadLettered, ExporterConfig, MailboxDepthSampled,
    MetricsServer, MetricsSink, Name, PoolMetrics, Registry, TelemetryError, TelemetryEvent,
    TelemetryHandle,
};

/// Brings metrics up to date from sampled runtime counters.
pub struct RuntimeSampler {
    sink: MetricsSink,
    seen: HashMap<String, Sampled>,
    events: Option<TelemetryHandle>,
}

impl std::fmt::Debug for RuntimeSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeSampler")
            .field("actors", &self.seen.len())
            .field("publishes_events", &self.events.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct Sampled {
    metrics: ActorMetrics,
    pool: Option<PoolMetrics>,
    handled: u64,
    handler_micros: u64,
    restarts: u64,
    dead_letters: u64,
}

impl RuntimeSampler {
    /// A sampler writing into `sink`.
    pub fn new(sink: MetricsSink) -> Self {
        RuntimeSampler {
            sink,
            seen: HashMap::new(),
            events: None,
        }
    }

    /// Also publishes what each round observed as typed events (`MailboxDepthSampled`,
    /// and `ActorRestarted` / `DeadLettered` for every new restart or dead letter).
    pub fn publish_to(mut self, publisher: TelemetryHandle) -> Self {
        self.events = Some(publisher);
        self
    }

    /// Applies one round of statuses: counters grow by what happened since the last round.
    pub fn apply(&mut self, statuses: &[StatusReport]) {
        for status in statuses {
            if status.kind == ActorKind::Supervisor {
                continue;
            }
            let sink = &self.sink;
            let sampled = self
                .seen
                .entry(status.name.clone())
                .or_insert_with(|| Sampled {
                    metrics: sink.actor(&status.name),
                    pool: (status.kind == ActorKind::Pool).then(|| sink.pool(&status.name)),
                    handled: 0,
                    handler_micros: 0,
                    restarts: 0,
                    dead_letters: 0,
                });
            // Handler time is known per round, not per message: this round's messages are
            // recorded at their mean (`_sum` and `_count` exact, buckets per-round means).
            sampled.metrics.add_handled_with_time(
                status.handled.saturating_sub(sampled.handled),
                Duration::from_micros(status.handler_micros.saturating_sub(sampled.handler_micros)),
            );
            sampled
                .metrics
                .add_restarts(status.restarts.saturating_sub(sampled.restarts));
            sampled
                .metrics
                .add_dead_letters(status.dead_letters.saturating_sub(sampled.dead_letters));
            sampled.metrics.set_mailbox_depth(status.mailbox_depth);
            if let Some(pool) = &sampled.pool {
                pool.set_size(status.workers as usize);
            }
            if let Some(events) = &self.events {
                publish_round(events, status, sampled);
            }
            sampled.handled = sampled.handled.max(status.handled);
            sampled.handler_micros = sampled.handler_micros.max(status.handler_micros);
            sampled.restarts = sampled.restarts.max(status.restarts);
            sampled.dead_letters = sampled.dead_letters.max(status.dead_letters);
        }
    }
}

/// Publishes one sampled round of `status` as typed events (best effort: a full publisher
/// mailbox drops the sample, never blocks the sampler).
fn publish_round(events: &TelemetryHandle, status: &StatusReport, sampled: &Sampled) {
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

/// A running exporter: sampler task plus HTTP server.
#[derive(Debug)]
pub struct RuntimeExporter {
    server: MetricsServer,
    sink: MetricsSink,
    sample_now: Arc<Notify>,
    sampled: Arc<Notify>,
    sampler: JoinHandle<()>,
}

impl RuntimeExporter {
    /// Starts sampling `rt` every `period` and serving the metrics per `config`.
    pub async fn start(
        rt: &Runtime,
        config: ExporterConfig,
        period: Duration,
    ) -> Result<Self, TelemetryError> {
        let mut registry = Registry::default();
        let sink = MetricsSink::register(&mut registry);
        let server = MetricsServer::bind(config, Arc::new(registry)).await?;
        let (sample_now, sampled) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let sampler = tokio::spawn(sample_loop(
            rt.observer(),
            RuntimeSampler::new(sink.clone()),
            period,
            Arc::clone(&sample_now),
            Arc::clone(&sampled),
        ));
        Ok(RuntimeExporter {
            server,
            sink,
            sample_now,
            sampled,
            sampler,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The metrics sink, for subsystems that feed event-based metrics (telemetry events).
    pub fn sink(&self) -> &MetricsSink {
        &self.sink
    }

    /// Samples at once and waits until that round is applied.
    pub async fn sample_now(&self) {
        let applied = self.sampled.notified();
        tokio::pin!(applied);
        applied.as_mut().enable();
        self.sample_now.notify_one();
        applied.await;
    }

    /// Stops the sampler and the server.
    pub async fn shutdown(self) -> Result<(), TelemetryError> {
        self.sampler.abort();
        self.server.shutdown().await
    }
}

async fn sample_loop(
    observer: RuntimeObserver,
    mut sampler: RuntimeSampler,
    period: Duration,
    sample_now: Arc<Notify>,
    sampled: Arc<Notify>,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = sample_now.notified() => {}
        }
        sampler.apply(&observer.statuses());
        sampled.notify_waiters();
    }
}
