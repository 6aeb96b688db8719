//! The launcher's errors: [`KernelError`] (a kernel refused or failed a batch),
//! [`DeviceError`] (a device fault: the launcher handles it itself, the batch goes to the
//! dead-letter sink) and [`LauncherError`] (setting a launcher or router up).
//!
//! All are `Clone` and carry plain data, so one fault can be counted, logged, put in a
//! dead letter and published as telemetry alike.

use thiserror::Error;
use vortex_runtime::RuntimeError;

/// A kernel refused or failed a batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The kernel has no implementation for this backend.
    #[error("kernel `{kernel}` does not run on {backend} devices")]
    UnsupportedBackend {
        /// The kernel's name.
        kernel: String,
        /// The backend, as text (`cpu`, `cuda`, …).
        backend: String,
    },
    /// The input's shape does not fit the kernel.
    #[error("kernel `{kernel}` expects {expected} features per item, the batch has {actual}")]
    Shape {
        /// The kernel's name.
        kernel: String,
        /// Features per item the kernel takes.
        expected: usize,
        /// Features per item the batch has.
        actual: usize,
    },
    /// The kernel ran and failed.
    #[error("kernel `{kernel}` failed: {reason}")]
    Failed {
        /// The kernel's name.
        kernel: String,
        /// Why.
        reason: String,
    },
}

/// A device fault. The launcher handles it: the batch goes to the dead-letter sink and
/// telemetry, and too many within the fault budget take the device out of rotation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Allocating would exceed the device's memory.
    #[error(
        "device {device} is out of memory: {requested} bytes asked, {in_use} of {total} in use"
    )]
    OutOfMemory {
        /// The device, as text (`cpu:0`).
        device: String,
        /// Bytes asked for.
        requested: u64,
        /// Bytes in use before the request.
        in_use: u64,
        /// The device's memory.
        total: u64,
    },
    /// The kernel launch failed.
    #[error("launch on device {device} failed: {source}")]
    LaunchFailed {
        /// The device, as text.
        device: String,
        /// The kernel's error.
        source: KernelError,
    },
    /// A copy between host and device failed (sizes do not match, the buffer is too small).
    #[error("copy on device {device} failed: {reason}")]
    CopyFailed {
        /// The device, as text.
        device: String,
        /// Why.
        reason: String,
    },
    /// The backend does not implement this operation (the MLX seam: every operation).
    #[error("device {device} does not support `{operation}` (backend not implemented)")]
    Unsupported {
        /// The device, as text (`mlx:0`).
        device: String,
        /// The operation asked for.
        operation: &'static str,
    },
    /// The batch is not one the device can run (wrong element type, empty shape).
    #[error("device {device} cannot run batch: {reason}")]
    InvalidBatch {
        /// The device, as text.
        device: String,
        /// Why.
        reason: String,
    },
}

/// Why a launcher or router could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LauncherError {
    /// No kernel is registered under this name.
    #[error("no kernel named `{0}` is registered")]
    UnknownKernel(String),
    /// The kernel does not run on the launcher's device.
    #[error("kernel `{kernel}` does not run on device {device}")]
    KernelUnsupported {
        /// The kernel's name.
        kernel: String,
        /// The device, as text.
        device: String,
    },
    /// A setting is out of range.
    #[error("invalid launcher configuration: {0}")]
    InvalidConfig(String),
    /// The runtime refused to spawn the launcher.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}
