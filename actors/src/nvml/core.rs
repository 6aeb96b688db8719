//! Pure NVML logic, no handle and no I/O: how a GPU is named in a request ([`GpuRef`]),
//! what an inventory holds ([`Inventory`], [`GpuInventory`]), throttle-reason names, and
//! the status line.

use std::fmt;

use vortex_messages::telemetry::GpuSampled;

use crate::telemetry::metrics::GPU_THROTTLE_REASONS;

/// A GPU as a request names it: NVML index, or UUID (stable when indices move, and what
/// a CUDA device reports, so a launcher finds its GPU's NVML record by it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GpuRef {
    /// NVML's index (not necessarily the CUDA ordinal).
    Index(u32),
    /// The UUID, `GPU-…`.
    Uuid(String),
}

impl fmt::Display for GpuRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuRef::Index(index) => write!(f, "#{index}"),
            GpuRef::Uuid(uuid) => f.write_str(uuid),
        }
    }
}

/// One GPU as NVML lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInventory {
    /// NVML's index.
    pub index: u32,
    /// The marketing name.
    pub name: String,
    /// The UUID, `GPU-…`.
    pub uuid: String,
    /// The PCI bus id (`00000000:17:00.0`).
    pub pci_bus_id: String,
    /// Device memory in total, bytes.
    pub memory_total_bytes: u64,
    /// The CPUs nearest the GPU (NVML `cpu_affinity`); empty when NVML does not say.
    pub cpus: Vec<usize>,
}

/// What NVML knows about the machine's GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// The driver version (`580.82.07`).
    pub driver_version: String,
    /// The CUDA version the driver supports (`13.0`).
    pub cuda_driver_version: String,
    /// Every GPU, by NVML index.
    pub gpus: Vec<GpuInventory>,
}

impl Inventory {
    /// The GPU with this UUID.
    pub fn by_uuid(&self, uuid: &str) -> Option<&GpuInventory> {
        self.gpus.iter().find(|gpu| gpu.uuid == uuid)
    }
}

/// NVML's `major * 1000 + minor * 10` CUDA version as `major.minor`.
pub fn cuda_version_text(version: i32) -> String {
    format!("{}.{}", version / 1000, (version % 1000) / 10)
}

/// The names of the throttle reasons set in `bits` (NVML's bit values).
pub fn throttle_reason_names(bits: u64) -> Vec<&'static str> {
    GPU_THROTTLE_REASONS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|&(_, name)| name)
        .collect()
}

/// The monitor's status line: what `Status` shows for it.
pub fn status_line(
    unavailable: Option<&str>,
    inventory: Option<&Inventory>,
    last: &[GpuSampled],
) -> String {
    if let Some(reason) = unavailable {
        return format!("no GPUs (NVML unavailable: {reason}); launchers use CPU devices");
    }
    let Some(inventory) = inventory else {
        return "no GPUs (NVML not started)".to_owned();
    };
    if inventory.gpus.is_empty() {
        return format!(
            "no GPUs (driver {}, CUDA {}: NVML lists none)",
            inventory.driver_version, inventory.cuda_driver_version
        );
    }
    let mut line = format!(
        "{} GPU(s), driver {}, CUDA {}:",
        inventory.gpus.len(),
        inventory.driver_version,
        inventory.cuda_driver_version
    );
    for gpu in &inventory.gpus {
        line.push_str(&format!(" [{}] {} {}", gpu.index, gpu.name, gpu.uuid));
        if let Some(sample) = last.iter().find(|s| s.device == gpu.index) {
            line.push_str(&format!(
                " util={:.0}% mem={}/{}MiB {:.0}C {:.0}W",
                sample.utilisation_percent,
                sample.memory_used_bytes >> 20,
                sample.memory_total_bytes >> 20,
                sample.temperature_celsius,
                sample.power_watts
            ));
            let reasons = throttle_reason_names(sample.throttle_reasons.unwrap_or(0));
            if !reasons.is_empty() {
                line.push_str(&format!(" throttled={}", reasons.join("+")));
            }
        }
        line.push(';');
    }
    line.pop();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_bits_have_names() {
        assert_eq!(throttle_reason_names(0), Vec::<&str>::new());
        assert_eq!(
            throttle_reason_names(0x1 | 0x4),
            ["gpu_idle", "sw_power_cap"]
        );
        assert_eq!(throttle_reason_names(0x40), ["hw_thermal_slowdown"]);
    }

    #[test]
    fn cuda_versions_read_as_major_minor() {
        assert_eq!(cuda_version_text(13000), "13.0");
        assert_eq!(cuda_version_text(12080), "12.8");
    }

    #[test]
    fn status_says_no_gpus_when_nvml_is_missing() {
        let line = status_line(Some("libnvidia-ml.so: not found"), None, &[]);
        assert!(line.starts_with("no GPUs"), "{line}");
        assert!(line.contains("libnvidia-ml.so"), "{line}");
    }

    #[test]
    fn status_lists_gpus_with_their_last_sample() {
        let inventory = Inventory {
            driver_version: "580.82".into(),
            cuda_driver_version: "13.0".into(),
            gpus: vec![GpuInventory {
                index: 0,
                name: "NVIDIA H200".into(),
                uuid: "GPU-1".into(),
                pci_bus_id: "0:17:0".into(),
                memory_total_bytes: 1 << 30,
                cpus: vec![0, 1],
            }],
        };
        let sample = GpuSampled {
            at_micros: 1,
            device: 0,
            uuid: "GPU-1".into(),
            utilisation_percent: 90.0,
            memory_bus_busy_percent: 10.0,
            memory_used_bytes: 512 << 20,
            memory_free_bytes: 512 << 20,
            memory_total_bytes: 1 << 30,
            temperature_celsius: 60.0,
            power_watts: 300.0,
            power_limit_watts: 700.0,
            sm_clock_mhz: 1900.0,
            memory_clock_mhz: 2600.0,
            throttle_reasons: Some(0x4),
            energy_millijoules: Some(5),
        };
        let line = status_line(None, Some(&inventory), &[sample]);
        assert_eq!(
            line,
            "1 GPU(s), driver 580.82, CUDA 13.0: [0] NVIDIA H200 GPU-1 util=90% mem=512/1024MiB 60C 300W throttled=sw_power_cap"
        );
        assert_eq!(inventory.by_uuid("GPU-1").map(|g| g.index), Some(0));
        assert!(inventory.by_uuid("GPU-2").is_none());
    }
}
