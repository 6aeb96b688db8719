//! The journal actor under supervision: a poisoned or dead writer fails the actor, the
//! restart reopens the journal with recovery and reports it (log, `Status` detail,
//! telemetry); a full writer queue never blocks an async worker; fsyncs feed the
//! histogram. On the crash double and on real files.

mod support;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use vortex::actors::journal::io::{FileSystem, MemoryFileSystem, RealFileSystem, StorageFile};
use vortex::actors::journal::{
    Durability, JournalActor, JournalActorConfig, JournalConfig, JournalError, JournalHandle,
    JournalMessage, JournalResult, PendingRecord, WriterConfig,
};
use vortex::actors::telemetry::{
    encode_text, MetricsSink, Registry, TelemetryEvent, TelemetryPublisher,
};
use vortex::prelude::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// Faults on top of another file system: writes that panic, or that wait at a gate.
#[derive(Debug, Default)]
struct Faults {
    panic_writes: AtomicBool,
    gate_closed: Mutex<bool>,
    gate: Condvar,
    waiting: AtomicUsize,
}

impl Faults {
    fn close_gate(&self) {
        *self.gate_closed.lock().unwrap() = true;
    }

    fn open_gate(&self) {
        *self.gate_closed.lock().unwrap() = false;
        self.gate.notify_all();
    }

    fn before_write(&self) {
        assert!(
            !self.panic_writes.load(SeqCst),
            "injected writer-thread death"
        );
        let mut closed = self.gate_closed.lock().unwrap();
        self.waiting.fetch_add(1, SeqCst);
        while *closed {
            closed = self.gate.wait(closed).unwrap();
        }
        self.waiting.fetch_sub(1, SeqCst);
    }
}

#[derive(Debug)]
struct FaultyFs {
    inner: Arc<dyn FileSystem>,
    faults: Arc<Faults>,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn StorageFile>,
    faults: Arc<Faults>,
}

impl FileSystem for FaultyFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let inner = self.inner.create(path)?;
        Ok(Box::new(FaultyFile {
            inner,
            faults: Arc::clone(&self.faults),
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let inner = self.inner.open(path)?;
        Ok(Box::new(FaultyFile {
            inner,
            faults: Arc::clone(&self.faults),
        }))
    }
    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        self.inner.list(directory)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, directory: &Path) -> io::Result<()> {
        self.inner.sync_dir(directory)
    }
}

impl StorageFile for FaultyFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.faults.before_write();
        self.inner.write_at(offset, bytes)
    }
    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buffer)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn set_len(&mut self, length: u64) -> io::Result<()> {
        self.inner.set_len(length)
    }
    fn allocate(&mut self, length: u64) -> io::Result<()> {
        self.inner.allocate(length)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.inner.sync_data()
    }
}

fn config(fs: Arc<dyn FileSystem>) -> JournalActorConfig {
    JournalActorConfig {
        journal: JournalConfig {
            max_record_bytes: 1024,
            ..JournalConfig::default()
        },
        fs,
        ..JournalActorConfig::default()
    }
}

async fn append(
    journal: &Addr<JournalActor>,
    payload: &[u8],
    durability: Durability,
) -> JournalResult<u64> {
    let record = PendingRecord::raw(7, payload.to_vec()).with_durability(durability);
    journal
        .ask(|reply| JournalMessage::Append { record, reply })
        .await
        .expect("the journal actor answers")
}

fn payloads(handle: &JournalHandle) -> Vec<Vec<u8>> {
    handle
        .reader()
        .replay(1)
        .map(|record| record.expect("replay").payload)
        .collect()
}

fn runtime() -> Runtime {
    Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_writer_fails_the_actor_and_the_restart_reopens_with_recovery() {
    let fs = MemoryFileSystem::new();
    let rt = runtime();
    let publisher = TelemetryPublisher::spawn(&rt, "telemetry", 64)
        .await
        .unwrap();
    let mut events = publisher.subscribe();
    let mut registry = Registry::default();
    let metrics = MetricsSink::register(&mut registry);
    let actor_config = JournalActorConfig {
        metrics: Some(metrics),
        telemetry: Some(publisher.clone()),
        ..config(Arc::new(fs.clone()))
    };
    let (journal, handle) = JournalActor::spawn_with(&rt, "journal", "/j", actor_config)
        .await
        .unwrap();
    for payload in [b"one", b"two"] {
        append(&journal, payload, Durability::Each).await.unwrap();
    }
    // Every fdatasync is one histogram sample (the actor's own window agrees).
    let samples = handle.status().fsync_latency.samples;
    assert!(samples >= 2, "{samples}");
    let text = encode_text(&registry).unwrap();
    assert!(
        text.contains(&format!(
            "vortex_journal_fsync_latency_seconds_count {samples}"
        )),
        "{text}"
    );

    fs.fail_fsync_number(1);
    let failed = append(&journal, b"lost", Durability::Each).await;
    assert!(
        matches!(failed, Err(JournalError::Poisoned { .. })),
        "{failed:?}"
    );
    support::wait_until("the restart reopened the journal", DEADLINE, || {
        handle.opens() == 2
    })
    .await;
    support::wait_until("the supervisor counted one restart", DEADLINE, || {
        rt.status("journal").unwrap().restarts == 1
    })
    .await;
    let seq = append(&journal, b"three", Durability::Each).await.unwrap();
    assert!(seq >= 3, "{seq}");
    let kept = payloads(&handle);
    assert_eq!(&kept[..2], &[b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(kept.last().unwrap(), b"three");

    // The recovery is shown in Status detail and was published, for both opens.
    let ControlReply::Status(status) = rt.control("journal", Control::Status).await.unwrap() else {
        panic!("status expected")
    };
    assert!(status.detail.contains("opens=2"), "{}", status.detail);
    assert!(
        status.detail.contains("recovery: segments=1"),
        "{}",
        status.detail
    );
    let mut opens = Vec::new();
    support::wait_until("both JournalRecovered events", DEADLINE, || {
        while let Ok(event) = events.try_recv() {
            if let TelemetryEvent::JournalRecovered(recovered) = event {
                assert_eq!(&*recovered.journal, "journal");
                opens.push(recovered.opens);
            }
        }
        opens.len() == 2
    })
    .await;
    assert_eq!(opens, vec![1, 2]);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writer_thread_fails_the_actor_and_the_restart_recovers_real_files() {
    support::quiet_panics("injected writer-thread death");
    let directory = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let fs = FaultyFs {
        inner: Arc::new(RealFileSystem),
        faults: Arc::clone(&faults),
    };
    let rt = runtime();
    let (journal, handle) =
        JournalActor::spawn_with(&rt, "journal", directory.path(), config(Arc::new(fs)))
            .await
            .unwrap();
    append(&journal, b"before", Durability::Each).await.unwrap();
    faults.panic_writes.store(true, SeqCst);
    let record = PendingRecord::raw(7, b"dies".to_vec());
    // The writer dies holding this request: its reply is dropped, unanswered.
    let answer = journal
        .ask(|reply| JournalMessage::Append { record, reply })
        .await;
    assert!(!matches!(answer, Ok(Ok(_))), "{answer:?}");
    faults.panic_writes.store(false, SeqCst);
    support::wait_until("the restart reopened the journal", DEADLINE, || {
        handle.opens() == 2
    })
    .await;
    support::wait_until("the supervisor counted one restart", DEADLINE, || {
        rt.status("journal").unwrap().restarts == 1
    })
    .await;
    append(&journal, b"after", Durability::Each).await.unwrap();
    assert_eq!(
        payloads(&handle),
        vec![b"before".to_vec(), b"after".to_vec()]
    );
    assert!(handle.recovery().is_some());
    rt.shutdown().await;
}

/// On a single-worker runtime, an actor handler that blocked its thread would stop
/// everything, this test included; the watchdog thread turns that hang into a failure.
#[test]
fn a_full_writer_queue_never_blocks_the_async_worker() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(full_queue_scenario());
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the scenario finished: no worker was blocked");
}

async fn full_queue_scenario() {
    let faults = Arc::new(Faults::default());
    let fs = FaultyFs {
        inner: Arc::new(MemoryFileSystem::new()),
        faults: Arc::clone(&faults),
    };
    let rt = runtime();
    let actor_config = JournalActorConfig {
        writer: WriterConfig {
            queue_capacity: 1,
            max_batch_records: 1,
        },
        ..config(Arc::new(fs))
    };
    let (journal, handle) = JournalActor::spawn_with(&rt, "journal", "/j", actor_config)
        .await
        .unwrap();
    faults.close_gate();
    let mut appends = Vec::new();
    for n in 0..6u8 {
        let journal = journal.clone();
        appends.push(tokio::spawn(async move {
            append(&journal, &[n], Durability::None).await
        }));
    }
    // One record stuck in a write, one in the writer's queue, one waiting for room on
    // a blocking thread: the actor has taken three, three wait in its mailbox.
    support::wait_until(
        "the actor waits for room in the writer's queue",
        DEADLINE,
        || faults.waiting.load(SeqCst) == 1 && rt.status("journal").unwrap().mailbox_depth == 3,
    )
    .await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    faults.open_gate();
    let mut seqs = Vec::new();
    for append in appends {
        seqs.push(append.await.unwrap().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=6).collect::<Vec<u64>>());
    assert_eq!(handle.status().last_seq, 6);
    rt.shutdown().await;
}
