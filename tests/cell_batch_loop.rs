//! The cell's own batch loop: a control command waits behind at most the batch in progress
//! however many commands and wake-ups came before it; capacity counts only what is queued.
//! (No lost wake-up under contention: `cell_wakeup_contention.rs`, in its own binary so
//! that its load does not disturb the timing here.)

mod support;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use vortex::prelude::*;

/// Handles each message in about a millisecond and counts it at once (not per batch).
struct Slow {
    handled: Arc<AtomicU64>,
    /// `handled` at the moment each `Pause` was applied.
    at_pause: Arc<AtomicU64>,
}

impl Actor for Slow {
    type Message = u64;
    async fn handle(&mut self, _: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        std::thread::sleep(Duration::from_millis(1)); // simulated work, blocking on purpose
        self.handled.fetch_add(1, SeqCst);
        Ok(())
    }
    async fn on_control(
        &mut self,
        command: &Control,
        _: &mut Context<Self>,
    ) -> Option<Result<ControlReply, ControlError>> {
        if matches!(command, Control::Pause) {
            self.at_pause.store(self.handled.load(SeqCst), SeqCst);
        }
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waits_behind_one_batch_after_many_resumes() {
    const BATCH: u64 = 4;
    let rt = Runtime::builder().build().unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let at_pause = Arc::new(AtomicU64::new(0));
    let (h, p) = (Arc::clone(&handled), Arc::clone(&at_pause));
    let addr = rt
        .spawn_actor(
            ActorSpec::new("slow", move || Slow {
                handled: Arc::clone(&h),
                at_pause: Arc::clone(&p),
            })
            .capacity(4096)
            .batch_size(BATCH as usize),
        )
        .await
        .unwrap();
    rt.control("slow", Control::Pause).await.unwrap();
    for n in 0..3000 {
        addr.try_tell(n).unwrap();
    }
    // Many Resumes and other commands while it drains: none of them may leave extra work
    // queued ahead of later commands.
    for _ in 0..50 {
        assert_eq!(
            rt.control("slow", Control::Resume).await.unwrap(),
            ControlReply::Resumed
        );
        rt.control("slow", Control::Status).await.unwrap();
    }
    let before = handled.load(SeqCst);
    assert_eq!(
        rt.control("slow", Control::Pause).await.unwrap(),
        ControlReply::Paused
    );
    let behind = at_pause.load(SeqCst) - before;
    // At most the batch in progress; slack for a descheduled test thread on a loaded
    // machine (each message takes a millisecond). Before the batch loop, every Resume
    // started another drain chain and the command waited behind ~50 batches (200
    // messages), or until the mailbox ran dry.
    assert!(
        behind <= 5 * BATCH,
        "the Pause waited behind {behind} messages (batch size {BATCH})"
    );
    let paused_at = handled.load(SeqCst);
    assert!(paused_at < 3000, "paused before the mailbox ran dry");
    rt.shutdown().await;
}

/// Tells itself `left` more times from inside its handler.
struct Relay {
    depth_seen: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
}

impl Actor for Relay {
    type Message = u64;
    async fn handle(&mut self, left: u64, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        // The message being handled has left the mailbox: depth 0, room for one more.
        self.depth_seen
            .fetch_max(ctx.addr().mailbox_len() as u64, SeqCst);
        if left == 0 {
            self.done.store(1, SeqCst);
            return Ok(());
        }
        ctx.addr()
            .try_tell(left - 1)
            .map_err(|error| format!("self-tell refused at capacity 1: {error}"))?;
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_may_tell_itself_at_capacity_one() {
    let rt = Runtime::builder().build().unwrap();
    let depth_seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let (d, f) = (Arc::clone(&depth_seen), Arc::clone(&done));
    let relay = rt
        .spawn_actor(
            ActorSpec::new("relay", move || Relay {
                depth_seen: Arc::clone(&d),
                done: Arc::clone(&f),
            })
            .capacity(1),
        )
        .await
        .unwrap();
    relay.tell(100).await.unwrap();
    support::wait_until("100 self-tells", Duration::from_secs(10), || {
        done.load(SeqCst) == 1
    })
    .await;
    assert_eq!(rt.dead_letters().count(), 0, "no self-tell was refused");
    assert_eq!(
        depth_seen.load(SeqCst),
        0,
        "depth counts only queued messages"
    );
    assert_eq!(relay.handled(), 101);
    let status = rt.status("relay").unwrap();
    assert_eq!((status.mailbox_depth, status.restarts), (0, 0));
    rt.shutdown().await;
}

/// Counts what it handled; a checkpoint is that count.
#[derive(Default)]
struct Counted(u64);

impl Actor for Counted {
    type Message = u64;
    async fn handle(&mut self, n: u64, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.0 += n;
        Ok(())
    }
    fn snapshot(&mut self) -> Option<Vec<u8>> {
        Some(self.0.to_le_bytes().to_vec())
    }
}

/// `Runtime::spawn` returns once `on_start` ran, possibly before the cell's task has run at
/// all: a command sent at once still waits behind the data sent before it (here a
/// checkpoint must see the message told just before it), every time.
#[tokio::test(flavor = "current_thread")]
async fn a_command_sent_right_after_spawn_waits_behind_the_data_sent_before_it() {
    let rt = Runtime::builder().build().unwrap();
    for round in 0..50 {
        let name = format!("counted-{round}");
        let counted = rt.spawn(name.clone(), Counted::default).await.unwrap();
        counted.tell(41).await.unwrap();
        let ControlReply::Checkpointed(checkpoint) =
            rt.control(&name, Control::Checkpoint).await.unwrap()
        else {
            panic!("a checkpoint expected")
        };
        assert_eq!(
            checkpoint.bytes,
            41u64.to_le_bytes().to_vec(),
            "round {round}: the checkpoint ran before the message told ahead of it"
        );
        rt.control(&name, Control::Stop).await.unwrap();
    }
    rt.shutdown().await;
}
