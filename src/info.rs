//! `vortex info`: the hardware profile of this machine, as a run would see it.
//!
//! [`HardwareProfile::probe`] reads, without side effects:
//! - the CPU cores the process may run on (`core_affinity`) and the NUMA nodes they
//!   belong to (`/sys/devices/system/node/node*/cpulist`; "no NUMA information" when the
//!   directory is absent, e.g. in some containers);
//! - the resource groups the built-in single-node topology would make on these cores
//!   ([`crate::demo::resolved_groups`]);
//! - the GPUs NVML reports, or why there are none ([`probe_gpus`]);
//! - which CUDA libraries are installed (a file search of the loader's usual
//!   directories and `LD_LIBRARY_PATH`; nothing is loaded).
//!
//! [`HardwareProfile::render`] is the text `vortex info` prints; `vortex info --json`
//! prints the same profile as JSON (`serde_json` of [`HardwareProfile`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::demo::{resolved_groups, DemoConfig};

/// Where the kernel publishes NUMA topology.
pub const NUMA_SYSFS: &str = "/sys/devices/system/node";

/// The CUDA libraries `vortex info` looks for, by file name.
pub const CUDA_LIBRARIES: &[&str] = &[
    "libcuda.so.1",
    "libcudart.so",
    "libcublas.so",
    "libnvidia-ml.so.1",
];

/// Directories searched for [`CUDA_LIBRARIES`] (after `LD_LIBRARY_PATH`).
pub const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/local/nvidia/lib64",
    "/lib/x86_64-linux-gnu",
];

/// Everything `vortex info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct HardwareProfile {
    /// Logical CPUs the process may use, by id.
    pub cores: Vec<usize>,
    /// NUMA nodes and their CPUs; empty when the kernel publishes none.
    pub numa_nodes: Vec<NumaNode>,
    /// Why `numa_nodes` is empty (`None` when it is not).
    pub numa_note: Option<String>,
    /// The resource groups the built-in single-node topology makes on this machine.
    pub resource_groups: Vec<GroupInfo>,
    /// GPUs from NVML, or why there are none.
    pub gpus: GpuProbe,
    /// Each of [`CUDA_LIBRARIES`], with where it was found.
    pub cuda_libraries: Vec<LibraryInfo>,
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumaNode {
    /// The node id (`nodeN`).
    pub id: u32,
    /// Its CPUs, from `cpulist`.
    pub cpus: Vec<usize>,
}

/// A resource group a run would build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// The group's name (`cpu`, `device-<i>`).
    pub name: String,
    /// Threads in its pool.
    pub threads: usize,
    /// The cores its threads are pinned to (`None`: not pinned).
    pub cores: Option<Vec<usize>>,
}

/// What NVML said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuProbe {
    /// The GPUs found (empty when none).
    pub gpus: Vec<GpuInfo>,
    /// Why `gpus` is empty, or a remark on how they were found.
    pub note: String,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuInfo {
    /// NVML's index.
    pub index: u32,
    /// The product name.
    pub name: String,
    /// Memory in total, in bytes.
    pub memory_total_bytes: u64,
}

/// One CUDA library and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibraryInfo {
    /// The file name searched for.
    pub name: String,
    /// The first path it was found at; `None`: not installed (or not where the loader
    /// usually looks).
    pub path: Option<PathBuf>,
}

impl HardwareProfile {
    /// Probes this machine.
    pub fn probe() -> HardwareProfile {
        let cores: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|core| core.id)
            .collect();
        let (numa_nodes, numa_note) = match read_numa(Path::new(NUMA_SYSFS)) {
            Ok(nodes) if !nodes.is_empty() => (nodes, None),
            Ok(_) => (
                Vec::new(),
                Some(format!("no NUMA information ({NUMA_SYSFS} lists no node)")),
            ),
            Err(error) => (
                Vec::new(),
                Some(format!("no NUMA information ({NUMA_SYSFS}: {error})")),
            ),
        };
        let resource_groups = resolved_groups(&DemoConfig::default())
            .into_iter()
            .map(|group| GroupInfo {
                name: group.name,
                threads: group.threads.max(1),
                cores: group.cores,
            })
            .collect();
        let search = library_dirs();
        let cuda_libraries = CUDA_LIBRARIES
            .iter()
            .map(|name| LibraryInfo {
                name: (*name).to_owned(),
                path: find_library(name, &search),
            })
            .collect::<Vec<_>>();
        let nvml_present = cuda_libraries
            .iter()
            .any(|library| library.name == "libnvidia-ml.so.1" && library.path.is_some());
        HardwareProfile {
            cores,
            numa_nodes,
            numa_note,
            resource_groups,
            gpus: probe_gpus(nvml_present),
            cuda_libraries,
        }
    }

    /// The text `vortex info` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "CPU: {} cores available: {}",
            self.cores.len(),
            ranges(&self.cores)
        );
        if self.numa_nodes.is_empty() {
            let _ = writeln!(
                out,
                "NUMA: {}",
                self.numa_note.as_deref().unwrap_or("no NUMA information")
            );
        } else {
            let _ = writeln!(out, "NUMA: {} node(s)", self.numa_nodes.len());
            for node in &self.numa_nodes {
                let _ = writeln!(out, "  node{}: cpus {}", node.id, ranges(&node.cpus));
            }
        }
        let _ = writeln!(out, "resource groups (built-in single-node topology):");
        for group in &self.resource_groups {
            let cores = match &group.cores {
                Some(cores) => format!("pinned to cores {}", ranges(cores)),
                None => "not pinned".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:<10} {} thread(s), {cores}",
                group.name, group.threads
            );
        }
        if self.gpus.gpus.is_empty() {
            let _ = writeln!(out, "GPUs: none ({})", self.gpus.note);
        } else {
            let _ = writeln!(out, "GPUs: {} ({})", self.gpus.gpus.len(), self.gpus.note);
            for gpu in &self.gpus.gpus {
                let _ = writeln!(
                    out,
                    "  gpu{}: {}, {:.1} GiB",
                    gpu.index,
                    gpu.name,
                    gpu.memory_total_bytes as f64 / (1u64 << 30) as f64
                );
            }
        }
        let _ = writeln!(out, "CUDA libraries:");
        for library in &self.cuda_libraries {
            let _ = match &library.path {
                Some(path) => writeln!(out, "  {:<18} {}", library.name, path.display()),
                None => writeln!(out, "  {:<18} not found", library.name),
            };
        }
        out
    }
}

/// The GPUs NVML reports, or why there are none. A one-shot probe for this command (a
/// running node's GPUs belong to its NVML monitor actor, `vortex_actors::nvml`, the one
/// owner of the handle there); without a driver `Nvml::init()` fails and the note says why.
pub fn probe_gpus(nvml_library_present: bool) -> GpuProbe {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(nvml) => nvml,
        Err(error) => {
            let installed = if nvml_library_present {
                "libnvidia-ml.so.1 is installed"
            } else {
                "libnvidia-ml.so.1 is not installed"
            };
            return GpuProbe {
                gpus: Vec::new(),
                note: format!("NVML unavailable: {error}; {installed}"),
            };
        }
    };
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(error) => {
            return GpuProbe {
                gpus: Vec::new(),
                note: format!("NVML could not count devices: {error}"),
            }
        }
    };
    let mut gpus = Vec::new();
    let mut skipped = Vec::new();
    for index in 0..count {
        match nvml.device_by_index(index) {
            Ok(device) => gpus.push(GpuInfo {
                index,
                name: device.name().unwrap_or_else(|_| "unknown".to_owned()),
                memory_total_bytes: device.memory_info().map(|m| m.total).unwrap_or(0),
            }),
            Err(error) => skipped.push(format!("GPU {index}: {error}")),
        }
    }
    let note = match (gpus.is_empty(), skipped.is_empty()) {
        (true, true) => "NVML reports no GPU".to_owned(),
        (_, true) => format!("{} GPU(s) from NVML", gpus.len()),
        (_, false) => format!(
            "{} GPU(s) from NVML; skipped {}",
            gpus.len(),
            skipped.join(", ")
        ),
    };
    GpuProbe { gpus, note }
}

/// Reads `<root>/node<N>/cpulist` for every node directory under `root`.
pub fn read_numa(root: &Path) -> std::io::Result<Vec<NumaNode>> {
    let mut nodes = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|name| name.strip_prefix("node"))
            .and_then(|id| id.parse::<u32>().ok())
        else {
            continue;
        };
        let list = std::fs::read_to_string(entry.path().join("cpulist"))?;
        nodes.push(NumaNode {
            id,
            cpus: parse_cpulist(&list),
        });
    }
    nodes.sort_by_key(|node| node.id);
    Ok(nodes)
}

/// Parses a kernel CPU list (`0-3,8,10-11`); malformed parts are skipped.
pub fn parse_cpulist(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        match part.split_once('-') {
            Some((low, high)) => {
                if let (Ok(low), Ok(high)) = (low.parse::<usize>(), high.parse::<usize>()) {
                    cpus.extend(low..=high);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

/// `[0,1,2,3,8]` as `0-3,8`.
fn ranges(ids: &[usize]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut index = 0;
    while index < sorted.len() {
        let start = sorted[index];
        let mut end = start;
        while index + 1 < sorted.len() && sorted[index + 1] == end + 1 {
            index += 1;
            end = sorted[index];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        index += 1;
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(",")
    }
}

fn library_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    dirs.extend(LIBRARY_DIRS.iter().map(PathBuf::from));
    dirs
}

fn find_library(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|path| path.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists_parse_and_print_as_ranges() {
        assert_eq!(parse_cpulist("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpulist(""), Vec::<usize>::new());
        assert_eq!(parse_cpulist("x,2"), vec![2]);
        assert_eq!(ranges(&[8, 0, 1, 2, 3, 10, 11]), "0-3,8,10-11");
        assert_eq!(ranges(&[]), "none");
    }

    #[test]
    fn numa_nodes_are_read_from_a_sysfs_tree() {
        let root = tempfile::tempdir().unwrap();
        for (node, list) in [("node1", "2-3\n"), ("node0", "0-1\n")] {
            std::fs::create_dir(root.path().join(node)).unwrap();
            std::fs::write(root.path().join(node).join("cpulist"), list).unwrap();
        }
        std::fs::create_dir(root.path().join("power")).unwrap();
        let nodes = read_numa(root.path()).unwrap();
        assert_eq!(
            nodes,
            vec![
                NumaNode {
                    id: 0,
                    cpus: vec![0, 1]
                },
                NumaNode {
                    id: 1,
                    cpus: vec![2, 3]
                }
            ]
        );
        assert!(read_numa(&root.path().join("absent")).is_err());
    }
}
