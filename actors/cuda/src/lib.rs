//! The CUDA compute backend of Nexa Vortex, on [`cudarc`] with dynamic loading: it builds
//! on machines without CUDA, and every entry point checks that the libraries load before
//! calling into them (cudarc panics otherwise).
//!
//! cudarc's stream and launch calls are `unsafe fn`s and the workspace forbids
//! `unsafe_code`, so they live in this crate, which denies unsafe code and allows it call
//! by call, each with a `// SAFETY:` comment. Everything it exports is safe.
//!
//! # Layout
//! - [`availability`] — [`driver_present`], [`cublas_present`], [`device_count`]: is CUDA
//!   here at all?
//! - [`gpu`] — [`Gpu`]: context, compute and copy streams, cuBLAS row-major
//!   [`sgemm`](Gpu::sgemm), the PTX [`bias_act`](Gpu::bias_act) kernel (text shipped in
//!   this crate, [`BIAS_ACT_PTX`]; no NVRTC at run time).
//! - [`mlp`] — [`MlpWeights`], [`DeviceMlp`]: the two-layer perceptron forward pass.
//! - [`pipeline`] — [`Pipeline`]: double-buffered pinned staging, copy and compute
//!   streams ordered by events, so copies overlap compute.
//! - [`error`] — [`CudaError`].
//!
//! # CUDA version
//! The bindings target CUDA 13.0 (feature `cuda-13`, the default, driver 580+; cudarc then
//! looks for `libcublas.so.13`). For a CUDA 12 driver, change the pin in this crate's
//! `Cargo.toml` (`cudarc/cuda-13000` → `cudarc/cuda-12080`): it is not a second feature,
//! because cudarc cannot compile two version pins at once and the workspace builds with
//! `--all-features`. Without the feature (as under `--no-default-features`) this crate is
//! empty and cudarc is not built.
//!
//! # Example
//! Without a GPU this prints why and returns; with one it runs a GEMM.
//! ```
//! # #[cfg(feature = "cuda-13")] {
//! match vortex_cuda::Gpu::open(0) {
//!     Err(why) => println!("no CUDA device: {why}"),
//!     Ok(gpu) => {
//!         // [1 2] · [5 6] = [19 22]
//!         // [3 4]   [7 8]   [43 50]
//!         let a = gpu.upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
//!         let b = gpu.upload(&[5.0, 6.0, 7.0, 8.0]).unwrap();
//!         let mut c = gpu.alloc(4).unwrap();
//!         gpu.sgemm(2, 2, 2, &a, &b, &mut c).unwrap();
//!         gpu.synchronize().unwrap();
//!         let mut host = Vec::new();
//!         gpu.download(&c, &mut host).unwrap();
//!         assert_eq!(host, [19.0, 22.0, 43.0, 50.0]);
//!     }
//! }
//! # }
//! ```

#[cfg(feature = "cuda-13")]
pub mod availability;
#[cfg(feature = "cuda-13")]
pub mod error;
#[cfg(feature = "cuda-13")]
pub mod gpu;
#[cfg(feature = "cuda-13")]
pub mod mlp;
#[cfg(feature = "cuda-13")]
pub mod pipeline;

#[cfg(feature = "cuda-13")]
pub use availability::{cublas_present, device_count, driver_present, CUDA_MAJOR};
#[cfg(feature = "cuda-13")]
pub use error::CudaError;
#[cfg(feature = "cuda-13")]
pub use gpu::{nvml_uuid, Gpu, GpuInfo, BIAS_ACT_PTX};
#[cfg(feature = "cuda-13")]
pub use mlp::{DeviceMlp, MlpWeights};
#[cfg(feature = "cuda-13")]
pub use pipeline::{Pipeline, PipelineTimings};

/// The cudarc device buffer type, re-exported so users of [`Pipeline::run`] need no
/// direct cudarc dependency.
#[cfg(feature = "cuda-13")]
pub use cudarc::driver::CudaSlice;
