//! A device whose fault budget is spent leaves the rotation: it gets no more batches, its
//! status says so, `Resume` probes it (and refuses while the probe fails), and once the
//! probe succeeds the router sends it batches again.

mod launcher_support;

use std::{sync::atomic::Ordering::SeqCst, sync::Arc, time::Duration};

use launcher_support::{batch, rig, FlakyKernel};
use vortex::actors::launcher::{FaultBudget, Kernel};
use vortex::messages::{pipeline::PreparedBatch, Control, ControlError, ControlReply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_rotation_gets_nothing_until_a_resume_probe_succeeds() {
    let healthy = Arc::new(FlakyKernel::new(false));
    let broken = Arc::new(FlakyKernel::new(true));
    let fail = Arc::clone(&broken.fail);
    let budget = FaultBudget {
        faults: 2,
        window: Duration::from_secs(60),
    };
    let kernels: Vec<Arc<dyn Kernel>> = vec![healthy, broken];
    let mut rig = rig(kernels, budget, 1).await;
    let faulty = rig.launchers[1].stats().clone();

    // One batch at a time until the broken device has spent its budget.
    let mut sent = 0;
    while faulty.in_rotation() {
        assert!(sent < 40, "the broken device never left the rotation");
        rig.router.route(batch(sent)).await;
        sent += 1;
        rig.settle(sent).await;
    }
    assert_eq!(faulty.snapshot().faults, 2);
    assert_eq!(rig.rt.dead_letters().count(), 2);
    let letters = rig.rt.dead_letters().drain();
    for letter in letters {
        assert_eq!(letter.actor, "launcher-1");
        let reason = format!("{:?}", letter.reason);
        assert!(reason.contains("injected launch failure"), "{reason}");
        assert!(
            letter.downcast::<PreparedBatch>().is_some(),
            "the batch is kept"
        );
    }
    let detail = rig.detail("launcher-1").await;
    assert!(detail.contains("rotation=OUT"), "{detail}");
    assert!(rig.detail("launcher-0").await.contains("rotation=in"));

    // Out of rotation: every further batch goes to the healthy device.
    let routed_before = rig.router.routed()[1];
    for id in sent..sent + 20 {
        rig.router.route(batch(id)).await;
    }
    sent += 20;
    rig.settle(sent).await;
    assert_eq!(rig.router.routed()[1], routed_before);
    assert_eq!(rig.finished_on(1), 0);
    assert_eq!(rig.finished_on(0) as u64, sent - 2);

    // Resume while the device still fails: the probe fails, the device stays out.
    let refused = rig.rt.control("launcher-1", Control::Resume).await;
    assert!(
        matches!(refused, Err(ControlError::Rejected { .. })),
        "{refused:?}"
    );
    assert!(!faulty.in_rotation());

    // Repaired: the probe succeeds and the router uses the device again.
    fail.store(false, SeqCst);
    let resumed = rig.rt.control("launcher-1", Control::Resume).await;
    assert_eq!(resumed, Ok(ControlReply::Resumed));
    assert!(faulty.in_rotation());
    assert!(rig.detail("launcher-1").await.contains("rotation=in"));
    for id in sent..sent + 20 {
        rig.router.route(batch(id)).await;
    }
    sent += 20;
    rig.settle(sent).await;
    assert!(rig.finished_on(1) > 0, "the resumed device got no batch");
    // The two faulted batches are the only dead letters (the count survives `drain`).
    assert_eq!(rig.rt.dead_letters().count(), 2);
    assert_eq!(rig.outputs.len() as u64 + 2, sent);
    rig.rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_device_in_rotation_a_batch_is_dead_lettered_not_lost() {
    let broken = Arc::new(FlakyKernel::new(true));
    let budget = FaultBudget {
        faults: 1,
        window: Duration::from_secs(60),
    };
    let mut rig = rig(vec![broken as Arc<dyn Kernel>], budget, 1).await;
    rig.router.route(batch(0)).await;
    rig.settle(1).await;
    assert!(!rig.launchers[0].stats().in_rotation());
    rig.router.route(batch(1)).await;
    assert_eq!(rig.router.unroutable(), 1);
    assert_eq!(rig.rt.dead_letters().count(), 2);
    rig.rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_waiting_on_a_launcher_that_stops_dead_letters_instead_of_hanging() {
    use launcher_support::GatedKernel;
    let (gated, permit) = GatedKernel::new();
    let mut rig = rig(
        vec![Arc::new(gated) as Arc<dyn Kernel>],
        FaultBudget::default(),
        1,
    )
    .await;
    rig.router.route(batch(0)).await; // taken: held on the device by the gate
    rig.router.route(batch(1)).await; // held ahead (depth 1)
    let router = Arc::clone(&rig.router);
    let waiting = tokio::spawn(async move { router.route(batch(2)).await });
    // The command waits for the batch in progress: release batch 0, then it is served.
    let observer = rig.rt.observer();
    let stop = tokio::spawn(async move { observer.control("launcher-0", Control::Stop).await });
    permit.send(()).expect("gate");
    assert_eq!(stop.await.expect("stop task"), Ok(ControlReply::Stopping));
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the router gave up on the stopped launcher")
        .expect("route task");
    assert_eq!(rig.router.unroutable(), 1);
    let letters = rig.rt.dead_letters().drain();
    assert_eq!(letters.len(), 1);
    let letter = letters.into_iter().next().expect("one letter");
    assert_eq!(letter.downcast::<PreparedBatch>().map(|b| b.id), Some(2));
    // The stopping launcher still finishes what it had queued.
    permit.send(()).expect("gate");
    rig.settle(3).await;
    assert_eq!(rig.outputs.len(), 2);
    rig.rt.shutdown().await;
}
