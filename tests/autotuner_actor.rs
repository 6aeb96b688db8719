//! The autotuner actor on a real runtime: it scales a busy pool and grows the batch size
//! through origin-stamped commands, leaves a knob a person turned alone for the hold time
//! (and says so in `Status`, telemetry and the journal), and freezes on `Pause`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use vortex::actors::autotuner::{
    Autotuner, AutotunerConfig, AutotunerSettings, Bounds, DECISION_RECORD_KIND,
};
use vortex::actors::journal::{JournalActor, JournalConfig};
use vortex::actors::scheduler::Scheduler;
use vortex::actors::telemetry::{BatchFinished, TelemetryEvent, TelemetryPublisher};
use vortex::messages::telemetry::{now_micros, AutotunerDecided};
use vortex::prelude::*;

const WAIT: Duration = Duration::from_secs(20);

/// A pool worker that takes 2 ms per message (without blocking a thread).
struct Worker;

impl Actor for Worker {
    type Message = u32;
    async fn handle(&mut self, _: u32, _: &mut Context<Self>) -> Result<(), ActorError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(())
    }
}

/// Stands in for the source: it only takes the batch-size knob.
struct Source(Arc<AtomicU32>);

impl Actor for Source {
    type Message = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
    async fn on_control(
        &mut self,
        command: &Control,
        _: &mut Context<Self>,
    ) -> Option<Result<ControlReply, ControlError>> {
        let Control::SetBatchSize { items } = command else {
            return None;
        };
        self.0.store(*items, Relaxed);
        Some(Ok(ControlReply::Custom(format!("batch size {items}"))))
    }
}

/// Checks `condition` every 5 ms until it holds; panics with `what` after [`WAIT`]. The
/// pause between checks keeps a polling test from crowding out the actors it watches
/// (every check is a control round trip).
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(WAIT, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out after {WAIT:?} waiting for {what}"
    );
}

async fn detail(rt: &Runtime) -> String {
    match rt.control("autotuner", Control::Status).await {
        Ok(ControlReply::Status(status)) => status.detail,
        other => panic!("autotuner status: {other:?}"),
    }
}

fn round_of(detail: &str) -> u64 {
    detail
        .split("round ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autotuner_scales_grows_respects_a_person_and_pauses() {
    let rt = Runtime::new().unwrap();
    let directory = tempfile::tempdir().unwrap();
    let (journal, journal_handle) =
        JournalActor::spawn(&rt, "journal", directory.path(), JournalConfig::default())
            .await
            .unwrap();
    let telemetry = TelemetryPublisher::spawn(&rt, "telemetry", 4096)
        .await
        .unwrap();
    let scheduler = Scheduler::spawn(&rt, "scheduler").await.unwrap();
    let pool = rt.spawn_pool("preprocess", 1, || Worker).await.unwrap();
    let batch = Arc::new(AtomicU32::new(8));
    let for_source = Arc::clone(&batch);
    rt.spawn("source", move || Source(Arc::clone(&for_source)))
        .await
        .unwrap();
    let mut notices = rt.control_notices();
    let mut decided = telemetry.subscribe();

    // Load: ~1000 messages/s at 2 ms each (2 busy workers), and fast finished batches.
    let running = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (running, batch, telemetry) = (running.clone(), batch.clone(), telemetry.clone());
        tokio::spawn(async move {
            let mut id = 0;
            while running.load(Relaxed) {
                let _ = pool.try_tell(1);
                let items = batch.load(Relaxed);
                id += 1;
                let _ = telemetry.try_publish(TelemetryEvent::from(BatchFinished {
                    at_micros: now_micros(),
                    batch_id: id,
                    device: 0,
                    items,
                    preprocess_micros: 0,
                    execute_micros: 500 + u64::from(items),
                    queue_wait_micros: 100,
                    copy_micros: 50,
                    bytes: 0,
                }));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    let mut settings = AutotunerSettings {
        interval_ms: 25,
        hold_ms: 60_000,
        min_batches: 2,
        ..AutotunerSettings::default()
    };
    settings.bounds.workers = Bounds::new(1, 3);
    let config = AutotunerConfig {
        name: "autotuner".into(),
        settings,
        preprocessor: "preprocess".into(),
        source: "source".into(),
        launchers: vec!["launcher-0".into()],
        initial_batch: 8,
        cpu_budget: 4,
        telemetry: telemetry.clone(),
        journal: Some(journal),
    };
    let autotuner = Autotuner::spawn(&rt, &scheduler, config).await.unwrap();
    assert_eq!(autotuner.name(), "autotuner");

    // 1. It scales the busy pool up to its bound (3, under the CPU budget of 4) and grows
    //    the batch size, with commands stamped as its own.
    eventually("the pool scaled to 3", || async {
        rt.status("preprocess").map(|s| s.workers).unwrap_or(0) == 3
    })
    .await;
    eventually("the batch size grew", || async { batch.load(Relaxed) > 8 }).await;
    let mut saw_own = false;
    while let Ok(notice) = notices.try_recv() {
        if notice.actor == "preprocess" && matches!(notice.command, Control::Scale { .. }) {
            assert_eq!(notice.origin, Origin::autotuner("autotuner"));
            saw_own = true;
        }
    }
    assert!(saw_own, "no Scale notice from the autotuner");

    // 2. A person scales the pool: the autotuner leaves it alone and says why.
    let reply = rt
        .control_from(
            "preprocess",
            Control::Scale { n: 2 },
            Origin::operator("ada"),
        )
        .await
        .unwrap();
    assert_eq!(reply, ControlReply::Scaled { from: 3, to: 2 });
    eventually("the hold shows in Status", || async {
        detail(&rt)
            .await
            .contains("workers held (operator ada set 2")
    })
    .await;
    let held_at = round_of(&detail(&rt).await);
    eventually("ten more rounds", || async {
        round_of(&detail(&rt).await) >= held_at + 10
    })
    .await;
    assert_eq!(
        rt.status("preprocess").unwrap().workers,
        2,
        "the hold was not respected"
    );
    let text = detail(&rt).await;
    assert!(
        text.contains("left alone: operator ada set workers 2"),
        "{text}"
    );

    // Telemetry carried the decisions and their reasons.
    let mut events: Vec<AutotunerDecided> = Vec::new();
    while let Ok(event) = decided.try_recv() {
        if let TelemetryEvent::AutotunerDecided(event) = event {
            events.push(event);
        }
    }
    assert!(events
        .iter()
        .any(|e| &*e.knob == "workers" && e.applied && e.to == 3));
    assert!(events
        .iter()
        .any(|e| !e.applied && e.reason.contains("left alone: operator ada")));

    // 3. Pause freezes it: more ticks fire, no round runs.
    assert_eq!(
        rt.control("autotuner", Control::Pause).await,
        Ok(ControlReply::Paused)
    );
    let frozen = detail(&rt).await;
    assert!(frozen.starts_with("paused"), "{frozen}");
    let fired = scheduler.fired();
    eventually("five ticks while paused", || async {
        scheduler.fired() >= fired + 5
    })
    .await;
    assert_eq!(rt.status("autotuner").unwrap().state, ActorState::Paused);
    let still = detail(&rt).await;
    assert_eq!(
        round_of(&still),
        round_of(&frozen),
        "a round ran while paused"
    );
    assert_eq!(
        rt.control("autotuner", Control::Resume).await,
        Ok(ControlReply::Resumed)
    );
    eventually("rounds again after resume", || async {
        round_of(&detail(&rt).await) > round_of(&frozen)
    })
    .await;

    // 4. The journal recorded the decisions.
    running.store(false, Relaxed);
    feeder.await.unwrap();
    let records: Vec<AutotunerDecided> = journal_handle
        .reader()
        .replay(0)
        .filter_map(Result::ok)
        .filter(|record| record.kind == DECISION_RECORD_KIND)
        .map(|record| record.decode().unwrap())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| &*r.knob == "batch-size" && r.applied),
        "{} records, no applied batch-size decision",
        records.len()
    );
    drop(autotuner);
    rt.shutdown().await;
}
