//! GPU inventory and health through NVML (`nvml-wrapper`, loaded at run time: builds and
//! runs without a driver).
//!
//! One actor, the [`NvmlMonitor`], owns the `Nvml` handle; everyone else asks it by
//! message through an [`NvmlHandle`]: the inventory (name, UUID, PCI bus, driver and CUDA
//! versions, memory, nearest CPUs), a sample of one GPU (memory from `memory_info`,
//! utilisation, memory-bus busy, temperature, power and limit, clocks, throttle reasons,
//! energy), or a GPU's CPU affinity (a CUDA launcher pins its thread there). Periodic
//! samples go to telemetry as `GpuSampled` and feed the `vortex_gpu_*` metrics.
//!
//! Without a driver, `Nvml::init()` fails: the monitor logs it once, answers
//! [`GpuQueryError::Unavailable`], and its `Status` line says "no GPUs".
//!
//! # Layout
//! - [`core`] — pure: [`GpuRef`], [`Inventory`], [`GpuInventory`], throttle-reason names,
//!   the status line.
//! - [`actor`] — [`NvmlMonitor`], [`NvmlHandle`], [`NvmlConfig`], [`NvmlRequest`].
//! - [`error`] — [`GpuQueryError`].
//!
//! # Example
//! ```
//! use vortex_actors::nvml::{GpuQueryError, NvmlConfig, NvmlHandle};
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
//! let rt = vortex_runtime::Runtime::builder().build().unwrap();
//! let nvml = NvmlHandle::spawn(&rt, NvmlConfig::new("nvml")).await.unwrap();
//! match nvml.inventory().await {
//!     Ok(inventory) => println!("{} GPU(s)", inventory.gpus.len()),
//!     Err(GpuQueryError::Unavailable(why)) => println!("no GPUs: {why}"),
//!     Err(other) => panic!("{other}"),
//! }
//! rt.shutdown().await;
//! # }
//! ```

pub mod actor;
pub mod core;
pub mod error;

pub use self::core::{
    cuda_version_text, status_line, throttle_reason_names, GpuInventory, GpuRef, Inventory,
};
pub use actor::{NvmlConfig, NvmlHandle, NvmlMonitor, NvmlRequest};
pub use error::GpuQueryError;
