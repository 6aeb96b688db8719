//! Checkpoints that never lie: a retried save really is durable, a restarted actor only
//! gets a checkpoint the journal recorded, a corrupt newest epoch falls back (counted),
//! old epochs are pruned to the newest K, and saving stays idempotent. On the crash
//! double (with power loss) and on real files.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vortex::actors::journal::io::MemoryFileSystem;
use vortex::actors::journal::{
    CheckpointOptions, CheckpointStore, DurableCheckpoints, JournalConfig, DEFAULT_KEEP_EPOCHS,
    KIND_CHECKPOINT_TAKEN,
};
use vortex::actors::telemetry::{TelemetryEvent, TelemetryPublisher};
use vortex::prelude::*;
use vortex::runtime::CheckpointSink;

const SEEDS: u64 = 200;

fn checkpoint(actor: &str, epoch: u64, bytes: &[u8]) -> Checkpoint {
    Checkpoint {
        actor: actor.to_owned(),
        epoch,
        bytes: bytes.to_vec(),
    }
}

fn on_memory(fs: &MemoryFileSystem, keep_epochs: usize) -> DurableCheckpoints {
    let options = CheckpointOptions {
        keep_epochs,
        fs: Arc::new(fs.clone()),
        journal: small_journal(),
        ..CheckpointOptions::default()
    };
    DurableCheckpoints::open_with("/d", options).expect("open")
}

/// Small segments: a crash copies every page of the double.
fn small_journal() -> JournalConfig {
    JournalConfig {
        segment_bytes: 16 << 10,
        max_record_bytes: 1024,
        ..JournalConfig::default()
    }
}

fn latest(sink: &DurableCheckpoints, actor: &str) -> Option<(u64, Vec<u8>)> {
    sink.latest(actor)
        .expect("latest")
        .map(|checkpoint| (checkpoint.epoch, checkpoint.bytes))
}

#[test]
fn a_store_save_retried_after_a_failed_directory_fsync_is_durable() {
    let fs = MemoryFileSystem::new();
    let store = CheckpointStore::open_with(Arc::new(fs.clone()), "/c").unwrap();
    // Fsync 1 is the temporary file's, 2 the directory's after the rename.
    fs.fail_fsync_number(2);
    assert!(store.save("a", 1, b"state").is_err());
    store.save("a", 1, b"state").expect("the retry succeeds");
    for seed in 0..SEEDS {
        let crashed = CheckpointStore::open_with(Arc::new(fs.crash(seed)), "/c").unwrap();
        let stored = crashed.load("a", 1);
        assert_eq!(
            stored.map(|s| s.bytes).ok(),
            Some(b"state".to_vec()),
            "seed {seed}"
        );
    }
}

#[test]
fn a_sink_save_retried_after_a_failed_directory_fsync_is_durable_and_recorded() {
    let fs = MemoryFileSystem::new();
    let sink = on_memory(&fs, DEFAULT_KEEP_EPOCHS);
    fs.fail_fsync_number(2);
    assert!(sink.save(&checkpoint("a", 1, b"state")).is_err());
    sink.save(&checkpoint("a", 1, b"state"))
        .expect("the retry succeeds");
    assert_eq!(latest(&sink, "a"), Some((1, b"state".to_vec())));
    for seed in 0..SEEDS {
        let reopened = on_memory(&fs.crash(seed), DEFAULT_KEEP_EPOCHS);
        assert_eq!(
            latest(&reopened, "a"),
            Some((1, b"state".to_vec())),
            "seed {seed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_whose_record_failed_is_never_restored() {
    let fs = MemoryFileSystem::new();
    let rt = Runtime::builder().build().unwrap();
    let publisher = TelemetryPublisher::spawn(&rt, "telemetry", 16)
        .await
        .unwrap();
    let mut events = publisher.subscribe();
    let options = CheckpointOptions {
        fs: Arc::new(fs.clone()),
        telemetry: Some(publisher.clone()),
        journal: small_journal(),
        ..CheckpointOptions::default()
    };
    let sink = DurableCheckpoints::open_with("/d", options).unwrap();
    sink.save(&checkpoint("a", 1, b"one")).unwrap();
    // Fsyncs of a save: temporary file, directory, root, then the journal record's.
    fs.fail_fsync_number(4);
    let failed = sink.save(&checkpoint("a", 2, b"two"));
    assert!(failed.unwrap_err().contains("poisoned"));
    assert_eq!(
        sink.store().list("a").unwrap(),
        vec![1],
        "the failed save's file is gone"
    );
    assert_eq!(latest(&sink, "a"), Some((1, b"one".to_vec())));
    // A file the journal never recorded is never offered, whatever its epoch.
    sink.store().save("a", 9, b"unrecorded").unwrap();
    assert_eq!(latest(&sink, "a"), Some((1, b"one".to_vec())));
    for seed in 0..SEEDS {
        let reopened = on_memory(&fs.crash(seed), DEFAULT_KEEP_EPOCHS);
        assert_eq!(
            latest(&reopened, "a"),
            Some((1, b"one".to_vec())),
            "seed {seed}"
        );
    }
    // The next save reopens the poisoned journal (with recovery, reported) and may
    // reuse the epoch that was never acknowledged, with other bytes.
    sink.save(&checkpoint("a", 2, b"two, again")).unwrap();
    assert_eq!(sink.opens(), 2);
    assert_eq!(latest(&sink, "a"), Some((2, b"two, again".to_vec())));
    let reopened = on_memory(&fs.crash(7), DEFAULT_KEEP_EPOCHS);
    assert_eq!(latest(&reopened, "a"), Some((2, b"two, again".to_vec())));
    let mut opens = Vec::new();
    support::wait_until(
        "JournalRecovered for both opens",
        Duration::from_secs(20),
        || {
            while let Ok(event) = events.try_recv() {
                if let TelemetryEvent::JournalRecovered(recovered) = event {
                    opens.push(recovered.opens);
                }
            }
            opens.len() == 2
        },
    )
    .await;
    assert_eq!(opens, vec![1, 2]);
    rt.shutdown().await;
}

fn corrupt(directory: &Path, actor: &str, epoch: u64) {
    let path = directory
        .join("checkpoints")
        .join(actor)
        .join(format!("{epoch:020}.ckpt"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

#[derive(Default)]
struct Tally(u64);

enum TallyMessage {
    Add(u64),
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

async fn checkpointed_runtime(sink: &Arc<DurableCheckpoints>) -> Runtime {
    Runtime::builder()
        .root_backoff(Backoff::none())
        .checkpoints(sink.clone())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_newest_epoch_falls_back_to_the_newest_valid_one_real_files() {
    let directory = tempfile::tempdir().unwrap();
    {
        let sink = Arc::new(DurableCheckpoints::open(directory.path()).unwrap());
        let rt = checkpointed_runtime(&sink).await;
        let tally = rt.spawn("tally", Tally::default).await.unwrap();
        for _ in 0..3 {
            tally.tell(TallyMessage::Add(10)).await.unwrap();
            // Control outruns data: wait for the add before checkpointing.
            tally.ask(TallyMessage::Get).await.unwrap();
            rt.control("tally", Control::Checkpoint).await.unwrap();
        }
        rt.shutdown().await;
        sink.journal().wait_stopped().unwrap();
    }
    corrupt(directory.path(), "tally", 3);
    let sink = Arc::new(DurableCheckpoints::open(directory.path()).unwrap());
    let rt = checkpointed_runtime(&sink).await;
    let tally = rt.spawn("tally", Tally::default).await.unwrap();
    let value = tokio::time::timeout(Duration::from_secs(10), tally.ask(TallyMessage::Get))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value, 20, "epoch 2's state, not a failing actor");
    assert_eq!(sink.fallbacks(), 1);
    assert_eq!(rt.status("tally").unwrap().restarts, 0);
    // The next checkpoint reuses epoch 3 (its file was worthless) and supersedes it.
    let ControlReply::Checkpointed(next) = rt.control("tally", Control::Checkpoint).await.unwrap()
    else {
        panic!("checkpoint expected")
    };
    assert_eq!(next.epoch, 3);
    rt.shutdown().await;
    sink.journal().wait_stopped().unwrap();
    let reopened = DurableCheckpoints::open(directory.path()).unwrap();
    assert_eq!(
        latest(&reopened, "tally"),
        Some((3, 20u64.to_le_bytes().to_vec()))
    );
    assert_eq!(reopened.fallbacks(), 0);
}

fn taken_epochs(sink: &DurableCheckpoints) -> Vec<u64> {
    sink.journal()
        .reader()
        .replay(1)
        .map(|record| record.unwrap())
        .filter(|record| record.kind == KIND_CHECKPOINT_TAKEN)
        .map(|record| {
            record
                .decode::<vortex::messages::journal::CheckpointTaken>()
                .unwrap()
                .epoch
        })
        .collect()
}

#[test]
fn old_epochs_are_pruned_to_the_newest_k_and_saving_stays_idempotent() {
    assert_eq!(DEFAULT_KEEP_EPOCHS, 3);
    assert_eq!(
        CheckpointOptions::default().keep_epochs,
        DEFAULT_KEEP_EPOCHS
    );
    let fs = MemoryFileSystem::new();
    let sink = on_memory(&fs, 2);
    for epoch in 1..=5 {
        sink.save(&checkpoint("a", epoch, &[epoch as u8])).unwrap();
    }
    assert_eq!(sink.store().list("a").unwrap(), vec![4, 5]);
    assert_eq!(sink.recorded_epochs("a"), vec![4, 5]);
    // Idempotent: the same bytes again is Ok and records nothing new.
    sink.save(&checkpoint("a", 5, &[5])).unwrap();
    sink.save(&checkpoint("a", 5, &[5])).unwrap();
    assert_eq!(taken_epochs(&sink), vec![1, 2, 3, 4, 5]);
    let conflict = sink.save(&checkpoint("a", 5, b"other")).unwrap_err();
    assert!(
        conflict.contains("conflict") || conflict.contains("different"),
        "{conflict}"
    );
    for seed in 0..SEEDS {
        let reopened = on_memory(&fs.crash(seed), 2);
        assert_eq!(latest(&reopened, "a"), Some((5, vec![5])), "seed {seed}");
        assert_eq!(reopened.recorded_epochs("a"), vec![4, 5], "seed {seed}");
    }
}

#[test]
fn pruning_and_idempotence_on_real_files() {
    let directory = tempfile::tempdir().unwrap();
    let sink = DurableCheckpoints::open(directory.path()).unwrap();
    for epoch in 1..=5 {
        sink.save(&checkpoint("b", epoch, &[epoch as u8; 3]))
            .unwrap();
        sink.save(&checkpoint("b", epoch, &[epoch as u8; 3]))
            .unwrap();
    }
    assert_eq!(sink.store().list("b").unwrap(), vec![3, 4, 5]);
    assert_eq!(taken_epochs(&sink), vec![1, 2, 3, 4, 5]);
    assert!(sink.recovery().is_clean());
    assert!(sink.summary().contains("opens=1"), "{}", sink.summary());
}
