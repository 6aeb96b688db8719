//! The dead-letter sink: every message that was taken but not handled, or queued but never
//! delivered, ends up here — counted exactly, and kept (the most recent ones) for reading.

use crate::sync::lock;
use std::{
    any::Any,
    collections::VecDeque,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
};

/// Why a message became a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// The handler panicked while handling it; the text is the panic message.
    Panicked(String),
    /// The handler returned this error.
    Failed(String),
    /// It was queued but the actor stopped for good (shutdown) before taking it.
    Undelivered,
}

/// One message that was not handled.
pub struct DeadLetter {
    /// The actor (or pool) it was addressed to.
    pub actor: String,
    /// Why it was not handled.
    pub reason: DeadLetterReason,
    /// The message's Rust type name.
    pub message_type: &'static str,
    /// The message itself when the runtime still holds it (undelivered messages). A message
    /// consumed by a panicking handler was moved into the handler and cannot be returned.
    pub message: Option<Box<dyn Any + Send>>,
}

impl DeadLetter {
    /// The message, downcast to its type, if the sink holds it.
    pub fn downcast<M: 'static>(self) -> Option<M> {
        self.message?.downcast::<M>().ok().map(|message| *message)
    }
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("actor", &self.actor)
            .field("reason", &self.reason)
            .field("message_type", &self.message_type)
            .field("has_message", &self.message.is_some())
            .finish()
    }
}

/// A runtime's dead-letter sink. The count is exact; the records kept are the most recent
/// ones within two bounds: at most `retain` records, and at most `retain_bytes` bytes of
/// retained messages (each counted at its own size, `size_of_val`; what a message owns on
/// the heap is not seen). Older records are dropped from memory, never from the count.
///
/// Cloning it is cheap and yields a handle to the *same* sink, so a subsystem that handles
/// its own failures (a device launcher putting a faulted batch aside without failing) can
/// keep one: `rt.dead_letters().clone()`.
#[derive(Clone)]
pub struct DeadLetters {
    inner: Arc<Inner>,
}

struct Inner {
    total: AtomicU64,
    retain: usize,
    retain_bytes: usize,
    records: Mutex<Retained>,
}

#[derive(Default)]
struct Retained {
    letters: VecDeque<(DeadLetter, usize)>,
    bytes: usize,
}

impl DeadLetters {
    pub(crate) fn new(retain: usize, retain_bytes: usize) -> Self {
        DeadLetters {
            inner: Arc::new(Inner {
                total: AtomicU64::new(0),
                retain,
                retain_bytes,
                records: Mutex::new(Retained::default()),
            }),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Retained> {
        lock(&self.inner.records)
    }

    /// Records a message that will not be handled, counted like the runtime's own dead
    /// letters, for subsystems that take a message out of the flow themselves (a batch a
    /// device could not run); `letter.message` keeps the message for inspection. `bytes` is
    /// what the retained message weighs for the retention bound — unlike the runtime's own
    /// records (counted at `size_of_val`), include what it owns on the heap (a batch's
    /// data) when you know it.
    pub fn record(&self, letter: DeadLetter, bytes: usize) {
        self.retain(letter, bytes);
    }

    /// Records one of the runtime's own dead letters, weighed at its message's size.
    pub(crate) fn push(&self, letter: DeadLetter) {
        let bytes = letter
            .message
            .as_ref()
            .map_or(0, |message| std::mem::size_of_val(&**message));
        self.retain(letter, bytes);
    }

    fn retain(&self, letter: DeadLetter, bytes: usize) {
        let inner = &*self.inner;
        inner.total.fetch_add(1, Relaxed);
        tracing::debug!(actor = %letter.actor, reason = ?letter.reason, "dead letter");
        if inner.retain == 0 {
            return;
        }
        let bytes = if letter.message.is_some() { bytes } else { 0 };
        let mut records = self.records();
        records.letters.push_back((letter, bytes));
        records.bytes += bytes;
        while records.letters.len() > inner.retain
            || (records.bytes > inner.retain_bytes && records.letters.len() > 1)
        {
            if let Some((_, dropped)) = records.letters.pop_front() {
                records.bytes -= dropped;
            }
        }
        if records.bytes > inner.retain_bytes {
            // A single message larger than the whole budget: keep its record, not its
            // payload (dropping the payload also drops a reply it may carry).
            if let Some((letter, bytes)) = records.letters.back_mut() {
                letter.message = None;
                let bytes = std::mem::take(bytes);
                records.bytes -= bytes;
            }
        }
    }

    /// Bytes of retained messages now (each counted at its own size).
    pub fn retained_bytes(&self) -> usize {
        self.records().bytes
    }

    /// Every dead letter ever recorded in this runtime.
    pub fn count(&self) -> u64 {
        self.inner.total.load(Relaxed)
    }

    /// Takes the records kept so far (oldest first); the count is unchanged.
    pub fn drain(&self) -> Vec<DeadLetter> {
        let mut records = self.records();
        records.bytes = 0;
        records
            .letters
            .drain(..)
            .map(|(letter, _)| letter)
            .collect()
    }

    /// How many records are kept now.
    pub fn len(&self) -> usize {
        self.records().letters.len()
    }

    /// Whether no record is kept now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("count", &self.count())
            .field("kept", &self.len())
            .finish()
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
