//! [`Ticket`] and [`BatchTicket`]: what an appender holds until its append is
//! acknowledged.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::journal::error::{JournalError, JournalResult};

/// A one-shot acknowledgement: already known, or on its way over a channel.
#[derive(Debug)]
pub(super) struct Pending<T> {
    receiver: Option<Receiver<JournalResult<T>>>,
    ready: Option<JournalResult<T>>,
}

impl<T> Pending<T> {
    pub(super) fn ready(result: JournalResult<T>) -> Self {
        Self {
            receiver: None,
            ready: Some(result),
        }
    }

    pub(super) fn waiting(receiver: Receiver<JournalResult<T>>) -> Self {
        Self {
            receiver: Some(receiver),
            ready: None,
        }
    }

    fn wait(mut self) -> JournalResult<T> {
        if let Some(result) = self.ready.take() {
            return result;
        }
        let receiver = self
            .receiver
            .take()
            .expect("a pending ticket has a receiver");
        receiver.recv().unwrap_or(Err(JournalError::WriterStopped))
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Option<JournalResult<T>> {
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

/// The acknowledgement of one append: its sequence number, or why it failed.
#[derive(Debug)]
#[must_use = "an append is only known to be durable once its ticket says so"]
pub struct Ticket(pub(super) Pending<u64>);

impl Ticket {
    /// Blocks until the append is acknowledged (or fails).
    pub fn wait(self) -> JournalResult<u64> {
        self.0.wait()
    }

    /// Waits at most `timeout`; `None` if the append is still in flight.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<JournalResult<u64>> {
        self.0.wait_timeout(timeout)
    }
}

/// The acknowledgement of one atomic batch: the sequence numbers of all its records, or
/// why the whole batch failed.
#[derive(Debug)]
#[must_use = "a batch is only known to be durable once its ticket says so"]
pub struct BatchTicket(pub(super) Pending<Vec<u64>>);

impl BatchTicket {
    /// Blocks until the batch is acknowledged (or fails).
    pub fn wait(self) -> JournalResult<Vec<u64>> {
        self.0.wait()
    }

    /// Waits at most `timeout`; `None` if the batch is still in flight.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<JournalResult<Vec<u64>>> {
        self.0.wait_timeout(timeout)
    }
}
