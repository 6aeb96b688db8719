//! `vortex run`'s pipeline end to end: source → preprocessor → router → launchers (CPU
//! devices) → sink loses nothing, every launcher serves, and the summary shows each
//! launcher's batches, compute time and data-stall ratio.

use std::time::Duration;

use vortex::demo::{run, DemoConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_pipeline_runs_on_cpu_devices_and_reports_per_launcher() {
    let report = run(DemoConfig {
        duration: Duration::from_millis(300),
        devices: 2,
        ..DemoConfig::default()
    })
    .await
    .expect("demo runs");
    assert_eq!(report.lost(), 0);
    assert_eq!(report.dead_letters, 0);
    assert_eq!(report.launchers.len(), 2);
    let finished: u64 = report.launchers.iter().map(|l| l.batches).sum();
    assert_eq!(finished, report.received);
    for launcher in &report.launchers {
        assert!(launcher.batches > 0, "{} served nothing", launcher.name);
        assert_eq!(launcher.routed, launcher.batches);
        assert!(launcher.compute > Duration::ZERO);
        assert!((0.0..=1.0).contains(&launcher.data_stall_ratio));
        assert!(launcher.in_rotation);
    }
    let text = report.render(Duration::from_secs(1));
    for needle in [
        "router",
        "LAUNCHER",
        "STALL%",
        "COMPUTE_MS",
        "launcher-1",
        "cpu:1",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}
