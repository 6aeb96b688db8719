//! `Control::Stop`: the graceful stop behaves the same whether it travels through the
//! actor's control lane (the first command an actor type answers, or any type that
//! overrides `on_control`) or is applied by the runtime at once (a type known to keep the
//! default `on_control`). An override still sees every `Stop`.

mod support;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use vortex::prelude::*;

/// Counts what it handles, slowly enough that messages queue behind each other.
struct Slow {
    handled: Arc<AtomicU64>,
    stopped: Arc<AtomicU64>,
}

impl Actor for Slow {
    type Message = u64;
    async fn handle(&mut self, _: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        tokio::time::sleep(Duration::from_micros(200)).await;
        self.handled.fetch_add(1, SeqCst);
        Ok(())
    }
    async fn on_stop(&mut self, _: &mut Context<Self>) {
        self.stopped.fetch_add(1, SeqCst);
    }
}

/// Refuses `Stop` in its own `on_control`; everything else keeps the default.
struct Stubborn;

impl Actor for Stubborn {
    type Message = u64;
    async fn handle(&mut self, _: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
    async fn on_control(
        &mut self,
        command: &Control,
        ctx: &mut Context<Self>,
    ) -> Option<Result<ControlReply, ControlError>> {
        (*command == Control::Stop).then(|| {
            Err(ControlError::Rejected {
                actor: ctx.name().to_owned(),
                reason: "not now".into(),
            })
        })
    }
}

/// Spawns a `Slow` actor, queues `queued` messages, stops it while they wait, and checks
/// the contract: `Stopping`, every queued message handled, `on_stop` once, later mail
/// refused, the name released.
async fn stop_with_queued_mail(rt: &Runtime, name: &str, queued: u64) {
    let handled = Arc::new(AtomicU64::new(0));
    let stopped = Arc::new(AtomicU64::new(0));
    let (h, s) = (Arc::clone(&handled), Arc::clone(&stopped));
    let addr = rt
        .spawn_actor(
            ActorSpec::new(name, move || Slow {
                handled: Arc::clone(&h),
                stopped: Arc::clone(&s),
            })
            .capacity(1024),
        )
        .await
        .unwrap();
    for n in 0..queued {
        addr.tell(n).await.unwrap();
    }
    assert_eq!(
        rt.control(name, Control::Stop).await,
        Ok(ControlReply::Stopping)
    );
    // Refused from the moment the stop was answered, whichever path applied it.
    assert!(matches!(addr.try_tell(99), Err(TrySendError::Closed(99))));
    support::wait_until("stopped and forgotten", Duration::from_secs(10), || {
        rt.status(name).is_err()
    })
    .await;
    assert_eq!(
        handled.load(SeqCst),
        queued,
        "`{name}`: queued mail handled"
    );
    assert_eq!(stopped.load(SeqCst), 1, "`{name}`: on_stop ran once");
    assert_eq!(rt.dead_letters().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_the_queue_through_the_lane_and_in_place_alike() {
    let rt = Runtime::builder().build().unwrap();
    // The first `Slow` to answer a command teaches the runtime that the type keeps the
    // default `on_control` (its stop may take the control lane); later ones are stopped
    // in place. Each must keep the same contract.
    for round in 0..5 {
        stop_with_queued_mail(&rt, &format!("slow-{round}"), 50).await;
    }
    rt.shutdown().await;
}

#[tokio::test]
async fn a_type_that_overrides_on_control_still_decides_its_stop() {
    let rt = Runtime::builder().build().unwrap();
    // Many default-typed actors stopped in place first: that knowledge is per type.
    for n in 0..20 {
        stop_with_queued_mail(&rt, &format!("default-{n}"), 0).await;
    }
    let addr = rt.spawn("stubborn", || Stubborn).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            rt.control("stubborn", Control::Stop).await,
            Err(ControlError::Rejected { .. })
        ));
    }
    // Still running and taking mail.
    assert_eq!(rt.status("stubborn").unwrap().state, ActorState::Running);
    addr.tell(1).await.unwrap();
    support::wait_until("handled", Duration::from_secs(10), || addr.handled() == 1).await;
    rt.shutdown().await;
}

#[tokio::test]
async fn stop_releases_a_paused_actor_to_drain_its_queue() {
    let rt = Runtime::builder().build().unwrap();
    // Make the type known first (the later stop is applied in place).
    stop_with_queued_mail(&rt, "first", 1).await;
    let handled = Arc::new(AtomicU64::new(0));
    let stopped = Arc::new(AtomicU64::new(0));
    let (h, s) = (Arc::clone(&handled), Arc::clone(&stopped));
    let addr = rt
        .spawn("paused", move || Slow {
            handled: Arc::clone(&h),
            stopped: Arc::clone(&s),
        })
        .await
        .unwrap();
    assert_eq!(
        rt.control("paused", Control::Pause).await,
        Ok(ControlReply::Paused)
    );
    for n in 0..10 {
        addr.tell(n).await.unwrap();
    }
    assert_eq!(
        rt.control("paused", Control::Stop).await,
        Ok(ControlReply::Stopping)
    );
    support::wait_until("drained and stopped", Duration::from_secs(10), || {
        stopped.load(SeqCst) == 1
    })
    .await;
    assert_eq!(handled.load(SeqCst), 10);
    rt.shutdown().await;
}
