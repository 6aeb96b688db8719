//! [`CudaError`]: why the CUDA backend could not do something.

use thiserror::Error;

/// Why the CUDA backend could not do something. Plain data (`Clone`), so the launcher
/// can count it, log it and put it in a dead letter alike.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CudaError {
    /// The CUDA driver library (`libcuda.so`) is not installed or cannot be loaded.
    #[error("the CUDA driver library (libcuda) is not present on this machine")]
    DriverMissing,
    /// The cuBLAS library is not installed or cannot be loaded.
    #[error("the cuBLAS library (libcublas, CUDA {major}) is not present on this machine")]
    CublasMissing {
        /// The CUDA major version this build looks for.
        major: &'static str,
    },
    /// The driver reports no device with this ordinal.
    #[error("no CUDA device with ordinal {ordinal} ({count} present)")]
    NoDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// Devices the driver reports.
        count: usize,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver call `{call}` failed: {reason}")]
    Driver {
        /// What was being done.
        call: &'static str,
        /// The driver's error, as text.
        reason: String,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS call `{call}` failed: {reason}")]
    Cublas {
        /// What was being done.
        call: &'static str,
        /// cuBLAS's error, as text.
        reason: String,
    },
    /// Buffers or dimensions do not fit the operation.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

impl CudaError {
    pub(crate) fn driver(call: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> Self {
        move |error| CudaError::Driver {
            call,
            reason: error.to_string(),
        }
    }

    pub(crate) fn cublas(
        call: &'static str,
    ) -> impl FnOnce(cudarc::cublas::result::CublasError) -> Self {
        move |error| CudaError::Cublas {
            call,
            reason: format!("{error:?}"),
        }
    }
}
