//! A failing kernel on one of two devices: every batch ends finished or dead-lettered
//! (exactly one of the two, by id), and the healthy device keeps serving. A panicking
//! kernel is a crash: the supervisor restarts the launcher, which serves on.

mod launcher_support;
mod support;

use std::{collections::BTreeSet, sync::atomic::Ordering::SeqCst, sync::Arc, time::Duration};

use launcher_support::{batch, rig, FlakyKernel};
use vortex::actors::launcher::{FaultBudget, Kernel, MlpKernel};
use vortex::messages::pipeline::PreparedBatch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_is_finished_or_dead_lettered_and_the_healthy_device_serves() {
    let kernels: Vec<Arc<dyn Kernel>> = vec![
        Arc::new(FlakyKernel::new(false)),
        Arc::new(FlakyKernel::new(true)),
    ];
    let mut rig = rig(kernels, FaultBudget::default(), 2).await;
    const TOTAL: u64 = 300;
    // Four producers routing concurrently, like a preprocessor pool.
    let mut producers = Vec::new();
    for producer in 0..4u64 {
        let router = Arc::clone(&rig.router);
        producers.push(tokio::spawn(async move {
            for n in 0..TOTAL / 4 {
                router.route(batch(producer * 1000 + n)).await;
            }
        }));
    }
    for producer in producers {
        producer.await.expect("producer");
    }
    rig.settle(TOTAL).await;

    let finished: BTreeSet<u64> = rig.outputs.iter().map(|b| b.id).collect();
    assert_eq!(finished.len(), rig.outputs.len(), "a batch finished twice");
    let dead: BTreeSet<u64> = rig
        .rt
        .dead_letters()
        .drain()
        .into_iter()
        .map(|letter| letter.downcast::<PreparedBatch>().expect("the batch").id)
        .collect();
    assert!(
        finished.is_disjoint(&dead),
        "a batch both finished and dead-lettered"
    );
    let all: BTreeSet<u64> = (0..4u64)
        .flat_map(|p| (0..TOTAL / 4).map(move |n| p * 1000 + n))
        .collect();
    let accounted: BTreeSet<u64> = finished.union(&dead).copied().collect();
    assert_eq!(accounted, all, "a batch was lost");

    let faulty = rig.launchers[1].stats().snapshot();
    assert_eq!(faulty.faults as usize, dead.len());
    assert!(
        !faulty.in_rotation,
        "the default budget (3 in 10 s) is spent"
    );
    assert_eq!(rig.finished_on(1), 0);
    assert_eq!(rig.finished_on(0), rig.outputs.len());
    assert!(
        rig.outputs.len() as u64 >= TOTAL - 3 - 2 - 4,
        "healthy device served too little"
    );
    rig.rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_kernel_is_a_crash_the_supervisor_restarts() {
    support::quiet_panics("test kernel panicked on purpose");
    let flaky = Arc::new(FlakyKernel::new(false));
    let panic = Arc::clone(&flaky.panic);
    let mut rig = rig(vec![flaky as Arc<dyn Kernel>], FaultBudget::default(), 1).await;
    panic.store(true, SeqCst);
    rig.router.route(batch(0)).await;
    rig.settle(1).await;
    assert_eq!(
        rig.rt.dead_letters().count(),
        1,
        "the crashed batch is counted"
    );
    let rt = &rig.rt;
    support::wait_until("the launcher's restart", Duration::from_secs(10), || {
        rt.status("launcher-0").map(|s| s.restarts) == Ok(1)
    })
    .await;
    // A crash is not a device fault: the device stays in rotation and serves on.
    let stats = rig.launchers[0].stats().snapshot();
    assert_eq!(stats.faults, 0);
    assert!(stats.in_rotation);
    for id in 1..=5 {
        rig.router.route(batch(id)).await;
    }
    rig.settle(6).await;
    assert_eq!(rig.outputs.len(), 5);
    rig.rt.shutdown().await;
}

#[test]
fn builtin_mlp_output_matches_the_reference_end_to_end() {
    // The same check as the unit test, through the device's own batch path.
    let device = launcher_support::cpu_device(0);
    let mlp = MlpKernel::seeded(launcher_support::FEATURES, 8, 3, 1);
    let input = batch(3);
    let output = device
        .execute_batch(&mlp, &input, Vec::new())
        .expect("runs");
    let values: Vec<f32> = input
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let reference = mlp.reference(&values, 2);
    let got: Vec<f32> = output
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_diff = got
        .iter()
        .zip(&reference)
        .fold(0.0f64, |m, (g, r)| m.max((f64::from(*g) - r).abs()));
    assert!(max_diff / max_ref < 1e-5, "{}", max_diff / max_ref);
    assert_eq!(output.shape, vec![2, 3]);
    assert_eq!(device.memory_in_use(), 0, "buffers are freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_a_fault_reported_to_telemetry_with_the_error() {
    use vortex::actors::launcher::{ComputeDevice, CpuDevice, Launcher, LauncherConfig};
    use vortex::actors::telemetry::{TelemetryEvent, TelemetryPublisher};
    use vortex::runtime::{resource_group::ResourceGroup, DeadLetterReason, Runtime};

    let rt = Runtime::builder().build().expect("runtime");
    let telemetry = TelemetryPublisher::spawn(&rt, "telemetry", 64)
        .await
        .expect("publisher");
    let mut events = telemetry.subscribe();
    let group = Arc::new(ResourceGroup::new("tiny-device", 1, None).expect("group"));
    // 64 bytes of device memory: a 2 × 16 f32 batch (128 bytes) cannot be allocated.
    let device = ComputeDevice::Cpu(CpuDevice::new(7, group, 64, Duration::from_millis(50)));
    let kernel = Arc::new(MlpKernel::seeded(launcher_support::FEATURES, 8, 3, 1));
    let config = LauncherConfig::new("launcher-7", device, kernel).telemetry(telemetry.clone());
    let (sink, _finished) = tokio::sync::mpsc::channel(4);
    let launcher = Launcher::spawn(&rt, config, sink).await.expect("launcher");
    launcher.addr().tell(batch(1).into()).await.expect("sent");

    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(TelemetryEvent::DeadLettered(event)) => break event.reason,
                Some(_) => continue,
                None => panic!("telemetry closed"),
            }
        }
    })
    .await
    .expect("a DeadLettered event");
    assert!(reason.contains("out of memory"), "{reason}");
    let letters = rt.dead_letters().drain();
    assert_eq!(letters.len(), 1);
    assert!(
        matches!(&letters[0].reason, DeadLetterReason::Failed(text) if text.contains("out of memory"))
    );
    assert_eq!(launcher.stats().snapshot().faults, 1);
    assert_eq!(
        launcher.device().memory_in_use(),
        0,
        "nothing leaked on the error path"
    );
    rt.shutdown().await;
}
