//! How the scheduler delivers, on tokio's paused clock: a full target gets its messages
//! in order from one bounded backlog (no task per delivery, overflow counted); a
//! panicking delivery loses no other timer; dropping a message that holds a
//! `TimerHandle` does not deadlock; lateness is exported as `vortex_timer_lag_seconds`.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use vortex::actors::scheduler::{CancelOutcome, Scheduler, SchedulerConfig, TimerHandle};
use vortex::actors::telemetry::{encode_text, MetricsSink, Registry};
use vortex::prelude::*;

type Seen = Arc<Mutex<Vec<u32>>>;

struct Recorder(Seen);

impl Actor for Recorder {
    type Message = u32;
    async fn handle(&mut self, label: u32, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0.lock().unwrap().push(label);
        Ok(())
    }
}

async fn runtime() -> Runtime {
    Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap()
}

async fn recorder(rt: &Runtime, name: &str, capacity: usize) -> (Addr<Recorder>, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let addr = rt
        .spawn_actor(ActorSpec::new(name, move || Recorder(s.clone())).capacity(capacity))
        .await
        .unwrap();
    (addr, seen)
}

#[tokio::test(start_paused = true)]
async fn a_full_target_gets_its_messages_in_order_from_one_bounded_backlog() {
    let rt = runtime().await;
    let (slow, seen) = recorder(&rt, "slow", 4).await;
    let config = SchedulerConfig::default().backlog_per_target(10);
    let scheduler = Scheduler::spawn_with(&rt, "scheduler", config)
        .await
        .unwrap();
    rt.control("slow", Control::Pause).await.unwrap();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    for label in 0..30 {
        // Ten ticks, three timers each: order is by deadline, then by arm order.
        let delay = Duration::from_millis(1 + u64::from(label) / 3);
        scheduler.send_after(delay, &slow, label).detach();
    }
    support::wait_until_virtual("30 fired", Duration::from_secs(5), || {
        scheduler.fired() + scheduler.overflowed() == 30
    })
    .await;
    // 4 in the mailbox, 1 in the flusher's hand (waiting for space), 10 waiting in the
    // backlog; the 15 newest dropped and counted.
    assert_eq!(scheduler.fired(), 15);
    assert_eq!(scheduler.overflowed(), 15);
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert!(
        tasks <= tasks_before + 1,
        "one flusher for the target, not a task per delivery: {tasks_before} -> {tasks}"
    );
    rt.control("slow", Control::Resume).await.unwrap();
    support::wait_until_virtual("delivered", Duration::from_secs(5), || {
        seen.lock().unwrap().len() == 15
    })
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        (0..15).collect::<Vec<u32>>(),
        "in order"
    );
    // The backlog is empty again: a new timer goes straight through.
    scheduler
        .send_after(Duration::from_millis(1), &slow, 99)
        .detach();
    support::wait_until_virtual("direct", Duration::from_secs(5), || {
        seen.lock().unwrap().len() == 16
    })
    .await;
    rt.shutdown().await;
}

/// A message whose `Clone` panics when its label says so.
struct Fragile(u32);

impl Clone for Fragile {
    fn clone(&self) -> Self {
        if self.0 == 13 {
            panic!("fragile clone");
        }
        Fragile(self.0)
    }
}

struct FragileSink(Seen);

impl Actor for FragileSink {
    type Message = Fragile;
    async fn handle(&mut self, message: Fragile, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0.lock().unwrap().push(message.0);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_delivery_loses_no_other_timer() {
    support::quiet_panics("fragile clone");
    let rt = runtime().await;
    let seen = Seen::default();
    let s = seen.clone();
    let sink = rt
        .spawn("sink", move || FragileSink(s.clone()))
        .await
        .unwrap();
    let scheduler = Scheduler::spawn(&rt, "scheduler").await.unwrap();
    let bomb = scheduler
        .send_interval(Duration::from_millis(2), &sink, Fragile(13))
        .unwrap();
    let good = scheduler
        .send_interval(Duration::from_millis(2), &sink, Fragile(1))
        .unwrap();
    for label in [2, 3, 4] {
        scheduler
            .send_after(Duration::from_millis(2), &sink, Fragile(label))
            .detach();
    }
    support::wait_until_virtual(
        "five periods of the good one",
        Duration::from_secs(5),
        || seen.lock().unwrap().iter().filter(|&&l| l == 1).count() >= 5,
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[..4],
        [1, 2, 3, 4],
        "the tick the bomb went off in: {seen:?}"
    );
    assert!(!seen.contains(&13));
    assert!(scheduler.panicked_deliveries() >= 5, "each period counted");
    assert_eq!(rt.status("scheduler").unwrap().restarts, 0, "no failure");
    assert_eq!(bomb.cancel(), CancelOutcome::Cancelled);
    assert_eq!(good.cancel(), CancelOutcome::Cancelled);
    rt.shutdown().await;
}

/// A message that holds the handle of another timer.
struct Holding(#[allow(dead_code)] TimerHandle);

struct Keeper;

impl Actor for Keeper {
    type Message = Holding;
    async fn handle(&mut self, _: Holding, _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_message_that_holds_a_timer_handle_does_not_deadlock() {
    let rt = runtime().await;
    let (recorder, seen) = recorder(&rt, "recorder", 64).await;
    let keeper = rt.spawn("keeper", || Keeper).await.unwrap();
    let scheduler = Scheduler::spawn(&rt, "scheduler").await.unwrap();
    rt.control("keeper", Control::Stop).await.unwrap();
    // Delivered to a stopped target: the message, and the handle in it, are dropped by
    // the scheduler while it delivers.
    let inner = scheduler.send_after(Duration::from_millis(20), &recorder, 1);
    scheduler
        .send_after(Duration::from_millis(5), &keeper, Holding(inner))
        .detach();
    // Cancelled: the scheduler drops the message when it frees the entry.
    let inner = scheduler.send_after(Duration::from_millis(20), &recorder, 2);
    let outer = scheduler.send_after(Duration::from_millis(5), &keeper, Holding(inner));
    support::wait_until_virtual("armed", Duration::from_secs(1), || scheduler.armed() == 4).await;
    assert_eq!(outer.cancel(), CancelOutcome::Cancelled);
    scheduler
        .send_after(Duration::from_millis(30), &recorder, 3)
        .detach();
    support::wait_until_virtual("the last one", Duration::from_secs(5), || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        [3],
        "both held timers were cancelled by the drop"
    );
    assert_eq!(scheduler.dropped_targets(), 1);
    support::wait_until_virtual("all freed", Duration::from_secs(1), || {
        scheduler.armed() == 0
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn lateness_is_exported_as_vortex_timer_lag_seconds() {
    let rt = runtime().await;
    let (recorder, seen) = recorder(&rt, "recorder", 64).await;
    let mut registry = Registry::default();
    let sink = MetricsSink::register(&mut registry);
    let config = SchedulerConfig::default().lag_histogram(sink.timer_lag());
    let scheduler = Scheduler::spawn_with(&rt, "scheduler", config)
        .await
        .unwrap();
    rt.control("scheduler", Control::Pause).await.unwrap();
    let start = Instant::now();
    for label in [1, 2, 3] {
        scheduler
            .send_after(Duration::from_millis(10), &recorder, label)
            .detach();
    }
    tokio::time::sleep_until(start + Duration::from_millis(40)).await;
    rt.control("scheduler", Control::Resume).await.unwrap();
    support::wait_until_virtual("fired", Duration::from_secs(5), || {
        seen.lock().unwrap().len() == 3
    })
    .await;
    assert_eq!(scheduler.lag().count(), 3);
    // Held 30 ms past their deadline by the pause.
    let mean = scheduler.lag().sum_seconds() / 3.0;
    assert!((0.030..0.032).contains(&mean), "mean lag {mean}");
    let text = encode_text(&registry).unwrap();
    for line in [
        "vortex_timer_lag_seconds_count 3",
        "vortex_timer_lag_seconds_bucket{le=\"0.025\"} 0",
        "vortex_timer_lag_seconds_bucket{le=\"0.05\"} 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    rt.shutdown().await;
}
