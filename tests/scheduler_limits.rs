//! The scheduler at its limits, on tokio's paused clock: any `Duration` (`MAX` never
//! fires), no spin past 2^32 ticks, the first period never early, non-whole-tick periods
//! rounded up, and the missed-tick policy of each interval after a long pause.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use vortex::actors::scheduler::{CancelOutcome, MissedTicks, Scheduler, SchedulerConfig};
use vortex::prelude::*;

type Seen = Arc<Mutex<Vec<(u32, Instant)>>>;

/// Records (label, virtual arrival time).
struct Recorder(Seen);

impl Actor for Recorder {
    type Message = u32;
    async fn handle(&mut self, label: u32, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0.lock().unwrap().push((label, Instant::now()));
        Ok(())
    }
}

async fn setup(config: SchedulerConfig) -> (Runtime, Scheduler, Addr<Recorder>, Seen) {
    let rt = Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap();
    let seen = Seen::default();
    let s = seen.clone();
    let recorder = rt
        .spawn("recorder", move || Recorder(s.clone()))
        .await
        .unwrap();
    let scheduler = Scheduler::spawn_with(&rt, "scheduler", config)
        .await
        .unwrap();
    (rt, scheduler, recorder, seen)
}

fn arrivals(seen: &Seen, label: u32, since: Instant) -> Vec<Duration> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(l, _)| *l == label)
        .map(|(_, at)| *at - since)
        .collect()
}

fn ms(values: &[u64]) -> Vec<Duration> {
    values.iter().map(|&v| Duration::from_millis(v)).collect()
}

#[tokio::test(start_paused = true)]
async fn duration_max_is_accepted_and_never_fires() {
    let (rt, scheduler, recorder, seen) = setup(SchedulerConfig::default()).await;
    let never = [
        scheduler.send_after(Duration::MAX, &recorder, 1),
        scheduler.send_after(Duration::from_secs(u64::MAX), &recorder, 2),
        scheduler
            .send_interval(Duration::MAX, &recorder, 3)
            .unwrap(),
        scheduler.control_after(Duration::MAX, &rt.observer(), "recorder", Control::Stop),
    ];
    scheduler
        .send_after(Duration::from_millis(10), &recorder, 9)
        .detach();
    support::wait_until_virtual("the finite one", Duration::from_secs(5), || {
        seen.lock().unwrap().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await; // a virtual day: nothing else
    assert_eq!(seen.lock().unwrap()[0].0, 9);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(scheduler.armed(), 4, "the never-timers stay armed");
    assert!(
        scheduler.ticks() <= 3,
        "no wake-ups for them: {}",
        scheduler.ticks()
    );
    for handle in &never {
        assert_eq!(handle.cancel(), CancelOutcome::Cancelled);
    }
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn no_spin_after_two_to_the_32_ticks() {
    let config = SchedulerConfig::default().tick(Duration::from_micros(1));
    let (rt, scheduler, recorder, seen) = setup(config).await;
    // 2^32 ticks of 1 µs is 71.6 minutes: go past it with nothing armed.
    tokio::time::advance(Duration::from_micros(1 << 32) + Duration::from_secs(1)).await;
    let armed_at = Instant::now();
    scheduler
        .send_after(Duration::from_millis(10), &recorder, 1)
        .detach();
    let every = scheduler
        .send_interval(Duration::from_millis(4), &recorder, 2)
        .unwrap();
    // Step the clock by hand: a spinning driver would tick thousands of times here.
    // (22 steps: tokio's own timer rounds each sleep up to its 1 ms grid.)
    for _ in 0..22 {
        tokio::time::advance(Duration::from_millis(1)).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(
            scheduler.ticks() <= 14,
            "spinning: {} ticks",
            scheduler.ticks()
        );
    }
    let once = arrivals(&seen, 1, armed_at);
    assert_eq!(once.len(), 1, "{once:?}");
    assert!(once[0] >= Duration::from_millis(10) && once[0] <= Duration::from_millis(12));
    assert_eq!(arrivals(&seen, 2, armed_at).len(), 5, "4, 8, 12, 16, 20 ms");
    assert_eq!(every.cancel(), CancelOutcome::Cancelled);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_first_period_is_never_early_even_when_armed_mid_tick() {
    let (rt, scheduler, recorder, seen) = setup(SchedulerConfig::default()).await;
    tokio::time::advance(Duration::from_micros(1_500)).await; // mid-tick
    let armed_at = Instant::now();
    let every = scheduler
        .send_interval(Duration::from_millis(2), &recorder, 1)
        .unwrap();
    support::wait_until_virtual("four periods", Duration::from_secs(5), || {
        seen.lock().unwrap().len() >= 4
    })
    .await;
    let at = arrivals(&seen, 1, armed_at);
    for (n, arrival) in at.iter().enumerate().take(4) {
        let due = Duration::from_millis(2 * (n as u64 + 1));
        // Never early; late by at most the tick rounding plus tokio's 1 ms timer grid.
        assert!(
            *arrival >= due && *arrival <= due + Duration::from_millis(2),
            "period {n}: {at:?}"
        );
    }
    assert_eq!(every.cancel(), CancelOutcome::Cancelled);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_period_that_is_not_a_whole_tick_is_rounded_up_to_one() {
    let (rt, scheduler, recorder, seen) = setup(SchedulerConfig::default()).await;
    let armed_at = Instant::now();
    let every = scheduler
        .send_interval(Duration::from_micros(1_500), &recorder, 1)
        .unwrap();
    support::wait_until_virtual("five periods", Duration::from_secs(5), || {
        seen.lock().unwrap().len() >= 5
    })
    .await;
    let at = arrivals(&seen, 1, armed_at);
    assert_eq!(
        at[..5],
        ms(&[2, 4, 6, 8, 10]),
        "1.5 ms at 1 ms ticks: every 2 ms"
    );
    assert_eq!(every.cancel(), CancelOutcome::Cancelled);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_long_pause_each_interval_follows_its_missed_tick_policy() {
    let (rt, scheduler, recorder, seen) = setup(SchedulerConfig::default()).await;
    let armed_at = Instant::now();
    let period = Duration::from_millis(10);
    let handles = [
        scheduler.send_interval(period, &recorder, 1).unwrap(), // default: Burst
        scheduler
            .send_interval_with(period, MissedTicks::Skip, &recorder, 2)
            .unwrap(),
        scheduler
            .send_interval_with(period, MissedTicks::Delay, &recorder, 3)
            .unwrap(),
    ];
    support::wait_until_virtual("armed", Duration::from_secs(1), || scheduler.armed() == 3).await;
    rt.control("scheduler", Control::Pause).await.unwrap();
    tokio::time::sleep_until(armed_at + Duration::from_millis(35)).await;
    assert!(seen.lock().unwrap().is_empty());
    rt.control("scheduler", Control::Resume).await.unwrap();
    tokio::time::sleep_until(armed_at + Duration::from_millis(56)).await;
    assert_eq!(
        arrivals(&seen, 1, armed_at),
        ms(&[35, 35, 35, 40, 50]),
        "burst"
    );
    assert_eq!(arrivals(&seen, 2, armed_at), ms(&[35, 40, 50]), "skip");
    assert_eq!(arrivals(&seen, 3, armed_at), ms(&[35, 45, 55]), "delay");
    for handle in &handles {
        assert_eq!(handle.cancel(), CancelOutcome::Cancelled);
    }
    rt.shutdown().await;
}
