//! Topology files: a table of bad files and the exact messages they get (file, line,
//! field), the shipped topologies through `vortex topology check` (a real process), and
//! the mapping to the pipeline's settings.

use std::process::Command;

use vortex::topology::{DeviceKind, Topology};

const VORTEX: &str = env!("CARGO_BIN_EXE_vortex");

/// (file contents, the message `Topology::parse` gives).
const BAD_FILES: &[(&str, &str)] = &[
    (
        "[preprocessor]\nworkres = 3\n",
        "bad.toml:2: preprocessor.workres: unknown field `workres`, expected one of `workers`, `transform`, `group`, `scale_to`",
    ),
    (
        "name = \"x\"\nbogus = 1\n",
        "bad.toml:2: bogus: unknown field `bogus`, expected one of `name`, `data_dir`, `metrics_addr`, `resource_groups`, `source`, `preprocessor`, `devices`, `launchers`, `router`, `scheduler`, `checkpoints`, `journal`, `control`, `autotuner`",
    ),
    (
        "[preprocessor]\nworkers = \"two\"\n",
        "bad.toml:2: preprocessor.workers: invalid type: string \"two\", expected u32",
    ),
    ("[devices]\n\ncount = 0\n", "bad.toml:3: devices.count: must be at least 1"),
    (
        "[devices]\nkind = \"tpu\"\n",
        "bad.toml:2: devices.kind: unknown variant `tpu`, expected `cpu` or `gpu`",
    ),
    (
        "[launchers]\nkernel = \"conv\"\n",
        "bad.toml:2: launchers.kernel: unknown kernel `conv` (registered: mlp)",
    ),
    (
        "[preprocessor]\ntransform = \"sharpen\"\n",
        "bad.toml:2: preprocessor.transform: unknown transform `sharpen` (known: normalize-images)",
    ),
    (
        "[preprocessor]\ngroup = \"gpu-pool\"\n",
        "bad.toml:2: preprocessor.group: no resource group `gpu-pool` (declare it in [[resource_groups]])",
    ),
    (
        "[[resource_groups]]\nname = \"cpu\"\nthreads = 0\n",
        "bad.toml:3: resource_groups.threads: group `cpu` needs at least 1 thread",
    ),
    (
        "[router]\nqueue_depth = -1.0\n",
        "bad.toml:2: router.queue_depth: must be a finite weight >= 0, not -1",
    ),
    (
        "[checkpoints]\nevery_ms = { nobody = 10 }\n",
        "bad.toml:2: checkpoints.every_ms.nobody: no actor `nobody` in this topology (actors: source, preprocess, sink, launcher-0..1)",
    ),
    (
        "[checkpoints]\nevery_ms = { source = 0 }\n",
        "bad.toml:2: checkpoints.every_ms.source: must be at least 1",
    ),
    (
        "[control]\ntcp = \"127.0.0.1:7070\"\n",
        "bad.toml:2: control.tcp: a TCP listener needs `secret_file` or `secret_env`",
    ),
    (
        "metrics_addr = \"localhost\"\n",
        "bad.toml:1: metrics_addr: invalid socket address syntax",
    ),
    (
        "[journal]\nsegment_bytes = 10\n",
        "bad.toml:2: journal.segment_bytes: 10 is below the minimum of 65536",
    ),
    (
        "[autotuner]\nlatency = 3\n",
        "bad.toml:2: autotuner.latency: unknown field `latency`, expected one of `enabled`, `latency_target_ms`, `interval_ms`, `bounds`",
    ),
    (
        "[autotuner]\nbounds = { workers = [4, 2] }\n",
        "bad.toml:2: autotuner.bounds.workers: [4, 2] is not a range 1 <= low <= high",
    ),
];

#[test]
fn every_bad_file_names_its_line_and_field() {
    let mut failures = Vec::new();
    for (text, expected) in BAD_FILES {
        match Topology::parse("bad.toml", text) {
            Ok(_) => failures.push(format!("accepted:\n{text}")),
            Err(error) if error.to_string() == *expected => {}
            Err(error) => failures.push(format!(
                "{text:?}\n  got:      {error}\n  expected: {expected}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_syntax_error_names_its_line() {
    let error = Topology::parse("bad.toml", "name = \"x\"\n[source\n").unwrap_err();
    assert!(error.to_string().starts_with("bad.toml:2: "), "{error}");
}

#[test]
fn the_shipped_topologies_check_and_print_their_plan() {
    for (file, expect) in [
        ("topologies/single-node.toml", "2 x cpu"),
        ("topologies/multi-gpu.toml", "running 4 CPU devices instead"),
    ] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let output = Command::new(VORTEX)
            .args(["topology", "check", &path])
            .output()
            .expect("vortex runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{file}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(expect), "{file}: {stdout}");
        assert!(stdout.contains(&format!("ok: {path} is valid")), "{stdout}");
    }
}

#[test]
fn a_bad_file_fails_the_check_with_exit_code_2_and_the_message() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("bad.toml");
    std::fs::write(&path, "[devices]\ncount = 0\n").unwrap();
    let output = Command::new(VORTEX)
        .args(["topology", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2: devices.count: must be at least 1",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_topology_maps_onto_the_pipeline_settings() {
    let path = format!("{}/topologies/multi-gpu.toml", env!("CARGO_MANIFEST_DIR"));
    let topology = Topology::load(path).unwrap();
    assert_eq!(topology.devices.kind, DeviceKind::Gpu);
    let config = topology.demo_config();
    assert_eq!(config.devices, 4);
    assert_eq!(config.workers, 4);
    assert_eq!(config.prefetch_depth, 3);
    assert_eq!(config.device_memory_bytes, 1024 << 20);
    assert_eq!(config.resource_groups.len(), 1);
    assert_eq!(config.resource_groups[0].threads, 4);
    assert_eq!(config.checkpoint_every[0].0, "source");
    assert_eq!(config.keep_checkpoints, 2);
    assert!(topology.device_notice().is_some());
}

#[test]
fn the_autotuner_section_is_parsed_into_plain_settings() {
    let topology = Topology::parse(
        "t.toml",
        "[autotuner]\nenabled = true\nlatency_target_ms = 20\n[autotuner.bounds]\nbatch_items = [2, 64]\n",
    )
    .unwrap();
    let tuner = topology.autotuner.expect("an autotuner section");
    assert!(tuner.enabled);
    assert_eq!(tuner.latency_target_ms, 20);
    assert_eq!(tuner.interval_ms, 1000);
    assert_eq!(tuner.bounds.batch_items, [2, 64]);
    assert_eq!(tuner.bounds.workers, [1, 8]);
}
