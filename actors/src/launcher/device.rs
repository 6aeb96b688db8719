//! [`ComputeDevice`]: a compute device as a static-dispatch enum, one variant per backend
//! (`Cpu` always, `Cuda` behind the `cuda` features, the `Mlx` seam behind
//! `mlx`). The launcher's hot loop matches on it; there is no trait object between a
//! batch and its device.
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

#[cfg(feature = "cuda-backend")]
use crate::launcher::cuda::{CudaBuffer, CudaDevice};
#[cfg(feature = "mlx")]
use crate::launcher::mlx::{MlxBuffer, MlxDevice};
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
    /// An NVIDIA GPU through CUDA (only constructed with the `cuda` feature).
    Cuda,
    /// Apple MLX: a seam, every operation unsupported (only constructed with `mlx`).
    Mlx,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Mlx => "mlx",
        })
    }
}

/// A compute device. Cheap to clone (each variant is a shared handle).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ComputeDevice {
    /// The CPU backend.
    Cpu(CpuDevice),
    /// The CUDA backend (feature `cuda`).
    #[cfg(feature = "cuda-backend")]
    Cuda(CudaDevice),
    /// The MLX seam (feature `mlx`): reports every operation unsupported.
    #[cfg(feature = "mlx")]
    Mlx(MlxDevice),
}

/// Memory on a device, from [`ComputeDevice::allocate`]. Dropping it frees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeviceBuffer {
    /// Memory of a CPU device.
    Cpu(CpuBuffer),
    /// Memory of a CUDA device.
    #[cfg(feature = "cuda-backend")]
    Cuda(CudaBuffer),
    /// Memory of an MLX device (never handed out).
    #[cfg(feature = "mlx")]
    Mlx(MlxBuffer),
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
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(_) => DeviceKind::Cuda,
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(_) => DeviceKind::Mlx,
        }
    }

    /// The device's index.
    pub fn index(&self) -> DeviceId {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.index(),
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(cuda) => cuda.index(),
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(mlx) => mlx.index(),
        }
    }

    /// `<backend>:<index>`, e.g. `cpu:0`.
    pub fn label(&self) -> &str {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.label(),
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(cuda) => cuda.label(),
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(mlx) => mlx.label(),
        }
    }

    /// Allocates `elements` f32 values of device memory.
    pub fn allocate(&self, elements: usize) -> Result<DeviceBuffer, DeviceError> {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.allocate(elements).map(DeviceBuffer::Cpu),
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(cuda) => cuda.allocate(elements).map(DeviceBuffer::Cuda),
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(mlx) => Err(mlx.unsupported("allocate")),
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
            #[cfg(feature = "cuda-backend")]
            (ComputeDevice::Cuda(cuda), DeviceBuffer::Cuda(buffer)) => {
                cuda.copy_to_device(host, buffer)
            }
            #[cfg(feature = "mlx")]
            (ComputeDevice::Mlx(mlx), _) => Err(mlx.unsupported("copy_to_device")),
            #[allow(unreachable_patterns)]
            (device, _) => Err(foreign_buffer(device)),
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
            #[cfg(feature = "cuda-backend")]
            (ComputeDevice::Cuda(cuda), DeviceBuffer::Cuda(buffer)) => {
                cuda.copy_to_host(buffer, host)
            }
            #[cfg(feature = "mlx")]
            (ComputeDevice::Mlx(mlx), _) => Err(mlx.unsupported("copy_to_host")),
            #[allow(unreachable_patterns)]
            (device, _) => Err(foreign_buffer(device)),
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
            #[cfg(feature = "cuda-backend")]
            (ComputeDevice::Cuda(cuda), DeviceBuffer::Cuda(input), DeviceBuffer::Cuda(output)) => {
                cuda.launch(kernel, input, rows, output)
            }
            #[cfg(feature = "mlx")]
            (ComputeDevice::Mlx(mlx), _, _) => Err(mlx.unsupported("launch")),
            #[allow(unreachable_patterns)]
            (device, _, _) => Err(foreign_buffer(device)),
        }
    }

    /// Waits until every launched kernel finished. The CPU backend runs synchronously, so
    /// it has nothing to wait for.
    pub fn synchronize(&self) -> Result<(), DeviceError> {
        match self {
            ComputeDevice::Cpu(_) => Ok(()),
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(cuda) => cuda.synchronize(),
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(mlx) => Err(mlx.unsupported("synchronize")),
        }
    }

    /// Device memory in use, bytes.
    pub fn memory_in_use(&self) -> u64 {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.memory_in_use(),
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(cuda) => cuda.memory_in_use(),
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(_) => 0,
        }
    }

    /// Device memory in total, bytes (`None` when the backend does not know).
    pub fn memory_total(&self) -> Option<u64> {
        match self {
            ComputeDevice::Cpu(cpu) => Some(cpu.memory_total()),
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(cuda) => Some(cuda.memory_total()),
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(_) => None,
        }
    }

    /// Busy fraction over the last sampling window (`None` when not known yet).
    pub fn utilisation(&self) -> Option<f64> {
        match self {
            ComputeDevice::Cpu(cpu) => cpu.utilisation(),
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(cuda) => cuda.utilisation(),
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(_) => None,
        }
    }

    /// Runs `job` where the device's host-side work belongs, without blocking the caller's
    /// thread (the CPU backend: on its resource group; CUDA: on the device's own pinned
    /// host thread; the time counts as busy). A panic in `job` is
    /// [`ResourceError::TaskPanicked`]: a crash, not a device fault.
    pub fn run<R, F>(
        &self,
        job: F,
    ) -> impl Future<Output = Result<R, ResourceError>> + Send + 'static
    where
        F: FnOnce(&ComputeDevice) -> R + Send + 'static,
        R: Send + 'static,
    {
        let device = self.clone();
        let run: futures::future::Either<_, ThreadRun<R>> = match self {
            ComputeDevice::Cpu(cpu) => {
                let cpu = cpu.clone();
                futures::future::Either::Left(cpu.group().clone().run_async(move || {
                    let started = Instant::now();
                    let outcome = job(&device);
                    cpu.record_busy(started.elapsed());
                    outcome
                }))
            }
            #[cfg(feature = "cuda-backend")]
            ComputeDevice::Cuda(cuda) => {
                let receiver = cuda.submit(move || job(&device));
                futures::future::Either::Right(ThreadRun {
                    receiver,
                    label: cuda.label().to_owned(),
                })
            }
            #[cfg(feature = "mlx")]
            ComputeDevice::Mlx(mlx) => {
                // Every MLX operation fails at once: run the job here, nothing blocks.
                let (sender, receiver) = tokio::sync::oneshot::channel();
                let _ = sender.send(Ok(job(&device)));
                futures::future::Either::Right(ThreadRun {
                    receiver,
                    label: mlx.label().to_owned(),
                })
            }
        };
        run
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
        #[cfg(feature = "cuda-backend")]
        if let ComputeDevice::Cuda(cuda) = self {
            return cuda.execute_batch(kernel, batch, features, out);
        }
        #[cfg(feature = "mlx")]
        if let ComputeDevice::Mlx(mlx) = self {
            return Err(mlx.unsupported("execute_batch"));
        }
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

/// A buffer handed to a device it does not belong to.
#[allow(dead_code)] // only reachable with a second backend compiled in
fn foreign_buffer(device: &ComputeDevice) -> DeviceError {
    DeviceError::CopyFailed {
        device: device.label().to_owned(),
        reason: "the buffer belongs to another backend".to_owned(),
    }
}

/// The result of a job on a device's own host thread (CUDA; the MLX seam answers at once).
#[allow(dead_code)] // constructed only with the `cuda` or `mlx` feature
struct ThreadRun<R> {
    receiver: tokio::sync::oneshot::Receiver<Result<R, ResourceError>>,
    label: String,
}

impl<R> Future for ThreadRun<R> {
    type Output = Result<R, ResourceError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|received| {
                received.unwrap_or_else(|_| {
                    Err(ResourceError::TaskDropped {
                        group: self.label.clone(),
                    })
                })
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
