//! The writer thread's loop: collect what is queued, write it, sync when due,
//! acknowledge.

use std::ops::Range;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use super::{Acknowledger, Records, Request};
use crate::journal::error::JournalError;
use crate::journal::log::Framing;
use crate::journal::record::{Durability, PendingRecord};
use crate::journal::Journal;

/// Records written and waiting for their `fdatasync`: one request's sequence numbers.
struct Waiting {
    seqs: Range<u64>,
    acknowledger: Acknowledger,
}

pub(super) struct WriterLoop {
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
    pub(super) fn new(
        journal: Journal,
        receiver: Receiver<Request>,
        max_batch_records: usize,
    ) -> Self {
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
            if let Some(error) = &failure {
                request.acknowledger.send(Err(error.clone()));
                continue;
            }
            let mut group = vec![(request.records, request.acknowledger)];
            if matches!(group[0].0, Records::One(_)) {
                while let Some(next) =
                    requests.next_if(|next| matches!(next.records, Records::One(_)))
                {
                    group.push((next.records, next.acknowledger));
                }
            }
            match self.write_group(group) {
                Ok(written) => last = Some(written),
                Err(error) => failure = Some(error),
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
            acknowledger.send(Ok(seqs));
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
