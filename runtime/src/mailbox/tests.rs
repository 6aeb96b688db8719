use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst},
        Arc,
    },
    task::Waker,
    thread,
    time::{Duration, Instant},
};

use futures::task::{waker, ArcWake};

use super::*;

/// A waker that counts its wake-ups and unparks a thread (if one is set).
struct Counting {
    wakes: AtomicUsize,
    thread: Option<thread::Thread>,
}

impl ArcWake for Counting {
    fn wake_by_ref(this: &Arc<Self>) {
        this.wakes.fetch_add(1, SeqCst);
        if let Some(thread) = &this.thread {
            thread.unpark();
        }
    }
}

fn counting(thread: Option<thread::Thread>) -> (Arc<Counting>, Waker) {
    let counter = Arc::new(Counting {
        wakes: AtomicUsize::new(0),
        thread,
    });
    (Arc::clone(&counter), waker(counter))
}

fn single(capacity: usize) -> Mailbox<u32> {
    Mailbox::new(capacity, Dispatch::single())
}

#[test]
fn full_mailbox_hands_the_message_back() {
    let mailbox = single(2);
    mailbox.try_send(1).unwrap();
    mailbox.try_send(2).unwrap();
    assert!(matches!(mailbox.try_send(3), Err(TrySendError::Full(3))));
    assert_eq!(mailbox.len(), 2);
    let mut reader = mailbox.reader();
    assert_eq!(mailbox.pop(&mut reader), Some(1));
    mailbox.try_send(3).unwrap();
    assert_eq!(
        (
            mailbox.pop(&mut reader),
            mailbox.pop(&mut reader),
            mailbox.pop(&mut reader)
        ),
        (Some(2), Some(3), None)
    );
}

#[test]
fn a_popped_message_no_longer_occupies_capacity() {
    // Capacity counts what is queued: the message being handled has left the mailbox, so a
    // handler may queue one more even at capacity 1, and the depth shows 0 meanwhile.
    let mailbox = single(1);
    let mut reader = mailbox.reader();
    mailbox.try_send(1).unwrap();
    assert_eq!(mailbox.pop(&mut reader), Some(1));
    assert_eq!(mailbox.len(), 0);
    mailbox.try_send(2).unwrap();
    assert_eq!(mailbox.len(), 1);
}

#[test]
fn closed_mailbox_hands_the_message_back_and_keeps_what_was_queued() {
    let mailbox = single(4);
    mailbox.try_send(1).unwrap();
    mailbox.close();
    assert!(matches!(mailbox.try_send(2), Err(TrySendError::Closed(2))));
    let mut reader = mailbox.reader();
    assert_eq!(mailbox.take_all(&mut reader), vec![1]);
    assert!(mailbox.is_empty());
}

#[test]
fn only_a_parked_consumer_is_woken_and_only_once() {
    let mailbox = single(8);
    let (counter, waker) = counting(None);
    // Running (not parked): producers do not wake it.
    mailbox.try_send(1).unwrap();
    assert_eq!(counter.wakes.load(SeqCst), 0);
    let mut reader = mailbox.reader();
    assert_eq!(mailbox.pop(&mut reader), Some(1));
    // Parks: the re-check finds nothing, so it sleeps until a producer wakes it.
    mailbox.dispatch.park(0, &waker);
    assert_eq!(mailbox.pop(&mut reader), None);
    mailbox.try_send(2).unwrap();
    mailbox.try_send(3).unwrap();
    assert_eq!(counter.wakes.load(SeqCst), 1, "one wake-up for two sends");
    assert!(!mailbox.dispatch.is_idle(0));
}

#[test]
fn a_message_racing_the_park_is_found_by_the_recheck() {
    let mailbox = single(8);
    let (counter, waker) = counting(None);
    let mut reader = mailbox.reader();
    // The push lands between the consumer's last pop and its park: the pop after `park`
    // finds it, so the consumer runs it instead of sleeping.
    mailbox.try_send(7).unwrap();
    mailbox.dispatch.park(0, &waker);
    assert_eq!(mailbox.pop(&mut reader), Some(7));
    mailbox.dispatch.busy(0);
    // A producer wake that raced the same window is a spurious wake, never a lost one.
    assert!(counter.wakes.load(SeqCst) <= 1);
    assert!(!mailbox.dispatch.is_idle(0));
}

#[test]
fn a_pool_push_wakes_exactly_one_parked_worker() {
    let mailbox = Mailbox::new(8, Dispatch::pool(130));
    let workers: Vec<_> = [0, 64, 129].iter().map(|_| counting(None)).collect();
    for (index, (_, waker)) in [0, 64, 129].iter().zip(&workers) {
        mailbox.dispatch.park(*index, waker);
    }
    mailbox.try_send(1).unwrap();
    let woken: usize = workers.iter().map(|(c, _)| c.wakes.load(SeqCst)).sum();
    assert_eq!(woken, 1);
    mailbox.try_send(2).unwrap();
    mailbox.try_send(3).unwrap();
    mailbox.try_send(4).unwrap();
    let woken: Vec<usize> = workers.iter().map(|(c, _)| c.wakes.load(SeqCst)).collect();
    assert_eq!(woken, vec![1, 1, 1], "every parked worker woken once");
}

#[test]
fn a_stopping_worker_hands_its_wake_up_on() {
    let mailbox = Mailbox::new(8, Dispatch::pool(2));
    let (first, first_waker) = counting(None);
    let (second, second_waker) = counting(None);
    mailbox.dispatch.park(0, &first_waker);
    mailbox.try_send(1).unwrap(); // wakes worker 0 …
    assert_eq!(first.wakes.load(SeqCst), 1);
    mailbox.dispatch.park(1, &second_waker);
    // … which stops before it pops: the wake-up goes to worker 1.
    mailbox.dispatch.detach(0, !mailbox.is_empty());
    assert_eq!(second.wakes.load(SeqCst), 1);
}

#[tokio::test]
async fn a_blocked_sender_proceeds_when_space_frees() {
    let mailbox = Arc::new(single(1));
    mailbox.try_send(1).unwrap();
    let sender = {
        let mailbox = Arc::clone(&mailbox);
        tokio::spawn(async move { mailbox.send(2).await.is_ok() })
    };
    tokio::task::yield_now().await;
    assert!(!sender.is_finished());
    let mut reader = mailbox.reader();
    assert_eq!(mailbox.pop(&mut reader), Some(1));
    assert!(sender.await.unwrap());
    assert_eq!(mailbox.pop(&mut reader), Some(2));
}

#[tokio::test]
async fn closing_releases_blocked_senders_with_their_message() {
    let mailbox = Arc::new(single(1));
    mailbox.try_send(1).unwrap();
    let sender = {
        let mailbox = Arc::clone(&mailbox);
        tokio::spawn(async move { mailbox.send(2).await.map_err(SendError::into_inner) })
    };
    tokio::task::yield_now().await;
    mailbox.close();
    assert_eq!(sender.await.unwrap(), Err(2));
}

/// `close` wakes parked senders only when one is counted as waiting: a sender that is just
/// starting to wait must then see `closed` on its own retry. Raced on two worker threads,
/// every round must end with the message handed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_racing_a_sender_about_to_wait_never_strands_it() {
    for round in 0..2_000u32 {
        let mailbox = Arc::new(single(1));
        mailbox.try_send(0).unwrap();
        let sender = {
            let mailbox = Arc::clone(&mailbox);
            tokio::spawn(async move { mailbox.send(round).await.map_err(SendError::into_inner) })
        };
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        mailbox.close();
        let outcome = tokio::time::timeout(Duration::from_secs(10), sender)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the sender was never told of the close"));
        assert_eq!(outcome.unwrap(), Err(round));
    }
}

/// One consumer thread of the contention test: the cell's park protocol on real threads.
fn consume(
    mailbox: Arc<Mailbox<u64>>,
    index: usize,
    retire: Arc<AtomicBool>,
    handled: Arc<AtomicU64>,
) {
    let (_, waker) = counting(Some(thread::current()));
    let mut reader = mailbox.reader();
    loop {
        while let Some(_message) = mailbox.pop(&mut reader) {
            handled.fetch_add(1, SeqCst);
        }
        if retire.load(SeqCst) {
            mailbox.dispatch.detach(index, !mailbox.is_empty());
            return;
        }
        // Let the ring shrink as the cell does when it parks, so resizing races too.
        mailbox.parking(&mut reader);
        mailbox.dispatch.park(index, &waker);
        if let Some(_message) = mailbox.pop(&mut reader) {
            mailbox.dispatch.busy(index);
            handled.fetch_add(1, SeqCst);
            continue;
        }
        if retire.load(SeqCst) {
            mailbox.dispatch.detach(index, !mailbox.is_empty());
            return;
        }
        // No timeout: a lost wake-up leaves this thread asleep and the test fails on its
        // deadline. (`park` may return spuriously; the loop then looks again.)
        thread::park();
    }
}

#[test]
fn no_wake_up_is_lost_under_contention_while_the_pool_is_resized() {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 50_000;
    const WORKERS: usize = 4;
    let mailbox = Arc::new(Mailbox::new(64, Dispatch::pool(WORKERS)));
    let handled = Arc::new(AtomicU64::new(0));
    let start = |index: usize| {
        let retire = Arc::new(AtomicBool::new(false));
        let (mailbox, handled, flag) = (
            Arc::clone(&mailbox),
            Arc::clone(&handled),
            Arc::clone(&retire),
        );
        let thread = thread::spawn(move || consume(mailbox, index, flag, handled));
        (thread, retire)
    };
    let mut workers: Vec<_> = (0..WORKERS).map(|index| Some(start(index))).collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let mailbox = Arc::clone(&mailbox);
            thread::spawn(move || {
                for n in 0..PER_PRODUCER {
                    let mut message = n;
                    // Spin on a full mailbox (the async `send` would park instead).
                    while let Err(TrySendError::Full(back)) = mailbox.try_send(message) {
                        message = back;
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    // Resize concurrently: retire a worker and start a fresh one on its index, over and over.
    for round in 0..200 {
        let index = round % WORKERS;
        // The old incarnation ends before the new one starts, as a supervisor halts a
        // worker before it restarts it.
        let (thread, retire) = workers[index].take().unwrap();
        retire.store(true, SeqCst);
        thread.thread().unpark();
        thread.join().unwrap();
        workers[index] = Some(start(index));
    }
    for producer in producers {
        producer.join().unwrap();
    }
    let total = PRODUCERS * PER_PRODUCER;
    let deadline = Instant::now() + Duration::from_secs(30);
    while handled.load(SeqCst) < total && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5)); // polling the outcome, not the protocol
    }
    let left = mailbox.len();
    for (thread, retire) in workers.into_iter().flatten() {
        retire.store(true, SeqCst);
        thread.thread().unpark();
        thread.join().unwrap();
    }
    assert_eq!(
        handled.load(SeqCst),
        total,
        "{left} messages were left queued while their consumers slept"
    );
}

// ---------------------------------------------------------------------------------------
// The segmented ring: allocates what it holds, keeps order, gives memory back.
// ---------------------------------------------------------------------------------------

#[test]
fn an_idle_mailbox_allocates_a_small_ring_and_grows_to_its_capacity_on_demand() {
    let mailbox = single(1024);
    assert_eq!(
        mailbox.allocated_slots(),
        0,
        "no ring before the first message"
    );
    mailbox.try_send(0).unwrap();
    assert_eq!(mailbox.allocated_slots(), segments::INITIAL_SLOTS);
    for n in 1..1024 {
        mailbox.try_send(n).unwrap();
    }
    assert!(matches!(
        mailbox.try_send(1024),
        Err(TrySendError::Full(1024))
    ));
    // 4 + 8 + … + 1024: every segment is still needed (none drained yet).
    assert_eq!(mailbox.allocated_slots(), 2044);
    let mut reader = mailbox.reader();
    let drained: Vec<u32> = std::iter::from_fn(|| mailbox.pop(&mut reader)).collect();
    assert_eq!(drained, (0..1024).collect::<Vec<_>>());
    // Drained segments are behind the consumer now: only the 1024-slot tail is left.
    assert_eq!(mailbox.allocated_slots(), 1024);
}

#[test]
fn a_consumer_that_parks_after_a_quiet_stretch_shrinks_the_ring() {
    let mailbox = single(1024);
    let mut reader = mailbox.reader();
    for n in 0..1022 {
        mailbox.try_send(n).unwrap();
    }
    while mailbox.pop(&mut reader).is_some() {}
    // A busy stretch (1022 queued at once, past the 4 + 8 + … + 512 slots before the
    // tail; the tail has 1024 slots): no shrink.
    mailbox.parking(&mut reader);
    assert_eq!(mailbox.allocated_slots(), 1024);
    // Quiet stretches, one message at a time: the ring shrinks only after a run of them.
    for park in 0..segments::QUIET_PARKS {
        mailbox.try_send(park).unwrap();
        assert_eq!(mailbox.pop(&mut reader), Some(park));
        assert_eq!(
            mailbox.allocated_slots(),
            1024,
            "shrunk after {park} quiet parks"
        );
        mailbox.parking(&mut reader);
    }
    mailbox.try_send(7).unwrap();
    assert_eq!(mailbox.pop(&mut reader), Some(7));
    assert_eq!(mailbox.allocated_slots(), segments::INITIAL_SLOTS);
    // And it still grows again, with every message kept in order.
    for n in 0..1024 {
        mailbox.try_send(n).unwrap();
    }
    let drained: Vec<u32> = std::iter::from_fn(|| mailbox.pop(&mut reader)).collect();
    assert_eq!(drained, (0..1024).collect::<Vec<_>>());
}

#[test]
fn a_closed_mailbox_gives_its_ring_back() {
    let mailbox = single(1024);
    for n in 0..500 {
        mailbox.try_send(n).unwrap();
    }
    mailbox.close();
    let mut reader = mailbox.reader();
    assert_eq!(mailbox.take_all(&mut reader).len(), 500);
    drop(reader);
    assert_eq!(mailbox.allocated_slots(), 0);
    // One that never grew gives its small first ring back too.
    let small = single(1024);
    small.try_send(1).unwrap();
    small.close();
    let mut reader = small.reader();
    assert_eq!(small.take_all(&mut reader), vec![1]);
    drop(reader);
    assert_eq!(small.allocated_slots(), 0);
    assert!(matches!(mailbox.try_send(1), Err(TrySendError::Closed(1))));
}

#[test]
fn a_mailbox_smaller_than_the_first_segment_holds_exactly_its_capacity() {
    for capacity in [
        1,
        3,
        segments::INITIAL_SLOTS,
        segments::INITIAL_SLOTS + 1,
        100,
    ] {
        let mailbox = single(capacity);
        for n in 0..capacity as u32 {
            mailbox.try_send(n).unwrap();
        }
        assert!(
            matches!(mailbox.try_send(9999), Err(TrySendError::Full(9999))),
            "capacity {capacity}"
        );
        let mut reader = mailbox.reader();
        let drained: Vec<u32> = std::iter::from_fn(|| mailbox.pop(&mut reader)).collect();
        assert_eq!(drained, (0..capacity as u32).collect::<Vec<_>>());
        assert_eq!(mailbox.rejected(), 0);
    }
}

/// Producers racing growth and shrinking, consumers (a pool) popping concurrently: every
/// message arrives exactly once, and each producer's messages arrive in the order sent.
#[test]
fn per_producer_order_and_exactly_once_survive_concurrent_growth_and_shrinking() {
    const PRODUCERS: u64 = 3;
    const PER_PRODUCER: u64 = 40_000;
    for consumers in [1usize, 3] {
        let mailbox = Arc::new(Mailbox::<u64>::new(512, Dispatch::pool(consumers)));
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..consumers)
            .map(|_| {
                let (mailbox, done) = (Arc::clone(&mailbox), Arc::clone(&done));
                thread::spawn(move || {
                    let mut reader = mailbox.reader();
                    let mut seen = Vec::new();
                    let mut idle = 0u32;
                    loop {
                        match mailbox.pop(&mut reader) {
                            Some(message) => {
                                seen.push(message);
                                idle = 0;
                            }
                            None if done.load(SeqCst) && mailbox.is_empty() => return seen,
                            None => {
                                idle += 1;
                                if idle >= 16 {
                                    idle = 0;
                                    mailbox.parking(&mut reader);
                                }
                                thread::yield_now();
                            }
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let mailbox = Arc::clone(&mailbox);
                thread::spawn(move || {
                    for n in 0..PER_PRODUCER {
                        let mut message = producer << 32 | n;
                        while let Err(TrySendError::Full(back)) = mailbox.try_send(message) {
                            message = back;
                            thread::yield_now();
                        }
                        if n % 5_000 == 0 {
                            thread::yield_now(); // quiet stretches, so consumers shrink
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.join().unwrap();
        }
        done.store(true, SeqCst);
        let mut all = Vec::new();
        for reader in readers {
            let seen = reader.join().unwrap();
            // Within one consumer, each producer's messages come in the order sent.
            let mut last = [None::<u64>; PRODUCERS as usize];
            for message in &seen {
                let (producer, n) = ((message >> 32) as usize, message & 0xffff_ffff);
                if let Some(previous) = last[producer] {
                    assert!(n > previous, "producer {producer}: {n} after {previous}");
                }
                last[producer] = Some(n);
            }
            all.extend(seen);
        }
        all.sort_unstable();
        let expected: Vec<u64> = (0..PRODUCERS)
            .flat_map(|producer| (0..PER_PRODUCER).map(move |n| producer << 32 | n))
            .collect();
        assert_eq!(all.len(), expected.len(), "{consumers} consumers");
        assert!(all == expected, "a message was lost or duplicated");
        assert_eq!(mailbox.rejected(), 0);
    }
}
