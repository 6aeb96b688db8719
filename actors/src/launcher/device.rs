//! [`ComputeDevice`]: a compute device as a static-dispatch enum, one variant per backend
//! (`Cpu` here; `Cuda` and `Mlx` join behind their cargo features). The launcher's hot
//! loop matches on it; there is no trait object between a batch and its device.
//!
//! Operations: allocate and free device buffers, copy host→device and device→host,
//! launch a kernel, synchronise, report memory and utilisation, and [`run`] a job where
//! the device's host-side work belongs (the CPU backend: its resource group).
//! [`execute_batch`] strings them together for one prepared batch.
//!
//! [`run`]: ComputeDevice::run
//! [`execute_batch`]: ComputeDevice::execute_batch

use std::{
    fmt,
    future::Future,
    time::{Duration, Instant},
};

use vortex_messages::{
    pipeline::{DType, PreparedBatch},
    telemetry::DeviceId,
};
use vortex_runtime::ResourceError;

use crate::launcher::{
    cpu::{CpuBuffer, CpuDevice},
    error::{DeviceError, KernelError},
    kernel::Kernel,
};

/// Which backend a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    /// Host CPU cores (a resource group).
    Cpu,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
        })
    }
}

/// A compute device. Cheap to clone (each variant is a shared handle).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ComputeDevice {
    /// The CPU backend.
    Cpu(CpuDevice),
}

/// Memory on a device, from [`ComputeDevice::allocate`]. Dropping it frees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceBuffer {
    /// Memory of a CPU device.
    Cpu(CpuBuffer),
}

/// What running one batch took, per phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchTimings {
    /// Host→device plus device→host copies.
    pub copy: Duration,
    /// Launch to synchronise.
    pub compute: Duration,
}

/// The output of one batch and what it took.
#[derive(Debug)]
pub struct BatchOutput {
    /// The output tensor's shape (items first).
    pub shape: Vec<u32>,
    /// The output, little-endian f32.
    pub data: Vec<u8>,
    /// Per-phase times.
    pub timings: BatchTimings,
}

impl ComputeDevice {
    /// The backend.
    pub fn kind(&self) -> DeviceKind {
        match self {
            ComputeDevice::Cpu(_) => DeviceKind::Cpu,
        }
    }

    /// The device's index.
    pub fn index(&self) -> DeviceId {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.index(),
        }
    }

    /// `<backend>:<index>`, e.g. `cpu:0`.
    pub fn label(&self) -> &str {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.label(),
        }
    }

    /// Allocates `elements` f32 values of device memory.
    pub fn allocate(&self, elements: usize) -> Result<DeviceBuffer, DeviceError> {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.allocate(elements).map(DeviceBuffer::Cpu),
        }
    }

    /// Frees a buffer (the same as dropping it; spelled out where the order matters).
    pub fn free(&self, buffer: DeviceBuffer) {
        drop(buffer);
    }

    /// Copies little-endian f32 bytes from the host into `buffer`.
    pub fn copy_to_device(
        &self,
        host: &[u8],
        buffer: &mut DeviceBuffer,
    ) -> Result<(), DeviceError> {
        match (self, buffer) {
            (ComputeDevice::Cpu(cpu), DeviceBuffer::Cpu(buffer)) => {
                cpu.copy_to_device(host, buffer)
            }
        }
    }

    /// Copies `buffer` to the host as little-endian f32 bytes, replacing `host`'s contents.
    pub fn copy_to_host(
        &self,
        buffer: &DeviceBuffer,
        host: &mut Vec<u8>,
    ) -> Result<(), DeviceError> {
        match (self, buffer) {
            (ComputeDevice::Cpu(cpu), DeviceBuffer::Cpu(buffer)) => {
                cpu.copy_to_host(buffer, host);
                Ok(())
            }
        }
    }

    /// Launches `kernel` on `rows` items of `input`, writing `output`.
    pub fn launch(
        &self,
        kernel: &dyn Kernel,
        input: &DeviceBuffer,
        rows: usize,
        output: &mut DeviceBuffer,
    ) -> Result<(), DeviceError> {
        match (self, input, output) {
            (ComputeDevice::Cpu(cpu), DeviceBuffer::Cpu(input), DeviceBuffer::Cpu(output)) => {
                cpu.launch(kernel, input, rows, output)
            }
        }
    }

    /// Waits until every launched kernel finished. The CPU backend runs synchronously, so
    /// it has nothing to wait for.
    pub fn synchronize(&self) -> Result<(), DeviceError> {
        match self {
            ComputeDevice::Cpu(_) => Ok(()),
        }
    }

    /// Device memory in use, bytes.
    pub fn memory_in_use(&self) -> u64 {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.memory_in_use(),
        }
    }

    /// Device memory in total, bytes (`None` when the backend does not know).
    pub fn memory_total(&self) -> Option<u64> {
        match self {
            ComputeDevice::Cpu(cpu) => Some(cpu.memory_total()),
        }
    }

    /// Busy fraction over the last sampling window (`None` when not known yet).
    pub fn utilisation(&self) -> Option<f64> {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.utilisation(),
        }
    }

    /// Runs `job` where the device's host-side work belongs, without blocking the caller's
    /// thread (the CPU backend: on its resource group; the time counts as busy). A panic
    /// in `job` is [`ResourceError::TaskPanicked`]: a crash, not a device fault.
    pub fn run<R, F>(
        &self,
        job: F,
    ) -> impl Future<Output = Result<R, ResourceError>> + Send + 'static
    where
        F: FnOnce(&ComputeDevice) -> R + Send + 'static,
        R: Send + 'static,
    {
        let device = self.clone();
        match self {
            ComputeDevice::Cpu(cpu) => {
                let cpu = cpu.clone();
                cpu.group().clone().run_async(move || {
                    let started = Instant::now();
                    let outcome = job(&device);
                    cpu.record_busy(started.elapsed());
                    outcome
                })
            }
        }
    }

    /// Runs one prepared batch: checks it, allocates, copies in, launches, synchronises,
    /// copies out into `out` (reused), frees. Call it inside [`run`](Self::run).
    pub fn execute_batch(
        &self,
        kernel: &dyn Kernel,
        batch: &PreparedBatch,
        out: Vec<u8>,
    ) -> Result<BatchOutput, DeviceError> {
        let rows = batch.items as usize;
        let features = check_batch(self, kernel, batch)?;
        let copy_started = Instant::now();
        let mut input = self.allocate(rows * features)?;
        self.copy_to_device(&batch.data, &mut input)?;
        let mut copy = copy_started.elapsed();
        let mut output = self.allocate(rows * kernel.output_features())?;
        let compute_started = Instant::now();
        self.launch(kernel, &input, rows, &mut output)?;
        self.synchronize()?;
        let compute = compute_started.elapsed();
        self.free(input);
        let copy_back = Instant::now();
        let mut data = out;
        self.copy_to_host(&output, &mut data)?;
        self.free(output);
        copy += copy_back.elapsed();
        let outputs = u32::try_from(kernel.output_features()).unwrap_or(u32::MAX);
        Ok(BatchOutput {
            shape: vec![batch.items, outputs],
            data,
            timings: BatchTimings { copy, compute },
        })
    }
}

/// Features per item of `batch`, if `kernel` can run it on `device`.
fn check_batch(
    device: &ComputeDevice,
    kernel: &dyn Kernel,
    batch: &PreparedBatch,
) -> Result<usize, DeviceError> {
    let invalid = |reason: String| DeviceError::InvalidBatch {
        device: device.label().to_owned(),
        reason,
    };
    if batch.dtype != DType::F32 {
        return Err(invalid(format!(
            "element type {:?}, expected F32",
            batch.dtype
        )));
    }
    if batch.shape.first() != Some(&batch.items) || batch.items == 0 {
        return Err(invalid(format!(
            "shape {:?} does not start with its {} items",
            batch.shape, batch.items
        )));
    }
    let features: usize = batch.shape[1..].iter().map(|&d| d as usize).product();
    if batch.data.len() != batch.items as usize * features * 4 {
        return Err(invalid(format!(
            "{} bytes of data for shape {:?}",
            batch.data.len(),
            batch.shape
        )));
    }
    if features != kernel.input_features() {
        return Err(DeviceError::LaunchFailed {
            device: device.label().to_owned(),
            source: KernelError::Shape {
                kernel: kernel.name().to_owned(),
                expected: kernel.input_features(),
                actual: features,
            },
        });
    }
    Ok(features)
}
