//! The scheduler actor: exact firing on tokio's paused clock, cancel, no interval drift,
//! pause/resume, restart keeps intervals ticking, armed timers survive failures of the
//! scheduler and fire exactly once, cancel is final with a full scheduler mailbox, dead
//! targets counted, and real-time lateness of 100 000 timers (reported, not asserted).

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use vortex::actors::scheduler::{CancelOutcome, Scheduler};
use vortex::prelude::*;

/// Records (label, virtual arrival time).
struct Recorder(Arc<Mutex<Vec<(u32, Instant)>>>);

impl Actor for Recorder {
    type Message = u32;
    async fn handle(&mut self, label: u32, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0.lock().unwrap().push((label, Instant::now()));
        Ok(())
    }
}

async fn setup() -> (
    Runtime,
    Scheduler,
    Addr<Recorder>,
    Arc<Mutex<Vec<(u32, Instant)>>>,
) {
    let rt = Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let recorder = rt
        .spawn("recorder", move || Recorder(s.clone()))
        .await
        .unwrap();
    let scheduler = Scheduler::spawn(&rt, "scheduler").await.unwrap();
    (rt, scheduler, recorder, seen)
}

fn count(seen: &Arc<Mutex<Vec<(u32, Instant)>>>) -> usize {
    seen.lock().unwrap().len()
}

#[tokio::test(start_paused = true)]
async fn one_shots_fire_on_time_in_order_and_cancel_holds() {
    let (rt, scheduler, recorder, seen) = setup().await;
    let start = Instant::now();
    let late = scheduler.send_after(Duration::from_millis(30), &recorder, 3);
    let early = scheduler.send_after(Duration::from_millis(10), &recorder, 1);
    let cancelled = scheduler.send_after(Duration::from_millis(20), &recorder, 2);
    assert_eq!(cancelled.cancel(), CancelOutcome::Cancelled);
    assert_eq!(
        cancelled.cancel(),
        CancelOutcome::AlreadyFired,
        "idempotent"
    );
    late.detach();
    early.detach();
    support::wait_until_virtual("two fired", Duration::from_secs(5), || count(&seen) == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // virtual: the cancelled one stays silent
    let seen = seen.lock().unwrap().clone();
    let labels: Vec<u32> = seen.iter().map(|(label, _)| *label).collect();
    assert_eq!(labels, vec![1, 3]);
    let at: Vec<u128> = seen.iter().map(|(_, t)| (*t - start).as_millis()).collect();
    assert!(
        at[0] >= 10 && at[0] <= 11,
        "never early, within a tick: {at:?}"
    );
    assert!(at[1] >= 30 && at[1] <= 31, "{at:?}");
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn intervals_do_not_drift() {
    let (rt, scheduler, recorder, seen) = setup().await;
    let every = scheduler
        .send_interval(Duration::from_millis(7), &recorder, 7)
        .unwrap();
    support::wait_until_virtual("1000 periods", Duration::from_secs(60), || {
        count(&seen) >= 1000
    })
    .await;
    assert_eq!(every.cancel(), CancelOutcome::Cancelled);
    let seen = seen.lock().unwrap().clone();
    let first = seen[0].1;
    for (n, (_, at)) in seen.iter().enumerate().take(1000) {
        assert_eq!(
            *at - first,
            Duration::from_millis(7 * n as u64),
            "period {n} drifted"
        );
    }
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pause_holds_firing_and_resume_fires_everything_due_in_order() {
    let (rt, scheduler, recorder, seen) = setup().await;
    rt.control("scheduler", Control::Pause).await.unwrap();
    for (delay, label) in [(30, 3), (10, 1), (20, 2)] {
        scheduler
            .send_after(Duration::from_millis(delay), &recorder, label)
            .detach();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(&seen), 0, "paused: nothing fires");
    rt.control("scheduler", Control::Resume).await.unwrap();
    support::wait_until_virtual("all fired", Duration::from_secs(5), || count(&seen) == 3).await;
    let labels: Vec<u32> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(label, _)| *label)
        .collect();
    assert_eq!(labels, vec![1, 2, 3]);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_keeps_interval_timers_ticking() {
    let (rt, scheduler, recorder, seen) = setup().await;
    let every = scheduler
        .send_interval(Duration::from_millis(5), &recorder, 5)
        .unwrap();
    support::wait_until_virtual("ticking", Duration::from_secs(5), || count(&seen) >= 10).await;
    rt.inject_failure("scheduler", "test").await.unwrap();
    support::wait_until_virtual("restarted", Duration::from_secs(5), || {
        rt.status("scheduler").unwrap().restarts == 1
    })
    .await;
    let before = count(&seen);
    support::wait_until_virtual("still ticking", Duration::from_secs(5), || {
        count(&seen) >= before + 10
    })
    .await;
    assert_eq!(scheduler.armed(), 1);
    assert_eq!(every.cancel(), CancelOutcome::Cancelled);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn armed_timers_survive_failures_of_the_scheduler_and_fire_exactly_once() {
    let (rt, scheduler, recorder, seen) = setup().await;
    let start = Instant::now();
    for label in 0..300_u32 {
        // Deadlines 1..=150 ms, two timers per tick, armed in reverse order.
        let delay = Duration::from_millis(150 - u64::from(label) / 2);
        scheduler.send_after(delay, &recorder, label).detach();
    }
    let every = scheduler
        .send_interval(Duration::from_millis(10), &recorder, 1_000)
        .unwrap();
    for (at, restarts) in [(30, 1), (31, 2), (90, 3)] {
        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        rt.inject_failure("scheduler", "chaos").await.unwrap();
        support::wait_until_virtual("restarted", Duration::from_secs(5), || {
            rt.status("scheduler").unwrap().restarts == restarts
        })
        .await;
    }
    tokio::time::sleep_until(start + Duration::from_millis(205)).await;
    assert_eq!(every.cancel(), CancelOutcome::Cancelled);
    let seen = seen.lock().unwrap().clone();
    let mut once: Vec<u32> = seen
        .iter()
        .map(|(l, _)| *l)
        .filter(|l| *l < 1_000)
        .collect();
    once.sort_unstable();
    assert_eq!(
        once,
        (0..300).collect::<Vec<u32>>(),
        "each one-shot exactly once"
    );
    for (label, at) in &seen {
        if *label < 1_000 {
            let due = Duration::from_millis(150 - u64::from(*label) / 2);
            assert!(*at - start >= due, "timer {label} early");
        }
    }
    let periods = seen.iter().filter(|(l, _)| *l == 1_000).count();
    assert_eq!(periods, 20, "each period 10..=200 ms exactly once");
    support::wait_until_virtual("freed", Duration::from_secs(1), || scheduler.armed() == 0).await;
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_is_final_and_truthful_with_a_full_scheduler_mailbox() {
    let (rt, _, recorder, seen) = setup().await;
    let config = vortex::actors::scheduler::SchedulerConfig::default().mailbox_capacity(2);
    let scheduler = Scheduler::spawn_with(&rt, "tight", config).await.unwrap();
    // Armed and processed, then the scheduler is paused and its mailbox filled up.
    let armed: Vec<_> = (0..40)
        .map(|label| scheduler.send_after(Duration::from_millis(10), &recorder, label))
        .collect();
    support::wait_until_virtual("armed", Duration::from_secs(1), || scheduler.armed() == 40).await;
    rt.control("tight", Control::Pause).await.unwrap();
    let queued: Vec<_> = (40..80)
        .map(|label| scheduler.send_after(Duration::from_millis(10), &recorder, label))
        .collect();
    assert_eq!(
        scheduler.addr().mailbox_len(),
        2,
        "full: the rest overflowed"
    );
    let mut kept = Vec::new();
    for (n, handle) in armed.into_iter().chain(queued).enumerate() {
        if n % 2 == 0 {
            assert_eq!(handle.cancel(), CancelOutcome::Cancelled);
            drop(handle); // and dropping it again is harmless
        } else if n % 4 == 1 {
            drop(handle); // cancel on drop, mailbox full
        } else {
            kept.push(handle);
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(seen.lock().unwrap().is_empty(), "paused");
    rt.control("tight", Control::Resume).await.unwrap();
    support::wait_until_virtual("fired", Duration::from_secs(5), || {
        seen.lock().unwrap().len() == kept.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut labels: Vec<u32> = seen.lock().unwrap().iter().map(|(l, _)| *l).collect();
    labels.sort_unstable();
    assert_eq!(labels, (0..80).filter(|n| n % 4 == 3).collect::<Vec<u32>>());
    for handle in &kept {
        assert_eq!(handle.cancel(), CancelOutcome::AlreadyFired, "truthful");
    }
    support::wait_until_virtual("entries freed", Duration::from_secs(1), || {
        scheduler.armed() == 0
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn timers_for_a_stopped_target_are_dropped_and_counted() {
    let (rt, scheduler, recorder, _seen) = setup().await;
    let every = scheduler
        .send_interval(Duration::from_millis(5), &recorder, 1)
        .unwrap();
    rt.control("recorder", Control::Stop).await.unwrap();
    support::wait_until_virtual("dropped", Duration::from_secs(5), || {
        scheduler.dropped_targets() == 1
    })
    .await;
    assert_eq!(scheduler.armed(), 0);
    assert_eq!(every.cancel(), CancelOutcome::AlreadyFired);
    rt.shutdown().await;
}

/// Lateness of each delivery against its deadline, in real time.
struct Lateness(Arc<Mutex<Vec<Duration>>>);

impl Actor for Lateness {
    type Message = std::time::Instant;
    async fn handle(
        &mut self,
        due: std::time::Instant,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        let now = std::time::Instant::now();
        assert!(now >= due, "a timer fired early");
        self.0.lock().unwrap().push(now - due);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_lateness_of_100k_timers_is_reported() {
    let rt = Runtime::builder()
        .mailbox_capacity(1 << 17)
        .build()
        .unwrap();
    let lateness = Arc::new(Mutex::new(Vec::new()));
    let l = lateness.clone();
    let sink = rt
        .spawn_actor(ActorSpec::new("lateness", move || Lateness(l.clone())).capacity(1 << 17))
        .await
        .unwrap();
    let scheduler = Scheduler::spawn(&rt, "scheduler").await.unwrap();
    let total = 100_000u64;
    let base = std::time::Instant::now() + Duration::from_secs(1);
    for n in 0..total {
        let due = base + Duration::from_micros(n * 2_000_000 / total); // spread over 1–3 s
        let delay = due.saturating_duration_since(std::time::Instant::now());
        scheduler.send_after(delay, &sink, due).detach();
    }
    support::wait_until("all delivered", Duration::from_secs(60), || {
        lateness.lock().unwrap().len() as u64 == total
    })
    .await;
    let mut samples = lateness.lock().unwrap().clone();
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "timer lateness over {total} timers: p50 {:?} p99 {:?} max {:?} (1 tick = 1 ms)",
        pick(0.5),
        pick(0.99),
        samples[samples.len() - 1]
    );
    // `fired` is counted once a tick's deliveries are done, just after the last arrived.
    support::wait_until("all counted", Duration::from_secs(10), || {
        scheduler.fired() == total
    })
    .await;
    rt.shutdown().await;
}
