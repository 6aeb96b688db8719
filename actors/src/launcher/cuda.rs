//! [`CudaDevice`]: the CUDA backend of the compute device (cargo feature `cuda`,
//! CUDA 13.0 bindings), on the `vortex-cuda` crate.
//!
//! Each device has its own host thread (`cuda-<index>`), pinned to the CPUs next to the
//! GPU when NVML reports them ([`CudaOptions::cpus`]); every CUDA call of a launcher runs
//! there, so no tokio worker ever waits for the GPU. A batch runs through a
//! [`vortex_cuda::Pipeline`]: cut into chunks of [`CudaOptions::chunk_rows`] items,
//! staged in pinned host memory, copied on the copy stream while the previous chunk
//! computes on the compute stream, the two streams ordered by events.

use std::{
    collections::HashMap,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use vortex_cuda::{CudaError, CudaSlice, DeviceMlp, Gpu, GpuInfo, MlpWeights, Pipeline};
use vortex_messages::{pipeline::PreparedBatch, telemetry::DeviceId};
use vortex_runtime::ResourceError;

use crate::launcher::{
    core::BusyWindow,
    device::{BatchOutput, BatchTimings},
    error::{DeviceError, KernelError},
    kernel::Kernel,
};

pub use crate::launcher::discover::DEFAULT_CHUNK_ROWS;

/// How to open a [`CudaDevice`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CudaOptions {
    /// Items per pipeline chunk: a batch of more items is cut into chunks whose copies
    /// overlap the previous chunk's compute.
    pub chunk_rows: usize,
    /// CPUs to pin the device's host thread to (NVML's `cpu_affinity` of the GPU);
    /// `None` leaves it unpinned.
    pub cpus: Option<Vec<usize>>,
    /// Utilisation is measured over windows of this length.
    pub window: Duration,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            chunk_rows: DEFAULT_CHUNK_ROWS,
            cpus: None,
            window: Duration::from_millis(100),
        }
    }
}

impl CudaOptions {
    /// Items per pipeline chunk (at least 1).
    pub fn chunk_rows(mut self, rows: usize) -> Self {
        self.chunk_rows = rows.max(1);
        self
    }

    /// Pin the device's host thread to these CPUs.
    pub fn cpus(mut self, cpus: Vec<usize>) -> Self {
        self.cpus = Some(cpus);
        self
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A CUDA compute device. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct CudaDevice {
    inner: Arc<CudaInner>,
}

struct CudaInner {
    index: DeviceId,
    label: String,
    gpu: Gpu,
    chunk_rows: usize,
    jobs: Mutex<mpsc::Sender<Job>>,
    state: Mutex<CudaState>,
    in_use: AtomicU64,
    memory_used: AtomicU64,
    memory_total: AtomicU64,
    busy: Mutex<BusyWindow>,
    pinned_to: Option<Vec<usize>>,
}

/// What the device's thread reuses between batches.
#[derive(Default)]
struct CudaState {
    pipelines: HashMap<(usize, usize), Pipeline>,
    weights: CudaWeights,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("label", &self.inner.label)
            .field("gpu", self.inner.gpu.info())
            .field("chunk_rows", &self.inner.chunk_rows)
            .field("pinned_to", &self.inner.pinned_to)
            .finish_non_exhaustive()
    }
}

impl CudaDevice {
    /// Opens CUDA device `ordinal` as launcher device `index` and starts its host thread.
    /// Fails with a typed error — never a panic — when the driver or cuBLAS is missing or
    /// the device cannot be opened.
    pub fn open(index: DeviceId, ordinal: usize, options: CudaOptions) -> Result<Self, CudaError> {
        let gpu = Gpu::open(ordinal)?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let label = format!("cuda:{index}");
        let pinned_to = options.cpus.filter(|cpus| !cpus.is_empty());
        let cpus = pinned_to.clone();
        let context = Arc::clone(gpu.context());
        let thread_label = label.clone();
        std::thread::Builder::new()
            .name(format!("cuda-{index}"))
            .spawn(move || {
                if let Some(cpus) = &cpus {
                    if let Err(error) = crate::launcher::affinity::pin_current_thread(cpus) {
                        tracing::warn!(device = %thread_label, ?cpus, %error, "could not pin the CUDA host thread");
                    }
                }
                if let Err(error) = context.bind_to_thread() {
                    tracing::warn!(device = %thread_label, %error, "could not bind the CUDA context");
                }
                // Ends when the last handle (and with it the sender) is dropped.
                while let Ok(job) = receiver.recv() {
                    job();
                }
            })
            .map_err(|error| CudaError::Driver {
                call: "spawn host thread",
                reason: error.to_string(),
            })?;
        let (free, total) = gpu.memory()?;
        Ok(CudaDevice {
            inner: Arc::new(CudaInner {
                index,
                label,
                chunk_rows: options.chunk_rows.max(1),
                jobs: Mutex::new(sender),
                state: Mutex::new(CudaState::default()),
                in_use: AtomicU64::new(0),
                memory_used: AtomicU64::new(total.saturating_sub(free)),
                memory_total: AtomicU64::new(total),
                busy: Mutex::new(BusyWindow::new(options.window, Instant::now())),
                pinned_to,
                gpu,
            }),
        })
    }

    /// The device's index.
    pub fn index(&self) -> DeviceId {
        self.inner.index
    }

    /// `cuda:<index>`.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// What the driver says about the GPU (name, UUID for NVML, memory).
    pub fn info(&self) -> &GpuInfo {
        self.inner.gpu.info()
    }

    /// The GPU handle (streams, cuBLAS, the PTX kernel).
    pub fn gpu(&self) -> &Gpu {
        &self.inner.gpu
    }

    /// CPUs the host thread was asked to pin to.
    pub fn pinned_to(&self) -> Option<&[usize]> {
        self.inner.pinned_to.as_deref()
    }

    /// Items per pipeline chunk.
    pub fn chunk_rows(&self) -> usize {
        self.inner.chunk_rows
    }

    /// Device memory in use (the driver's view, refreshed after every batch), bytes.
    pub fn memory_in_use(&self) -> u64 {
        self.inner.memory_used.load(Ordering::Relaxed)
    }

    /// Device memory in total, bytes.
    pub fn memory_total(&self) -> u64 {
        self.inner.memory_total.load(Ordering::Relaxed)
    }

    /// Busy fraction of the host thread over the last window.
    pub fn utilisation(&self) -> Option<f64> {
        (self.inner.busy.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .utilisation(Instant::now())
    }

    fn record_busy(&self, busy: Duration) {
        (self.inner.busy.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .record(busy, Instant::now());
        if let Ok((free, total)) = self.inner.gpu.memory() {
            self.inner
                .memory_used
                .store(total.saturating_sub(free), Ordering::Relaxed);
            self.inner.memory_total.store(total, Ordering::Relaxed);
        }
    }

    /// Runs `job` on the device's host thread; the future resolves with its result. A
    /// panic is [`ResourceError::TaskPanicked`].
    pub(crate) fn submit<R, F>(
        &self,
        job: F,
    ) -> tokio::sync::oneshot::Receiver<Result<R, ResourceError>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let device = self.clone();
        let group = self.inner.label.clone();
        let task: Job = Box::new(move || {
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(job)).map_err(|payload| {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                ResourceError::TaskPanicked { group, message }
            });
            device.record_busy(started.elapsed());
            let _ = sender.send(outcome);
        });
        // A closed channel means the thread is gone: dropping the job drops the sender,
        // and the receiver reports `TaskDropped`.
        let _ = self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(task);
        receiver
    }

    /// `elements` f32 values of device memory.
    pub fn allocate(&self, elements: usize) -> Result<CudaBuffer, DeviceError> {
        let bytes = elements as u64 * 4;
        let slice = self.inner.gpu.alloc(elements).map_err(|error| {
            tracing::debug!(device = %self.inner.label, %error, "allocation failed");
            DeviceError::OutOfMemory {
                device: self.inner.label.clone(),
                requested: bytes,
                in_use: self.memory_in_use(),
                total: self.memory_total(),
            }
        })?;
        self.inner.in_use.fetch_add(bytes, Ordering::AcqRel);
        Ok(CudaBuffer {
            slice,
            elements,
            device: Arc::clone(&self.inner),
        })
    }

    /// Copies little-endian f32 bytes into `buffer` (synchronous: plain host memory).
    pub fn copy_to_device(&self, host: &[u8], buffer: &mut CudaBuffer) -> Result<(), DeviceError> {
        if host.len() != buffer.elements * 4 {
            return Err(self.copy_failed(format!(
                "{} bytes into a buffer of {} f32",
                host.len(),
                buffer.elements
            )));
        }
        let values = f32s(host);
        let copy = self.inner.gpu.copy_stream();
        copy.memcpy_htod(values.as_slice(), &mut buffer.slice)
            .and_then(|()| copy.synchronize())
            .map_err(|error| self.copy_failed(error.to_string()))
    }

    /// Copies `buffer` to the host as little-endian f32 bytes, replacing `host`.
    pub fn copy_to_host(&self, buffer: &CudaBuffer, host: &mut Vec<u8>) -> Result<(), DeviceError> {
        let mut values = Vec::new();
        self.inner
            .gpu
            .download(&buffer.slice, &mut values)
            .map_err(|error| self.copy_failed(error.to_string()))?;
        host.clear();
        host.extend(
            values[..buffer.elements]
                .iter()
                .flat_map(|v| v.to_le_bytes()),
        );
        Ok(())
    }

    /// Queues `kernel` on the compute stream.
    pub fn launch(
        &self,
        kernel: &dyn Kernel,
        input: &CudaBuffer,
        rows: usize,
        output: &mut CudaBuffer,
    ) -> Result<(), DeviceError> {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        kernel
            .run_cuda(CudaLaunch {
                gpu: &self.inner.gpu,
                input: &input.slice,
                rows,
                output: &mut output.slice,
                weights: &mut state.weights,
            })
            .map_err(|source| self.launch_failed(source))
    }

    /// Waits for both streams.
    pub fn synchronize(&self) -> Result<(), DeviceError> {
        self.inner.gpu.synchronize().map_err(|error| {
            self.launch_failed(KernelError::Failed {
                kernel: "synchronize".to_owned(),
                reason: error.to_string(),
            })
        })
    }

    /// One batch through the double-buffered pipeline (call it on the device's thread,
    /// inside `ComputeDevice::run`).
    pub(crate) fn execute_batch(
        &self,
        kernel: &dyn Kernel,
        batch: &PreparedBatch,
        features: usize,
        out: Vec<u8>,
    ) -> Result<BatchOutput, DeviceError> {
        let rows = batch.items as usize;
        let outputs = kernel.output_features();
        let mut guard = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        let pipeline = match state.pipelines.entry((features, outputs)) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                Pipeline::new(&self.inner.gpu, self.inner.chunk_rows, features, outputs).map_err(
                    |error| DeviceError::OutOfMemory {
                        device: format!("{} ({error})", self.inner.label),
                        requested: (2 * self.inner.chunk_rows * (features + outputs) * 4) as u64,
                        in_use: self.memory_in_use(),
                        total: self.memory_total(),
                    },
                )?,
            ),
        };
        state.input.clear();
        state.input.extend(
            batch
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        let weights = &mut state.weights;
        let timings = pipeline
            .run(
                &state.input,
                rows,
                &mut state.output,
                |gpu, input, rows, output| {
                    kernel.run_cuda(CudaLaunch {
                        gpu,
                        input,
                        rows,
                        output,
                        weights: &mut *weights,
                    })
                },
            )
            .map_err(|source| self.launch_failed(source))?;
        let mut data = out;
        data.clear();
        data.extend(state.output.iter().flat_map(|v| v.to_le_bytes()));
        Ok(BatchOutput {
            shape: vec![batch.items, u32::try_from(outputs).unwrap_or(u32::MAX)],
            data,
            timings: BatchTimings {
                copy: timings.copy,
                compute: timings.compute,
            },
        })
    }

    fn copy_failed(&self, reason: String) -> DeviceError {
        DeviceError::CopyFailed {
            device: self.inner.label.clone(),
            reason,
        }
    }

    fn launch_failed(&self, source: KernelError) -> DeviceError {
        DeviceError::LaunchFailed {
            device: self.inner.label.clone(),
            source,
        }
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl From<CudaError> for KernelError {
    fn from(error: CudaError) -> Self {
        KernelError::Failed {
            kernel: "cuda".to_owned(),
            reason: error.to_string(),
        }
    }
}

/// Memory of a CUDA device. Dropping it frees it.
pub struct CudaBuffer {
    slice: CudaSlice<f32>,
    elements: usize,
    device: Arc<CudaInner>,
}

impl CudaBuffer {
    /// The device memory.
    pub fn slice(&self) -> &CudaSlice<f32> {
        &self.slice
    }

    /// Bytes of device memory it holds.
    pub fn bytes(&self) -> u64 {
        self.elements as u64 * 4
    }
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBuffer")
            .field("device", &self.device.label)
            .field("elements", &self.elements)
            .finish()
    }
}

impl Drop for CudaBuffer {
    fn drop(&mut self) {
        self.device.in_use.fetch_sub(self.bytes(), Ordering::AcqRel);
    }
}

/// Weights kernels keep on a device between launches, by name (the MLP's, uploaded on
/// its first launch there).
#[derive(Default)]
pub struct CudaWeights {
    mlps: HashMap<String, DeviceMlp>,
}

impl CudaWeights {
    /// The MLP stored under `key`, uploading `weights` when there is none yet or its
    /// shape differs.
    pub fn mlp(
        &mut self,
        gpu: &Gpu,
        key: &str,
        weights: MlpWeights<'_>,
    ) -> Result<&mut DeviceMlp, CudaError> {
        let shape = (weights.inputs, weights.hidden, weights.outputs);
        if self.mlps.get(key).map(DeviceMlp::shape) != Some(shape) {
            self.mlps
                .insert(key.to_owned(), DeviceMlp::upload(gpu, weights)?);
        }
        Ok(self.mlps.get_mut(key).expect("inserted above"))
    }
}

/// One launch of a kernel on a CUDA device: device memory in and out, queued on the
/// compute stream (the call returns before the GPU ran it).
#[non_exhaustive]
pub struct CudaLaunch<'a> {
    /// The GPU: [`Gpu::sgemm`], [`Gpu::bias_act`], its streams.
    pub gpu: &'a Gpu,
    /// The input, at least `rows × input_features` values.
    pub input: &'a CudaSlice<f32>,
    /// Items in this launch.
    pub rows: usize,
    /// Where the output goes, at least `rows × output_features` values.
    pub output: &'a mut CudaSlice<f32>,
    /// Weights kept on the device between launches.
    pub weights: &'a mut CudaWeights,
}

impl std::fmt::Debug for CudaLaunch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaLaunch")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}
