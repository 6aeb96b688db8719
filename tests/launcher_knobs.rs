//! The autotuner's knobs, as typed control commands: `SetPrefetchDepth` changes how many
//! batches a launcher holds ahead, `SetBatchSize` changes the items per batch at the
//! source. Both are obeyed, shown in `Status`, and refused out of range.

mod launcher_support;
mod support;

use std::{sync::Arc, time::Duration};

use launcher_support::{batch, rig, GatedKernel};
use vortex::actors::launcher::{FaultBudget, Kernel};
use vortex::actors::source::{ImageSource, SourceConfig};
use vortex::messages::{pipeline::RawBatch, Control, ControlError, ControlReply};
use vortex::runtime::Runtime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_depth_bounds_the_batches_held_ahead_and_changes_live() {
    let (gated, permit) = GatedKernel::new();
    let mut rig = rig(
        vec![Arc::new(gated) as Arc<dyn Kernel>],
        FaultBudget::default(),
        1,
    )
    .await;
    let stats = rig.launchers[0].stats().clone();
    let router = Arc::clone(&rig.router);
    let producer = tokio::spawn(async move {
        for id in 0..6 {
            router.route(batch(id)).await;
        }
    });
    // Batch 0 is on the device (held by the gate), batch 1 is held ahead, and the router
    // waits: depth 1 means one ahead, never two.
    let deadline = Duration::from_secs(10);
    // (Routed 2 implies batch 0 was taken: with depth 1, batch 1 gets a place only then.)
    let router = Arc::clone(&rig.router);
    support::wait_until("one batch running, one held ahead", deadline, || {
        router.routed() == [2] && stats.snapshot().queued == 1
    })
    .await;
    assert_eq!(stats.prefetch_depth(), 1);

    // A command waits for the batch in progress (held by the gate), then goes before the
    // next batch: release batch 0 and the new depth is in force before batch 1 starts.
    let observer = rig.rt.observer();
    let command = tokio::spawn(async move {
        observer
            .control("launcher-0", Control::SetPrefetchDepth { depth: 4 })
            .await
    });
    permit.send(()).expect("the kernel waits for permits");
    let reply = command.await.expect("control task");
    assert_eq!(
        reply,
        Ok(ControlReply::Custom("prefetch depth 1 -> 4".into()))
    );
    // The waiting router wakes and fills the deeper queue: batch 1 on the device (held),
    // batches 2–5 ahead.
    support::wait_until("four batches held ahead", deadline, || {
        router.routed() == [6] && stats.snapshot().queued == 4
    })
    .await;
    assert_eq!(stats.snapshot().max_queued, 4);

    for _ in 0..5 {
        permit.send(()).expect("the kernel waits for permits");
    }
    producer.await.expect("producer");
    rig.settle(6).await;
    assert_eq!(rig.outputs.len(), 6);
    let detail = rig.detail("launcher-0").await;
    assert!(detail.contains("prefetch=4"), "{detail}");
    let refused = rig
        .rt
        .control("launcher-0", Control::SetPrefetchDepth { depth: 0 })
        .await;
    assert!(
        matches!(refused, Err(ControlError::Rejected { .. })),
        "{refused:?}"
    );
    rig.rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_changes_the_items_per_batch_at_the_source() {
    let rt = Runtime::builder().build().expect("runtime");
    let (next, mut raw) = tokio::sync::mpsc::channel::<RawBatch>(16);
    let source = ImageSource::spawn(&rt, SourceConfig::new("source", 2, 4), next)
        .await
        .expect("source");
    assert_eq!(source.emit(1).await, Ok(1));
    assert_eq!(raw.recv().await.expect("batch").items, 4);

    let reply = rt
        .control("source", Control::SetBatchSize { items: 9 })
        .await;
    assert_eq!(
        reply,
        Ok(ControlReply::Custom("batch size 4 -> 9 items".into()))
    );
    assert_eq!(source.emit(2).await, Ok(2));
    for _ in 0..2 {
        let batch = raw.recv().await.expect("batch");
        assert_eq!(batch.items, 9);
        assert_eq!(batch.data.len(), 2 * 2 * 3 * 9);
    }
    let Ok(ControlReply::Status(status)) = rt.control("source", Control::Status).await else {
        panic!("no status");
    };
    assert!(status.detail.contains("batch_items=9"), "{}", status.detail);

    let refused = rt
        .control("source", Control::SetBatchSize { items: 0 })
        .await;
    assert!(
        matches!(refused, Err(ControlError::Rejected { .. })),
        "{refused:?}"
    );
    assert_eq!(source.batch_items(), 9);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_without_the_knob_say_unsupported() {
    let (gated, _permit) = GatedKernel::new();
    let rig = rig(
        vec![Arc::new(gated) as Arc<dyn Kernel>],
        FaultBudget::default(),
        1,
    )
    .await;
    let reply = rig
        .rt
        .control("launcher-0", Control::SetBatchSize { items: 8 })
        .await;
    assert!(
        matches!(reply, Err(ControlError::Unsupported { .. })),
        "{reply:?}"
    );
    rig.rt.shutdown().await;
}
