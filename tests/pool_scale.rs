//! Pools: one shared mailbox, live `Scale` up and down under load, nothing lost.

mod support;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use vortex::prelude::*;

struct Collector(Arc<Mutex<Vec<u64>>>);

impl Actor for Collector {
    type Message = u64;
    async fn handle(&mut self, id: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0.lock().unwrap().push(id);
        tokio::task::yield_now().await; // let other workers interleave
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_two_to_eight_to_one_under_load_loses_nothing() {
    let rt = Runtime::builder().build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let pool = rt
        .spawn_pool_with(PoolSpec::new("collectors", 2, move || Collector(s.clone())).capacity(512))
        .await
        .unwrap();
    let total = 60_000u64;
    let producer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            for id in 0..total {
                pool.tell(id).await.unwrap();
            }
        })
    };
    let scale = |n| rt.control("collectors", Control::Scale { n });
    support::wait_until("some progress", Duration::from_secs(10), || {
        pool.handled() > 5_000
    })
    .await;
    assert_eq!(
        scale(8).await.unwrap(),
        ControlReply::Scaled { from: 2, to: 8 }
    );
    let ControlReply::Status(status) = rt.control("collectors", Control::Status).await.unwrap()
    else {
        panic!()
    };
    assert_eq!((status.kind, status.workers), (ActorKind::Pool, 8));
    support::wait_until("more progress", Duration::from_secs(10), || {
        pool.handled() > 30_000
    })
    .await;
    assert_eq!(
        scale(1).await.unwrap(),
        ControlReply::Scaled { from: 8, to: 1 }
    );
    producer.await.unwrap();
    support::wait_until("all handled", Duration::from_secs(30), || {
        pool.handled() == total
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len() as u64,
        total,
        "every message handled exactly once"
    );
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len() as u64, total);
    assert!(matches!(
        rt.control("collectors", Control::Scale { n: 0 }).await,
        Err(ControlError::InvalidScale { requested: 0, .. })
    ));
    assert_eq!(rt.dead_letters().count(), 0);
    assert_eq!(rt.shutdown().await.total_undelivered(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_pool_holds_and_resumes() {
    let rt = Runtime::builder().build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let pool = rt
        .spawn_pool("paused-pool", 4, move || Collector(s.clone()))
        .await
        .unwrap();
    rt.control("paused-pool", Control::Pause).await.unwrap();
    for id in 0..100 {
        pool.tell(id).await.unwrap();
    }
    let ControlReply::Status(status) = rt.control("paused-pool", Control::Status).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (status.state, status.mailbox_depth, status.handled),
        (ActorState::Paused, 100, 0)
    );
    rt.control("paused-pool", Control::Resume).await.unwrap();
    support::wait_until("drained", Duration::from_secs(10), || pool.handled() == 100).await;
    rt.shutdown().await;
}

/// Workers take the indices of the workers that were scaled away (and their dispatch
/// slots, halt flag included): a worker started on a slot whose last worker was halted
/// must run, not stop at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_scaled_back_up_on_halted_slots_do_work() {
    let rt = Runtime::builder().build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let pool = rt
        .spawn_pool("cycled", 3, move || Collector(s.clone()))
        .await
        .unwrap();
    let scale = |n| rt.control("cycled", Control::Scale { n });
    for round in 0..3u64 {
        assert_eq!(
            scale(1).await.unwrap(),
            ControlReply::Scaled { from: 3, to: 1 }
        );
        assert_eq!(
            scale(3).await.unwrap(),
            ControlReply::Scaled { from: 1, to: 3 }
        );
        // Pause so that work queues, then resume: every worker is woken and must drain.
        rt.control("cycled", Control::Pause).await.unwrap();
        for id in 0..300 {
            pool.tell(round * 1000 + id).await.unwrap();
        }
        rt.control("cycled", Control::Resume).await.unwrap();
        support::wait_until("drained", Duration::from_secs(10), || {
            pool.handled() == (round + 1) * 300
        })
        .await;
        let ControlReply::Status(status) = rt.control("cycled", Control::Status).await.unwrap()
        else {
            panic!()
        };
        assert_eq!((status.state, status.workers), (ActorState::Running, 3));
    }
    assert_eq!(seen.lock().unwrap().len(), 900);
    rt.shutdown().await;
}
