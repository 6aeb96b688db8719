//! Prometheus metrics: stable names, one [`Registry`] per runtime, lock-free updates.
//!
//! # How updates avoid a hot-path lock
//!
//! `prometheus-client`'s `Family` keeps its series in a `RwLock<HashMap>`. The
//! runtime therefore resolves a series **once**, when an actor or pool is
//! registered ([`MetricsSink::actor`], [`MetricsSink::pool`]), and keeps the
//! returned handle ([`ActorMetrics`], [`PoolMetrics`]). A handle holds the
//! counters' and gauges' shared atomics directly, and a lock-free
//! [`LatencyHistogram`], so every update on the message path is a relaxed atomic
//! operation. Only registration and scraping touch the family maps.
//!
//! # Which source feeds which metric
//!
//! | metric | fed by |
//! |---|---|
//! | [`MESSAGES_HANDLED`], [`HANDLER_LATENCY_SECONDS`], [`MAILBOX_DEPTH`], [`ACTOR_RESTARTS`], [`DEAD_LETTERS`] | the runtime (its per-actor atomics, read by the [`RuntimeSampler`](crate::telemetry::RuntimeSampler)), through [`ActorMetrics`] |
//! | [`POOL_SIZE`] | the runtime, through [`PoolMetrics`] |
//! | [`BATCH_LATENCY_SECONDS`], [`PREPROCESS_LATENCY_SECONDS`] | the launcher's `BatchFinished` events (the preprocess time is measured by the preprocessor and carried in the batch) |
//! | [`JOURNAL_FSYNC_LATENCY_SECONDS`] | the journal writer, per `fdatasync` (`JournalActorConfig::metrics`); and `JournalFsynced` events |
//! | [`TIMER_LAG_SECONDS`] | the scheduler, through [`MetricsSink::timer_lag`]; and `TimerLagged` events |
//! | [`CONTROL_COMMANDS_APPLIED`] | the runtime's count of applied commands (`RuntimeObserver::control_counts`), read by the sampler |
//! | [`DEVICE_UTILISATION_RATIO`], [`DEVICE_MEMORY_USED_BYTES`], [`DEVICE_MEMORY_TOTAL_BYTES`], [`DEVICE_TEMPERATURE_CELSIUS`] | `DeviceSampled` events |
//! | [`LAUNCHER_DATA_STALL_RATIO`] | `LauncherSampled` events |
//! | [`GPU_METRIC_NAMES`] (`vortex_gpu_*`, labelled by NVML index and UUID) | `GpuSampled` events (the NVML monitor) |
//! | [`MAILBOX_DEPTH`] (also) | `MailboxDepthSampled` events (a gauge set is idempotent) |
//!
//! Restart, dead-letter and control-applied *events* are not counted by
//! [`MetricsSink::observe`]: the runtime counts them, and counting both would count
//! twice.
//!
//! # Names and labels
//!
//! Every name is a `pub const` with the `vortex_` prefix and appears in
//! [`METRIC_NAMES`]; a test checks the exposition against that list. Counter
//! samples carry the OpenMetrics `_total` suffix (`vortex_messages_handled_total`).
//! Labels are bounded: `actor`, `pool`, `device`, and for control commands the
//! command name and outcome. Never a message or batch id.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::telemetry::error::TelemetryError;
use crate::telemetry::fanout::Subscription;
use crate::telemetry::histogram::LatencyHistogram;
use vortex_messages::telemetry::TelemetryEvent;

/// Counter: messages an actor's handler completed.
pub const MESSAGES_HANDLED: &str = "vortex_messages_handled";
/// Gauge: messages waiting in an actor's data mailbox.
pub const MAILBOX_DEPTH: &str = "vortex_mailbox_depth";
/// Histogram: time an actor's handlers took per batch drain (one drain handles 1 to
/// `batch_size` messages back to back; a shallow mailbox gives drains of one message).
pub const HANDLER_LATENCY_SECONDS: &str = "vortex_handler_batch_latency_seconds";
/// Counter: restarts of an actor by its supervisor.
pub const ACTOR_RESTARTS: &str = "vortex_actor_restarts";
/// Counter: messages addressed to an actor that went to the dead-letter sink.
pub const DEAD_LETTERS: &str = "vortex_dead_letters";
/// Gauge: workers in a pool.
pub const POOL_SIZE: &str = "vortex_pool_size";
/// Histogram: device execution time per batch.
pub const BATCH_LATENCY_SECONDS: &str = "vortex_batch_latency_seconds";
/// Histogram: CPU preprocessing time per batch.
pub const PREPROCESS_LATENCY_SECONDS: &str = "vortex_preprocess_latency_seconds";
/// Histogram: journal group-commit `fsync` time.
pub const JOURNAL_FSYNC_LATENCY_SECONDS: &str = "vortex_journal_fsync_latency_seconds";
/// Histogram: how late timers fired.
pub const TIMER_LAG_SECONDS: &str = "vortex_timer_lag_seconds";
/// Counter: control commands applied, by actor, command and outcome.
pub const CONTROL_COMMANDS_APPLIED: &str = "vortex_control_commands_applied";
/// Gauge: device compute utilisation, 0.0–1.0.
pub const DEVICE_UTILISATION_RATIO: &str = "vortex_device_utilisation_ratio";
/// Gauge: device memory in use.
pub const DEVICE_MEMORY_USED_BYTES: &str = "vortex_device_memory_used_bytes";
/// Gauge: device memory in total.
pub const DEVICE_MEMORY_TOTAL_BYTES: &str = "vortex_device_memory_total_bytes";
/// Gauge: device temperature.
pub const DEVICE_TEMPERATURE_CELSIUS: &str = "vortex_device_temperature_celsius";

/// Gauge: fraction of its time a device launcher waited for input (0.0–1.0): is the
/// device fed?
pub const LAUNCHER_DATA_STALL_RATIO: &str = "vortex_launcher_data_stall_ratio";

/// Gauge: GPU memory allocated (NVML `memory_info.used`).
pub const GPU_MEMORY_USED_BYTES: &str = "vortex_gpu_memory_used_bytes";
/// Gauge: GPU memory free (NVML `memory_info.free`).
pub const GPU_MEMORY_FREE_BYTES: &str = "vortex_gpu_memory_free_bytes";
/// Gauge: GPU memory in total (NVML `memory_info.total`).
pub const GPU_MEMORY_TOTAL_BYTES: &str = "vortex_gpu_memory_total_bytes";
/// Gauge: fraction of NVML's sample period a kernel ran, 0.0–1.0.
pub const GPU_UTILISATION_RATIO: &str = "vortex_gpu_utilisation_ratio";
/// Gauge: fraction of NVML's sample period the memory bus was busy, 0.0–1.0 (NVML's
/// `utilization.memory`; not memory in use).
pub const GPU_MEMORY_BUS_BUSY_RATIO: &str = "vortex_gpu_memory_bus_busy_ratio";
/// Gauge: GPU die temperature.
pub const GPU_TEMPERATURE_CELSIUS: &str = "vortex_gpu_temperature_celsius";
/// Gauge: GPU power draw.
pub const GPU_POWER_WATTS: &str = "vortex_gpu_power_watts";
/// Gauge: GPU enforced power limit.
pub const GPU_POWER_LIMIT_WATTS: &str = "vortex_gpu_power_limit_watts";
/// Gauge: GPU clock, by `clock` (`sm`, `memory`).
pub const GPU_CLOCK_HERTZ: &str = "vortex_gpu_clock_hertz";
/// Gauge: 1 while the GPU's clocks are held back for `reason`, else 0.
pub const GPU_THROTTLED: &str = "vortex_gpu_throttled";
/// Counter: energy the GPU used since the driver loaded.
pub const GPU_ENERGY_JOULES: &str = "vortex_gpu_energy_joules";

/// The `vortex_gpu_*` families (fed by `GpuSampled`).
pub const GPU_METRIC_NAMES: &[&str] = &[
    GPU_MEMORY_USED_BYTES,
    GPU_MEMORY_FREE_BYTES,
    GPU_MEMORY_TOTAL_BYTES,
    GPU_UTILISATION_RATIO,
    GPU_MEMORY_BUS_BUSY_RATIO,
    GPU_TEMPERATURE_CELSIUS,
    GPU_POWER_WATTS,
    GPU_POWER_LIMIT_WATTS,
    GPU_CLOCK_HERTZ,
    GPU_THROTTLED,
    GPU_ENERGY_JOULES,
];

/// NVML's throttle-reason bits and the `reason` label each gets.
pub const GPU_THROTTLE_REASONS: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// Every metric family name this crate registers, as it appears in `# TYPE` lines.
pub const METRIC_NAMES: &[&str] = &[
    MESSAGES_HANDLED,
    MAILBOX_DEPTH,
    HANDLER_LATENCY_SECONDS,
    ACTOR_RESTARTS,
    DEAD_LETTERS,
    POOL_SIZE,
    BATCH_LATENCY_SECONDS,
    PREPROCESS_LATENCY_SECONDS,
    JOURNAL_FSYNC_LATENCY_SECONDS,
    TIMER_LAG_SECONDS,
    CONTROL_COMMANDS_APPLIED,
    DEVICE_UTILISATION_RATIO,
    DEVICE_MEMORY_USED_BYTES,
    DEVICE_MEMORY_TOTAL_BYTES,
    DEVICE_TEMPERATURE_CELSIUS,
    LAUNCHER_DATA_STALL_RATIO,
    GPU_MEMORY_USED_BYTES,
    GPU_MEMORY_FREE_BYTES,
    GPU_MEMORY_TOTAL_BYTES,
    GPU_UTILISATION_RATIO,
    GPU_MEMORY_BUS_BUSY_RATIO,
    GPU_TEMPERATURE_CELSIUS,
    GPU_POWER_WATTS,
    GPU_POWER_LIMIT_WATTS,
    GPU_CLOCK_HERTZ,
    GPU_THROTTLED,
    GPU_ENERGY_JOULES,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabels {
    actor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    device: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabels {
    gpu: u32,
    uuid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuClockLabels {
    gpu: u32,
    uuid: String,
    clock: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuThrottleLabels {
    gpu: u32,
    uuid: String,
    reason: &'static str,
}

/// The `vortex_gpu_*` families.
#[derive(Debug, Default)]
struct GpuFamilies {
    memory_used: Family<GpuLabels, Gauge>,
    memory_free: Family<GpuLabels, Gauge>,
    memory_total: Family<GpuLabels, Gauge>,
    utilisation: Family<GpuLabels, FloatGauge>,
    memory_bus_busy: Family<GpuLabels, FloatGauge>,
    temperature: Family<GpuLabels, FloatGauge>,
    power: Family<GpuLabels, FloatGauge>,
    power_limit: Family<GpuLabels, FloatGauge>,
    clock: Family<GpuClockLabels, FloatGauge>,
    throttled: Family<GpuThrottleLabels, Gauge>,
    energy: Family<GpuLabels, Counter<f64, AtomicU64>>,
}

impl GpuFamilies {
    fn register(&self, r: &mut Registry) {
        let gauges: [(&str, &str, &Family<GpuLabels, Gauge>); 3] = [
            (
                GPU_MEMORY_USED_BYTES,
                "GPU memory allocated (NVML memory_info)",
                &self.memory_used,
            ),
            (
                GPU_MEMORY_FREE_BYTES,
                "GPU memory free (NVML memory_info)",
                &self.memory_free,
            ),
            (
                GPU_MEMORY_TOTAL_BYTES,
                "GPU memory in total (NVML memory_info)",
                &self.memory_total,
            ),
        ];
        for (name, help, family) in gauges {
            r.register(name, help, family.clone());
        }
        let floats: [(&str, &str, &Family<GpuLabels, FloatGauge>); 5] = [
            (
                GPU_UTILISATION_RATIO,
                "Fraction of time a kernel ran on the GPU",
                &self.utilisation,
            ),
            (
                GPU_MEMORY_BUS_BUSY_RATIO,
                "Fraction of time the GPU memory bus was busy (not memory in use)",
                &self.memory_bus_busy,
            ),
            (
                GPU_TEMPERATURE_CELSIUS,
                "GPU die temperature",
                &self.temperature,
            ),
            (GPU_POWER_WATTS, "GPU power draw", &self.power),
            (
                GPU_POWER_LIMIT_WATTS,
                "GPU enforced power limit",
                &self.power_limit,
            ),
        ];
        for (name, help, family) in floats {
            r.register(name, help, family.clone());
        }
        r.register(GPU_CLOCK_HERTZ, "GPU clock", self.clock.clone());
        r.register(
            GPU_THROTTLED,
            "Whether the GPU clocks are held back, by reason",
            self.throttled.clone(),
        );
        r.register(
            GPU_ENERGY_JOULES,
            "Energy the GPU used since the driver loaded",
            self.energy.clone(),
        );
    }

    fn observe(&self, e: &vortex_messages::telemetry::GpuSampled) {
        let labels = GpuLabels {
            gpu: e.device,
            uuid: e.uuid.to_string(),
        };
        self.memory_used
            .get_or_create(&labels)
            .set(saturating_i64(e.memory_used_bytes));
        self.memory_free
            .get_or_create(&labels)
            .set(saturating_i64(e.memory_free_bytes));
        self.memory_total
            .get_or_create(&labels)
            .set(saturating_i64(e.memory_total_bytes));
        let ratio = |percent: f32| f64::from(percent) / 100.0;
        self.utilisation
            .get_or_create(&labels)
            .set(ratio(e.utilisation_percent));
        self.memory_bus_busy
            .get_or_create(&labels)
            .set(ratio(e.memory_bus_busy_percent));
        self.temperature
            .get_or_create(&labels)
            .set(f64::from(e.temperature_celsius));
        self.power
            .get_or_create(&labels)
            .set(f64::from(e.power_watts));
        self.power_limit
            .get_or_create(&labels)
            .set(f64::from(e.power_limit_watts));
        for (clock, mhz) in [("sm", e.sm_clock_mhz), ("memory", e.memory_clock_mhz)] {
            let clock_labels = GpuClockLabels {
                gpu: e.device,
                uuid: labels.uuid.clone(),
                clock,
            };
            self.clock
                .get_or_create(&clock_labels)
                .set(f64::from(mhz) * 1e6);
        }
        if let Some(bits) = e.throttle_reasons {
            for &(bit, reason) in GPU_THROTTLE_REASONS {
                let throttle_labels = GpuThrottleLabels {
                    gpu: e.device,
                    uuid: labels.uuid.clone(),
                    reason,
                };
                self.throttled
                    .get_or_create(&throttle_labels)
                    .set(i64::from(bits & bit != 0));
            }
        }
        if let Some(millijoules) = e.energy_millijoules {
            // NVML reports the running total; the counter follows it upwards.
            let counter = self.energy.get_or_create(&labels);
            let joules = millijoules as f64 / 1e3;
            let delta = joules - counter.get();
            if delta > 0.0 {
                counter.inc_by(delta);
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControlLabels {
    actor: String,
    command: String,
    outcome: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Default)]
struct Families {
    messages_handled: Family<ActorLabels, Counter>,
    mailbox_depth: Family<ActorLabels, Gauge>,
    handler_latency: Family<ActorLabels, LatencyHistogram>,
    restarts: Family<ActorLabels, Counter>,
    dead_letters: Family<ActorLabels, Counter>,
    pool_size: Family<PoolLabels, Gauge>,
    batch_latency: Family<DeviceLabels, LatencyHistogram>,
    preprocess_latency: Family<DeviceLabels, LatencyHistogram>,
    fsync_latency: LatencyHistogram,
    timer_lag: LatencyHistogram,
    control_applied: Family<ControlLabels, Counter>,
    device_utilisation: Family<DeviceLabels, FloatGauge>,
    device_memory_used: Family<DeviceLabels, Gauge>,
    device_memory_total: Family<DeviceLabels, Gauge>,
    device_temperature: Family<DeviceLabels, FloatGauge>,
    data_stall: Family<DeviceLabels, FloatGauge>,
    gpu: GpuFamilies,
}

/// The runtime's metrics: registers every `vortex_` family in one [`Registry`]
/// and hands out lock-free per-actor and per-pool handles. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MetricsSink {
    families: Arc<Families>,
}

impl MetricsSink {
    /// Registers every family in [`METRIC_NAMES`] in `registry` (one registry per
    /// runtime; the runtime may register its own metrics next to these).
    pub fn register(registry: &mut Registry) -> Self {
        let f = Families::default();
        let r = registry;
        r.register(
            MESSAGES_HANDLED,
            "Messages handled by an actor",
            f.messages_handled.clone(),
        );
        r.register(
            MAILBOX_DEPTH,
            "Messages waiting in an actor's mailbox",
            f.mailbox_depth.clone(),
        );
        r.register(
            HANDLER_LATENCY_SECONDS,
            "Handler time per batch drain (1 to batch_size messages)",
            f.handler_latency.clone(),
        );
        r.register(
            ACTOR_RESTARTS,
            "Actor restarts by its supervisor",
            f.restarts.clone(),
        );
        r.register(
            DEAD_LETTERS,
            "Messages sent to the dead-letter sink",
            f.dead_letters.clone(),
        );
        r.register(POOL_SIZE, "Workers in a pool", f.pool_size.clone());
        r.register(
            BATCH_LATENCY_SECONDS,
            "Device time per batch",
            f.batch_latency.clone(),
        );
        r.register(
            PREPROCESS_LATENCY_SECONDS,
            "Preprocessing time per batch",
            f.preprocess_latency.clone(),
        );
        r.register(
            JOURNAL_FSYNC_LATENCY_SECONDS,
            "Journal fsync time",
            f.fsync_latency.clone(),
        );
        r.register(TIMER_LAG_SECONDS, "Timer lateness", f.timer_lag.clone());
        r.register(
            CONTROL_COMMANDS_APPLIED,
            "Control commands applied",
            f.control_applied.clone(),
        );
        r.register(
            DEVICE_UTILISATION_RATIO,
            "Device utilisation",
            f.device_utilisation.clone(),
        );
        r.register(
            DEVICE_MEMORY_USED_BYTES,
            "Device memory in use",
            f.device_memory_used.clone(),
        );
        r.register(
            DEVICE_MEMORY_TOTAL_BYTES,
            "Device memory in total",
            f.device_memory_total.clone(),
        );
        r.register(
            DEVICE_TEMPERATURE_CELSIUS,
            "Device temperature",
            f.device_temperature.clone(),
        );
        r.register(
            LAUNCHER_DATA_STALL_RATIO,
            "Fraction of time a device launcher waited for input",
            f.data_stall.clone(),
        );
        f.gpu.register(r);
        Self {
            families: Arc::new(f),
        }
    }

    /// The hot-path handle for one actor. Call once when the actor is registered
    /// and keep the handle; the series appear in the exposition from then on.
    pub fn actor(&self, name: &str) -> ActorMetrics {
        let f = &*self.families;
        let labels = ActorLabels {
            actor: name.to_owned(),
        };
        ActorMetrics {
            handled: f.messages_handled.get_or_create_owned(&labels),
            depth: f.mailbox_depth.get_or_create_owned(&labels),
            latency: f.handler_latency.get_or_create_owned(&labels),
            restarts: f.restarts.get_or_create_owned(&labels),
            dead_letters: f.dead_letters.get_or_create_owned(&labels),
        }
    }

    /// The histogram behind [`TIMER_LAG_SECONDS`], shared (a clone records into the same
    /// counts): hand it to the scheduler with `SchedulerConfig::lag_histogram`, and every
    /// fired timer's lateness is exported.
    pub fn timer_lag(&self) -> LatencyHistogram {
        self.families.timer_lag.clone()
    }

    /// The counter of `command` applied to `actor` with `outcome` (`ok` or `error`).
    pub fn control_applied(&self, actor: &str, command: &str, succeeded: bool) -> Counter {
        self.families
            .control_applied
            .get_or_create_owned(&control_labels(actor, command, succeeded))
    }

    /// Removes `actor`'s series (handled, depth, handler latency, restarts, dead letters,
    /// pool size) from the exposition: for actors that no longer exist (bounded label
    /// cardinality). Handles held elsewhere keep counting into nothing.
    pub fn remove_actor(&self, actor: &str) {
        let f = &*self.families;
        let labels = ActorLabels {
            actor: actor.to_owned(),
        };
        f.messages_handled.remove(&labels);
        f.mailbox_depth.remove(&labels);
        f.handler_latency.remove(&labels);
        f.restarts.remove(&labels);
        f.dead_letters.remove(&labels);
        f.pool_size.remove(&PoolLabels {
            pool: actor.to_owned(),
        });
    }

    /// Removes one control-command series (see [`MetricsSink::remove_actor`]).
    pub fn remove_control_applied(&self, actor: &str, command: &str, succeeded: bool) {
        self.families
            .control_applied
            .remove(&control_labels(actor, command, succeeded));
    }

    /// The handle for one pool. Call once when the pool is created.
    pub fn pool(&self, name: &str) -> PoolMetrics {
        let labels = PoolLabels {
            pool: name.to_owned(),
        };
        PoolMetrics {
            size: self.families.pool_size.get_or_create_owned(&labels),
        }
    }

    /// Applies one telemetry event to the event-fed metrics (see the table in the
    /// module docs). Runs on the consumer side of the fan-out, never on the hot path.
    pub fn observe(&self, event: &TelemetryEvent) {
        let f = &*self.families;
        match event {
            TelemetryEvent::BatchFinished(e) => {
                let labels = DeviceLabels { device: e.device };
                f.batch_latency
                    .get_or_create(&labels)
                    .observe_micros(e.execute_micros);
                f.preprocess_latency
                    .get_or_create(&labels)
                    .observe_micros(e.preprocess_micros);
            }
            TelemetryEvent::JournalFsynced(e) => f.fsync_latency.observe_micros(e.latency_micros),
            TelemetryEvent::TimerLagged(e) => f.timer_lag.observe_micros(e.lag_micros),
            TelemetryEvent::MailboxDepthSampled(e) => {
                let labels = ActorLabels {
                    actor: e.actor.to_string(),
                };
                f.mailbox_depth
                    .get_or_create(&labels)
                    .set(saturating_i64(e.depth));
            }
            TelemetryEvent::DeviceSampled(e) => {
                let labels = DeviceLabels { device: e.device };
                let ratio = f64::from(e.utilisation_percent) / 100.0;
                f.device_utilisation.get_or_create(&labels).set(ratio);
                let used = saturating_i64(e.memory_used_bytes);
                f.device_memory_used.get_or_create(&labels).set(used);
                let total = saturating_i64(e.memory_total_bytes);
                f.device_memory_total.get_or_create(&labels).set(total);
                let celsius = f64::from(e.temperature_celsius);
                f.device_temperature.get_or_create(&labels).set(celsius);
            }
            TelemetryEvent::LauncherSampled(e) => {
                let labels = DeviceLabels { device: e.device };
                f.data_stall.get_or_create(&labels).set(e.data_stall_ratio);
            }
            TelemetryEvent::GpuSampled(e) => f.gpu.observe(e),
            // Counted by the runtime through `ActorMetrics`, or not a metric.
            _ => {}
        }
    }

    /// Feeds every event of `subscription` into [`observe`](Self::observe) until
    /// the hub closes. Spawn it as the telemetry actor's metrics consumer.
    pub async fn consume(self, mut subscription: Subscription<TelemetryEvent>) {
        while let Some(event) = subscription.recv().await {
            self.observe(&event);
        }
    }
}

fn control_labels(actor: &str, command: &str, succeeded: bool) -> ControlLabels {
    ControlLabels {
        actor: actor.to_owned(),
        command: command.to_owned(),
        outcome: if succeeded { "ok" } else { "error" },
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Lock-free metric handles for one actor, held by its cell.
#[derive(Clone, Debug)]
pub struct ActorMetrics {
    handled: Counter,
    depth: Gauge,
    latency: LatencyHistogram,
    restarts: Counter,
    dead_letters: Counter,
}

impl ActorMetrics {
    /// One message handled, taking `latency` in the handler.
    pub fn message_handled(&self, latency: Duration) {
        self.handled.inc();
        self.latency.observe(latency);
    }

    /// The data mailbox now holds `depth` messages.
    pub fn set_mailbox_depth(&self, depth: u64) {
        self.depth.set(saturating_i64(depth));
    }

    /// The supervisor restarted the actor.
    pub fn restarted(&self) {
        self.restarts.inc();
    }

    /// A message addressed to the actor went to the dead-letter sink.
    pub fn dead_lettered(&self) {
        self.dead_letters.inc();
    }

    /// Batch drains sampled from the runtime: per-bucket counts with the
    /// [`LATENCY_BUCKETS_SECONDS`](crate::telemetry::histogram::LATENCY_BUCKETS_SECONDS)
    /// bounds, and their total time (see [`LatencyHistogram::add_buckets`]).
    pub fn add_handler_batches(&self, counts: &[u64], sum_nanos: u64) {
        self.latency.add_buckets(counts, sum_nanos);
    }

    /// `n` more messages handled (from a sampled counter; no latency sample).
    pub fn add_handled(&self, n: u64) {
        self.handled.inc_by(n);
    }

    /// `n` more restarts (from a sampled counter).
    pub fn add_restarts(&self, n: u64) {
        self.restarts.inc_by(n);
    }

    /// `n` more dead letters (from a sampled counter).
    pub fn add_dead_letters(&self, n: u64) {
        self.dead_letters.inc_by(n);
    }
}

/// Lock-free metric handles for one pool.
#[derive(Clone, Debug)]
pub struct PoolMetrics {
    size: Gauge,
}

impl PoolMetrics {
    /// The pool now has `workers` workers.
    pub fn set_size(&self, workers: usize) {
        self.size.set(i64::try_from(workers).unwrap_or(i64::MAX));
    }
}

/// Renders `registry` in the OpenMetrics text format (ending in `# EOF`).
pub fn encode_text(registry: &Registry) -> Result<String, TelemetryError> {
    let mut text = String::with_capacity(4096);
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use vortex_messages::telemetry::{
        BatchFinished, DeviceSampled, GpuSampled, JournalFsynced, LauncherSampled, TimerLagged,
    };

    fn gpu_sample(energy_millijoules: u64) -> GpuSampled {
        GpuSampled {
            at_micros: 1,
            device: 0,
            uuid: "GPU-1".into(),
            utilisation_percent: 75.0,
            memory_bus_busy_percent: 25.0,
            memory_used_bytes: 3 << 30,
            memory_free_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
            temperature_celsius: 61.0,
            power_watts: 250.5,
            power_limit_watts: 700.0,
            sm_clock_mhz: 1980.0,
            memory_clock_mhz: 2619.0,
            throttle_reasons: Some(0x4 | 0x1),
            energy_millijoules: Some(energy_millijoules),
        }
    }

    /// Touches every metric once so that every family has a series.
    fn full_workload(sink: &MetricsSink) {
        let actor = sink.actor("a");
        actor.message_handled(Duration::from_micros(30));
        actor.set_mailbox_depth(3);
        actor.restarted();
        actor.dead_lettered();
        sink.pool("preprocess").set_size(4);
        sink.control_applied("a", "pause", true).inc();
        sink.observe(&gpu_sample(1_500).into());
        let events: [TelemetryEvent; 5] = [
            BatchFinished {
                at_micros: 1,
                batch_id: 1,
                device: 0,
                items: 32,
                preprocess_micros: 200,
                execute_micros: 900,
                queue_wait_micros: 50,
                copy_micros: 30,
                bytes: 4096,
            }
            .into(),
            JournalFsynced {
                at_micros: 1,
                segment: 0,
                bytes: 4096,
                latency_micros: 700,
            }
            .into(),
            TimerLagged {
                at_micros: 1,
                timer_id: 9,
                target: "a".into(),
                lag_micros: 1_500,
            }
            .into(),
            DeviceSampled {
                at_micros: 1,
                device: 0,
                utilisation_percent: 50.0,
                memory_used_bytes: 10,
                memory_total_bytes: 20,
                temperature_celsius: 60.0,
            }
            .into(),
            LauncherSampled {
                at_micros: 1,
                device: 0,
                launcher: "launcher-0".into(),
                data_stall_ratio: 0.25,
                queued: 2,
                in_rotation: true,
            }
            .into(),
        ];
        for event in &events {
            sink.observe(event);
        }
    }

    #[test]
    fn exposition_contains_exactly_the_named_metrics() {
        let mut registry = Registry::default();
        let sink = MetricsSink::register(&mut registry);
        full_workload(&sink);
        let text = encode_text(&registry).expect("encode");
        let exposed: BTreeSet<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect();
        let expected: BTreeSet<&str> = METRIC_NAMES.iter().copied().collect();
        assert_eq!(exposed, expected, "exposition:\n{text}");
        assert!(METRIC_NAMES.iter().all(|name| name.starts_with("vortex_")));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn gpu_samples_feed_the_gpu_families_and_energy_counts_up() {
        let mut registry = Registry::default();
        let sink = MetricsSink::register(&mut registry);
        sink.observe(&gpu_sample(1_500).into());
        sink.observe(&gpu_sample(4_000).into());
        // A lower reading (driver reloaded) never makes the counter go down.
        sink.observe(&gpu_sample(100).into());
        let text = encode_text(&registry).expect("encode");
        for line in [
            "vortex_gpu_memory_used_bytes{gpu=\"0\",uuid=\"GPU-1\"} 3221225472",
            "vortex_gpu_memory_free_bytes{gpu=\"0\",uuid=\"GPU-1\"} 1073741824",
            "vortex_gpu_utilisation_ratio{gpu=\"0\",uuid=\"GPU-1\"} 0.75",
            "vortex_gpu_memory_bus_busy_ratio{gpu=\"0\",uuid=\"GPU-1\"} 0.25",
            "vortex_gpu_power_watts{gpu=\"0\",uuid=\"GPU-1\"} 250.5",
            "vortex_gpu_clock_hertz{gpu=\"0\",uuid=\"GPU-1\",clock=\"sm\"} 1980000000.0",
            "vortex_gpu_throttled{gpu=\"0\",uuid=\"GPU-1\",reason=\"sw_power_cap\"} 1",
            "vortex_gpu_throttled{gpu=\"0\",uuid=\"GPU-1\",reason=\"hw_slowdown\"} 0",
            "vortex_gpu_energy_joules_total{gpu=\"0\",uuid=\"GPU-1\"} 4.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
    }

    #[test]
    fn event_fed_values_are_exact() {
        let mut registry = Registry::default();
        let sink = MetricsSink::register(&mut registry);
        full_workload(&sink);
        let text = encode_text(&registry).expect("encode");
        for line in [
            "vortex_device_utilisation_ratio{device=\"0\"} 0.5",
            "vortex_device_memory_total_bytes{device=\"0\"} 20",
            "vortex_control_commands_applied_total{actor=\"a\",command=\"pause\",outcome=\"ok\"} 1",
            "vortex_batch_latency_seconds_count{device=\"0\"} 1",
            "vortex_journal_fsync_latency_seconds_count 1",
            "vortex_pool_size{pool=\"preprocess\"} 4",
            "vortex_launcher_data_stall_ratio{device=\"0\"} 0.25",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
    }
}
