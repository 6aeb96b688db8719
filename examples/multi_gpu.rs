//! Several launchers behind one router, the shape of `topologies/multi-gpu.toml`: each
//! launcher owns a device (CPU devices here, each on its own pinned resource group), and
//! the router sends every batch to the best-scoring device with room (the composite
//! score of utilisation, free memory and queue fill).
//!
//! Then one device starts failing. Each failed launch dead-letters its batch (kept, not
//! lost); once the device has spent its fault budget it **leaves the rotation** and the
//! router sends its share to the others. At the end every batch is either finished or a
//! dead letter, and the failed device got nothing after it left.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example multi_gpu
//! ```
//!
//! It finishes by itself in a second or two and panics if any result is wrong.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use vortex::actors::launcher::{
    score, ComputeDevice, CpuDevice, CpuLaunch, FaultBudget, Kernel, KernelError, Launcher,
    LauncherConfig, LauncherHandle, MlpKernel, Router, ScoreWeights,
};
use vortex::messages::pipeline::{DType, FinishedBatch, PreparedBatch};
use vortex::runtime::resource_group::ResourceGroup;
use vortex::runtime::Runtime;

const DEVICES: u32 = 3;
const FEATURES: usize = 16;
/// The device that fails in the second phase.
const BROKEN: usize = 2;

/// The MLP kernel, with a switch that makes every launch fail (a device gone bad).
struct SwitchableKernel {
    mlp: MlpKernel,
    failing: Arc<AtomicBool>,
}

impl Kernel for SwitchableKernel {
    fn name(&self) -> &str {
        "switchable-mlp"
    }
    fn input_features(&self) -> usize {
        self.mlp.input_features()
    }
    fn output_features(&self) -> usize {
        self.mlp.output_features()
    }
    fn run_cpu(&self, launch: CpuLaunch<'_>) -> Result<(), KernelError> {
        if self.failing.load(SeqCst) {
            return Err(KernelError::Failed {
                kernel: "switchable-mlp".into(),
                reason: "device fault (injected by the example)".into(),
            });
        }
        self.mlp.run_cpu(launch)
    }
}

/// A batch of four items of FEATURES values.
fn batch(id: u64) -> PreparedBatch {
    let values: Vec<f32> = (0..4 * FEATURES)
        .map(|i| (i as f32 + id as f32) / 64.0)
        .collect();
    PreparedBatch {
        id,
        items: 4,
        dtype: DType::F32,
        shape: vec![4, FEATURES as u32],
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        created_at_micros: 0,
    }
}

/// Waits (with a deadline) until `total` batches are finished or dead-lettered.
async fn settle(
    rt: &Runtime,
    finished: &mut mpsc::Receiver<FinishedBatch>,
    outputs: &mut Vec<FinishedBatch>,
    total: u64,
) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while (outputs.len() as u64) + rt.dead_letters().count() < total {
            tokio::select! {
                Some(batch) = finished.recv() => outputs.push(batch),
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "batches neither finished nor dead-lettered");
}

fn finished_on(outputs: &[FinishedBatch], device: u32) -> usize {
    outputs
        .iter()
        .filter(|batch| batch.device == device)
        .count()
}

fn print_devices(launchers: &[LauncherHandle], router: &Router, weights: &ScoreWeights) {
    let routed = router.routed();
    for (launcher, routed) in launchers.iter().zip(routed) {
        let stats = launcher.stats().snapshot();
        println!(
            "  {:<11} routed {:>4}  finished {:>4}  faults {}  score {:.2}  rotation {}",
            launcher.name(),
            routed,
            stats.batches,
            stats.faults,
            score(&launcher.signals(), weights),
            if stats.in_rotation { "in" } else { "OUT" }
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rt = Runtime::builder().build().expect("runtime");
    let (sink, mut finished) = mpsc::channel(4096);
    let failing = Arc::new(AtomicBool::new(false));
    let budget = FaultBudget {
        faults: 3,
        window: Duration::from_secs(60),
    };

    let mut launchers = Vec::new();
    for index in 0..DEVICES {
        let group = ResourceGroup::new(format!("device-{index}"), 1, None).expect("group");
        let device = ComputeDevice::Cpu(CpuDevice::new(
            index,
            Arc::new(group),
            64 << 20,
            Duration::from_millis(50),
        ));
        let kernel = Arc::new(SwitchableKernel {
            mlp: MlpKernel::seeded(FEATURES, 32, 4, 7),
            // Only the BROKEN device's kernel listens to the switch.
            failing: if index as usize == BROKEN {
                Arc::clone(&failing)
            } else {
                Arc::new(AtomicBool::new(false))
            },
        });
        let config = LauncherConfig::new(format!("launcher-{index}"), device, kernel)
            .fault_budget(budget)
            .prefetch_depth(2);
        launchers.push(
            Launcher::spawn(&rt, config, sink.clone())
                .await
                .expect("launcher"),
        );
    }
    let weights = ScoreWeights::default();
    let router = Router::new(
        "router",
        launchers.clone(),
        weights,
        rt.dead_letters().clone(),
    );
    let mut outputs = Vec::new();

    // Phase 1: every device healthy; the router spreads the batches by score.
    let mut sent = 0u64;
    for _ in 0..150 {
        router.route(batch(sent)).await;
        sent += 1;
    }
    settle(&rt, &mut finished, &mut outputs, sent).await;
    println!("phase 1: {sent} batches over {DEVICES} healthy devices");
    print_devices(&launchers, &router, &weights);
    for device in 0..DEVICES {
        assert!(
            finished_on(&outputs, device) > 0,
            "device {device} got no batch while healthy"
        );
    }
    assert_eq!(rt.dead_letters().count(), 0);

    // Phase 2: device BROKEN fails every launch until its budget is spent.
    failing.store(true, SeqCst);
    let broken = launchers[BROKEN].stats().clone();
    while broken.in_rotation() {
        assert!(sent < 10_000, "the failing device never left the rotation");
        router.route(batch(sent)).await;
        sent += 1;
        settle(&rt, &mut finished, &mut outputs, sent).await;
    }
    let finished_before = finished_on(&outputs, BROKEN as u32);
    let routed_before = router.routed()[BROKEN];
    for _ in 0..150 {
        router.route(batch(sent)).await;
        sent += 1;
    }
    settle(&rt, &mut finished, &mut outputs, sent).await;
    println!("phase 2: launcher-{BROKEN} failed {budget_faults} launches and left the rotation; {sent} batches in all", budget_faults = budget.faults);
    print_devices(&launchers, &router, &weights);

    let dead = rt.dead_letters().count();
    println!(
        "finished {} + dead-lettered {dead} = sent {sent}",
        outputs.len()
    );
    assert_eq!(broken.snapshot().faults, u64::from(budget.faults));
    assert_eq!(dead, u64::from(budget.faults), "each fault kept its batch");
    assert_eq!(outputs.len() as u64 + dead, sent, "no batch was lost");
    assert_eq!(
        router.routed()[BROKEN],
        routed_before,
        "nothing is routed to a device out of rotation"
    );
    assert_eq!(finished_on(&outputs, BROKEN as u32), finished_before);
    let mut ids: Vec<u64> = outputs.iter().map(|batch| batch.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), outputs.len(), "no batch finished twice");
    rt.shutdown().await;
    println!("multi_gpu: ok");
}
