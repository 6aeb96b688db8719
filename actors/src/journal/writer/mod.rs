//! [`JournalWriter`]: a dedicated std thread that owns a [`Journal`] and group-commits.
//!
//! Appenders send records over a bounded `std::sync::mpsc` channel (a full queue blocks
//! the appender: back-pressure; [`JournalWriter::try_append_with`] hands a full queue
//! back instead, for callers that must not block). The thread takes everything queued,
//! writes it with one write, acknowledges `Durability::None` records at once, and syncs
//! the rest with one `fdatasync` when its queue runs dry — waiting then would only add
//! latency — or, while records keep arriving, once the oldest waiting record reaches its
//! `max_delay`, once `max_bytes` of them pile up, or right away for `Durability::Each`.
//!
//! Acknowledgements go either to a [`Ticket`] (a one-shot `std::sync::mpsc` channel;
//! block on it with [`Ticket::wait`]) or to a callback given to
//! [`JournalWriter::append_with`], which runs on the writer thread: an async wrapper
//! passes a closure that completes a `tokio::sync::oneshot` and awaits that, so this
//! crate needs no async runtime. Callbacks must be quick and must not panic.
//!
//! Records sent one by one are independent (each a batch of one, so a group commit may
//! span segments). Records that must survive a crash together — raft entries and hard
//! state — go through [`JournalWriter::append_batch`] (or [`Journal::append_batch`]) as
//! one atomic batch, which the group commit writes whole, in one segment.
//!
//! Retention runs on the writer thread too ([`JournalWriter::retain_with`]), between two
//! group commits, so it never races an append.
//!
//! Stopping: [`JournalWriter::close`] (and dropping the writer) only stops new appends —
//! the thread finishes what is queued, syncs it and exits on its own, so dropping a
//! writer never blocks the dropping thread (an async worker, say). Wait for the thread
//! with [`JournalWriter::shutdown`] or [`JournalWriter::wait_stopped`], off the async
//! workers. The thread's failures — the journal poisoned, the thread panicking — go to
//! the watcher given to [`JournalWriter::spawn_watched`].

mod commit;
mod ticket;

use std::ops::Range;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use arc_swap::ArcSwapOption;
use serde::Serialize;

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::log::{RetentionPolicy, RetentionReport};
use crate::journal::record::{Durability, PendingRecord};
use crate::journal::replay::JournalReader;
use crate::journal::Journal;
use commit::WriterLoop;
use ticket::Pending;
pub use ticket::{BatchTicket, Ticket};

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

/// Why a writer thread can no longer append: told once to the watcher given to
/// [`JournalWriter::spawn_watched`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WriterFailure {
    /// An `fsync` (or a write it could not undo) failed: the journal refuses appends
    /// from now on, and only a reopen (with recovery) can go on.
    #[error("journal writer poisoned: {0}")]
    Poisoned(JournalError),
    /// The writer thread panicked (a callback panicked, or a bug).
    #[error("journal writer thread panicked: {0}")]
    Panicked(String),
}

type Callback = Box<dyn FnOnce(JournalResult<u64>) + Send>;
type RetainCallback = Box<dyn FnOnce(JournalResult<RetentionReport>) + Send>;
type Watcher = Box<dyn FnOnce(WriterFailure) + Send>;

enum Acknowledger {
    Ticket(SyncSender<JournalResult<u64>>),
    Callback(Callback),
    Batch(SyncSender<JournalResult<Vec<u64>>>),
}

impl Acknowledger {
    /// Tells the appender the sequence numbers of its records (one, or a whole batch).
    fn send(self, result: JournalResult<Range<u64>>) {
        match self {
            // The appender may have dropped its ticket; nobody is left to tell.
            Self::Ticket(sender) => drop(sender.send(result.map(|seqs| seqs.start))),
            Self::Callback(callback) => callback(result.map(|seqs| seqs.start)),
            Self::Batch(sender) => drop(sender.send(result.map(Iterator::collect))),
        }
    }
}

/// What one request appends.
enum Records {
    /// One record, committed on its own.
    One(PendingRecord),
    /// An atomic batch (see [`Journal::append_batch`]).
    Batch(Vec<PendingRecord>),
}

enum Request {
    Append {
        records: Records,
        acknowledger: Acknowledger,
    },
    Retain {
        policy: RetentionPolicy,
        done: RetainCallback,
    },
}

impl Request {
    /// Tells whoever waits on this request that it failed with `error`.
    fn refuse(self, error: JournalError) {
        match self {
            Self::Append { acknowledger, .. } => acknowledger.send(Err(error)),
            Self::Retain { done, .. } => done(Err(error)),
        }
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Request").finish_non_exhaustive()
    }
}

/// A request the writer's queue had no room for (see
/// [`JournalWriter::try_append_with`]). Nothing was appended yet.
#[derive(Debug)]
#[must_use = "dropping it fails the request with `WriterStopped`"]
pub struct QueueFull {
    request: Option<Request>,
    sender: SyncSender<Request>,
}

impl QueueFull {
    /// Blocks until the queue has room, then queues the request (or fails it, if the
    /// writer stopped meanwhile). Call it off the async workers (`spawn_blocking`).
    pub fn send_blocking(mut self) {
        let request = self.request.take().expect("a full request is sent once");
        if let Err(mpsc::SendError(request)) = self.sender.send(request) {
            request.refuse(JournalError::WriterStopped);
        }
    }
}

impl Drop for QueueFull {
    fn drop(&mut self) {
        if let Some(request) = self.request.take() {
            request.refuse(JournalError::WriterStopped);
        }
    }
}

/// A handle to a journal owned by a group-committing writer thread. `Sync`: share it
/// between appender threads by reference or `Arc`.
#[derive(Debug)]
pub struct JournalWriter {
    sender: ArcSwapOption<SyncSender<Request>>,
    reader: JournalReader,
    thread: Mutex<Option<JoinHandle<Journal>>>,
}

impl JournalWriter {
    /// Moves `journal` onto a new writer thread with the default [`WriterConfig`].
    pub fn spawn(journal: Journal) -> JournalResult<Self> {
        Self::spawn_with(journal, WriterConfig::default())
    }

    /// Moves `journal` onto a new writer thread.
    pub fn spawn_with(journal: Journal, config: WriterConfig) -> JournalResult<Self> {
        Self::spawn_watched(journal, config, |_| {})
    }

    /// Moves `journal` onto a new writer thread; `watcher` runs once, on the writer
    /// thread, if the journal gets poisoned or the thread panics, so that an owner (the
    /// journal actor) can treat that as a failure of its own. It must not block.
    pub fn spawn_watched(
        journal: Journal,
        config: WriterConfig,
        watcher: impl FnOnce(WriterFailure) + Send + 'static,
    ) -> JournalResult<Self> {
        let (sender, receiver) = mpsc::sync_channel(config.queue_capacity.max(1));
        let reader = journal.reader();
        let writer_loop = WriterLoop::new(journal, receiver, config.max_batch_records.max(1));
        let watcher: Watcher = Box::new(watcher);
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || commit::run_watched(writer_loop, watcher))
            .map_err(|error| JournalError::io("spawning", "journal-writer".into(), error))?;
        Ok(Self {
            sender: ArcSwapOption::from_pointee(sender),
            reader,
            thread: Mutex::new(Some(thread)),
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
            Err(error) => Ticket(Pending::ready(Err(error))),
        }
    }

    /// Appends a prepared record.
    pub fn append_record(&self, record: PendingRecord) -> Ticket {
        let (sender, receiver) = mpsc::sync_channel(1);
        let request = Request::Append {
            records: Records::One(record),
            acknowledger: Acknowledger::Ticket(sender),
        };
        self.submit(request);
        Ticket(Pending::waiting(receiver))
    }

    /// Appends `records` as one atomic batch, group-committed with whatever else is
    /// queued: after a crash all of them are in the journal or none, and the ticket
    /// gives their sequence numbers once the whole batch is durable (by the strictest
    /// durability among them), or the one error that failed it.
    pub fn append_batch(&self, records: Vec<PendingRecord>) -> BatchTicket {
        if records.is_empty() {
            return BatchTicket(Pending::ready(Ok(Vec::new())));
        }
        let (sender, receiver) = mpsc::sync_channel(1);
        let request = Request::Append {
            records: Records::Batch(records),
            acknowledger: Acknowledger::Batch(sender),
        };
        self.submit(request);
        BatchTicket(Pending::waiting(receiver))
    }

    /// Appends a prepared record; `on_acknowledged` runs on the writer thread (or here,
    /// if the append fails before reaching it) with the outcome. Blocks while the queue
    /// is full.
    pub fn append_with(
        &self,
        record: PendingRecord,
        on_acknowledged: impl FnOnce(JournalResult<u64>) + Send + 'static,
    ) {
        let request = Request::Append {
            records: Records::One(record),
            acknowledger: Acknowledger::Callback(Box::new(on_acknowledged)),
        };
        self.submit(request);
    }

    /// Like [`JournalWriter::append_with`], but never blocks: when the queue is full the
    /// request comes back as [`QueueFull`], to be sent from a thread that may block.
    pub fn try_append_with(
        &self,
        record: PendingRecord,
        on_acknowledged: impl FnOnce(JournalResult<u64>) + Send + 'static,
    ) -> Result<(), QueueFull> {
        self.try_submit(Request::Append {
            records: Records::One(record),
            acknowledger: Acknowledger::Callback(Box::new(on_acknowledged)),
        })
    }

    /// Removes sealed segments as `policy` says, on the writer thread between two group
    /// commits; `done` runs there with the report. Segments a [`Replay`] is still
    /// reading are kept until it moves past them (see [`RetentionReport::deferred`]).
    /// Never blocks: a full queue comes back as [`QueueFull`].
    ///
    /// [`Replay`]: crate::journal::Replay
    pub fn retain_with(
        &self,
        policy: RetentionPolicy,
        done: impl FnOnce(JournalResult<RetentionReport>) + Send + 'static,
    ) -> Result<(), QueueFull> {
        self.try_submit(Request::Retain {
            policy,
            done: Box::new(done),
        })
    }

    /// Applies `policy` on the writer thread and waits for the report (blocking).
    pub fn retain(&self, policy: RetentionPolicy) -> JournalResult<RetentionReport> {
        let (sender, receiver) = mpsc::sync_channel(1);
        let request = Request::Retain {
            policy,
            done: Box::new(move |report| drop(sender.send(report))),
        };
        self.submit(request);
        receiver.recv().unwrap_or(Err(JournalError::WriterStopped))
    }

    /// Sends a request, blocking while the queue is full. A refusal (poisoned, stopped)
    /// reaches the request's acknowledger, as every outcome does.
    fn submit(&self, request: Request) {
        if let Err(full) = self.try_submit(request) {
            full.send_blocking();
        }
    }

    /// Sends a request without blocking. A refusal (poisoned, stopped) is handed to the
    /// request's acknowledger here and reported as `Ok`; only a full queue comes back.
    fn try_submit(&self, request: Request) -> Result<(), QueueFull> {
        if let Some(poison) = self.reader.poisoned() {
            request.refuse(poison);
            return Ok(());
        }
        let guard = self.sender.load();
        let Some(sender) = guard.as_ref() else {
            request.refuse(JournalError::WriterStopped);
            return Ok(());
        };
        match sender.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(request)) => Err(QueueFull {
                request: Some(request),
                sender: SyncSender::clone(sender),
            }),
            Err(TrySendError::Disconnected(request)) => {
                request.refuse(JournalError::WriterStopped);
                Ok(())
            }
        }
    }

    /// A reader for replay and status while the writer runs.
    pub fn reader(&self) -> &JournalReader {
        &self.reader
    }

    /// Stops accepting appends without waiting: later appends fail with
    /// [`JournalError::WriterStopped`]; the thread finishes (and syncs) what is queued
    /// and exits.
    pub fn close(&self) {
        self.sender.store(None);
    }

    /// Closes the writer and blocks until its thread has exited (at once if it already
    /// did). `Err` if the thread panicked, or another caller already waited for it.
    pub fn wait_stopped(&self) -> JournalResult<()> {
        self.join().map(drop)
    }

    /// Stops accepting appends, finishes (and syncs) what is queued, and hands the
    /// journal back. Blocks: call it off the async workers.
    pub fn shutdown(self) -> JournalResult<Journal> {
        self.join()
    }

    fn join(&self) -> JournalResult<Journal> {
        self.close();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        thread
            .ok_or(JournalError::WriterStopped)?
            .join()
            .map_err(|_| JournalError::WriterStopped)
    }
}

impl Drop for JournalWriter {
    /// Closes the writer; the thread finishes on its own (see the module docs).
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
