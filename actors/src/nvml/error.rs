//! [`GpuQueryError`]: why the NVML monitor could not answer.

use thiserror::Error;

/// Why the NVML monitor could not answer a question about the GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GpuQueryError {
    /// NVML did not initialise (no NVIDIA driver on this machine, most often): there are
    /// no GPUs to ask about.
    #[error("no GPUs: NVML is unavailable ({0})")]
    Unavailable(String),
    /// No GPU has this index or UUID.
    #[error("no GPU `{0}`")]
    UnknownGpu(String),
    /// An NVML call failed for this GPU.
    #[error("NVML `{call}` failed for GPU `{gpu}`: {reason}")]
    Query {
        /// The GPU, as asked for.
        gpu: String,
        /// The NVML call.
        call: &'static str,
        /// NVML's error, as text.
        reason: String,
    },
    /// The monitor stopped before it answered.
    #[error("the NVML monitor stopped")]
    Stopped,
}
