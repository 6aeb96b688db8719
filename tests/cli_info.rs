//! `vortex info` and `vortex info --json`, run as the real binary: both describe the same
//! machine (cores, NUMA nodes from sysfs, the built-in topology's resource groups, GPUs
//! or why none, CUDA libraries).

use std::path::Path;
use std::process::Command;

fn vortex_info(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vortex"))
        .arg("info")
        .args(args)
        .output()
        .expect("run vortex info");
    assert!(
        output.status.success(),
        "vortex info {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn text_and_json_describe_the_same_machine() {
    let text = vortex_info(&[]);
    let json: serde_json::Value = serde_json::from_str(&vortex_info(&["--json"])).expect("JSON");

    let cores = json["cores"].as_array().expect("cores").len();
    let available = core_affinity_count();
    assert_eq!(cores, available, "{json}");
    assert!(
        text.starts_with(&format!("CPU: {cores} cores available: ")),
        "{text}"
    );

    // NUMA: the nodes sysfs lists, or the note saying there is none.
    let sysfs = Path::new("/sys/devices/system/node");
    let nodes = json["numa_nodes"].as_array().expect("numa_nodes");
    let listed = std::fs::read_dir(sysfs)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|entry| {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    name.strip_prefix("node")
                        .is_some_and(|id| id.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(nodes.len(), listed, "{json}");
    if listed == 0 {
        assert!(text.contains("NUMA: no NUMA information"), "{text}");
        assert!(json["numa_note"].as_str().is_some());
    } else {
        assert!(text.contains(&format!("NUMA: {listed} node(s)")), "{text}");
        assert!(text.contains("  node0: cpus "), "{text}");
        assert!(json["numa_note"].is_null());
    }

    // The built-in topology's groups: `cpu` on every core, one per device (2 by default).
    let groups: Vec<&str> = json["resource_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|group| group["name"].as_str().expect("name"))
        .collect();
    assert_eq!(groups, ["cpu", "device-0", "device-1"]);
    assert_eq!(json["resource_groups"][0]["threads"], cores.max(1));
    for group in groups {
        assert!(text.contains(&format!("  {group:<10} ")), "{group}: {text}");
    }

    // GPUs: either listed or "none (why)"; the same note in both outputs.
    let note = json["gpus"]["note"].as_str().expect("gpu note");
    assert!(note.contains("NVML"), "{note}");
    if json["gpus"]["gpus"].as_array().expect("gpus").is_empty() {
        assert!(text.contains(&format!("GPUs: none ({note})")), "{text}");
    }

    // CUDA libraries: each one searched, found or not, in both outputs.
    let libraries = json["cuda_libraries"].as_array().expect("libraries");
    assert_eq!(libraries.len(), vortex::info::CUDA_LIBRARIES.len());
    for library in libraries {
        let name = library["name"].as_str().expect("name");
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {text}"));
        match library["path"].as_str() {
            Some(path) => {
                assert!(Path::new(path).exists(), "{path}");
                assert!(line.ends_with(path), "{line}");
            }
            None => assert!(line.ends_with("not found"), "{line}"),
        }
    }
}

fn core_affinity_count() -> usize {
    core_affinity::get_core_ids().unwrap_or_default().len()
}
