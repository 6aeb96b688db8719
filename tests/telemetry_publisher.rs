//! The telemetry publisher actor: one publisher, three subscribers of which one never
//! reads; the other two get every event in order; the stuck one's drop counter is exact.
//! And the runtime sampler publishes restarts and dead letters as typed events.

mod support;

use std::time::Duration;

use vortex::actors::telemetry::{
    ActorStarted, MetricsSink, Registry, RuntimeSampler, TelemetryEvent, TelemetryPublisher,
};
use vortex::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_never_blocks_the_publisher_or_the_others() {
    let rt = Runtime::builder().build().unwrap();
    let capacity = 64;
    let publisher = TelemetryPublisher::spawn(&rt, "telemetry", capacity)
        .await
        .unwrap();
    // Readers with room for everything (they must not lose any); the stuck one keeps 64.
    let mut readers: Vec<_> = (0..2)
        .map(|_| publisher.subscribe_with_capacity(5_000))
        .collect();
    let stuck = publisher.subscribe();
    let total = 5_000u64;
    let consumers: Vec<_> = readers
        .drain(..)
        .map(|mut subscription| {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while (seen.len() as u64) < total {
                    match subscription.recv().await {
                        Some(TelemetryEvent::ActorStarted(event)) => seen.push(event.at_micros),
                        Some(_) => {}
                        None => break,
                    }
                }
                (seen, subscription.dropped())
            })
        })
        .collect();
    for n in 0..total {
        let event = TelemetryEvent::from(ActorStarted {
            at_micros: n,
            actor: "x".into(),
        });
        publisher.publish(event).await.unwrap();
    }
    for consumer in consumers {
        let (seen, dropped) = tokio::time::timeout(Duration::from_secs(30), consumer)
            .await
            .expect("readers keep up")
            .unwrap();
        assert_eq!(dropped, 0);
        assert_eq!(
            seen,
            (0..total).collect::<Vec<_>>(),
            "every event, in order"
        );
    }
    support::wait_until("publisher drained", Duration::from_secs(10), || {
        publisher.addr().handled() == total
    })
    .await;
    assert_eq!(
        stuck.dropped(),
        total - capacity as u64,
        "exactly what it missed"
    );
    rt.shutdown().await;
}

struct Failing;

impl Actor for Failing {
    type Message = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        Err("always fails".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_publishes_restarts_and_dead_letters() {
    let rt = Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap();
    let publisher = TelemetryPublisher::spawn(&rt, "telemetry", 1024)
        .await
        .unwrap();
    let mut subscription = publisher.subscribe();
    let failing = rt.spawn("failing", || Failing).await.unwrap();
    failing.tell(()).await.unwrap();
    failing.tell(()).await.unwrap();
    support::wait_until("two restarts", Duration::from_secs(10), || {
        rt.status("failing").map(|s| s.restarts) == Ok(2)
    })
    .await;
    let mut sampler = RuntimeSampler::new(MetricsSink::register(&mut Registry::default()))
        .publish_to(publisher.clone());
    sampler.sample(&rt.observer());
    let (mut restarts, mut dead) = (0, 0);
    while restarts < 2 || dead < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), subscription.recv())
            .await
            .expect("events arrive")
            .expect("hub open");
        match event {
            TelemetryEvent::ActorRestarted(event) if &*event.actor == "failing" => restarts += 1,
            TelemetryEvent::DeadLettered(event) if &*event.actor == "failing" => dead += 1,
            _ => {}
        }
    }
    assert_eq!((restarts, dead), (2, 2));
    rt.shutdown().await;
}
