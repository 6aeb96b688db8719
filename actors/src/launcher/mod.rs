//! The device launcher: compute devices, kernels, one launcher actor per device, and the
//! router that picks a device per batch.
//!
//! A prepared batch from the CPU preprocessor reaches the [`Router`], which scores every
//! launcher in rotation (utilisation, free memory, queue depth; [`score`]) and sends the
//! batch to the best one with a free prefetch place. The [`Launcher`] runs it on its
//! [`ComputeDevice`] — a static-dispatch enum: `Cpu` always, `Cuda` behind the `cuda`
//! feature, the `Mlx` seam behind `mlx` — with
//! the configured [`Kernel`], emits `BatchFinished`, and forwards a
//! [`FinishedBatch`](vortex_messages::pipeline::FinishedBatch) to the next stage.
//!
//! Device faults are typed ([`DeviceError`]) and handled by the launcher: the batch goes to
//! the dead-letter sink and telemetry; a spent [`FaultBudget`] takes the device out of
//! rotation until `Control::Resume` succeeds on a probe batch. Knobs:
//! `Control::SetPrefetchDepth` (launchers) and `Control::SetBatchSize` (the
//! [`source`](crate::source)).
//!
//! # Layout
//! - [`device`] — [`ComputeDevice`], [`DeviceBuffer`], [`DeviceKind`], one batch's run.
//! - [`cpu`] — [`CpuDevice`], the CPU backend on its own resource group.
//! - `cuda` (feature `cuda`) — `CudaDevice`: the CUDA backend on its own
//!   pinned host thread, batches through the `vortex-cuda` double-buffered pipeline.
//! - `mlx` (feature `mlx`) — `MlxDevice`: the MLX seam, every operation unsupported.
//! - [`discover`] — [`cuda_devices`], [`cuda_or_cpu`]: CUDA when present, else CPU, said once.
//! - [`affinity`] — pinning a host thread to the CPUs next to a GPU.
//! - [`kernel`] — the [`Kernel`] trait, [`KernelRegistry`], the built-in [`MlpKernel`].
//! - [`core`] — pure logic — [`score`], [`pick`], [`FaultWindow`], [`BusyWindow`],
//!   [`StallMeter`].
//! - [`config`] — [`LauncherConfig`].
//! - [`stats`] — [`LauncherStats`], shared by launcher, router and reports.
//! - [`actor`] — [`Launcher`], [`LauncherHandle`], [`LaunchRequest`].
//! - [`router`] — [`Router`].
//! - [`error`] — [`KernelError`], [`DeviceError`], [`LauncherError`].
//!
//! # Example
//! ```
//! use std::{sync::Arc, time::Duration};
//! use vortex_actors::launcher::{
//!     ComputeDevice, CpuDevice, Launcher, LauncherConfig, MlpKernel, Router, ScoreWeights,
//! };
//! use vortex_actors::preprocessor::Downstream;
//! use vortex_messages::pipeline::{DType, FinishedBatch, PreparedBatch};
//! use vortex_runtime::{resource_group::ResourceGroup, Runtime};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
//! let rt = Runtime::builder().build().unwrap();
//! let group = Arc::new(ResourceGroup::new("device-0", 1, None).unwrap());
//! let device = ComputeDevice::Cpu(CpuDevice::new(0, group, 64 << 20, Duration::from_millis(100)));
//! let kernel = Arc::new(MlpKernel::seeded(4, 8, 2, 7));
//! let (sink, mut finished) = tokio::sync::mpsc::channel::<FinishedBatch>(8);
//! let launcher = Launcher::spawn(&rt, LauncherConfig::new("launcher-0", device, kernel), sink)
//!     .await
//!     .unwrap();
//! let router = Router::new("router", vec![launcher], ScoreWeights::default(), rt.dead_letters().clone());
//! let input: Vec<u8> = [0.5f32; 8].iter().flat_map(|v| v.to_le_bytes()).collect();
//! let batch = PreparedBatch { id: 1, items: 2, dtype: DType::F32, shape: vec![2, 4], data: input, created_at_micros: 0 };
//! router.send(batch).await.unwrap();
//! let out = finished.recv().await.unwrap();
//! assert_eq!((out.id, out.shape), (1, vec![2, 2]));
//! rt.shutdown().await;
//! # }
//! ```

pub mod actor;
pub mod affinity;
pub mod config;
pub mod core;
pub mod cpu;
#[cfg(feature = "cuda-backend")]
pub mod cuda;
pub mod device;
pub mod discover;
pub mod error;
pub mod kernel;
#[cfg(feature = "mlx")]
pub mod mlx;
pub mod router;
pub mod stats;

pub use self::core::{
    pick, score, BusyWindow, DeviceSignals, FaultBudget, FaultWindow, ScoreWeights, StallMeter,
    NEUTRAL_SCORE,
};
pub use actor::{LaunchRequest, Launcher, LauncherHandle};
pub use config::{LauncherConfig, DEFAULT_MAX_PREFETCH_DEPTH, DEFAULT_PREFETCH_DEPTH};
pub use cpu::{CpuBuffer, CpuDevice};
#[cfg(feature = "cuda-backend")]
pub use cuda::{CudaBuffer, CudaDevice, CudaLaunch, CudaOptions, CudaWeights};
pub use device::{BatchOutput, BatchTimings, ComputeDevice, DeviceBuffer, DeviceKind};
pub use discover::{cuda_devices, cuda_or_cpu, NoCudaDevice, DEFAULT_CHUNK_ROWS};
pub use error::{DeviceError, KernelError, LauncherError};
pub use kernel::{CpuLaunch, Kernel, KernelRegistry, MlpKernel};
#[cfg(feature = "mlx")]
pub use mlx::{MlxBuffer, MlxDevice};
pub use router::Router;
pub use stats::{LauncherSnapshot, LauncherStats};
