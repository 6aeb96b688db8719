//! [`Launcher`]: one actor per compute device. It takes prepared batches from its mailbox,
//! runs each on its device (copy in, launch, synchronise, copy out — on the device's own
//! threads, never a tokio worker), emits `BatchFinished`, and forwards the output to the
//! next stage.
//!
//! A device fault ([`DeviceError`]) is handled here, not by the supervisor: the batch goes
//! to the runtime's dead-letter sink (with the batch itself) and to telemetry, and once
//! the fault budget is spent the device leaves the rotation — the actor keeps running,
//! the router skips it, `Status` says so. `Resume` to the launcher then runs a probe batch
//! and brings the device back when it succeeds. A panic in a kernel is a crash: the
//! handler fails and the supervisor restarts the launcher as usual (the counters and the
//! rotation state live in [`LauncherStats`], which outlives incarnations).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use vortex_messages::{
    pipeline::{DType, FinishedBatch, PreparedBatch},
    telemetry::{
        now_micros, BatchFinished, DeadLettered, DeviceSampled, LauncherSampled, Name,
        TelemetryEvent,
    },
    Control, ControlError, ControlReply,
};
use vortex_runtime::{
    buffer_pool::BufferPool, Actor, ActorError, ActorSpec, Addr, Context, DeadLetter,
    DeadLetterReason, DeadLetters, Runtime,
};

use crate::{
    launcher::{
        config::LauncherConfig,
        core::DeviceSignals,
        device::{BatchOutput, ComputeDevice},
        error::{DeviceError, LauncherError},
        kernel::Kernel,
        stats::LauncherStats,
    },
    preprocessor::Downstream,
    telemetry::TelemetryHandle,
};

/// A batch on its way to a launcher: the batch, and when and how it was routed.
#[derive(Debug)]
pub struct LaunchRequest {
    /// The batch.
    pub batch: PreparedBatch,
    /// When the router (or sender) handed it over; queue wait is measured from here.
    pub routed_at: Instant,
    /// Whether a router reserved a prefetch place for it (released when it is taken).
    pub(crate) reserved: bool,
}

impl From<PreparedBatch> for LaunchRequest {
    /// A batch sent straight to a launcher (no router, no prefetch reservation).
    fn from(batch: PreparedBatch) -> Self {
        LaunchRequest {
            batch,
            routed_at: Instant::now(),
            reserved: false,
        }
    }
}

/// What every incarnation of one launcher shares.
struct Shared {
    name: Name,
    device: ComputeDevice,
    kernel: Arc<dyn Kernel>,
    downstream: Arc<dyn Downstream<FinishedBatch>>,
    dead_letters: DeadLetters,
    telemetry: Option<TelemetryHandle>,
    buffers: Option<BufferPool>,
    stats: Arc<LauncherStats>,
    sample_every: std::time::Duration,
    last_sample: Mutex<Instant>,
    max_prefetch_depth: u32,
}

/// One device launcher. Spawn it with [`Launcher::spawn`].
pub struct Launcher {
    shared: Arc<Shared>,
}

impl Launcher {
    /// Spawns the launcher `config.name` under the runtime's root supervisor, forwarding
    /// every finished batch to `downstream`.
    pub async fn spawn(
        rt: &Runtime,
        config: LauncherConfig,
        downstream: impl Downstream<FinishedBatch>,
    ) -> Result<LauncherHandle, LauncherError> {
        config.validate()?;
        let stats = Arc::new(LauncherStats::new(
            config.prefetch_depth,
            config.fault_budget,
        ));
        let shared = Arc::new(Shared {
            name: Name::from(config.name.as_str()),
            device: config.device,
            kernel: config.kernel,
            downstream: Arc::new(downstream),
            dead_letters: rt.dead_letters().clone(),
            telemetry: config.telemetry,
            buffers: config.buffers,
            stats: Arc::clone(&stats),
            sample_every: config.sample_every,
            last_sample: Mutex::new(Instant::now()),
            max_prefetch_depth: config.max_prefetch_depth,
        });
        let for_factory = Arc::clone(&shared);
        let spec = ActorSpec::new(config.name, move || Launcher {
            shared: Arc::clone(&for_factory),
        })
        .capacity(config.max_prefetch_depth as usize)
        .batch_size(1);
        let addr = rt.spawn_actor(spec).await?;
        Ok(LauncherHandle {
            addr,
            device: shared.device.clone(),
            stats,
        })
    }

    /// Puts a batch the launcher could not finish into the dead-letter sink and telemetry.
    fn dead_letter(&self, batch: Option<PreparedBatch>, type_name: &'static str, reason: String) {
        let shared = &self.shared;
        shared.stats.record_dead_letter();
        publish(
            &shared.telemetry,
            DeadLettered {
                at_micros: now_micros(),
                actor: Arc::clone(&shared.name),
                reason: Name::from(reason.as_str()),
            },
        );
        // The retention bound should see the batch's data too, not only its struct.
        let bytes = batch.as_ref().map_or(0, |batch| {
            std::mem::size_of::<PreparedBatch>() + batch.data.capacity()
        });
        let letter = DeadLetter {
            actor: shared.name.to_string(),
            reason: DeadLetterReason::Failed(reason),
            message_type: type_name,
            message: batch.map(|batch| Box::new(batch) as Box<dyn std::any::Any + Send>),
        };
        shared.dead_letters.record(letter, bytes);
    }

    /// Handles a device fault: fault budget (maybe out of rotation), then dead letter and
    /// telemetry — in that order, so whoever sees the dead letter also sees the rotation.
    fn fault(&self, batch: PreparedBatch, error: DeviceError) {
        let shared = &self.shared;
        let stats = &shared.stats;
        stats.record_fault();
        tracing::warn!(launcher = %shared.name, batch = batch.id, %error, "device fault");
        let spent = (stats.fault_window.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .record(Instant::now());
        if spent && stats.in_rotation() {
            stats.set_rotation(false);
            tracing::warn!(
                launcher = %shared.name,
                device = shared.device.label(),
                "fault budget spent: device out of rotation until `resume`"
            );
        }
        self.dead_letter(
            Some(batch),
            std::any::type_name::<PreparedBatch>(),
            error.to_string(),
        );
    }

    /// Forwards a finished batch and records it.
    async fn finish(
        &self,
        batch: PreparedBatch,
        output: BatchOutput,
        queue_wait: std::time::Duration,
    ) {
        let shared = &self.shared;
        let timings = output.timings;
        shared
            .stats
            .record_finished(batch.items, timings.copy, timings.compute);
        publish(
            &shared.telemetry,
            BatchFinished {
                at_micros: now_micros(),
                batch_id: batch.id,
                device: shared.device.index(),
                items: batch.items,
                preprocess_micros: 0,
                execute_micros: micros(timings.compute),
                queue_wait_micros: micros(queue_wait),
                copy_micros: micros(timings.copy),
                bytes: batch.data.len() as u64,
            },
        );
        let finished = FinishedBatch {
            id: batch.id,
            device: shared.device.index(),
            items: batch.items,
            dtype: DType::F32,
            shape: output.shape,
            data: output.data,
            created_at_micros: batch.created_at_micros,
            copy_micros: micros(timings.copy),
            compute_micros: micros(timings.compute),
        };
        if let Some(pool) = &shared.buffers {
            pool.put(batch.data);
        }
        if let Err(error) = shared.downstream.send(finished).await {
            // The output went with the closed stage (a refused `send` does not hand it
            // back); the batch is accounted for here, without its payload.
            tracing::warn!(launcher = %shared.name, batch = batch.id, %error, "next stage refused a finished batch");
            self.dead_letter(
                None,
                std::any::type_name::<FinishedBatch>(),
                format!("batch {}: {error}", batch.id),
            );
        }
    }

    /// Publishes the device and stall samples when a sampling period has passed.
    fn maybe_sample(&self) {
        let shared = &self.shared;
        if shared.telemetry.is_none() {
            return;
        }
        {
            let mut last = shared
                .last_sample
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < shared.sample_every {
                return;
            }
            *last = Instant::now();
        }
        let at_micros = now_micros();
        let device = &shared.device;
        publish(
            &shared.telemetry,
            DeviceSampled {
                at_micros,
                device: device.index(),
                utilisation_percent: (device.utilisation().unwrap_or(0.0) * 100.0) as f32,
                memory_used_bytes: device.memory_in_use(),
                memory_total_bytes: device.memory_total().unwrap_or(0),
                temperature_celsius: f32::NAN,
            },
        );
        let stats = &shared.stats;
        publish(
            &shared.telemetry,
            LauncherSampled {
                at_micros,
                device: device.index(),
                launcher: Arc::clone(&shared.name),
                data_stall_ratio: stats.data_stall_ratio(),
                queued: stats.queued.load(std::sync::atomic::Ordering::Relaxed),
                in_rotation: stats.in_rotation(),
            },
        );
    }

    /// Runs a small all-zero batch on the device; `Ok` when the device ran it.
    async fn probe(&self) -> Result<(), String> {
        let shared = &self.shared;
        let features = shared.kernel.input_features();
        let batch = PreparedBatch {
            id: u64::MAX,
            items: 1,
            dtype: DType::F32,
            shape: vec![1, u32::try_from(features).map_err(|e| e.to_string())?],
            data: vec![0; features * 4],
            created_at_micros: now_micros(),
        };
        let kernel = Arc::clone(&shared.kernel);
        let ran = shared
            .device
            .run(move |device| device.execute_batch(&*kernel, &batch, Vec::new()).map(drop))
            .await;
        shared.stats.record_probe();
        match ran {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(crash) => Err(crash.to_string()),
        }
    }
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Best-effort publish: a full telemetry mailbox drops the event, never blocks a device.
fn publish(telemetry: &Option<TelemetryHandle>, event: impl Into<TelemetryEvent>) {
    if let Some(telemetry) = telemetry {
        let _ = telemetry.try_publish(event.into());
    }
}

impl Actor for Launcher {
    type Message = LaunchRequest;

    async fn handle(
        &mut self,
        request: LaunchRequest,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        let shared = Arc::clone(&self.shared);
        let started = Instant::now();
        if request.reserved {
            shared.stats.release();
        }
        shared
            .stats
            .stall
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .batch_started(started);
        let queue_wait = started.saturating_duration_since(request.routed_at);
        let kernel = Arc::clone(&shared.kernel);
        let batch = request.batch;
        let ran = shared
            .device
            .run(move |device| {
                let outcome = device.execute_batch(&*kernel, &batch, Vec::new());
                (batch, outcome)
            })
            .await;
        let result = match ran {
            Ok((batch, Ok(output))) => {
                self.finish(batch, output, queue_wait).await;
                Ok(())
            }
            Ok((batch, Err(error))) => {
                self.fault(batch, error);
                Ok(())
            }
            // A panic on the device's threads is a crash (the batch went with it): fail,
            // and let the supervisor restart this launcher.
            Err(crash) => Err(ActorError::from(crash)),
        };
        shared
            .stats
            .stall
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .batch_ended(Instant::now());
        self.maybe_sample();
        result
    }

    async fn on_control(
        &mut self,
        command: &Control,
        ctx: &mut Context<Self>,
    ) -> Option<Result<ControlReply, ControlError>> {
        let stats = &self.shared.stats;
        match command {
            Control::SetPrefetchDepth { depth } => {
                let max = self.shared.max_prefetch_depth;
                if *depth == 0 || *depth > max {
                    return Some(Err(ControlError::Rejected {
                        actor: ctx.name().to_owned(),
                        reason: format!("prefetch depth {depth} is outside 1..={max}"),
                    }));
                }
                let before = stats
                    .prefetch_depth
                    .swap(*depth, std::sync::atomic::Ordering::Relaxed);
                stats.changed.notify_waiters();
                Some(Ok(ControlReply::Custom(format!(
                    "prefetch depth {before} -> {depth}"
                ))))
            }
            Control::Resume if !stats.in_rotation() => match self.probe().await {
                Ok(()) => {
                    (stats.fault_window.lock())
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                    stats.set_rotation(true);
                    tracing::info!(launcher = %self.shared.name, "probe succeeded: device back in rotation");
                    // The default `Resume` runs too (it lifts a `Pause`, if any).
                    None
                }
                Err(reason) => Some(Err(ControlError::Rejected {
                    actor: ctx.name().to_owned(),
                    reason: format!("probe batch failed, device stays out of rotation: {reason}"),
                })),
            },
            _ => None,
        }
    }

    fn describe(&self) -> Option<String> {
        let shared = &self.shared;
        let snapshot = shared.stats.snapshot();
        let rotation = if snapshot.in_rotation {
            "in".to_owned()
        } else {
            let budget = shared
                .stats
                .fault_window
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .budget();
            format!(
                "OUT (fault budget of {} within {:?} spent; `resume` probes the device)",
                budget.faults, budget.window
            )
        };
        Some(format!(
            "device={} kernel={} rotation={rotation} util={:.0}% memory={}B {snapshot}",
            shared.device.label(),
            shared.kernel.name(),
            shared.device.utilisation().unwrap_or(0.0) * 100.0,
            shared.device.memory_in_use(),
        ))
    }
}

/// A running launcher: its address, its device and its counters.
#[derive(Clone)]
pub struct LauncherHandle {
    addr: Addr<Launcher>,
    device: ComputeDevice,
    stats: Arc<LauncherStats>,
}

impl LauncherHandle {
    /// The launcher's address (send [`LaunchRequest`]s or, via `From`, prepared batches).
    pub fn addr(&self) -> &Addr<Launcher> {
        &self.addr
    }

    /// The registered name (for `Runtime::control`).
    pub fn name(&self) -> &str {
        self.addr.name()
    }

    /// The device it drives.
    pub fn device(&self) -> &ComputeDevice {
        &self.device
    }

    /// Its counters and live state.
    pub fn stats(&self) -> &Arc<LauncherStats> {
        &self.stats
    }

    /// What the router knows about this launcher's device now.
    pub fn signals(&self) -> DeviceSignals {
        let depth = f64::from(self.stats.prefetch_depth().max(1));
        let queued = self.stats.queued.load(std::sync::atomic::Ordering::Relaxed) as f64;
        let free_memory = self
            .device
            .memory_total()
            .filter(|&total| total > 0)
            .map(|total| 1.0 - self.device.memory_in_use() as f64 / total as f64);
        DeviceSignals {
            utilisation: self.device.utilisation(),
            free_memory,
            queue_fill: Some(queued / depth),
        }
    }
}

impl std::fmt::Debug for LauncherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LauncherHandle")
            .field("name", &self.name())
            .field("device", &self.device.label())
            .field("stats", &self.stats.snapshot())
            .finish()
    }
}
