//! Actor-core overhead of `vortex-runtime` against raw `tokio::sync::mpsc` (+ `oneshot`)
//! and plain kameo 0.22 actors, all in the same run, on the same tokio runtime
//! (multi-thread, 2 workers), with the same payloads.
//!
//! 1. `tell_1to1`: one producer task tells `N` `u64`s to one consumer that counts them;
//!    an iteration ends when the consumer has handled all `N` (every consumer signals a
//!    `tokio::sync::Notify` when its count reaches `N`). Mailbox capacity 1024 everywhere
//!    (vortex's default; kameo and tokio are given `bounded(1024)` / `channel(1024)`).
//! 2. `fan_in_4to1`: the same with 4 producer tasks × `N / 4` each.
//! 3. `ask_roundtrip`: sequential request/reply pings from one task (vortex `Addr::ask`,
//!    kameo `ActorRef::ask`, tokio `mpsc` + `oneshot`). Criterion reports the mean; a
//!    manual loop of `ASKS` timed asks per variant prints p50/p99 as well.
//! 4. `spawn_stop`: spawn an actor, stop it, wait until it has stopped, sequentially.
//!    vortex: `Runtime::spawn` (unique name; names stay registered after a stop), then
//!    `Control::Stop` by name, then wait for the actor's `on_stop` hook to signal a
//!    `Notify` (the cell marks the actor `Stopped` just before that hook runs). kameo:
//!    `spawn` + `stop_gracefully` + `wait_for_shutdown_result` (which, like the vortex
//!    side, waits for the stop hook). tokio: spawn a task draining a
//!    `channel(64)`, drop the sender, await the `JoinHandle`. vortex gets a fresh runtime
//!    every `CHUNK` pairs (untimed), because stopped actors stay registered; a second
//!    table shows how the cost grows with the number of actors stopped before.
//! 5. Bytes per idle actor: live heap bytes (counting global allocator) after spawning
//!    `IDLE` idle actors minus before, divided by `IDLE`; vortex with the default mailbox
//!    (1024) and with `.capacity(64)` (kameo's default `bounded(64)`), kameo's default
//!    `spawn`, and a tokio `channel(64)` + task. Also what a vortex actor still holds after
//!    `Control::Stop`.
//!
//! A final table prints every metric with the ratios vortex/kameo and vortex/tokio
//! (throughputs and rates: > 1 means vortex is faster; latencies and bytes: > 1 means
//! vortex costs more). Its time figures are medians of the per-iteration times of every
//! criterion sample this run took.
//!
//! The counting allocator (`stats_alloc`, a few atomic adds per allocation) is installed
//! for the whole binary, so every variant pays it on each allocation; kameo allocates per
//! message (boxed messages) where vortex's and tokio's `tell` do not, so kameo's figures
//! are slightly pessimistic.
//!
//! Run: `cargo bench -p vortex-runtime --bench actor_core` (about 4 minutes);
//! `VORTEX_BENCH_ONLY=tell,ask` runs only some parts (`tell`, `ask`, `spawn`, `memory`).

use std::{
    alloc::System,
    collections::BTreeMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput};
use kameo::actor::{ActorRef, Spawn};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio::sync::{mpsc, oneshot, Notify};
use vortex_runtime::{
    messages::{ActorState, Control, ControlError, ControlReply},
    Actor, ActorError, ActorSpec, Addr, Context, Reply, Runtime,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Messages per throughput iteration (2 M tells; the fan-in is 4 × 500 k).
const N: u64 = 2_000_000;
/// Producers of the fan-in bench.
const PRODUCERS: u64 = 4;
/// Mailbox capacity for the throughput benches, all variants.
const CAPACITY: usize = 1024;
/// Timed asks per round and variant for the percentile table.
const ASKS: usize = 100_000;
/// Rounds of `ASKS` asks per variant; the table reports the median round.
const ROUNDS: usize = 5;
/// Idle actors spawned per variant for the memory table.
const IDLE: usize = 10_000;
/// Spawn+stop pairs per vortex runtime in the `spawn_stop` bench.
const CHUNK: u64 = 1_000;

// ---------------------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------------------

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn vortex_runtime(tokio: &tokio::runtime::Runtime) -> Runtime {
    Runtime::builder()
        .handle(tokio.handle().clone())
        .build()
        .expect("vortex runtime")
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn live_bytes() -> i64 {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

/// Per-iteration times (ns) of every criterion sample, by metric and variant.
type Samples = BTreeMap<(&'static str, &'static str), Vec<f64>>;
static SAMPLES: Mutex<Samples> = Mutex::new(BTreeMap::new());
/// Directly measured figures (percentiles, bytes), by metric and variant.
static FIGURES: Mutex<BTreeMap<(&'static str, &'static str), f64>> = Mutex::new(BTreeMap::new());

fn record(metric: &'static str, variant: &'static str, elapsed: Duration, iters: u64) {
    let per_iter = elapsed.as_nanos() as f64 / iters.max(1) as f64;
    SAMPLES
        .lock()
        .unwrap()
        .entry((metric, variant))
        .or_default()
        .push(per_iter);
}

fn figure(metric: &'static str, variant: &'static str, value: f64) {
    FIGURES.lock().unwrap().insert((metric, variant), value);
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[sorted.len() / 2])
}

/// Runs `body` as a task on the worker pool (so the criterion thread, which only blocks on
/// it, is never the producer or the asker) and returns what it measured.
async fn on_worker<F>(body: F) -> Duration
where
    F: Future<Output = Duration> + Send + 'static,
{
    tokio::spawn(body).await.expect("bench task panicked")
}

// ---------------------------------------------------------------------------------------
// Actors
// ---------------------------------------------------------------------------------------

/// Counts messages; signals `done` every `target` messages.
struct Counter {
    seen: u64,
    target: u64,
    done: Arc<Notify>,
}

impl Counter {
    #[inline]
    fn count(&mut self) {
        self.seen += 1;
        if self.seen == self.target {
            self.seen = 0;
            self.done.notify_one();
        }
    }
}

impl Actor for Counter {
    type Message = u64;
    async fn handle(&mut self, message: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        std::hint::black_box(message);
        self.count();
        Ok(())
    }
}

#[derive(kameo::Actor)]
struct KameoCounter(Counter);

impl kameo::message::Message<u64> for KameoCounter {
    type Reply = ();
    async fn handle(&mut self, message: u64, _: &mut kameo::message::Context<Self, ()>) {
        std::hint::black_box(message);
        self.0.count();
    }
}

/// Answers a ping with the same number.
struct Echo;

impl Actor for Echo {
    type Message = (u64, Reply<u64>);
    async fn handle(
        &mut self,
        (n, reply): (u64, Reply<u64>),
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        reply.send(n);
        Ok(())
    }
}

#[derive(kameo::Actor)]
struct KameoEcho;

impl kameo::message::Message<u64> for KameoEcho {
    type Reply = u64;
    async fn handle(&mut self, n: u64, _: &mut kameo::message::Context<Self, u64>) -> u64 {
        n
    }
}

/// An idle actor that says when it has stopped.
struct Idle {
    stopped: Option<Arc<Notify>>,
}

impl Actor for Idle {
    type Message = u64;
    async fn handle(&mut self, message: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        std::hint::black_box(message);
        Ok(())
    }
    async fn on_stop(&mut self, _: &mut Context<Self>) {
        if let Some(stopped) = &self.stopped {
            stopped.notify_one();
        }
    }
}

#[derive(kameo::Actor)]
struct KameoIdle;

impl kameo::message::Message<u64> for KameoIdle {
    type Reply = ();
    async fn handle(&mut self, message: u64, _: &mut kameo::message::Context<Self, ()>) {
        std::hint::black_box(message);
    }
}

// ---------------------------------------------------------------------------------------
// 1 + 2: tell throughput
// ---------------------------------------------------------------------------------------

/// One way to push `N` messages into a counting consumer.
#[derive(Clone)]
enum Sink {
    Vortex(Addr<Counter>),
    Kameo(ActorRef<KameoCounter>),
    Tokio(mpsc::Sender<u64>),
}

impl Sink {
    async fn send_all(self, count: u64) {
        match self {
            Sink::Vortex(addr) => {
                for i in 0..count {
                    addr.tell(i).await.expect("vortex tell");
                }
            }
            Sink::Kameo(actor) => {
                for i in 0..count {
                    actor.tell(i).await.expect("kameo tell");
                }
            }
            Sink::Tokio(sender) => {
                for i in 0..count {
                    sender.send(i).await.expect("mpsc send");
                }
            }
        }
    }
}

fn counting_sinks(
    tokio: &tokio::runtime::Runtime,
    vortex: &Runtime,
) -> Vec<(&'static str, Sink, Arc<Notify>)> {
    let notify = || Arc::new(Notify::new());
    let (v_done, k_done, t_done) = (notify(), notify(), notify());
    let addr = {
        let done = Arc::clone(&v_done);
        let spec = ActorSpec::new(unique("counter"), move || Counter {
            seen: 0,
            target: N,
            done: Arc::clone(&done),
        })
        .capacity(CAPACITY);
        tokio
            .block_on(vortex.spawn_actor(spec))
            .expect("spawn counter")
    };
    let actor = {
        let _entered = tokio.enter();
        KameoCounter::spawn_with_mailbox(
            KameoCounter(Counter {
                seen: 0,
                target: N,
                done: Arc::clone(&k_done),
            }),
            kameo::mailbox::bounded(CAPACITY),
        )
    };
    let (sender, mut receiver) = mpsc::channel::<u64>(CAPACITY);
    let mut counter = Counter {
        seen: 0,
        target: N,
        done: Arc::clone(&t_done),
    };
    tokio.spawn(async move {
        while let Some(message) = receiver.recv().await {
            std::hint::black_box(message);
            counter.count();
        }
    });
    vec![
        ("vortex", Sink::Vortex(addr), v_done),
        ("kameo", Sink::Kameo(actor), k_done),
        ("tokio", Sink::Tokio(sender), t_done),
    ]
}

fn tell_throughput(c: &mut Criterion, tokio: &tokio::runtime::Runtime) {
    let vortex = vortex_runtime(tokio);
    let sinks = counting_sinks(tokio, &vortex);
    for (metric, producers) in [("tell_1to1", 1), ("fan_in_4to1", PRODUCERS)] {
        let mut group = c.benchmark_group(metric);
        group.throughput(Throughput::Elements(N));
        for (variant, sink, done) in &sinks {
            group.bench_function(BenchmarkId::from_parameter(variant), |b| {
                b.to_async(tokio).iter_custom(|iters| {
                    let (sink, done) = (sink.clone(), Arc::clone(done));
                    let variant: &'static str = variant;
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let tasks: Vec<_> = (0..producers)
                                .map(|_| tokio::spawn(sink.clone().send_all(N / producers)))
                                .collect();
                            done.notified().await;
                            for task in tasks {
                                task.await.expect("producer");
                            }
                        }
                        let elapsed = start.elapsed();
                        record(metric, variant, elapsed, iters);
                        elapsed
                    }
                });
            });
        }
        group.finish();
    }
    drop(sinks);
    tokio.block_on(vortex.shutdown());
}

// ---------------------------------------------------------------------------------------
// 3: ask round-trip
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
enum Pinger {
    Vortex(Addr<Echo>),
    Kameo(ActorRef<KameoEcho>),
    Tokio(mpsc::Sender<(u64, oneshot::Sender<u64>)>),
}

impl Pinger {
    #[inline]
    async fn ping(&self, n: u64) -> u64 {
        match self {
            Pinger::Vortex(addr) => addr.ask(|reply| (n, reply)).await.expect("vortex ask"),
            Pinger::Kameo(actor) => actor.ask(n).await.expect("kameo ask"),
            Pinger::Tokio(sender) => {
                let (reply, answer) = oneshot::channel();
                sender.send((n, reply)).await.expect("mpsc send");
                answer.await.expect("oneshot")
            }
        }
    }
}

fn pingers(tokio: &tokio::runtime::Runtime, vortex: &Runtime) -> Vec<(&'static str, Pinger)> {
    let addr = tokio
        .block_on(vortex.spawn(unique("echo"), || Echo))
        .expect("spawn echo");
    let actor = {
        let _entered = tokio.enter();
        KameoEcho::spawn(KameoEcho)
    };
    let (sender, mut receiver) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(CAPACITY);
    tokio.spawn(async move {
        while let Some((n, reply)) = receiver.recv().await {
            let _ = reply.send(n);
        }
    });
    vec![
        ("vortex", Pinger::Vortex(addr)),
        ("kameo", Pinger::Kameo(actor)),
        ("tokio", Pinger::Tokio(sender)),
    ]
}

fn ask_roundtrip(c: &mut Criterion, tokio: &tokio::runtime::Runtime) {
    let vortex = vortex_runtime(tokio);
    let pingers = pingers(tokio, &vortex);
    let mut group = c.benchmark_group("ask_roundtrip");
    group.throughput(Throughput::Elements(1));
    for (variant, pinger) in &pingers {
        group.bench_function(BenchmarkId::from_parameter(variant), |b| {
            b.to_async(tokio).iter_custom(|iters| {
                let pinger = pinger.clone();
                let variant: &'static str = variant;
                async move {
                    let elapsed = on_worker(async move {
                        let start = Instant::now();
                        for i in 0..iters {
                            std::hint::black_box(pinger.ping(i).await);
                        }
                        start.elapsed()
                    })
                    .await;
                    record("ask_roundtrip", variant, elapsed, iters);
                    elapsed
                }
            });
        });
    }
    group.finish();

    println!(
        "\nask round-trip latency, {ASKS} sequential asks per round, median of {ROUNDS} rounds (ns)"
    );
    println!(
        "{:<8} {:>8} {:>8} {:>8} {:>8}",
        "variant", "p50", "p99", "p99.9", "mean"
    );
    // Rounds interleave the variants, so a noisy moment hits all of them alike.
    let mut rounds: BTreeMap<&'static str, Vec<[f64; 4]>> = BTreeMap::new();
    for _ in 0..ROUNDS {
        for &(variant, ref pinger) in &pingers {
            let pinger = pinger.clone();
            let mut times = tokio
                .block_on(tokio.spawn(async move {
                    for i in 0..1_000 {
                        pinger.ping(i).await; // warm-up
                    }
                    let mut times = Vec::with_capacity(ASKS);
                    for i in 0..ASKS as u64 {
                        let start = Instant::now();
                        std::hint::black_box(pinger.ping(i).await);
                        times.push(start.elapsed().as_nanos() as u64);
                    }
                    times
                }))
                .expect("percentile task");
            times.sort_unstable();
            let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
            let mean = times.iter().sum::<u64>() as f64 / times.len() as f64;
            rounds.entry(variant).or_default().push([
                at(0.50) as f64,
                at(0.99) as f64,
                at(0.999) as f64,
                mean,
            ]);
        }
    }
    for (variant, rounds) in &rounds {
        let column = |i: usize| median(&rounds.iter().map(|r| r[i]).collect::<Vec<_>>()).unwrap();
        let (p50, p99, p999, mean) = (column(0), column(1), column(2), column(3));
        println!("{variant:<8} {p50:>8.0} {p99:>8.0} {p999:>8.0} {mean:>8.0}");
        figure("ask_p50", variant, p50);
        figure("ask_p99", variant, p99);
    }
    println!();
    drop(pingers);
    tokio.block_on(vortex.shutdown());
}

// ---------------------------------------------------------------------------------------
// 4: spawn + stop
// ---------------------------------------------------------------------------------------

async fn vortex_spawn_stop(vortex: &Runtime, stopped: &Arc<Notify>) -> String {
    let name = unique("idle");
    let signal = Arc::clone(stopped);
    let addr = vortex
        .spawn(name.clone(), move || Idle {
            stopped: Some(Arc::clone(&signal)),
        })
        .await
        .expect("spawn idle");
    let reply = vortex.control(&name, Control::Stop).await.expect("stop");
    debug_assert_eq!(reply, ControlReply::Stopping);
    stopped.notified().await;
    debug_assert!(addr.is_closed());
    name
}

fn spawn_stop(c: &mut Criterion, tokio: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("spawn_stop");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::from_parameter("vortex"), |b| {
        b.to_async(tokio).iter_custom(|iters| async move {
            // A fresh runtime every `CHUNK` pairs (built and shut down outside the timed
            // part), so every sample measures the same setting; the growth table below
            // checks that the cost no longer grows with the number of stopped actors.
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(CHUNK);
                left -= chunk;
                let vortex = Arc::new(vortex_runtime(tokio));
                let stopped = Arc::new(Notify::new());
                let (rt, signal) = (Arc::clone(&vortex), Arc::clone(&stopped));
                elapsed += on_worker(async move {
                    let start = Instant::now();
                    let mut last = String::new();
                    for _ in 0..chunk {
                        last = vortex_spawn_stop(&rt, &signal).await;
                    }
                    let elapsed = start.elapsed();
                    // Stopped for good: it shows `Stopped` until its supervisor forgets it
                    // and releases the name.
                    match rt.status(&last) {
                        Ok(status) => {
                            assert_eq!(status.state, ActorState::Stopped, "`{last}` did not stop")
                        }
                        Err(error) => {
                            assert_eq!(error, ControlError::UnknownActor(last.clone()))
                        }
                    }
                    elapsed
                })
                .await;
                vortex.shutdown().await;
            }
            record("spawn_stop", "vortex", elapsed, iters);
            elapsed
        });
    });
    group.bench_function(BenchmarkId::from_parameter("kameo"), |b| {
        b.to_async(tokio).iter_custom(|iters| async move {
            let elapsed = on_worker(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let actor = KameoIdle::spawn(KameoIdle);
                    actor.stop_gracefully().await.expect("stop_gracefully");
                    let _ = actor.wait_for_shutdown_result().await;
                }
                start.elapsed()
            })
            .await;
            record("spawn_stop", "kameo", elapsed, iters);
            elapsed
        });
    });
    group.bench_function(BenchmarkId::from_parameter("tokio"), |b| {
        b.to_async(tokio).iter_custom(|iters| async move {
            let elapsed = on_worker(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let (sender, mut receiver) = mpsc::channel::<u64>(64);
                    let task = tokio::spawn(async move {
                        while let Some(message) = receiver.recv().await {
                            std::hint::black_box(message);
                        }
                    });
                    drop(sender);
                    task.await.expect("task");
                }
                start.elapsed()
            })
            .await;
            record("spawn_stop", "tokio", elapsed, iters);
            elapsed
        });
    });
    group.finish();

    // Does the cost grow with the number of actors spawned (and stopped) before?
    let vortex = Arc::new(vortex_runtime(tokio));
    let stopped = Arc::new(Notify::new());
    println!("\nvortex spawn+stop cost vs. actors already spawned and stopped in the runtime");
    println!("{:>10} {:>14}", "before", "us per pair");
    let mut done = 0;
    for mark in [0usize, 5_000, 20_000] {
        let (rt, signal) = (Arc::clone(&vortex), Arc::clone(&stopped));
        let fill = mark - done;
        let per_pair = tokio
            .block_on(tokio.spawn(async move {
                for _ in 0..fill {
                    vortex_spawn_stop(&rt, &signal).await;
                }
                let start = Instant::now();
                for _ in 0..1_000 {
                    vortex_spawn_stop(&rt, &signal).await;
                }
                start.elapsed().as_secs_f64() * 1e6 / 1_000.0
            }))
            .expect("growth task");
        done = mark + 1_000;
        println!("{mark:>10} {per_pair:>14.2}");
    }
    println!();
    tokio.block_on(vortex.shutdown());
}

// ---------------------------------------------------------------------------------------
// 5: bytes per idle actor
// ---------------------------------------------------------------------------------------

/// Lets spawned tasks finish starting and allocator churn settle.
fn settle(tokio: &tokio::runtime::Runtime) {
    tokio.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
}

fn bytes_per_actor(before: i64, after: i64) -> f64 {
    (after - before) as f64 / IDLE as f64
}

fn idle_memory(tokio: &tokio::runtime::Runtime) {
    println!("bytes per idle actor ({IDLE} spawned, live heap bytes after minus before)");
    println!(
        "{:<14} {:>12} {:>22}",
        "variant", "bytes/actor", "after Stop (retained)"
    );

    for (variant, capacity) in [("vortex", None), ("vortex_cap64", Some(64))] {
        let vortex = vortex_runtime(tokio);
        settle(tokio);
        let before = live_bytes();
        let addrs: Vec<Addr<Idle>> = tokio.block_on(async {
            let mut addrs = Vec::with_capacity(IDLE);
            for _ in 0..IDLE {
                let mut spec = ActorSpec::new(unique("mem"), || Idle { stopped: None });
                if let Some(capacity) = capacity {
                    spec = spec.capacity(capacity);
                }
                let addr = vortex.spawn_actor(spec).await.expect("spawn idle");
                // "Has handled one message and is idle" (the definition).
                addr.tell(1).await.expect("tell idle");
                addrs.push(addr);
            }
            addrs
        });
        settle(tokio);
        let live = bytes_per_actor(before, live_bytes());
        tokio.block_on(async {
            for addr in &addrs {
                vortex
                    .control(addr.name(), Control::Stop)
                    .await
                    .expect("stop");
            }
        });
        drop(addrs);
        settle(tokio);
        let retained = bytes_per_actor(before, live_bytes());
        println!("{variant:<14} {live:>12.0} {retained:>22.0}");
        figure("bytes_idle", variant, live);
        tokio.block_on(vortex.shutdown());
    }

    settle(tokio);
    let before = live_bytes();
    let actors: Vec<ActorRef<KameoIdle>> = tokio.block_on(async {
        let mut actors = Vec::with_capacity(IDLE);
        for _ in 0..IDLE {
            let actor = KameoIdle::spawn(KameoIdle);
            actor.wait_for_startup().await;
            actor.tell(1u64).await.expect("tell kameo idle");
            actors.push(actor);
        }
        actors
    });
    settle(tokio);
    let live = bytes_per_actor(before, live_bytes());
    println!("{:<14} {live:>12.0} {:>22}", "kameo", "-");
    figure("bytes_idle", "kameo", live);
    tokio.block_on(async {
        for actor in &actors {
            let _ = actor.stop_gracefully().await;
        }
        for actor in &actors {
            actor.wait_for_shutdown().await;
        }
    });
    drop(actors);

    settle(tokio);
    let before = live_bytes();
    let channels: Vec<(mpsc::Sender<u64>, tokio::task::JoinHandle<()>)> = (0..IDLE)
        .map(|_| {
            let (sender, mut receiver) = mpsc::channel::<u64>(64);
            let task = tokio.spawn(async move {
                while let Some(message) = receiver.recv().await {
                    std::hint::black_box(message);
                }
            });
            sender.try_send(1).expect("send tokio idle");
            (sender, task)
        })
        .collect();
    settle(tokio);
    let live = bytes_per_actor(before, live_bytes());
    println!("{:<14} {live:>12.0} {:>22}", "tokio", "-");
    figure("bytes_idle", "tokio", live);
    tokio.block_on(async {
        for (sender, task) in channels {
            drop(sender);
            task.await.expect("task");
        }
    });
    println!();
}

// ---------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------

fn summary() {
    let samples = SAMPLES.lock().unwrap();
    let figures = FIGURES.lock().unwrap();
    let timed = |metric: &'static str, variant: &'static str| {
        samples
            .get(&(metric, variant))
            .and_then(|values| median(values))
    };
    // (label, unit, value per variant)
    type Getter<'a> = Box<dyn Fn(&'static str) -> Option<f64> + 'a>;
    let rows: Vec<(&str, &str, Getter<'_>)> = vec![
        (
            "tell 1->1",
            "Melem/s",
            Box::new(|v| timed("tell_1to1", v).map(|ns| N as f64 / ns * 1e3)),
        ),
        (
            "fan-in 4->1",
            "Melem/s",
            Box::new(|v| timed("fan_in_4to1", v).map(|ns| N as f64 / ns * 1e3)),
        ),
        (
            "ask mean",
            "us",
            Box::new(|v| timed("ask_roundtrip", v).map(|ns| ns / 1e3)),
        ),
        (
            "ask p50",
            "us",
            Box::new(|v| figures.get(&("ask_p50", v)).map(|ns| ns / 1e3)),
        ),
        (
            "ask p99",
            "us",
            Box::new(|v| figures.get(&("ask_p99", v)).map(|ns| ns / 1e3)),
        ),
        (
            "spawn+stop",
            "k/s",
            Box::new(|v| timed("spawn_stop", v).map(|ns| 1e6 / ns)),
        ),
        (
            "bytes/idle actor",
            "B",
            Box::new(|v| figures.get(&("bytes_idle", v)).copied()),
        ),
        (
            "bytes/idle (cap 64)",
            "B",
            Box::new(|v| {
                let v = if v == "vortex" { "vortex_cap64" } else { v };
                figures.get(&("bytes_idle", v)).copied()
            }),
        ),
    ];
    let show = |value: Option<f64>| value.map_or("-".to_string(), |x| format!("{x:.2}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "-".to_string(),
    };
    println!("summary (ratio > 1: vortex faster for throughput/rate, costlier for latency/bytes)");
    println!(
        "{:<20} {:>8} {:>12} {:>12} {:>12} {:>13} {:>13}",
        "metric", "unit", "vortex", "kameo", "tokio", "vortex/kameo", "vortex/tokio"
    );
    for (label, unit, get) in &rows {
        let (v, k, t) = (get("vortex"), get("kameo"), get("tokio"));
        println!(
            "{label:<20} {unit:>8} {:>12} {:>12} {:>12} {:>13} {:>13}",
            show(v),
            show(k),
            show(t),
            ratio(v, k),
            ratio(v, t)
        );
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let tokio = tokio_runtime();
    // `VORTEX_BENCH_ONLY=tell,ask` runs some parts only (tell, ask, spawn, memory).
    let only = std::env::var("VORTEX_BENCH_ONLY").ok();
    let wanted = |part: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|p| p == part))
    };
    if wanted("tell") {
        tell_throughput(&mut criterion, &tokio);
    }
    if wanted("ask") {
        ask_roundtrip(&mut criterion, &tokio);
    }
    if wanted("spawn") {
        spawn_stop(&mut criterion, &tokio);
    }
    if wanted("memory") {
        idle_memory(&tokio);
    }
    summary();
    criterion.final_summary();
}
