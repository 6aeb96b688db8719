//! The full single-node pipeline in-process: source → preprocessor pool → router →
//! launchers (CPU devices, the MLP kernel) → sink, the same pipeline `vortex run` starts
//! from `topologies/single-node.toml`, driven from your own program with
//! [`vortex::demo::run`].
//!
//! The work is bounded (a fixed number of batches, with a time limit as a backstop), and
//! the example checks its own result: every batch sent reaches the sink exactly once,
//! nothing is lost, and every launcher did some of the work.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example single_node
//! ```

use std::time::{Duration, Instant};

use vortex::demo::{self, DemoConfig};

const BATCHES: u64 = 200;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let config = DemoConfig {
        // Ends after BATCHES batches; the duration only bounds a stuck run.
        batches: Some(BATCHES),
        duration: Duration::from_secs(20),
        workers: 2,
        devices: 2,
        // No data_dir: the run uses a temporary directory for its journal and checkpoints.
        ..DemoConfig::default()
    };
    let started = Instant::now();
    let report = demo::run(config).await.expect("the pipeline runs");
    println!("{}", report.render(started.elapsed()));

    assert_eq!(report.sent, BATCHES, "the source made every batch");
    assert_eq!(report.lost(), 0, "no batch was lost");
    assert_eq!(
        report.received + report.dead_letters,
        BATCHES,
        "every batch reached the sink or is accounted for as a dead letter"
    );
    assert_eq!(report.received, report.distinct, "no batch arrived twice");
    assert_eq!(report.ended_by, "finished");
    assert_eq!(report.launchers.len(), 2);
    for launcher in &report.launchers {
        assert!(launcher.batches > 0, "{} did no work", launcher.name);
        assert!(launcher.in_rotation, "{} left the rotation", launcher.name);
    }
    println!(
        "single_node: ok ({} batches through 2 launchers)",
        report.received
    );
}
