//! Per-sender FIFO order, and exact accounting under panicking (poison) messages:
//! handled + dead-lettered == sent, with 4 producers × 250k messages.

mod support;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc, Mutex,
    },
    time::Duration,
};

use rand::{Rng, SeedableRng};
use vortex::prelude::*;

const PRODUCERS: u64 = 4;

/// Records, per producer, the last sequence number seen; fails on a gap or reordering.
struct Checker {
    last: Arc<Mutex<Vec<Option<u64>>>>,
    violations: Arc<AtomicU64>,
}

impl Actor for Checker {
    type Message = (u64, u64);
    async fn handle(
        &mut self,
        (producer, seq): (u64, u64),
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        let mut last = self.last.lock().unwrap();
        let slot = &mut last[producer as usize];
        if slot.is_some_and(|previous| seq != previous + 1) || (slot.is_none() && seq != 0) {
            self.violations.fetch_add(1, SeqCst);
        }
        *slot = Some(seq);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sender_sees_its_messages_in_order() {
    let rt = Runtime::builder().mailbox_capacity(256).build().unwrap();
    let last = Arc::new(Mutex::new(vec![None; PRODUCERS as usize]));
    let violations = Arc::new(AtomicU64::new(0));
    let (l, v) = (last.clone(), violations.clone());
    let checker = rt
        .spawn("checker", move || Checker {
            last: l.clone(),
            violations: v.clone(),
        })
        .await
        .unwrap();
    let per_producer = 50_000;
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let checker = checker.clone();
        producers.push(tokio::spawn(async move {
            for seq in 0..per_producer {
                checker.tell((producer, seq)).await.unwrap();
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    let sent = PRODUCERS * per_producer;
    support::wait_until("all handled", Duration::from_secs(60), || {
        checker.handled() == sent
    })
    .await;
    assert_eq!(violations.load(SeqCst), 0, "per-sender FIFO violated");
    let last = last.lock().unwrap().clone();
    assert!(last.iter().all(|seq| *seq == Some(per_producer - 1)));
    assert_eq!(rt.shutdown().await.total_undelivered(), 0);
}

/// Panics on poison messages; counts the rest.
struct Fragile;

impl Actor for Fragile {
    type Message = bool; // true = poison
    async fn handle(&mut self, poison: bool, _: &mut Context<Self>) -> Result<(), ActorError> {
        if poison {
            panic!("poison message");
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_plus_dead_lettered_equals_sent_under_poison() {
    support::quiet_panics("poison message");
    let rt = Runtime::builder()
        .mailbox_capacity(1024)
        .root_intensity(Intensity::new(100_000, Duration::from_secs(1)))
        .root_backoff(Backoff::none())
        .build()
        .unwrap();
    let fragile = rt
        .spawn_actor(ActorSpec::new("fragile", || Fragile).restart(Restart::Permanent))
        .await
        .unwrap();
    let per_producer = 250_000u64;
    let poisoned = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let fragile = fragile.clone();
        let poisoned = poisoned.clone();
        producers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(producer);
            for _ in 0..per_producer {
                let poison = rng.gen_ratio(1, 20_000);
                if poison {
                    poisoned.fetch_add(1, SeqCst);
                }
                fragile.tell(poison).await.unwrap();
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    let sent = PRODUCERS * per_producer;
    let dead = || rt.dead_letters().count();
    support::wait_until(
        "handled + dead letters == sent",
        Duration::from_secs(120),
        || fragile.handled() + dead() == sent,
    )
    .await;
    let poisoned = poisoned.load(SeqCst);
    assert!(poisoned > 0, "the seeds must produce poison");
    assert_eq!(
        dead(),
        poisoned,
        "exactly the poison messages are dead letters"
    );
    assert_eq!(fragile.handled(), sent - poisoned);
    let letters = rt.dead_letters().drain();
    assert!(letters.iter().all(|letter| letter.actor == "fragile"
        && matches!(&letter.reason, DeadLetterReason::Panicked(text) if text == "poison message")));
    let ControlReply::Status(status) = rt.control("fragile", Control::Status).await.unwrap() else {
        panic!("status expected");
    };
    assert_eq!(status.restarts, poisoned);
    assert_eq!(status.dead_letters, poisoned);
    assert_eq!(rt.shutdown().await.total_undelivered(), 0);
}
