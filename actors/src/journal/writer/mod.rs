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
//! Records sent one by one are independent (each a batch of one, so a group commit may
//! span segments). Records that must survive a crash together — raft entries and hard
//! state — go through [`JournalWriter::append_batch`] (or [`Journal::append_batch`]) as
//! one atomic batch, which the group commit writes whole, in one segment.

mod commit;
mod ticket;

use std::ops::Range;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use serde::Serialize;

use crate::journal::error::{JournalError, JournalResult};
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

type Callback = Box<dyn FnOnce(JournalResult<u64>) + Send>;

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

struct Request {
    records: Records,
    acknowledger: Acknowledger,
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
            Err(error) => Ticket(Pending::ready(Err(error))),
        }
    }

    /// Appends a prepared record.
    pub fn append_record(&self, record: PendingRecord) -> Ticket {
        let (sender, receiver) = mpsc::sync_channel(1);
        match self.submit(Records::One(record), Acknowledger::Ticket(sender)) {
            Ok(()) => Ticket(Pending::waiting(receiver)),
            Err(error) => Ticket(Pending::ready(Err(error))),
        }
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
        match self.submit(Records::Batch(records), Acknowledger::Batch(sender)) {
            Ok(()) => BatchTicket(Pending::waiting(receiver)),
            Err(error) => BatchTicket(Pending::ready(Err(error))),
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
        let _refused = self.submit(Records::One(record), Acknowledger::Callback(callback));
    }

    /// Sends a request, or acknowledges it here with the reason it cannot be sent.
    fn submit(&self, records: Records, acknowledger: Acknowledger) -> JournalResult<()> {
        let refusal = if let Some(poison) = self.reader.poisoned() {
            poison
        } else {
            let request = Request {
                records,
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
