//! Nexa Vortex telemetry: typed events, a fan-out in which a slow subscriber never
//! blocks the publisher or anyone else, Prometheus exposition, and `tracing` spans.
//!
//! # Layout
//!
//! - `vortex_messages::telemetry` — the typed [`TelemetryEvent`]s (plain data),
//!   re-exported here.
//! - [`fanout`] — [`TelemetryHub`] and [`Subscription`] — bounded per-subscriber
//!   queues, drop-oldest on overflow, counted per subscriber.
//! - `backend` — the per-subscriber queue: mesocarp (feature `mesocarp`, default,
//!   LGPL-2.1) or a crossbeam `ArrayQueue` fallback (`--no-default-features`).
//! - [`metrics`] — stable `vortex_` metric names, [`MetricsSink`] and its lock-free
//!   per-actor handles, over one `prometheus-client` registry per runtime.
//! - [`histogram`] — the lock-free [`LatencyHistogram`] behind every latency metric.
//! - [`http`] — [`MetricsServer`], the `/metrics`, `/healthz` and `/status` endpoint on
//!   hyper 1, with timeouts, a connection limit that sheds idle clients, accept back-off.
//! - [`publisher`] — [`TelemetryPublisher`], the actor that fans events out.
//! - [`exporter`] — [`RuntimeExporter`]: a supervisor with the sampler actor
//!   ([`SamplerActor`], [`RuntimeSampler`]) and the HTTP server actor ([`HttpActor`]).
//! - [`spans`] — span-name constants, span helpers, [`init_tracing`].
//! - [`error`] — [`TelemetryError`].
//!
//! # Example
//!
//! ```
//! use vortex_actors::telemetry::{ActorStarted, TelemetryEvent, TelemetryHub, TelemetryError};
//!
//! let hub = TelemetryHub::new(2);
//! let mut dashboard = hub.subscribe();
//! for actor in ["a", "b", "c"] {
//!     hub.publish(TelemetryEvent::from(ActorStarted { at_micros: 1, actor: actor.into() }));
//! }
//! // Capacity 2: the oldest event was dropped for this subscriber, and counted.
//! assert_eq!(dashboard.dropped(), 1);
//! let Ok(TelemetryEvent::ActorStarted(first)) = dashboard.try_recv() else { panic!() };
//! assert_eq!(&*first.actor, "b");
//! drop(hub);
//! dashboard.try_recv()?;
//! assert!(matches!(dashboard.try_recv(), Err(TelemetryError::Closed)));
//! # Ok::<(), TelemetryError>(())
//! ```

mod backend;
pub mod error;
pub mod exporter;
pub mod fanout;
pub mod histogram;
pub mod http;
pub mod metrics;
pub mod publisher;
pub mod spans;

pub use error::TelemetryError;
pub use exporter::{
    HttpActor, HttpMessage, RuntimeExporter, RuntimeSampler, SamplerActor, SamplerMessage,
};
pub use fanout::{Subscription, TelemetryHub};
pub use histogram::LatencyHistogram;
pub use http::{
    status_json, Endpoints, ExporterConfig, MetricsServer, OPENMETRICS_CONTENT_TYPE,
    STATUS_CONTENT_TYPE,
};
pub use metrics::{encode_text, ActorMetrics, MetricsSink, PoolMetrics};
/// The `prometheus-client` crate, re-exported so callers build the one [`Registry`] per
/// runtime without naming the dependency themselves.
pub use prometheus_client;
pub use prometheus_client::registry::Registry;
pub use publisher::{TelemetryHandle, TelemetryPublisher};
pub use spans::init_tracing;
pub use vortex_messages::telemetry::{
    now_micros, ActorRestarted, ActorStarted, ActorStopped, BatchFinished, BatchLaunched,
    ControlApplied, DeadLettered, DeviceId, DeviceSampled, JournalFsynced, JournalRecovered,
    LauncherSampled, MailboxDepthSampled, Name, TelemetryEvent, TimerLagged,
};
