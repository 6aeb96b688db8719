//! Which compute devices to use: every CUDA device when the backend is built and a GPU is
//! present, otherwise CPU devices — and the fallback is said once, with its reason.

use crate::launcher::device::ComputeDevice;
#[cfg(feature = "cuda-backend")]
use crate::nvml::Inventory;

/// Items per CUDA pipeline chunk unless configured otherwise: a batch of more items is
/// cut into chunks whose copies overlap the previous chunk's compute.
pub const DEFAULT_CHUNK_ROWS: usize = 256;

/// Why no CUDA device is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoCudaDevice {
    /// This build has no CUDA backend.
    #[error("this build has no CUDA backend (build with `--features cuda`)")]
    NotBuilt,
    /// The driver reports no device.
    #[error("the CUDA driver reports no device")]
    NoDevices,
    /// CUDA is not usable here (no driver library, no cuBLAS, a context error).
    #[error("{0}")]
    Unavailable(String),
}

/// Opens up to `max` CUDA devices as launcher devices `0..`, each with pipeline chunks of
/// `chunk_rows` items and its host thread pinned to the CPUs `inventory` (from the NVML
/// monitor) lists next to that GPU, matched by UUID.
#[cfg(feature = "cuda-backend")]
pub fn cuda_devices(
    max: usize,
    chunk_rows: usize,
    inventory: Option<&Inventory>,
) -> Result<Vec<ComputeDevice>, NoCudaDevice> {
    use crate::launcher::cuda::{CudaDevice, CudaOptions};
    let count =
        vortex_cuda::device_count().map_err(|e| NoCudaDevice::Unavailable(e.to_string()))?;
    if count == 0 || max == 0 {
        return Err(NoCudaDevice::NoDevices);
    }
    let mut devices = Vec::new();
    for ordinal in 0..count.min(max) {
        let index = u32::try_from(ordinal).unwrap_or(u32::MAX);
        // Open once to learn the UUID, then pin: the host thread starts pinned.
        let gpu = vortex_cuda::Gpu::open(ordinal)
            .map_err(|e| NoCudaDevice::Unavailable(e.to_string()))?;
        let mut options = CudaOptions::default().chunk_rows(chunk_rows);
        if let Some(gpu_record) =
            inventory.and_then(|inventory| inventory.by_uuid(&gpu.info().uuid))
        {
            if !gpu_record.cpus.is_empty() {
                options = options.cpus(gpu_record.cpus.clone());
            }
        }
        drop(gpu);
        let device = CudaDevice::open(index, ordinal, options)
            .map_err(|e| NoCudaDevice::Unavailable(e.to_string()))?;
        tracing::info!(
            device = device.label(),
            name = %device.info().name,
            uuid = %device.info().uuid,
            pinned_to = ?device.pinned_to(),
            "CUDA device opened"
        );
        devices.push(ComputeDevice::Cuda(device));
    }
    Ok(devices)
}

/// Without the CUDA backend: always [`NoCudaDevice::NotBuilt`].
#[cfg(not(feature = "cuda-backend"))]
pub fn cuda_devices(
    max: usize,
    chunk_rows: usize,
    inventory: Option<&crate::nvml::Inventory>,
) -> Result<Vec<ComputeDevice>, NoCudaDevice> {
    let _ = (max, chunk_rows, inventory);
    Err(NoCudaDevice::NotBuilt)
}

/// The CUDA devices when there are any, otherwise `cpus` CPU devices made by `cpu`
/// (index → device) — logged once, with the reason, when it falls back.
pub fn cuda_or_cpu(
    cuda: Result<Vec<ComputeDevice>, NoCudaDevice>,
    cpus: u32,
    mut cpu: impl FnMut(u32) -> ComputeDevice,
) -> Vec<ComputeDevice> {
    match cuda {
        Ok(devices) if !devices.is_empty() => devices,
        outcome => {
            let reason = outcome.err().unwrap_or(NoCudaDevice::NoDevices);
            tracing::warn!(%reason, cpu_devices = cpus, "no CUDA device: falling back to CPU devices");
            (0..cpus).map(&mut cpu).collect()
        }
    }
}
