//! [`JournalWriter`]: a dedicated std thread that owns a [`Journal`] and group-commits.
//!
//! Appenders send records over a bounded `std::sync::mpsc` channel (a full queue blocks
//! the appender: back-pressure). The thread takes everything queued, writes it with one
//! write, acknowledges `Durability::None` records at once, and syncs the rest with one
//! `fdatasync` when its queue runs dry — waiting then would only add latency — or, while
//! records keep arriving, once the oldest waiting record reaches its `max_delay`, once
//! `max_bytes` of them pile up, or right away for `Durability::Each`.
//!
//! Acknowledgements go either to a [`Ticket`] (a one-shot `std::sync::mpsc` channel;
//! block on it with [`Ticket::wait`]) or to a callback given to
//! [`JournalWriter::append_with`], which runs on the writer thread: an async wrapper
//! passes a closure that completes a `tokio::sync::oneshot` and awaits that, so this
//! crate needs no async runtime. Callbacks must be quick and must not panic.
//!
//! Records sent through the writer are independent (each a batch of one, so a group
//! commit may span segments). Records that must survive a crash together — raft entries
//! and hard state — go through [`Journal::append_batch`] as one atomic batch.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::log::Framing;
use crate::journal::record::{Durability, PendingRecord};
use crate::journal::replay::JournalReader;
use crate::journal::Journal;

/// Tuning for the writer thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Records that may wait in the queue before appenders block. Default 16 384.
    pub queue_capacity: usize,
    /// Most records written in one batch. Default 4 096.
    pub max_batch_records: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 16_384,
            max_batch_records: 4_096,
        }
    }
}

type Callback = Box<dyn FnOnce(JournalResult<u64>) + Send>;

enum Acknowledger {
    Ticket(SyncSender<JournalResult<u64>>),
    Callback(Callback),
}

impl Acknowledger {
    fn send(self, result: JournalResult<u64>) {
        match self {
            // The appender may have dropped its ticket; nobody is left to tell.
            Self::Ticket(sender) => drop(sender.send(result)),
            Self::Callback(callback) => callback(result),
        }
    }
}

struct Request {
    record: PendingRecord,
    acknowledger: Acknowledger,
}

/// The acknowledgement of one append: its sequence number, or why it failed.
#[derive(Debug)]
#[must_use = "an append is only known to be durable once its ticket says so"]
pub struct Ticket {
    receiver: Option<Receiver<JournalResult<u64>>>,
    ready: Option<JournalResult<u64>>,
}

impl Ticket {
    fn ready(result: JournalResult<u64>) -> Self {
        Self {
            receiver: None,
            ready: Some(result),
        }
    }

    /// Blocks until the append is acknowledged (or fails).
    pub fn wait(mut self) -> JournalResult<u64> {
        if let Some(result) = self.ready.take() {
            return result;
        }
        let receiver = self
            .receiver
            .take()
            .expect("a pending ticket has a receiver");
        receiver.recv().unwrap_or(Err(JournalError::WriterStopped))
    }

    /// Waits at most `timeout`; `None` if the append is still in flight.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<JournalResult<u64>> {
        if let Some(result) = self.ready.take() {
            return Some(result);
        }
        let receiver = self.receiver.as_ref()?;
        match receiver.recv_timeout(timeout) {
            Ok(result) => Some(result),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(JournalError::WriterStopped)),
        }
    }
}

/// A handle to a journal owned by a group-committing writer thread. `Sync`: share it
/// between appender threads by reference or `Arc`.
#[derive(Debug)]
pub struct JournalWriter {
    sender: Option<SyncSender<Request>>,
    reader: JournalReader,
    thread: Option<JoinHandle<Journal>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Request").finish_non_exhaustive()
    }
}

impl JournalWriter {
    /// Moves `journal` onto a new writer thread with the default [`WriterConfig`].
    pub fn spawn(journal: Journal) -> JournalResult<Self> {
        Self::spawn_with(journal, WriterConfig::default())
    }

    /// Moves `journal` onto a new writer thread.
    pub fn spawn_with(journal: Journal, config: WriterConfig) -> JournalResult<Self> {
        let (sender, receiver) = mpsc::sync_channel(config.queue_capacity.max(1));
        let reader = journal.reader();
        let writer_loop = WriterLoop::new(journal, receiver, config.max_batch_records.max(1));
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer_loop.run())
            .map_err(|error| JournalError::io("spawning", "journal-writer".into(), error))?;
        Ok(Self {
            sender: Some(sender),
            reader,
            thread: Some(thread),
        })
    }

    /// Appends raw payload bytes.
    pub fn append(&self, kind: u16, payload: Vec<u8>, durability: Durability) -> Ticket {
        self.append_record(PendingRecord::raw(kind, payload).with_durability(durability))
    }

    /// Appends `value` encoded with bincode 2.
    pub fn append_serialized<T: Serialize + ?Sized>(
        &self,
        kind: u16,
        value: &T,
        durability: Durability,
    ) -> Ticket {
        match PendingRecord::encode(kind, value) {
            Ok(record) => self.append_record(record.with_durability(durability)),
            Err(error) => Ticket::ready(Err(error)),
        }
    }

    /// Appends a prepared record.
    pub fn append_record(&self, record: PendingRecord) -> Ticket {
        let (sender, receiver) = mpsc::sync_channel(1);
        match self.submit(record, Acknowledger::Ticket(sender)) {
            Ok(()) => Ticket {
                receiver: Some(receiver),
                ready: None,
            },
            Err(error) => Ticket::ready(Err(error)),
        }
    }

    /// Appends a prepared record; `on_acknowledged` runs on the writer thread (or here,
    /// if the append fails before reaching it) with the outcome.
    pub fn append_with(
        &self,
        record: PendingRecord,
        on_acknowledged: impl FnOnce(JournalResult<u64>) + Send + 'static,
    ) {
        let callback: Callback = Box::new(on_acknowledged);
        // A refusal has already been handed to the callback.
        let _refused = self.submit(record, Acknowledger::Callback(callback));
    }

    /// Sends a request, or acknowledges it here with the reason it cannot be sent.
    fn submit(&self, record: PendingRecord, acknowledger: Acknowledger) -> JournalResult<()> {
        let refusal = if let Some(poison) = self.reader.poisoned() {
            poison
        } else {
            let request = Request {
                record,
                acknowledger,
            };
            let sender = self.sender.as_ref().expect("sender lives until drop");
            match sender.send(request) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(request)) => {
                    request.acknowledger.send(Err(JournalError::WriterStopped));
                    return Err(JournalError::WriterStopped);
                }
            }
        };
        acknowledger.send(Err(refusal.clone()));
        Err(refusal)
    }

    /// A reader for replay and status while the writer runs.
    pub fn reader(&self) -> &JournalReader {
        &self.reader
    }

    /// Stops accepting appends, finishes (and syncs) what is queued, and hands the
    /// journal back.
    pub fn shutdown(mut self) -> JournalResult<Journal> {
        self.stop().ok_or(JournalError::WriterStopped)
    }

    fn stop(&mut self) -> Option<Journal> {
        drop(self.sender.take());
        self.thread.take()?.join().ok()
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A record written and waiting for its `fdatasync`.
struct Waiting {
    seq: u64,
    acknowledger: Acknowledger,
}

struct WriterLoop {
    journal: Journal,
    receiver: Receiver<Request>,
    max_batch_records: usize,
    waiting: Vec<Waiting>,
    waiting_bytes: usize,
    sync_by: Option<Instant>,
    sync_at_bytes: usize,
    sync_now: bool,
}

impl WriterLoop {
    fn new(journal: Journal, receiver: Receiver<Request>, max_batch_records: usize) -> Self {
        Self {
            journal,
            receiver,
            max_batch_records,
            waiting: Vec::new(),
            waiting_bytes: 0,
            sync_by: None,
            sync_at_bytes: usize::MAX,
            sync_now: false,
        }
    }

    fn run(mut self) -> Journal {
        loop {
            let first = if self.waiting.is_empty() {
                match self.receiver.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                }
            } else {
                match self.receiver.try_recv() {
                    Ok(request) => request,
                    Err(TryRecvError::Empty) => {
                        self.sync_and_acknowledge();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            let batch = self.collect(first);
            self.write(batch);
            if self.sync_due() {
                self.sync_and_acknowledge();
            }
        }
        self.sync_and_acknowledge();
        self.journal
    }

    fn collect(&mut self, first: Request) -> Vec<Request> {
        let mut batch = vec![first];
        while batch.len() < self.max_batch_records {
            match self.receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        batch
    }

    fn write(&mut self, batch: Vec<Request>) {
        let (records, acknowledgers): (Vec<PendingRecord>, Vec<Acknowledger>) = batch
            .into_iter()
            .map(|request| (request.record, request.acknowledger))
            .unzip();
        let seqs = match self
            .journal
            .write_unpublished(&records, Framing::Independent)
        {
            Ok(seqs) => seqs,
            Err(error) => {
                for acknowledger in acknowledgers {
                    acknowledger.send(Err(error.clone()));
                }
                return;
            }
        };
        let last = seqs.end - 1;
        for ((seq, record), acknowledger) in seqs.zip(&records).zip(acknowledgers) {
            self.route(seq, record, acknowledger);
        }
        // Readers see a prefix of acknowledged records only.
        let visible = self.waiting.first().map_or(last, |waiting| waiting.seq - 1);
        self.journal.publish(visible);
    }

    fn route(&mut self, seq: u64, record: &PendingRecord, acknowledger: Acknowledger) {
        match record.durability {
            Durability::None => {
                acknowledger.send(Ok(seq));
                return;
            }
            Durability::Each => self.sync_now = true,
            Durability::Batch {
                max_delay,
                max_bytes,
            } => {
                let deadline = Instant::now() + max_delay;
                self.sync_by = Some(self.sync_by.map_or(deadline, |by| by.min(deadline)));
                self.sync_at_bytes = self.sync_at_bytes.min(max_bytes);
            }
        }
        self.waiting_bytes += record.payload.len();
        self.waiting.push(Waiting { seq, acknowledger });
    }

    fn sync_due(&self) -> bool {
        !self.waiting.is_empty()
            && (self.sync_now
                || self.waiting_bytes >= self.sync_at_bytes
                || self.sync_by.is_some_and(|by| Instant::now() >= by))
    }

    fn sync_and_acknowledge(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let result = self.journal.sync();
        if result.is_ok() {
            self.journal.publish(self.journal.last_seq());
        }
        for waiting in self.waiting.drain(..) {
            let outcome = result.clone().map(|()| waiting.seq);
            waiting.acknowledger.send(outcome);
        }
        self.waiting_bytes = 0;
        self.sync_by = None;
        self.sync_at_bytes = usize::MAX;
        self.sync_now = false;
    }
}
