//! Cost per arm, cancel and fire, and bytes per timer: `Timers`, and the same timers
//! armed *through the scheduler actor* (`Scheduler::send_after`, a message per arm and
//! per cancel, delivered to an actor on fire), beside `tokio::time::Sleep` and
//! `tokio_util::time::DelayQueue`.
//!
//! The actor contender runs the vortex runtime on the same current-thread, paused tokio
//! runtime: a phase is timed from its first call until the scheduler actor has applied
//! every message (arm: `armed() == N`; cancel: `armed() == N / 2`; fire: the clock
//! moved past every deadline and `fired() == N / 2`, each message handed to the target's
//! mailbox). The caller yields every 1024 arms or cancels so the actor drains its
//! mailbox as it would under a steady load.
//!
//! One round: arm 1 000 000 timers with deadlines spread over 10 000 ticks (ms), cancel
//! every other one, fire the rest. Each phase is timed on its own (the others run
//! untimed around it); criterion reports the time per element. tokio runs on a
//! current-thread runtime with paused time; a `Sleep` counts as armed once it is boxed,
//! pinned and polled once (tokio registers a timer on its first poll), cancelled when
//! dropped, fired when polled ready after the clock moved past it.
//!
//! Run: `cargo bench --bench timers` (about two minutes). Bytes per timer are printed
//! first, measured with a counting global allocator (every allocation pays for two
//! atomic adds, for all three contenders alike).

use std::{
    future::Future,
    hint::black_box,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio::{runtime::Runtime, time::Sleep};
use tokio_util::time::{delay_queue::Key, DelayQueue};
use vortex_actors::scheduler::{Scheduler, TimerHandle, Timers};
use vortex_runtime::{Actor, ActorError, ActorSpec, Addr};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const TIMERS: usize = 1_000_000;
const SPREAD_MS: u64 = 10_000;

fn deadline_ms(index: usize) -> u64 {
    1 + (index as u64 * 7_919) % SPREAD_MS
}

fn paused_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

// ---- Timers ----

fn timers_arm(ids: &mut Vec<vortex_actors::scheduler::TimerId>) -> Timers<u64> {
    let mut table = Timers::new();
    ids.extend((0..TIMERS).map(|index| table.arm_at(deadline_ms(index), index as u64)));
    table
}

fn timers_cancel(table: &mut Timers<u64>, ids: &[vortex_actors::scheduler::TimerId]) {
    for id in ids.iter().step_by(2) {
        let _ = black_box(table.cancel(*id));
    }
}

fn timers_fire(table: &mut Timers<u64>) -> usize {
    let mut sum = 0_u64;
    let fired = table
        .advance_to(SPREAD_MS + 1, |fired| {
            sum = sum.wrapping_add(*fired.payload())
        })
        .expect("forward");
    black_box(sum);
    fired
}

// ---- through the scheduler actor ----

/// The target of the actor contender's timers: counts what it receives.
struct Sink;

impl Actor for Sink {
    type Message = u64;
    async fn handle(
        &mut self,
        message: u64,
        _: &mut vortex_runtime::Context<Self>,
    ) -> Result<(), ActorError> {
        black_box(message);
        Ok(())
    }
}

struct Through {
    tokio: Runtime,
    vortex: vortex_runtime::Runtime,
    scheduler: Scheduler,
    sink: Addr<Sink>,
    handles: Vec<Option<TimerHandle>>,
}

fn through_setup() -> Through {
    let tokio = paused_runtime();
    let (vortex, scheduler, sink) = tokio.block_on(async {
        let vortex = vortex_runtime::Runtime::builder()
            .build()
            .expect("a vortex runtime");
        let sink = vortex
            .spawn_actor(ActorSpec::new("sink", || Sink).capacity(TIMERS))
            .await
            .expect("the sink");
        let scheduler = Scheduler::spawn(&vortex, "scheduler")
            .await
            .expect("the scheduler");
        (vortex, scheduler, sink)
    });
    Through {
        tokio,
        vortex,
        scheduler,
        sink,
        handles: Vec::with_capacity(TIMERS),
    }
}

async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

fn through_arm(through: &mut Through) {
    let Through {
        tokio,
        scheduler,
        sink,
        handles,
        ..
    } = through;
    tokio.block_on(async {
        for index in 0..TIMERS {
            let delay = Duration::from_millis(deadline_ms(index));
            handles.push(Some(scheduler.send_after(delay, sink, index as u64)));
            if index % 1024 == 1023 {
                tokio::task::yield_now().await;
            }
        }
        until(|| scheduler.armed() == TIMERS).await;
    });
}

fn through_cancel(through: &mut Through) {
    let Through {
        tokio,
        scheduler,
        handles,
        ..
    } = through;
    tokio.block_on(async {
        for (n, handle) in handles.iter_mut().step_by(2).enumerate() {
            drop(handle.take());
            if n % 1024 == 1023 {
                tokio::task::yield_now().await;
            }
        }
        until(|| scheduler.armed() == TIMERS / 2).await;
    });
}

fn through_fire(through: &mut Through) {
    let scheduler = &through.scheduler;
    through.tokio.block_on(async {
        tokio::time::advance(Duration::from_millis(SPREAD_MS + 1)).await;
        until(|| scheduler.fired() == (TIMERS / 2) as u64).await;
    });
}

fn through_teardown(through: Through) {
    let Through {
        tokio,
        vortex,
        handles,
        ..
    } = through;
    for handle in handles.into_iter().flatten() {
        handle.detach();
    }
    tokio.block_on(vortex.shutdown());
}

// ---- tokio::time::Sleep ----

fn sleeps_arm(runtime: &Runtime, sleeps: &mut Vec<Option<Pin<Box<Sleep>>>>) {
    let _entered = runtime.enter();
    let base = tokio::time::Instant::now();
    let mut context = Context::from_waker(Waker::noop());
    for index in 0..TIMERS {
        let mut sleep = Box::pin(tokio::time::sleep_until(
            base + Duration::from_millis(deadline_ms(index)),
        ));
        assert!(sleep.as_mut().poll(&mut context).is_pending());
        sleeps.push(Some(sleep));
    }
}

fn sleeps_cancel(sleeps: &mut [Option<Pin<Box<Sleep>>>]) {
    for sleep in sleeps.iter_mut().step_by(2) {
        drop(sleep.take());
    }
}

fn sleeps_fire(runtime: &Runtime, sleeps: &mut [Option<Pin<Box<Sleep>>>]) -> usize {
    runtime.block_on(tokio::time::advance(Duration::from_millis(SPREAD_MS + 1)));
    let _entered = runtime.enter();
    let mut context = Context::from_waker(Waker::noop());
    let mut fired = 0;
    for slot in sleeps.iter_mut() {
        if let Some(mut sleep) = slot.take() {
            assert!(sleep.as_mut().poll(&mut context).is_ready());
            fired += 1;
        }
    }
    fired
}

// ---- tokio_util::time::DelayQueue ----

fn queue_arm(runtime: &Runtime, keys: &mut Vec<Key>) -> DelayQueue<u64> {
    let _entered = runtime.enter();
    let base = tokio::time::Instant::now();
    let mut queue = DelayQueue::new();
    keys.extend((0..TIMERS).map(|index| {
        queue.insert_at(
            index as u64,
            base + Duration::from_millis(deadline_ms(index)),
        )
    }));
    queue
}

fn queue_cancel(queue: &mut DelayQueue<u64>, keys: &[Key]) {
    for key in keys.iter().step_by(2) {
        black_box(queue.remove(key));
    }
}

fn queue_fire(runtime: &Runtime, queue: &mut DelayQueue<u64>) -> usize {
    runtime.block_on(tokio::time::advance(Duration::from_millis(SPREAD_MS + 1)));
    let _entered = runtime.enter();
    let mut context = Context::from_waker(Waker::noop());
    let mut fired = 0;
    while let Poll::Ready(Some(expired)) = queue.poll_expired(&mut context) {
        black_box(expired.into_inner());
        fired += 1;
    }
    fired
}

/// Net heap bytes held after arming `TIMERS` timers, per timer (handle vectors excluded:
/// they are allocated before the count starts).
fn bytes_per_timer(c: &mut Criterion) {
    let _ = c;
    let per_timer = |region: Region<'_, std::alloc::System>| {
        let change = region.change();
        (change.bytes_allocated as f64 - change.bytes_deallocated as f64) / TIMERS as f64
    };

    let mut ids = Vec::with_capacity(TIMERS);
    let region = Region::new(GLOBAL);
    let table = timers_arm(&mut ids);
    let timers_bytes = per_timer(region);
    drop(table);

    // Without a payload, like a `Sleep`.
    let region = Region::new(GLOBAL);
    let mut bare = Timers::new();
    ids.clear();
    ids.extend((0..TIMERS).map(|index| bare.arm_at(deadline_ms(index), ())));
    let bare_bytes = per_timer(region);
    drop(bare);

    let runtime = paused_runtime();
    let mut sleeps = Vec::with_capacity(TIMERS);
    let region = Region::new(GLOBAL);
    sleeps_arm(&runtime, &mut sleeps);
    let sleep_bytes = per_timer(region);
    drop(sleeps);

    let runtime = paused_runtime();
    let mut keys = Vec::with_capacity(TIMERS);
    let region = Region::new(GLOBAL);
    let queue = queue_arm(&runtime, &mut keys);
    let queue_bytes = per_timer(region);
    drop(queue);

    let mut through = through_setup();
    let region = Region::new(GLOBAL);
    through_arm(&mut through);
    let actor_bytes = per_timer(region);
    through_teardown(through);

    println!(
        "bytes per armed timer ({TIMERS} timers): Timers<u64> {timers_bytes:.1} B, \
         Timers<()> {bare_bytes:.1} B, through the actor (u64 message, target, cancel \
         flag) {actor_bytes:.1} B, tokio Sleep {sleep_bytes:.1} B, \
         DelayQueue<u64> {queue_bytes:.1} B"
    );
}

/// Times one phase of a round `iterations` times; `prepare` runs untimed before it and
/// whatever it returns is dropped untimed after it.
fn time_phase<S>(
    iterations: u64,
    mut prepare: impl FnMut() -> S,
    mut phase: impl FnMut(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let mut state = prepare();
        let start = Instant::now();
        phase(&mut state);
        total += start.elapsed();
        drop(state);
    }
    total
}

/// [`time_phase`] with an explicit, untimed `teardown` (the actor contender must shut
/// its runtime down inside tokio).
fn time_phase_with<S>(
    iterations: u64,
    mut prepare: impl FnMut() -> S,
    mut phase: impl FnMut(&mut S),
    mut teardown: impl FnMut(S),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let mut state = prepare();
        let start = Instant::now();
        phase(&mut state);
        total += start.elapsed();
        teardown(state);
    }
    total
}

fn arm_cancel_fire(c: &mut Criterion) {
    let mut group = c.benchmark_group("arm");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.throughput(Throughput::Elements(TIMERS as u64));
    group.bench_function("timers", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || Vec::with_capacity(TIMERS),
                |ids| drop(timers_arm(ids)),
            )
        })
    });
    group.bench_function("actor", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase_with(iterations, through_setup, through_arm, through_teardown)
        })
    });
    group.bench_function("tokio_sleep", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || (paused_runtime(), Vec::with_capacity(TIMERS)),
                |(runtime, sleeps)| sleeps_arm(runtime, sleeps),
            )
        })
    });
    group.bench_function("delay_queue", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || (paused_runtime(), Vec::with_capacity(TIMERS), None),
                |(runtime, keys, queue)| *queue = Some(queue_arm(runtime, keys)),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("cancel");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.throughput(Throughput::Elements(TIMERS as u64 / 2));
    group.bench_function("timers", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || {
                    let mut ids = Vec::with_capacity(TIMERS);
                    (timers_arm(&mut ids), ids)
                },
                |(table, ids)| timers_cancel(table, ids),
            )
        })
    });
    group.bench_function("actor", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase_with(
                iterations,
                || {
                    let mut through = through_setup();
                    through_arm(&mut through);
                    through
                },
                through_cancel,
                through_teardown,
            )
        })
    });
    group.bench_function("tokio_sleep", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || {
                    let runtime = paused_runtime();
                    let mut sleeps = Vec::with_capacity(TIMERS);
                    sleeps_arm(&runtime, &mut sleeps);
                    (runtime, sleeps)
                },
                |(_, sleeps)| sleeps_cancel(sleeps),
            )
        })
    });
    group.bench_function("delay_queue", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || {
                    let runtime = paused_runtime();
                    let mut keys = Vec::with_capacity(TIMERS);
                    let queue = queue_arm(&runtime, &mut keys);
                    (runtime, queue, keys)
                },
                |(_, queue, keys)| queue_cancel(queue, keys),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("fire");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.throughput(Throughput::Elements(TIMERS as u64 / 2));
    group.bench_function("timers", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || {
                    let mut ids = Vec::with_capacity(TIMERS);
                    let mut table = timers_arm(&mut ids);
                    timers_cancel(&mut table, &ids);
                    table
                },
                |table| assert_eq!(timers_fire(table), TIMERS / 2),
            )
        })
    });
    group.bench_function("actor", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase_with(
                iterations,
                || {
                    let mut through = through_setup();
                    through_arm(&mut through);
                    through_cancel(&mut through);
                    through
                },
                through_fire,
                through_teardown,
            )
        })
    });
    group.bench_function("tokio_sleep", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || {
                    let runtime = paused_runtime();
                    let mut sleeps = Vec::with_capacity(TIMERS);
                    sleeps_arm(&runtime, &mut sleeps);
                    sleeps_cancel(&mut sleeps);
                    (runtime, sleeps)
                },
                |(runtime, sleeps)| assert_eq!(sleeps_fire(runtime, sleeps), TIMERS / 2),
            )
        })
    });
    group.bench_function("delay_queue", |bencher| {
        bencher.iter_custom(|iterations| {
            time_phase(
                iterations,
                || {
                    let runtime = paused_runtime();
                    let mut keys = Vec::with_capacity(TIMERS);
                    let mut queue = queue_arm(&runtime, &mut keys);
                    queue_cancel(&mut queue, &keys);
                    (runtime, queue)
                },
                |(runtime, queue)| assert_eq!(queue_fire(runtime, queue), TIMERS / 2),
            )
        })
    });
    group.finish();
}

// criterion's macros generate undocumented functions.
#[allow(missing_docs)]
mod group {
    use super::*;

    criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bytes_per_timer, arm_cancel_fire
    }
}
criterion_main!(group::benches);
