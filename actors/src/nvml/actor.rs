//! [`NvmlMonitor`]: the one actor that owns the `Nvml` handle. It lists the GPUs, samples
//! them periodically into telemetry (`GpuSampled`, which feeds the `vortex_gpu_*`
//! metrics) and answers launchers' questions by message ([`NvmlHandle`]).
//!
//! `nvml_wrapper::Device<'nvml>` borrows the handle, so no long-lived actor can keep one:
//! every request and every sample looks its GPU up again, by index or UUID. Without a
//! driver `Nvml::init()` fails: the monitor logs that once, clearly, answers every request
//! with [`GpuQueryError::Unavailable`], reports "no GPUs" in `Status`, and the runtime
//! carries on with CPU devices.

use std::{path::PathBuf, sync::Arc, time::Duration};

use nvml_wrapper::{
    enum_wrappers::device::{Clock, TemperatureSensor},
    Device, Nvml,
};
use tokio::sync::oneshot;
use vortex_messages::telemetry::{now_micros, GpuSampled, Name};
use vortex_runtime::{Actor, ActorError, Addr, Context, Runtime, RuntimeError};

use crate::{
    launcher::affinity::cpus_from_mask,
    nvml::{
        core::{cuda_version_text, status_line, GpuInventory, GpuRef, Inventory},
        error::GpuQueryError,
    },
    telemetry::TelemetryHandle,
};

/// Words of CPU mask asked from NVML (64 CPUs each): 1 024 CPUs.
const AFFINITY_WORDS: usize = 16;

/// How to run the monitor.
#[derive(Clone)]
pub struct NvmlConfig {
    name: String,
    sample_every: Option<Duration>,
    telemetry: Option<TelemetryHandle>,
    library: Option<PathBuf>,
}

impl std::fmt::Debug for NvmlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlConfig")
            .field("name", &self.name)
            .field("sample_every", &self.sample_every)
            .field("telemetry", &self.telemetry.is_some())
            .field("library", &self.library)
            .finish()
    }
}

impl NvmlConfig {
    /// A monitor registered as `name`, sampling every second, without telemetry.
    pub fn new(name: impl Into<String>) -> Self {
        NvmlConfig {
            name: name.into(),
            sample_every: Some(Duration::from_secs(1)),
            telemetry: None,
            library: None,
        }
    }

    /// Sample every GPU this often (`None`: only when asked).
    pub fn sample_every(mut self, period: Option<Duration>) -> Self {
        self.sample_every = period;
        self
    }

    /// Publish `GpuSampled` events here.
    pub fn telemetry(mut self, telemetry: TelemetryHandle) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Load NVML from this file instead of the system's `libnvidia-ml.so`.
    pub fn library(mut self, path: impl Into<PathBuf>) -> Self {
        self.library = Some(path.into());
        self
    }
}

/// A request to the monitor. Replies travel on the enclosed oneshot senders.
#[derive(Debug)]
#[non_exhaustive]
pub enum NvmlRequest {
    /// List the driver and every GPU.
    Inventory(oneshot::Sender<Result<Inventory, GpuQueryError>>),
    /// Sample one GPU now.
    Sample(GpuRef, oneshot::Sender<Result<GpuSampled, GpuQueryError>>),
    /// The CPUs nearest one GPU.
    CpuAffinity(GpuRef, oneshot::Sender<Result<Vec<usize>, GpuQueryError>>),
    /// Sample every GPU and publish (sent by the monitor's own ticker).
    Tick,
}

/// The NVML monitor actor. Spawn it with [`NvmlHandle::spawn`].
pub struct NvmlMonitor {
    config: Arc<NvmlConfig>,
    nvml: Result<Nvml, String>,
    inventory: Option<Inventory>,
    last: Vec<GpuSampled>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for NvmlMonitor {
    fn drop(&mut self) {
        // A restarted incarnation starts its own ticker; this one's must not live on.
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }
}

impl NvmlMonitor {
    fn nvml(&self) -> Result<&Nvml, GpuQueryError> {
        self.nvml
            .as_ref()
            .map_err(|reason| GpuQueryError::Unavailable(reason.clone()))
    }

    fn device(&self, gpu: &GpuRef) -> Result<Device<'_>, GpuQueryError> {
        let nvml = self.nvml()?;
        let found = match gpu {
            GpuRef::Index(index) => nvml.device_by_index(*index),
            GpuRef::Uuid(uuid) => nvml.device_by_uuid(uuid.as_str()),
        };
        found.map_err(|_| GpuQueryError::UnknownGpu(gpu.to_string()))
    }

    fn inventory(&self) -> Result<Inventory, GpuQueryError> {
        let nvml = self.nvml()?;
        let failed = |call: &'static str| {
            move |error: nvml_wrapper::error::NvmlError| GpuQueryError::Query {
                gpu: "*".to_owned(),
                call,
                reason: error.to_string(),
            }
        };
        let count = nvml.device_count().map_err(failed("device_count"))?;
        let mut gpus = Vec::new();
        for index in 0..count {
            let device = self.device(&GpuRef::Index(index))?;
            let query = |call: &'static str| query_failed(index, call);
            gpus.push(GpuInventory {
                index,
                name: device.name().map_err(query("name"))?,
                uuid: device.uuid().map_err(query("uuid"))?,
                pci_bus_id: device.pci_info().map(|pci| pci.bus_id).unwrap_or_default(),
                memory_total_bytes: device.memory_info().map_err(query("memory_info"))?.total,
                cpus: affinity(&device).unwrap_or_default(),
            });
        }
        Ok(Inventory {
            driver_version: nvml
                .sys_driver_version()
                .map_err(failed("sys_driver_version"))?,
            cuda_driver_version: cuda_version_text(
                nvml.sys_cuda_driver_version()
                    .map_err(failed("sys_cuda_driver_version"))?,
            ),
            gpus,
        })
    }

    fn sample(&self, gpu: &GpuRef) -> Result<GpuSampled, GpuQueryError> {
        let device = self.device(gpu)?;
        let index = device.index().map_err(query_failed(0, "index"))?;
        let memory = device
            .memory_info()
            .map_err(query_failed(index, "memory_info"))?;
        let utilisation = device.utilization_rates().ok();
        let milli = |value: Result<u32, _>| value.map_or(f32::NAN, |mw: u32| mw as f32 / 1e3);
        let mhz = |clock| device.clock_info(clock).map_or(f32::NAN, |v| v as f32);
        Ok(GpuSampled {
            at_micros: now_micros(),
            device: index,
            uuid: Name::from(device.uuid().map_err(query_failed(index, "uuid"))?.as_str()),
            utilisation_percent: utilisation.as_ref().map_or(f32::NAN, |u| u.gpu as f32),
            memory_bus_busy_percent: utilisation.as_ref().map_or(f32::NAN, |u| u.memory as f32),
            memory_used_bytes: memory.used,
            memory_free_bytes: memory.free,
            memory_total_bytes: memory.total,
            temperature_celsius: device
                .temperature(TemperatureSensor::Gpu)
                .map_or(f32::NAN, |c| c as f32),
            power_watts: milli(device.power_usage()),
            power_limit_watts: milli(device.enforced_power_limit()),
            sm_clock_mhz: mhz(Clock::SM),
            memory_clock_mhz: mhz(Clock::Memory),
            throttle_reasons: device.current_throttle_reasons().ok().map(|r| r.bits()),
            energy_millijoules: device.total_energy_consumption().ok(),
        })
    }

    fn tick(&mut self) {
        let Some(inventory) = &self.inventory else {
            return;
        };
        let indices: Vec<u32> = inventory.gpus.iter().map(|gpu| gpu.index).collect();
        let mut samples = Vec::with_capacity(indices.len());
        for index in indices {
            match self.sample(&GpuRef::Index(index)) {
                Ok(sample) => samples.push(sample),
                Err(error) => tracing::debug!(gpu = index, %error, "GPU sample failed"),
            }
        }
        if let Some(telemetry) = &self.config.telemetry {
            for sample in &samples {
                let _ = telemetry.try_publish(sample.clone().into());
            }
        }
        self.last = samples;
    }
}

fn query_failed(
    index: u32,
    call: &'static str,
) -> impl FnOnce(nvml_wrapper::error::NvmlError) -> GpuQueryError {
    move |error| GpuQueryError::Query {
        gpu: format!("#{index}"),
        call,
        reason: error.to_string(),
    }
}

fn affinity(device: &Device<'_>) -> Result<Vec<usize>, nvml_wrapper::error::NvmlError> {
    let words = device.cpu_affinity(AFFINITY_WORDS)?;
    #[allow(clippy::useless_conversion)] // `c_ulong` is `u32` on some platforms
    let words: Vec<u64> = words.into_iter().map(u64::from).collect();
    Ok(cpus_from_mask(&words))
}

fn init(library: Option<PathBuf>) -> Result<Nvml, String> {
    let result = match &library {
        Some(path) => Nvml::builder().lib_path(path.as_os_str()).init(),
        None => Nvml::init(),
    };
    result.map_err(|error| error.to_string())
}

impl Actor for NvmlMonitor {
    type Message = NvmlRequest;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let library = self.config.library.clone();
        // Loading the library and `nvmlInit` can take a while: not on a tokio worker.
        self.nvml = tokio::task::spawn_blocking(move || init(library))
            .await
            .unwrap_or_else(|error| Err(format!("NVML initialisation panicked: {error}")));
        match &self.nvml {
            Err(reason) => tracing::warn!(
                monitor = ctx.name(),
                %reason,
                "NVML unavailable: no GPUs; carrying on with CPU devices"
            ),
            Ok(_) => match self.inventory() {
                Ok(inventory) => {
                    tracing::info!(monitor = ctx.name(), status = %status_line(None, Some(&inventory), &[]), "NVML inventory");
                    self.inventory = Some(inventory);
                }
                Err(error) => tracing::warn!(monitor = ctx.name(), %error, "NVML inventory failed"),
            },
        }
        if let (Ok(_), Some(period)) = (&self.nvml, self.config.sample_every) {
            let addr: Addr<NvmlMonitor> = ctx.addr().clone();
            self.ticker = Some(tokio::spawn(async move {
                let mut interval = tokio::time::interval(period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    interval.tick().await;
                    // A full mailbox skips a tick; a closed one ends the ticker.
                    if let Err(vortex_runtime::TrySendError::Closed(_)) =
                        addr.try_tell(NvmlRequest::Tick)
                    {
                        break;
                    }
                }
            }));
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        request: NvmlRequest,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match request {
            NvmlRequest::Inventory(reply) => {
                let _ = reply.send(self.inventory());
            }
            NvmlRequest::Sample(gpu, reply) => {
                let _ = reply.send(self.sample(&gpu));
            }
            NvmlRequest::CpuAffinity(gpu, reply) => {
                let answer = self.device(&gpu).and_then(|device| {
                    affinity(&device).map_err(|error| GpuQueryError::Query {
                        gpu: gpu.to_string(),
                        call: "cpu_affinity",
                        reason: error.to_string(),
                    })
                });
                let _ = reply.send(answer);
            }
            NvmlRequest::Tick => self.tick(),
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(status_line(
            self.nvml.as_ref().err().map(String::as_str),
            self.inventory.as_ref(),
            &self.last,
        ))
    }
}

/// A running NVML monitor: ask it about the GPUs.
#[derive(Clone, Debug)]
pub struct NvmlHandle {
    addr: Addr<NvmlMonitor>,
}

impl NvmlHandle {
    /// Spawns the monitor under the runtime's root supervisor. Never fails for want of a
    /// driver: without one the monitor runs and answers "no GPUs".
    pub async fn spawn(rt: &Runtime, config: NvmlConfig) -> Result<NvmlHandle, RuntimeError> {
        let name = config.name.clone();
        let config = Arc::new(config);
        let addr = rt
            .spawn(name, move || NvmlMonitor {
                config: Arc::clone(&config),
                nvml: Err("not started".to_owned()),
                inventory: None,
                last: Vec::new(),
                ticker: None,
            })
            .await?;
        Ok(NvmlHandle { addr })
    }

    /// The monitor's address.
    pub fn addr(&self) -> &Addr<NvmlMonitor> {
        &self.addr
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, GpuQueryError>>) -> NvmlRequest,
    ) -> Result<T, GpuQueryError> {
        let (sender, receiver) = oneshot::channel();
        self.addr
            .tell(request(sender))
            .await
            .map_err(|_| GpuQueryError::Stopped)?;
        receiver.await.map_err(|_| GpuQueryError::Stopped)?
    }

    /// The driver and every GPU.
    pub async fn inventory(&self) -> Result<Inventory, GpuQueryError> {
        self.ask(NvmlRequest::Inventory).await
    }

    /// One GPU's readings now.
    pub async fn sample(&self, gpu: GpuRef) -> Result<GpuSampled, GpuQueryError> {
        self.ask(|reply| NvmlRequest::Sample(gpu, reply)).await
    }

    /// The CPUs nearest one GPU (pin its launcher thread there).
    pub async fn cpu_affinity(&self, gpu: GpuRef) -> Result<Vec<usize>, GpuQueryError> {
        self.ask(|reply| NvmlRequest::CpuAffinity(gpu, reply)).await
    }
}
