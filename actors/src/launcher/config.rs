//! [`LauncherConfig`]: which device a launcher drives, which kernel it runs, how far it
//! may prefetch, its fault budget and where its telemetry goes.

use std::{fmt, sync::Arc, time::Duration};

use vortex_runtime::buffer_pool::BufferPool;

use crate::{
    launcher::{
        core::FaultBudget,
        device::ComputeDevice,
        error::LauncherError,
        kernel::{Kernel, KernelRegistry},
    },
    telemetry::TelemetryHandle,
};

/// Prepared batches a launcher holds ahead unless told otherwise.
pub const DEFAULT_PREFETCH_DEPTH: u32 = 2;

/// The largest prefetch depth `SetPrefetchDepth` may ask for unless configured otherwise
/// (it is also the launcher's mailbox capacity).
pub const DEFAULT_MAX_PREFETCH_DEPTH: u32 = 64;

/// A launcher's settings, built with [`new`](LauncherConfig::new) and chained setters.
pub struct LauncherConfig {
    pub(crate) name: String,
    pub(crate) device: ComputeDevice,
    pub(crate) kernel: Arc<dyn Kernel>,
    pub(crate) prefetch_depth: u32,
    pub(crate) max_prefetch_depth: u32,
    pub(crate) fault_budget: FaultBudget,
    pub(crate) telemetry: Option<TelemetryHandle>,
    pub(crate) buffers: Option<BufferPool>,
    pub(crate) sample_every: Duration,
}

impl LauncherConfig {
    /// A launcher named `name` running `kernel` on `device`, with
    /// [`DEFAULT_PREFETCH_DEPTH`], the default [`FaultBudget`] (3 faults within 10 s), no
    /// telemetry and samples every 100 ms.
    pub fn new(name: impl Into<String>, device: ComputeDevice, kernel: Arc<dyn Kernel>) -> Self {
        LauncherConfig {
            name: name.into(),
            device,
            kernel,
            prefetch_depth: DEFAULT_PREFETCH_DEPTH,
            max_prefetch_depth: DEFAULT_MAX_PREFETCH_DEPTH,
            fault_budget: FaultBudget::default(),
            telemetry: None,
            buffers: None,
            sample_every: Duration::from_millis(100),
        }
    }

    /// Like [`new`](Self::new), with the kernel looked up by name in `registry`.
    pub fn with_kernel_named(
        name: impl Into<String>,
        device: ComputeDevice,
        registry: &KernelRegistry,
        kernel: &str,
    ) -> Result<Self, LauncherError> {
        let found = registry
            .get(kernel)
            .ok_or_else(|| LauncherError::UnknownKernel(kernel.to_owned()))?;
        Ok(Self::new(name, device, found))
    }

    /// Prepared batches the launcher may hold ahead of the one running (at least 1;
    /// `Control::SetPrefetchDepth` changes it live).
    pub fn prefetch_depth(mut self, depth: u32) -> Self {
        self.prefetch_depth = depth;
        self
    }

    /// The largest prefetch depth allowed (the launcher's mailbox capacity).
    pub fn max_prefetch_depth(mut self, max: u32) -> Self {
        self.max_prefetch_depth = max;
        self
    }

    /// Faults within a window that take the device out of rotation.
    pub fn fault_budget(mut self, budget: FaultBudget) -> Self {
        self.fault_budget = budget;
        self
    }

    /// Publish `BatchFinished`, `DeadLettered`, `DeviceSampled` and `LauncherSampled`
    /// events here.
    pub fn telemetry(mut self, telemetry: TelemetryHandle) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Hand each prepared batch's buffer back to this pool once it is on the device (the
    /// preprocessor's pool, so steady state does not allocate).
    pub fn return_buffers_to(mut self, pool: BufferPool) -> Self {
        self.buffers = Some(pool);
        self
    }

    /// How often the launcher publishes its device and stall samples.
    pub fn sample_every(mut self, period: Duration) -> Self {
        self.sample_every = period;
        self
    }

    /// The launcher's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn validate(&self) -> Result<(), LauncherError> {
        if !self.kernel.supports(self.device.kind()) {
            return Err(LauncherError::KernelUnsupported {
                kernel: self.kernel.name().to_owned(),
                device: self.device.label().to_owned(),
            });
        }
        if self.prefetch_depth == 0 || self.prefetch_depth > self.max_prefetch_depth {
            return Err(LauncherError::InvalidConfig(format!(
                "prefetch depth {} is outside 1..={}",
                self.prefetch_depth, self.max_prefetch_depth
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for LauncherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LauncherConfig")
            .field("name", &self.name)
            .field("device", &self.device.label())
            .field("kernel", &self.kernel.name())
            .field("prefetch_depth", &self.prefetch_depth)
            .field("max_prefetch_depth", &self.max_prefetch_depth)
            .field("fault_budget", &self.fault_budget)
            .field("telemetry", &self.telemetry.is_some())
            .finish_non_exhaustive()
    }
}
