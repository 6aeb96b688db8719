//! [`CpuDevice`]: the CPU backend of the compute device. Its kernels run on its own
//! resource group (an isolated, optionally pinned rayon pool; never tokio's workers, never
//! the global rayon pool). Memory is host memory, accounted against a configured budget so
//! that "out of memory" and "free fraction" mean the same as on a GPU.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use vortex_runtime::resource_group::ResourceGroup;

use crate::launcher::{
    core::BusyWindow,
    error::DeviceError,
    kernel::{CpuLaunch, Kernel},
};
use vortex_messages::telemetry::DeviceId;

/// Freed buffers a device keeps for reuse (so steady state does not allocate).
const KEPT_BUFFERS: usize = 8;

/// A CPU compute device: a resource group, a memory budget and a utilisation window.
/// Cheap to clone (a shared handle).
#[derive(Clone, Debug)]
pub struct CpuDevice {
    inner: Arc<CpuInner>,
}

#[derive(Debug)]
struct CpuInner {
    index: DeviceId,
    label: String,
    group: Arc<ResourceGroup>,
    memory_total: u64,
    in_use: AtomicU64,
    busy: Mutex<BusyWindow>,
    kept: Mutex<Vec<Vec<f32>>>,
}

impl CpuDevice {
    /// Device `index` computing on `group`, with `memory_bytes` of memory to hand out and
    /// utilisation measured over windows of `window`.
    pub fn new(
        index: DeviceId,
        group: Arc<ResourceGroup>,
        memory_bytes: u64,
        window: Duration,
    ) -> Self {
        CpuDevice {
            inner: Arc::new(CpuInner {
                index,
                label: format!("cpu:{index}"),
                group,
                memory_total: memory_bytes,
                in_use: AtomicU64::new(0),
                busy: Mutex::new(BusyWindow::new(window, Instant::now())),
                kept: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The device's index.
    pub fn index(&self) -> DeviceId {
        self.inner.index
    }

    /// `cpu:<index>`.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The resource group it computes on.
    pub fn group(&self) -> &Arc<ResourceGroup> {
        &self.inner.group
    }

    /// Allocates a buffer of `elements` f32 values (contents unspecified), or
    /// [`DeviceError::OutOfMemory`] when that would exceed the budget.
    pub fn allocate(&self, elements: usize) -> Result<CpuBuffer, DeviceError> {
        let inner = &*self.inner;
        let bytes = (elements as u64).saturating_mul(4);
        let reserved = inner
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= inner.memory_total)
            });
        if let Err(in_use) = reserved {
            return Err(DeviceError::OutOfMemory {
                device: inner.label.clone(),
                requested: bytes,
                in_use,
                total: inner.memory_total,
            });
        }
        let mut data = {
            let mut kept = inner.kept.lock().unwrap_or_else(PoisonError::into_inner);
            let fit = kept.iter().position(|buffer| buffer.capacity() >= elements);
            fit.map(|index| kept.swap_remove(index)).unwrap_or_default()
        };
        data.resize(elements, 0.0);
        Ok(CpuBuffer {
            data,
            bytes,
            device: Arc::clone(&self.inner),
        })
    }

    /// Bytes of device memory handed out now.
    pub fn memory_in_use(&self) -> u64 {
        self.inner.in_use.load(Ordering::Acquire)
    }

    /// The memory budget.
    pub fn memory_total(&self) -> u64 {
        self.inner.memory_total
    }

    /// Busy fraction over the last sampling window.
    pub fn utilisation(&self) -> Option<f64> {
        let mut busy = self
            .inner
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        busy.utilisation(Instant::now())
    }

    /// Records `busy` time of work that just ended (for the utilisation window).
    pub(crate) fn record_busy(&self, busy: Duration) {
        let mut window = self
            .inner
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        window.record(busy, Instant::now());
    }

    /// Runs `kernel` on `rows` items of `input` into `output`, on the device's group
    /// (inline when already on one of its threads).
    pub fn launch(
        &self,
        kernel: &dyn Kernel,
        input: &CpuBuffer,
        rows: usize,
        output: &mut CpuBuffer,
    ) -> Result<(), DeviceError> {
        let group = &self.inner.group;
        let threads = group.threads();
        group
            .install(|| {
                kernel.run_cpu(CpuLaunch {
                    input: &input.data,
                    rows,
                    output: &mut output.data,
                    threads,
                })
            })
            .map_err(|source| DeviceError::LaunchFailed {
                device: self.inner.label.clone(),
                source,
            })
    }

    /// Copies little-endian f32 bytes from the host into `buffer` (sizes must match).
    pub fn copy_to_device(&self, host: &[u8], buffer: &mut CpuBuffer) -> Result<(), DeviceError> {
        if host.len() != buffer.data.len() * 4 {
            return Err(DeviceError::CopyFailed {
                device: self.inner.label.clone(),
                reason: format!(
                    "host holds {} bytes, the device buffer {}",
                    host.len(),
                    buffer.data.len() * 4
                ),
            });
        }
        for (value, bytes) in buffer.data.iter_mut().zip(host.chunks_exact(4)) {
            *value = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        Ok(())
    }

    /// Copies `buffer` to the host as little-endian f32 bytes, replacing `host`'s contents.
    pub fn copy_to_host(&self, buffer: &CpuBuffer, host: &mut Vec<u8>) {
        host.clear();
        host.reserve(buffer.data.len() * 4);
        for value in &buffer.data {
            host.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Memory handed out by a [`CpuDevice`]. Dropping it (or `ComputeDevice::free`) gives the
/// memory back, so an error path cannot leak device memory.
#[derive(Debug)]
pub struct CpuBuffer {
    data: Vec<f32>,
    bytes: u64,
    device: Arc<CpuInner>,
}

impl CpuBuffer {
    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Bytes of device memory it holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for CpuBuffer {
    fn drop(&mut self) {
        self.device.in_use.fetch_sub(self.bytes, Ordering::AcqRel);
        let mut kept = self
            .device
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEPT_BUFFERS {
            kept.push(std::mem::take(&mut self.data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(memory: u64) -> CpuDevice {
        let group = Arc::new(ResourceGroup::new("cpu-test", 1, None).unwrap());
        CpuDevice::new(0, group, memory, Duration::from_millis(100))
    }

    #[test]
    fn memory_is_accounted_and_given_back_on_drop() {
        let device = device(64);
        let a = device.allocate(8).unwrap();
        assert_eq!(device.memory_in_use(), 32);
        let error = device.allocate(9).unwrap_err();
        assert!(
            matches!(
                error,
                DeviceError::OutOfMemory {
                    requested: 36,
                    in_use: 32,
                    total: 64,
                    ..
                }
            ),
            "{error}"
        );
        drop(a);
        assert_eq!(device.memory_in_use(), 0);
        let b = device.allocate(16).unwrap();
        assert_eq!(b.bytes(), 64);
    }

    #[test]
    fn copies_round_trip_and_check_sizes() {
        let device = device(1 << 20);
        let values = [1.5f32, -2.0, 3.25];
        let host: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut buffer = device.allocate(3).unwrap();
        device.copy_to_device(&host, &mut buffer).unwrap();
        assert_eq!(buffer.as_slice(), values);
        let mut back = vec![9u8; 2];
        device.copy_to_host(&buffer, &mut back);
        assert_eq!(back, host);
        let error = device.copy_to_device(&host[..8], &mut buffer).unwrap_err();
        assert!(matches!(error, DeviceError::CopyFailed { .. }));
    }
}
