//! Embed the runtime and host your own actor: spawn it under a name, send it messages,
//! then pause it, checkpoint it and resume it **by name**, as `vortex ctl` would.
//!
//! Checkpoints are durable: they go to a `DurableCheckpoints` store (files with `fsync`,
//! journaled) in a temporary directory, and a second runtime over the same directory
//! restores the actor's state when it spawns.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example custom_actor
//! ```
//!
//! It finishes by itself in well under a second and panics if any result is wrong.

use std::sync::Arc;
use std::time::Duration;

use vortex::actors::journal::DurableCheckpoints;
use vortex::prelude::*;

/// A running total: the state we want to survive a restart.
#[derive(Default)]
struct Counter {
    total: u64,
}

enum CounterMessage {
    Add(u64),
    Total(Reply<u64>),
}

impl Actor for Counter {
    type Message = CounterMessage;

    async fn handle(
        &mut self,
        message: CounterMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            CounterMessage::Add(n) => self.total += n,
            CounterMessage::Total(reply) => reply.send(self.total),
        }
        Ok(())
    }

    // What `Control::Checkpoint` stores, and what a fresh runtime restores.
    fn snapshot(&mut self) -> Option<Vec<u8>> {
        Some(self.total.to_le_bytes().to_vec())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.total = u64::from_le_bytes(snapshot.try_into()?);
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(format!("total={}", self.total))
    }
}

fn runtime(checkpoints: &Arc<DurableCheckpoints>) -> Runtime {
    Runtime::builder()
        .checkpoints(checkpoints.clone())
        .build()
        .expect("runtime")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let directory = tempfile::tempdir().expect("temp dir");
    let checkpoints = Arc::new(DurableCheckpoints::open(directory.path()).expect("checkpoints"));

    let rt = runtime(&checkpoints);
    let counter = rt.spawn("counter", Counter::default).await.expect("spawn");
    for n in 1..=10 {
        counter.tell(CounterMessage::Add(n)).await.expect("tell");
    }
    let total = counter.ask(CounterMessage::Total).await.expect("ask");
    println!("counter: total after 10 messages = {total}");
    assert_eq!(total, 55);

    // Pause by name: messages queue up in the mailbox but are not handled.
    let paused = rt.control("counter", Control::Pause).await.expect("pause");
    assert_eq!(paused, ControlReply::Paused);
    counter.tell(CounterMessage::Add(100)).await.expect("tell");
    let status = match rt
        .control("counter", Control::Status)
        .await
        .expect("status")
    {
        ControlReply::Status(report) => report,
        other => panic!("status expected, got {other:?}"),
    };
    println!(
        "counter: state {} with {} message(s) waiting, detail `{}`",
        status.state, status.mailbox_depth, status.detail
    );
    assert_eq!(status.state, ActorState::Paused);
    assert_eq!(status.mailbox_depth, 1);

    // Checkpoint by name while paused: the snapshot holds the handled total only.
    let checkpoint = match rt
        .control("counter", Control::Checkpoint)
        .await
        .expect("checkpoint")
    {
        ControlReply::Checkpointed(checkpoint) => checkpoint,
        other => panic!("checkpoint expected, got {other:?}"),
    };
    println!(
        "counter: checkpoint epoch {} ({} bytes) in {}",
        checkpoint.epoch,
        checkpoint.bytes.len(),
        directory.path().display()
    );
    assert_eq!(checkpoint.epoch, 1);
    assert_eq!(checkpoint.bytes, 55u64.to_le_bytes());
    assert_eq!(checkpoints.store().list("counter").expect("list"), vec![1]);

    // Resume: the queued message is handled.
    let resumed = rt
        .control("counter", Control::Resume)
        .await
        .expect("resume");
    assert_eq!(resumed, ControlReply::Resumed);
    let total = counter.ask(CounterMessage::Total).await.expect("ask");
    println!("counter: resumed, total = {total}");
    assert_eq!(total, 155);
    rt.shutdown().await;

    // A new runtime over the same directory (a process restart): the actor starts from
    // the checkpoint (55), not from zero and not from the unsaved 155.
    let checkpoints = Arc::new(DurableCheckpoints::open(directory.path()).expect("reopen"));
    let rt = runtime(&checkpoints);
    let counter = rt.spawn("counter", Counter::default).await.expect("spawn");
    let restored = tokio::time::timeout(Duration::from_secs(5), counter.ask(CounterMessage::Total))
        .await
        .expect("restored counter answers")
        .expect("ask");
    println!("counter: a fresh runtime restored total = {restored} from epoch 1");
    assert_eq!(restored, 55);
    rt.shutdown().await;
    println!("custom_actor: ok");
}
