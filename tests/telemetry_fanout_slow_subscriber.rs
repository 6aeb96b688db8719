//! One publisher, three subscribers, one of which never reads: the two readers get
//! every event in order, and the stuck one loses exactly what did not fit, oldest first.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::timeout;
use vortex::actors::telemetry::{BatchLaunched, Subscription, TelemetryEvent, TelemetryHub};

const EVENTS: u64 = 100_000;
const CAPACITY: usize = 1_024;
/// The publisher runs at most this far ahead of the slowest *reading* subscriber,
/// so the readers never overflow; the stuck subscriber is not waited for.
const WINDOW: u64 = CAPACITY as u64 / 2;
const DEADLINE: Duration = Duration::from_secs(30);

fn event(batch_id: u64) -> TelemetryEvent {
    BatchLaunched {
        at_micros: batch_id,
        batch_id,
        device: 0,
        items: 1,
        bytes: 8,
    }
    .into()
}

fn batch_id(event: &TelemetryEvent) -> u64 {
    match event {
        TelemetryEvent::BatchLaunched(launched) => launched.batch_id,
        other => panic!("unexpected event {other:?}"),
    }
}

/// Reads until the hub closes, checking order, and reports progress.
async fn read_all(mut subscription: Subscription, progress: watch::Sender<u64>) -> (u64, u64) {
    let mut expected = 0;
    while let Some(event) = subscription.recv().await {
        assert_eq!(batch_id(&event), expected, "out of order or missing");
        expected += 1;
        progress.send_replace(expected);
    }
    (expected, subscription.dropped())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_subscriber_costs_only_itself() {
    let hub = TelemetryHub::new(CAPACITY);
    let mut stuck = hub.subscribe();
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..2 {
        let (sender, receiver) = watch::channel(0);
        readers.push(tokio::spawn(read_all(hub.subscribe(), sender)));
        progress.push(receiver);
    }
    assert_eq!(hub.subscriber_count(), 3);

    for id in 0..EVENTS {
        if id % WINDOW == 0 {
            // Test-side flow control toward the readers only; `publish` itself never waits.
            for receiver in &mut progress {
                let caught_up = receiver.wait_for(|read| id - *read <= WINDOW);
                timeout(DEADLINE, caught_up)
                    .await
                    .expect("reader fell behind")
                    .expect("reader alive");
            }
        }
        assert_eq!(hub.publish(event(id)), 3);
    }
    drop(hub);

    for reader in readers {
        let (received, dropped) = timeout(DEADLINE, reader)
            .await
            .expect("reader finished")
            .expect("reader task");
        assert_eq!(received, EVENTS);
        assert_eq!(dropped, 0);
    }
    assert_eq!(stuck.dropped(), EVENTS - CAPACITY as u64);
    // What is left is the newest CAPACITY events, in order: the oldest were dropped.
    let mut expected = EVENTS - CAPACITY as u64;
    while let Some(event) = timeout(DEADLINE, stuck.recv()).await.expect("drain") {
        assert_eq!(batch_id(&event), expected);
        expected += 1;
    }
    assert_eq!(expected, EVENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_lose_nothing_for_a_large_subscriber() {
    const PER_PUBLISHER: u64 = 20_000;
    let hub = TelemetryHub::<u64>::new(8);
    let mut everything = hub.subscribe_with_capacity(4 * PER_PUBLISHER as usize);
    let mut tiny = hub.subscribe_with_capacity(1);
    let publishers: Vec<_> = (0..4u64)
        .map(|p| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for n in 0..PER_PUBLISHER {
                    hub.publish(p * PER_PUBLISHER + n);
                }
            })
        })
        .collect();
    drop(hub);
    for publisher in publishers {
        publisher.join().expect("publisher thread");
    }
    let mut last_seen = [None::<u64>; 4];
    let mut received = 0;
    while let Some(value) = timeout(DEADLINE, everything.recv()).await.expect("drain") {
        let publisher = (value / PER_PUBLISHER) as usize;
        // Per publisher, order is kept.
        assert!(last_seen[publisher].is_none_or(|last| last < value));
        last_seen[publisher] = Some(value);
        received += 1;
    }
    assert_eq!(received, 4 * PER_PUBLISHER);
    assert_eq!(everything.dropped(), 0);
    // The tiny subscriber keeps one event and counts every eviction exactly.
    assert!(tiny.try_recv().is_ok());
    assert_eq!(tiny.dropped(), 4 * PER_PUBLISHER - 1);
}
