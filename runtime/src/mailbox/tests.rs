use std::sync::{
    atomic::{AtomicUsize, Ordering::SeqCst},
    Arc,
};

use super::*;

struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(&self) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn single(capacity: usize) -> (Mailbox<u32>, Arc<Counter>) {
    let mailbox = Mailbox::new(capacity, Dispatch::single());
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    mailbox.dispatch.attach(0, counter.clone());
    (mailbox, counter)
}

#[test]
fn full_mailbox_hands_the_message_back() {
    let (mailbox, _) = single(2);
    mailbox.try_send(1).unwrap();
    mailbox.try_send(2).unwrap();
    assert!(matches!(mailbox.try_send(3), Err(TrySendError::Full(3))));
    assert_eq!(mailbox.len(), 2);
    let mut reader = mailbox.reader();
    assert_eq!(reader.pop(), Some(1));
    mailbox.release(1);
    mailbox.try_send(3).unwrap();
    assert_eq!(
        (reader.pop(), reader.pop(), reader.pop()),
        (Some(2), Some(3), None)
    );
}

#[test]
fn closed_mailbox_hands_the_message_back_and_keeps_what_was_queued() {
    let (mailbox, _) = single(4);
    mailbox.try_send(1).unwrap();
    mailbox.close();
    assert!(matches!(mailbox.try_send(2), Err(TrySendError::Closed(2))));
    let mut reader = mailbox.reader();
    assert_eq!(mailbox.take_all(&mut reader), vec![1]);
    assert!(mailbox.is_empty());
}

#[test]
fn only_an_idle_consumer_is_woken() {
    let (mailbox, counter) = single(8);
    // Scheduled from birth (the cell drains once on start): no wake-up yet.
    mailbox.try_send(1).unwrap();
    assert_eq!(counter.0.load(SeqCst), 0);
    let mut reader = mailbox.reader();
    assert_eq!(reader.pop(), Some(1));
    mailbox.release(1);
    // Ran dry: goes idle, nothing to re-claim.
    assert!(!mailbox.dispatch.went_idle(0, || !mailbox.is_empty()));
    mailbox.try_send(2).unwrap();
    mailbox.try_send(3).unwrap();
    assert_eq!(counter.0.load(SeqCst), 1, "one wake-up for two sends");
}

#[test]
fn a_message_racing_the_idle_transition_is_reclaimed() {
    let (mailbox, counter) = single(8);
    // A producer pushed after the consumer's last pop but before it went idle: the
    // consumer sees it when re-checking and claims the work itself.
    mailbox.try_send(7).unwrap();
    assert!(mailbox.dispatch.went_idle(0, || !mailbox.is_empty()));
    assert_eq!(counter.0.load(SeqCst), 0);
}

#[tokio::test]
async fn a_blocked_sender_proceeds_when_space_frees() {
    let (mailbox, _) = single(1);
    let mailbox = Arc::new(mailbox);
    mailbox.try_send(1).unwrap();
    let sender = {
        let mailbox = Arc::clone(&mailbox);
        tokio::spawn(async move { mailbox.send(2).await.is_ok() })
    };
    tokio::task::yield_now().await;
    assert!(!sender.is_finished());
    let mut reader = mailbox.reader();
    assert_eq!(reader.pop(), Some(1));
    mailbox.release(1);
    assert!(sender.await.unwrap());
    assert_eq!(reader.pop(), Some(2));
}

#[tokio::test]
async fn closing_releases_blocked_senders_with_their_message() {
    let (mailbox, _) = single(1);
    let mailbox = Arc::new(mailbox);
    mailbox.try_send(1).unwrap();
    let sender = {
        let mailbox = Arc::clone(&mailbox);
        tokio::spawn(async move { mailbox.send(2).await.map_err(SendError::into_inner) })
    };
    tokio::task::yield_now().await;
    mailbox.close();
    assert_eq!(sender.await.unwrap(), Err(2));
}
