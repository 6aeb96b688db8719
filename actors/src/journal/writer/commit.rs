//! The writer thread's loop: collect what is queued, write it, sync when due,
//! acknowledge; and the watch that tells the writer's owner when the loop fails.

use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::{Acknowledger, Records, Request, Watcher, WriterFailure};
use crate::journal::error::JournalError;
use crate::journal::log::Framing;
use crate::journal::record::{Durability, PendingRecord};
use crate::journal::Journal;

/// Records written and waiting for their `fdatasync`: one request's sequence numbers.
struct Waiting {
    seqs: Range<u64>,
    acknowledger: Acknowledger,
}

/// The watcher, shared by the loop (which reports a poison) and [`run_watched`] (which
/// reports a panic); whoever reports first takes it.
#[derive(Clone, Default)]
struct Watch(Arc<Mutex<Option<Watcher>>>);

impl Watch {
    fn report(&self, failure: WriterFailure) {
        let watcher = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(watcher) = watcher {
            watcher(failure);
        }
    }
}

/// Runs the loop, telling `watcher` (once) if the journal gets poisoned or the loop
/// panics; a panic then goes on unwinding, so joining the thread reports it.
pub(super) fn run_watched(mut writer_loop: WriterLoop, watcher: Watcher) -> Journal {
    let watch = Watch(Arc::new(Mutex::new(Some(watcher))));
    writer_loop.watch = watch.clone();
    match catch_unwind(AssertUnwindSafe(move || writer_loop.run())) {
        Ok(journal) => journal,
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            tracing::error!(panic = %text, "journal writer thread panicked");
            watch.report(WriterFailure::Panicked(text));
            resume_unwind(payload)
        }
    }
}

pub(super) struct WriterLoop {
    watch: Watch,
    journal: Journal,
    receiver: Receiver<Request>,
    max_batch_records: usize,
    waiting: Vec<Waiting>,
    /// Written records that need no sync, acknowledged once the write that holds them is
    /// published: whoever is told a sequence number can read it (`Journal::last_seq`).
    written: Vec<(Range<u64>, Acknowledger)>,
    waiting_bytes: usize,
    sync_by: Option<Instant>,
    sync_at_bytes: usize,
    sync_now: bool,
}

impl WriterLoop {
    pub(super) fn new(
        journal: Journal,
        receiver: Receiver<Request>,
        max_batch_records: usize,
    ) -> Self {
        Self {
            watch: Watch::default(),
            journal,
            receiver,
            max_batch_records,
            waiting: Vec::new(),
            written: Vec::new(),
            waiting_bytes: 0,
            sync_by: None,
            sync_at_bytes: usize::MAX,
            sync_now: false,
        }
    }

    pub(super) fn run(mut self) -> Journal {
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

    /// Writes the collected requests: each run of single records with one write (they
    /// may span segments), each atomic batch with one write of its own. After a failed
    /// write the rest of the collection fails with the same error.
    fn write(&mut self, batch: Vec<Request>) {
        let mut last = None;
        let mut failure: Option<JournalError> = None;
        let mut requests = batch.into_iter().peekable();
        while let Some(request) = requests.next() {
            let (records, acknowledger) = match request {
                Request::Retain { policy, done } => {
                    done(self.journal.retain(&policy));
                    self.watch_for_poison();
                    continue;
                }
                Request::Append {
                    records,
                    acknowledger,
                } => (records, acknowledger),
            };
            if let Some(error) = &failure {
                acknowledger.send(Err(error.clone()));
                continue;
            }
            let mut group = vec![(records, acknowledger)];
            if matches!(group[0].0, Records::One(_)) {
                while let Some(Request::Append {
                    records,
                    acknowledger,
                }) = requests.next_if(|next| {
                    matches!(
                        next,
                        Request::Append {
                            records: Records::One(_),
                            ..
                        }
                    )
                }) {
                    group.push((records, acknowledger));
                }
            }
            match self.write_group(group) {
                Ok(written) => last = Some(written),
                Err(error) => {
                    failure = Some(error);
                    self.watch_for_poison();
                }
            }
        }
        if let Some(last) = last {
            // Readers see a prefix of acknowledged records only.
            let visible = self
                .waiting
                .first()
                .map_or(last, |waiting| waiting.seqs.start - 1);
            self.journal.publish(visible);
        }
        for (seqs, acknowledger) in self.written.drain(..) {
            acknowledger.send(Ok(seqs));
        }
    }

    /// Writes one group (single records, or one atomic batch) and routes its
    /// acknowledgements; returns the last sequence number written.
    fn write_group(&mut self, group: Vec<(Records, Acknowledger)>) -> Result<u64, JournalError> {
        let framing = match group[0].0 {
            Records::One(_) => Framing::Independent,
            Records::Batch(_) => Framing::Atomic,
        };
        let mut records: Vec<PendingRecord> = Vec::new();
        let mut owners: Vec<(usize, Acknowledger)> = Vec::new();
        for (request_records, acknowledger) in group {
            let count = match request_records {
                Records::One(record) => {
                    records.push(record);
                    1
                }
                Records::Batch(batch) => {
                    let count = batch.len();
                    records.extend(batch);
                    count
                }
            };
            owners.push((count, acknowledger));
        }
        let seqs = match self.journal.write_unpublished(&records, framing) {
            Ok(seqs) => seqs,
            Err(error) => {
                for (_, acknowledger) in owners {
                    acknowledger.send(Err(error.clone()));
                }
                return Err(error);
            }
        };
        let mut next = seqs.start;
        let mut offset = 0;
        for (count, acknowledger) in owners {
            let own = next..next + count as u64;
            self.route(own, &records[offset..offset + count], acknowledger);
            next += count as u64;
            offset += count;
        }
        Ok(seqs.end - 1)
    }

    /// Acknowledges a request now, or queues it for the sync its durability asks for
    /// (the strictest of its records').
    fn route(&mut self, seqs: Range<u64>, records: &[PendingRecord], acknowledger: Acknowledger) {
        let mut needs_sync = false;
        for record in records {
            match record.durability {
                Durability::None => {}
                Durability::Each => {
                    self.sync_now = true;
                    needs_sync = true;
                }
                Durability::Batch {
                    max_delay,
                    max_bytes,
                } => {
                    let deadline = Instant::now() + max_delay;
                    self.sync_by = Some(self.sync_by.map_or(deadline, |by| by.min(deadline)));
                    self.sync_at_bytes = self.sync_at_bytes.min(max_bytes);
                    needs_sync = true;
                }
            }
        }
        if !needs_sync {
            self.written.push((seqs, acknowledger));
            return;
        }
        self.waiting_bytes += records
            .iter()
            .map(|record| record.payload.len())
            .sum::<usize>();
        self.waiting.push(Waiting { seqs, acknowledger });
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
        } else {
            self.watch_for_poison();
        }
        for waiting in self.waiting.drain(..) {
            let outcome = result.clone().map(|()| waiting.seqs);
            waiting.acknowledger.send(outcome);
        }
        self.waiting_bytes = 0;
        self.sync_by = None;
        self.sync_at_bytes = usize::MAX;
        self.sync_now = false;
    }
}

impl WriterLoop {
    /// Tells the watcher if the journal is poisoned now (after a failed operation).
    fn watch_for_poison(&self) {
        if let Some(poison) = self.journal.reader().poisoned() {
            tracing::error!(error = %poison, "journal writer poisoned");
            self.watch.report(WriterFailure::Poisoned(poison));
        }
    }
}
