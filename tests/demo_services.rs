//! The services `vortex run` starts next to its pipeline: the scheduler, the journal actor
//! (its journal in `<data_dir>/events`), and the housekeeping timers (progress records, buffer trimming).

mod support;

use std::time::Duration;

use vortex::actors::telemetry::{MetricsSink, Registry};
use vortex::demo::{open_services, run, DemoConfig, Faults};
use vortex::prelude::*;
use vortex::runtime::buffer_pool::BufferPool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_records_progress_in_the_journal_and_trims_idle_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder().build().unwrap();
    let mut registry = Registry::default();
    let sink = MetricsSink::register(&mut registry);
    let buffers = BufferPool::default();
    buffers.put(Vec::with_capacity(64 * 1024));
    let services = open_services(
        &rt,
        dir.path(),
        Duration::from_millis(1),
        Some(&sink),
        &buffers,
    )
    .await
    .unwrap();
    assert_eq!(services.data_dir, dir.path());
    // Durable progress records, every 100 ms, each one fsync'd into the exported histogram.
    support::wait_until("three durable records", Duration::from_secs(10), || {
        services.journal_handle.status().durable_seq >= 3
    })
    .await;
    assert!(
        sink.timer_lag().count() >= 3,
        "every timer firing is a lag sample"
    );
    // The buffer idle for 2 s is trimmed by the once-a-second timer.
    support::wait_until("idle buffer trimmed", Duration::from_secs(10), || {
        buffers.stats().trimmed == 1
    })
    .await;
    assert_eq!(buffers.stats().pooled_buffers, 0);
    assert!(
        std::fs::read_dir(dir.path().join(vortex::demo::EVENTS_DIR))
            .unwrap()
            .count()
            > 0
    );
    services.close();
    rt.shutdown().await;
    // A data directory the caller named is kept.
    assert!(dir.path().join(vortex::demo::EVENTS_DIR).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_run_with_poisoned_batches_loses_nothing_and_restarts_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(DemoConfig {
        duration: Duration::from_millis(400),
        data_dir: Some(dir.path().to_path_buf()),
        faults: Faults {
            poison_every: Some(50),
            fail_once: Some("scheduler".into()),
        },
        ..DemoConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(report.lost(), 0);
    let status = |name: &str| report.statuses.iter().find(|s| s.name == name).unwrap();
    let sink = status("sink");
    assert!(sink.restarts >= 1 && sink.dead_letters >= 1, "{sink:?}");
    assert_eq!(
        sink.restarts, sink.dead_letters,
        "one restart per poisoned batch"
    );
    assert_eq!(report.dead_letters, report.sent - report.distinct);
    assert_eq!(status("scheduler").restarts, 1, "failed once, restarted");
    assert!(status("journal").handled > 0);
    // The pool's status carries its workers' detail: hit rate and pooled bytes.
    let detail = &status("preprocess").detail;
    assert!(
        detail.contains("buffer_hit_rate=") && detail.contains("pooled_bytes="),
        "{detail}"
    );
}
