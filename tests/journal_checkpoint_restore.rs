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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_actor_group_commits_and_reports_status() {
    use vortex::actors::journal::{
        Durability, JournalActor, JournalConfig, JournalError, JournalMessage, PendingRecord,
    };
    let directory = tempfile::tempdir().unwrap();
    let rt = Runtime::builder().build().unwrap();
    let config = JournalConfig {
        max_record_bytes: 1024,
        ..JournalConfig::default()
    };
    let (journal, reader) = JournalActor::spawn(&rt, "journal", directory.path(), config)
        .await
        .unwrap();
    let mut appends = Vec::new();
    for n in 0..200u32 {
        let journal = journal.clone();
        appends.push(tokio::spawn(async move {
            let record = PendingRecord::encode(7, &n)
                .unwrap()
                .with_durability(Durability::default());
            journal
                .ask(|reply| JournalMessage::Append { record, reply })
                .await
                .unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for append in appends {
        seqs.push(append.await.unwrap().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=200).collect::<Vec<u64>>(),
        "contiguous, each acknowledged once"
    );
    // An oversized record is a typed error and writes nothing.
    let record = PendingRecord::raw(7, vec![0; 4096]);
    let refused = journal
        .ask(|reply| JournalMessage::Append { record, reply })
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(JournalError::RecordTooLarge { .. })),
        "{refused:?}"
    );
    assert_eq!(reader.status().last_seq, 200);
    let ControlReply::Status(status) = rt.control("journal", Control::Status).await.unwrap() else {
        panic!()
    };
    assert!(status.detail.contains("last_seq=200"), "{}", status.detail);
    assert!(status.detail.contains("fsync_p99_us="), "{}", status.detail);
    rt.shutdown().await;
}
