//! Publish throughput of `TelemetryHub` against `tokio::sync::broadcast`, same run,
//! same payload, same method.
//!
//! Method: each iteration publishes `BATCH` events, then drains every subscriber
//! with `try_recv` on the same thread, so both sides pay for publish, per-subscriber
//! clone, and receive. Neither overflows (capacity = `BATCH`). The `overflow` group
//! publishes to subscribers that never read: the hub evicts oldest-per-subscriber,
//! tokio's ring overwrites its oldest slot.
//!
//! Run: `cargo bench --bench telemetry` (add `--no-default-features` for the
//! crossbeam fallback instead of mesocarp).

// `criterion_group!` generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::sync::broadcast;
use vortex_actors::telemetry::{MailboxDepthSampled, TelemetryEvent, TelemetryHub};

const BATCH: usize = 1_024;
const SUBSCRIBERS: [usize; 3] = [1, 4, 16];

fn sample() -> TelemetryEvent {
    MailboxDepthSampled {
        at_micros: 1,
        actor: "gpu-launcher-0".into(),
        depth: 17,
        capacity: 1_024,
    }
    .into()
}

fn publish_and_drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_drain");
    group.throughput(Throughput::Elements(BATCH as u64));
    let event = sample();
    for subscribers in SUBSCRIBERS {
        group.bench_with_input(
            BenchmarkId::new("vortex_hub", subscribers),
            &subscribers,
            |b, &n| {
                let hub = TelemetryHub::new(BATCH);
                let mut subs: Vec<_> = (0..n).map(|_| hub.subscribe()).collect();
                b.iter(|| {
                    for _ in 0..BATCH {
                        hub.publish(event.clone());
                    }
                    for sub in &mut subs {
                        while let Ok(received) = sub.try_recv() {
                            black_box(received);
                        }
                    }
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("tokio_broadcast", subscribers),
            &subscribers,
            |b, &n| {
                let (sender, _) = broadcast::channel(BATCH);
                let mut subs: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
                b.iter(|| {
                    for _ in 0..BATCH {
                        let _ = sender.send(event.clone());
                    }
                    for sub in &mut subs {
                        while let Ok(received) = sub.try_recv() {
                            black_box(received);
                        }
                    }
                });
            },
        );
    }
    group.finish();
}

fn publish_overflow(c: &mut Criterion) {
    let mut group = c.benchmark_group("overflow");
    group.throughput(Throughput::Elements(BATCH as u64));
    let event = sample();
    let n = 4;
    group.bench_function(BenchmarkId::new("vortex_hub", n), |b| {
        let hub = TelemetryHub::new(64);
        let _stuck: Vec<_> = (0..n).map(|_| hub.subscribe()).collect();
        b.iter(|| {
            for _ in 0..BATCH {
                hub.publish(event.clone());
            }
        });
    });
    group.bench_function(BenchmarkId::new("tokio_broadcast", n), |b| {
        let (sender, _) = broadcast::channel(64);
        let _stuck: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
        b.iter(|| {
            for _ in 0..BATCH {
                let _ = sender.send(event.clone());
            }
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = publish_and_drain, publish_overflow
}
criterion_main!(benches);
