//! No wake-up is lost under contention while pools are resized: every message is handled,
//! none waits while its consumer sleeps.

mod support;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use vortex::prelude::*;

struct Count(Arc<AtomicU64>);

impl Actor for Count {
    type Message = u64;
    async fn handle(&mut self, _: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_handled_while_pools_are_resized_under_contention() {
    const PRODUCERS: u64 = 8;
    const EACH: u64 = 20_000;
    let rt = Runtime::builder().build().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let single_count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let pool = rt
        .spawn_pool_with(
            PoolSpec::new("pool", 2, move || Count(Arc::clone(&c)))
                .capacity(16)
                .batch_size(4),
        )
        .await
        .unwrap();
    let s = Arc::clone(&single_count);
    let single = rt
        .spawn_actor(ActorSpec::new("single", move || Count(Arc::clone(&s))).capacity(8))
        .await
        .unwrap();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (pool, single) = (pool.clone(), single.clone());
            tokio::spawn(async move {
                for n in 0..EACH {
                    if (n + p) % 2 == 0 {
                        pool.tell(n).await.unwrap();
                    } else {
                        single.tell(n).await.unwrap();
                    }
                }
            })
        })
        .collect();
    let scaler = {
        let observer = rt.observer();
        tokio::spawn(async move {
            for n in [1, 6, 2, 8, 1, 4, 3, 1, 7, 2].iter().cycle().take(60) {
                observer
                    .control("pool", Control::Scale { n: *n })
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    for producer in producers {
        producer.await.unwrap();
    }
    scaler.await.unwrap();
    let total = PRODUCERS * EACH;
    support::wait_until("every message handled", Duration::from_secs(60), || {
        count.load(SeqCst) + single_count.load(SeqCst) == total
    })
    .await;
    assert_eq!(count.load(SeqCst), total / 2);
    assert_eq!(rt.dead_letters().count(), 0);
    rt.shutdown().await;
}
