//! Retention while the journal actor is live: on a message, and on the actor's own
//! schedule; segments a replay is reading are kept until it moves past them. On real
//! files and on the crash double.

mod support;

use std::sync::Arc;
use std::time::Duration;

use vortex::actors::journal::io::{FileSystem, MemoryFileSystem, RealFileSystem};
use vortex::actors::journal::{
    Durability, JournalActor, JournalActorConfig, JournalConfig, JournalHandle, JournalMessage,
    PendingRecord, RetentionPolicy, RetentionReport, RetentionSchedule,
};
use vortex::prelude::*;

const DEADLINE: Duration = Duration::from_secs(20);
const EVERYTHING: RetentionPolicy = RetentionPolicy {
    max_total_bytes: Some(0),
    max_age: None,
};

fn config(fs: Arc<dyn FileSystem>, retention: Option<RetentionSchedule>) -> JournalActorConfig {
    JournalActorConfig {
        journal: JournalConfig {
            segment_bytes: 1024,
            max_record_bytes: 256,
            ..JournalConfig::default()
        },
        fs,
        retention,
        ..JournalActorConfig::default()
    }
}

/// Appends `count` records of 100 bytes, each durable (and so visible) when answered.
async fn fill(journal: &Addr<JournalActor>, count: u64) {
    for n in 0..count {
        let record = PendingRecord::raw(1, vec![n as u8; 100]).with_durability(Durability::Each);
        journal
            .ask(|reply| JournalMessage::Append { record, reply })
            .await
            .unwrap()
            .unwrap();
    }
}

async fn retain(journal: &Addr<JournalActor>) -> RetentionReport {
    journal
        .ask(|reply| JournalMessage::Retain {
            policy: EVERYTHING,
            reply,
        })
        .await
        .unwrap()
        .unwrap()
}

async fn on_demand(
    fs: Arc<dyn FileSystem>,
    directory: &std::path::Path,
    exists: impl Fn(&std::path::Path) -> bool,
) {
    let rt = Runtime::builder().build().unwrap();
    let (journal, handle): (_, JournalHandle) =
        JournalActor::spawn_with(&rt, "journal", directory, config(fs, None))
            .await
            .unwrap();
    fill(&journal, 40).await;
    let segments = handle.status().segments;
    assert!(segments >= 4, "{segments} segments");
    let mut replay = handle.reader().replay(1);
    assert_eq!(replay.next().unwrap().unwrap().seq, 1);

    let report = retain(&journal).await;
    assert!(report.removed_segments.is_empty(), "{report:?}");
    assert_eq!(report.deferred, segments - 1);
    let rest: Vec<u64> = replay.by_ref().map(|record| record.unwrap().seq).collect();
    assert_eq!(
        rest,
        (2..=40).collect::<Vec<u64>>(),
        "nothing removed under the replay"
    );
    drop(replay);

    let report = retain(&journal).await;
    assert_eq!(report.removed_segments.len(), segments - 1, "{report:?}");
    for removed in &report.removed_segments {
        assert!(!exists(removed), "{removed:?} is gone");
    }
    let status = handle.status();
    assert_eq!((status.segments, status.last_seq), (1, 40));
    fill(&journal, 1).await;
    assert_eq!(
        handle.status().last_seq,
        41,
        "appends go on after retention"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_a_message_keeps_what_a_replay_reads_real_files() {
    let directory = tempfile::tempdir().unwrap();
    on_demand(Arc::new(RealFileSystem), directory.path(), |path| {
        path.exists()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_a_message_keeps_what_a_replay_reads_crash_double() {
    let fs = MemoryFileSystem::new();
    let files = fs.clone();
    on_demand(Arc::new(fs), std::path::Path::new("/j"), move |path| {
        files.paths().iter().any(|file| file == path)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_its_own_schedule() {
    let fs = MemoryFileSystem::new();
    let schedule = RetentionSchedule {
        policy: EVERYTHING,
        every: Duration::from_millis(10),
    };
    let rt = Runtime::builder().build().unwrap();
    let (journal, handle) = JournalActor::spawn_with(
        &rt,
        "journal",
        "/j",
        config(Arc::new(fs.clone()), Some(schedule)),
    )
    .await
    .unwrap();
    fill(&journal, 40).await;
    let segment_files = || {
        fs.paths()
            .into_iter()
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "jrnl")
            })
            .count()
    };
    // The status and the directory are updated one after the other: wait for both.
    support::wait_until("scheduled retention trimmed the journal", DEADLINE, || {
        handle.status().segments == 1 && segment_files() == 1
    })
    .await;
    let segment_files = segment_files();
    assert_eq!(segment_files, 1, "{:?}", fs.paths());
    assert!(handle.status().first_seq > 1);
    rt.shutdown().await;
}
