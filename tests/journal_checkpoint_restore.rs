//! Checkpoint → panic → restart → `restore` sees the checkpointed state, with durable
//! checkpoints on disk; and a fresh runtime (a process restart) restores it too.

mod support;

use std::{sync::Arc, time::Duration};

use vortex::actors::journal::{DurableCheckpoints, KIND_CHECKPOINT_TAKEN};
use vortex::messages::journal::CheckpointTaken;
use vortex::prelude::*;

#[derive(Default)]
struct Tally(u64);

enum TallyMessage {
    Add(u64),
    Crash,
    Get(Reply<u64>),
}

impl Actor for Tally {
    type Message = TallyMessage;
    async fn handle(
        &mut self,
        message: TallyMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            TallyMessage::Add(n) => self.0 += n,
            TallyMessage::Crash => panic!("tally crash"),
            TallyMessage::Get(reply) => reply.send(self.0),
        }
        Ok(())
    }
    fn snapshot(&mut self) -> Option<Vec<u8>> {
        Some(self.0.to_le_bytes().to_vec())
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.0 = u64::from_le_bytes(snapshot.try_into()?);
        Ok(())
    }
}

async fn runtime(sink: &Arc<DurableCheckpoints>) -> Runtime {
    Runtime::builder()
        .root_backoff(Backoff::none())
        .checkpoints(sink.clone())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_an_actor_crash_and_a_process_restart() {
    support::quiet_panics("tally crash");
    let directory = tempfile::tempdir().unwrap();
    {
        let sink = Arc::new(DurableCheckpoints::open(directory.path()).unwrap());
        let rt = runtime(&sink).await;
        let tally = rt.spawn("tally", Tally::default).await.unwrap();
        tally.tell(TallyMessage::Add(41)).await.unwrap();
        let ControlReply::Checkpointed(first) =
            rt.control("tally", Control::Checkpoint).await.unwrap()
        else {
            panic!("checkpoint expected")
        };
        assert_eq!(first.epoch, 1);
        tally.tell(TallyMessage::Crash).await.unwrap();
        tally.tell(TallyMessage::Add(1)).await.unwrap();
        assert_eq!(
            tally.ask(TallyMessage::Get).await.unwrap(),
            42,
            "restored 41, then +1"
        );
        let ControlReply::Checkpointed(second) =
            rt.control("tally", Control::Checkpoint).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(second.epoch, 2);
        assert_eq!(sink.store().list("tally").unwrap(), vec![1, 2]);
        let taken: Vec<CheckpointTaken> = sink
            .journal()
            .reader()
            .replay(1)
            .map(|record| record.unwrap())
            .filter(|record| record.kind == KIND_CHECKPOINT_TAKEN)
            .map(|record| record.decode().unwrap())
            .collect();
        assert_eq!(
            taken.iter().map(|t| t.epoch).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(taken[1].bytes, 8);
        rt.shutdown().await;
    }
    // A new runtime over the same directory: the actor starts from epoch 2's state and
    // numbers its next checkpoint 3.
    let sink = Arc::new(DurableCheckpoints::open(directory.path()).unwrap());
    let rt = runtime(&sink).await;
    let tally = rt.spawn("tally", Tally::default).await.unwrap();
    let value = tokio::time::timeout(Duration::from_secs(5), tally.ask(TallyMessage::Get))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value, 42);
    let ControlReply::Checkpointed(third) = rt.control("tally", Control::Checkpoint).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(third.epoch, 3);
    rt.shutdown().await;
}
