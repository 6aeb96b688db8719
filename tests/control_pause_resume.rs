//! Pause with a full mailbox: producers block, `Status` still answers, `Resume` drains all.

mod support;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use vortex::prelude::*;

struct Sink(Arc<AtomicU64>);

impl Actor for Sink {
    type Message = u64;
    async fn handle(&mut self, n: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0.fetch_add(n, SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_a_full_mailbox_and_resume_drains_it() {
    let rt = Runtime::builder().build().unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    let s = sum.clone();
    let sink = rt
        .spawn_actor(
            ActorSpec::new("sink", move || Sink(s.clone()))
                .capacity(64)
                .batch_size(8),
        )
        .await
        .unwrap();
    assert_eq!(
        rt.control("sink", Control::Pause).await.unwrap(),
        ControlReply::Paused
    );

    // Fill the mailbox; the next try_tell hands the message back.
    for n in 1..=64 {
        sink.try_tell(n).unwrap();
    }
    match sink.try_tell(65) {
        Err(TrySendError::Full(message)) => assert_eq!(message, 65),
        other => panic!("expected Full, got {other:?}"),
    }
    // A blocked producer: its tell waits while the actor is paused.
    let producer = {
        let sink = sink.clone();
        tokio::spawn(async move {
            for n in 65..=100 {
                sink.tell(n).await.unwrap();
            }
        })
    };
    // Status answers promptly although the data mailbox is full.
    let status = tokio::time::timeout(Duration::from_secs(5), rt.control("sink", Control::Status))
        .await
        .expect("status must answer while the mailbox is full")
        .unwrap();
    let ControlReply::Status(status) = status else {
        panic!("status expected")
    };
    assert_eq!(status.state, ActorState::Paused);
    assert_eq!(status.mailbox_depth, 64);
    assert_eq!(status.mailbox_capacity, 64);
    assert_eq!(status.handled, 0);
    assert_eq!(sum.load(SeqCst), 0, "nothing handled while paused");
    assert!(
        !producer.is_finished(),
        "the producer must be blocked by back-pressure"
    );

    assert_eq!(
        rt.control("sink", Control::Resume).await.unwrap(),
        ControlReply::Resumed
    );
    tokio::time::timeout(Duration::from_secs(10), producer)
        .await
        .unwrap()
        .unwrap();
    support::wait_until("all 100 handled", Duration::from_secs(10), || {
        sink.handled() == 100
    })
    .await;
    assert_eq!(sum.load(SeqCst), (1..=100).sum::<u64>());
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_takes_effect_within_one_batch_under_load() {
    let rt = Runtime::builder().build().unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    let s = sum.clone();
    let sink = rt
        .spawn_actor(
            ActorSpec::new("busy", move || Sink(s.clone()))
                .capacity(4096)
                .batch_size(16),
        )
        .await
        .unwrap();
    for _ in 0..4096 {
        sink.tell(1).await.unwrap();
    }
    rt.control("busy", Control::Pause).await.unwrap();
    let at_pause = sink.handled();
    // Once the pause is answered the cell finishes at most the batch it was in.
    support::wait_until("in-flight batch done", Duration::from_secs(5), || {
        sink.handled() <= at_pause + 16
    })
    .await;
    let ControlReply::Status(status) = rt.control("busy", Control::Status).await.unwrap() else {
        panic!()
    };
    assert!(
        status.handled <= at_pause + 16,
        "{} > {} + 16",
        status.handled,
        at_pause
    );
    assert_eq!(status.handled + status.mailbox_depth, 4096);
    rt.control("busy", Control::Resume).await.unwrap();
    support::wait_until("drained", Duration::from_secs(10), || {
        sink.handled() == 4096
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn stop_is_graceful_and_closes_the_mailbox() {
    let rt = Runtime::builder().build().unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    let s = sum.clone();
    let sink = rt.spawn("stopper", move || Sink(s.clone())).await.unwrap();
    rt.control("stopper", Control::Pause).await.unwrap();
    for n in 0..10 {
        sink.tell(n).await.unwrap();
    }
    assert_eq!(
        rt.control("stopper", Control::Stop).await.unwrap(),
        ControlReply::Stopping
    );
    assert!(matches!(sink.try_tell(99), Err(TrySendError::Closed(99))));
    // Stopped for good: the name is released (and can be reused).
    support::wait_until("stopped and forgotten", Duration::from_secs(5), || {
        rt.status("stopper") == Err(ControlError::UnknownActor("stopper".into()))
    })
    .await;
    assert!(rt.actors().iter().all(|info| info.name != "stopper"));
    assert_eq!(
        sum.load(SeqCst),
        45,
        "queued messages are handled before stopping"
    );
    let again = Arc::new(AtomicU64::new(0));
    let a = again.clone();
    rt.spawn("stopper", move || Sink(a.clone())).await.unwrap();
    assert_eq!(rt.shutdown().await.total_undelivered(), 0);
}

#[tokio::test]
async fn scale_on_a_single_actor_is_a_typed_error() {
    let rt = Runtime::builder().build().unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    rt.spawn("single", move || Sink(sum.clone())).await.unwrap();
    let error = rt
        .control("single", Control::Scale { n: 3 })
        .await
        .unwrap_err();
    assert!(matches!(error, ControlError::Unsupported { ref actor, .. } if actor == "single"));
    rt.shutdown().await;
}
