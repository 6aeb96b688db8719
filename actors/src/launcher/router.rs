//! [`Router`]: picks a launcher per prepared batch by the composite device score
//! ([`score`], [`pick`]) and hands the batch to it.
//!
//! The router is a [`Downstream`] stage, not an actor: it runs on the task that hands it a
//! batch (a preprocessor worker), so routing costs no extra mailbox hop. It only sends to
//! launchers in rotation with a free prefetch place; when every one in rotation is full it
//! waits (back-pressure to the preprocessor) until one has room. When none is in rotation
//! (or every one has stopped) the batch goes to the dead-letter sink: every batch ends
//! finished or dead-lettered.

use std::{
    future::{poll_fn, Future},
    pin::Pin,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    task::Poll,
};

use vortex_messages::pipeline::PreparedBatch;
use vortex_runtime::{DeadLetter, DeadLetterReason, DeadLetters};

use crate::{
    launcher::{
        actor::{LaunchRequest, LauncherHandle},
        core::{pick, score, ScoreWeights},
    },
    preprocessor::{Downstream, SendFuture},
};

/// How long a router waiting for room goes without looking again (a launcher that
/// stopped while full never signals).
const RECHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// Routes prepared batches across launchers. Cheap to share behind an `Arc`.
pub struct Router {
    name: String,
    launchers: Vec<LauncherHandle>,
    weights: ScoreWeights,
    cursor: AtomicUsize,
    dead_letters: DeadLetters,
    routed: Vec<AtomicU64>,
    unroutable: AtomicU64,
}

impl Router {
    /// A router named `name` over `launchers`, scoring with `weights`; batches no launcher
    /// can take go to `dead_letters` (`rt.dead_letters().clone()`).
    pub fn new(
        name: impl Into<String>,
        launchers: Vec<LauncherHandle>,
        weights: ScoreWeights,
        dead_letters: DeadLetters,
    ) -> Self {
        let routed = launchers.iter().map(|_| AtomicU64::new(0)).collect();
        Router {
            name: name.into(),
            launchers,
            weights,
            cursor: AtomicUsize::new(0),
            dead_letters,
            routed,
            unroutable: AtomicU64::new(0),
        }
    }

    /// The launchers, in routing order.
    pub fn launchers(&self) -> &[LauncherHandle] {
        &self.launchers
    }

    /// Batches routed to each launcher so far (same order as [`launchers`](Self::launchers)).
    pub fn routed(&self) -> Vec<u64> {
        self.routed
            .iter()
            .map(|count| count.load(Relaxed))
            .collect()
    }

    /// Batches that found no launcher in rotation (dead-lettered).
    pub fn unroutable(&self) -> u64 {
        self.unroutable.load(Relaxed)
    }

    /// Reserves a prefetch place on the best-scoring launcher with room. `Err(true)` when
    /// some launcher is in rotation but all are full, `Err(false)` when none is in rotation.
    fn reserve(&self) -> Result<usize, bool> {
        let mut scores: Vec<Option<f64>> = self
            .launchers
            .iter()
            .map(|launcher| {
                let available = launcher.stats().in_rotation() && !launcher.addr().is_closed();
                available.then(|| score(&launcher.signals(), &self.weights))
            })
            .collect();
        if scores.iter().all(Option::is_none) {
            return Err(false);
        }
        let cursor = self.cursor.load(Relaxed);
        while let Some(index) = pick(&scores, cursor) {
            if self.launchers[index].stats().try_reserve() {
                self.cursor.store(index + 1, Relaxed);
                return Ok(index);
            }
            scores[index] = None; // full: try the next best
        }
        Err(true)
    }

    /// Routes one batch: waits for a place, sends it, or dead-letters it.
    pub async fn route(&self, batch: PreparedBatch) {
        let index = loop {
            // Fast path: a place is free (no allocation, no registration).
            match self.reserve() {
                Ok(index) => break index,
                Err(false) => return self.no_device(batch),
                Err(true) => {}
            }
            // All full: register interest, then look again, so a place freed in between
            // is not missed; wait for any launcher to signal a change.
            let mut waits: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = self
                .launchers
                .iter()
                .map(|launcher| Box::pin(launcher.stats().changed.notified()))
                .collect();
            for wait in &mut waits {
                wait.as_mut().enable();
            }
            match self.reserve() {
                Ok(index) => break index,
                Err(false) => return self.no_device(batch),
                Err(true) => {
                    // A launcher that stops while full never signals again: look again
                    // at least every `RECHECK`, so a stopped launcher cannot hold us.
                    let woken = poll_fn(|cx| {
                        let woken = waits
                            .iter_mut()
                            .any(|wait| wait.as_mut().poll(cx).is_ready());
                        if woken {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    });
                    let _ = tokio::time::timeout(RECHECK, woken).await;
                }
            }
        };
        let launcher = &self.launchers[index];
        let request = LaunchRequest {
            batch,
            routed_at: std::time::Instant::now(),
            reserved: true,
        };
        match launcher.addr().tell(request).await {
            Ok(()) => {
                self.routed[index].fetch_add(1, Relaxed);
            }
            Err(refused) => {
                launcher.stats().release();
                let request = refused.into_inner();
                self.dead_letter(
                    request.batch,
                    format!("launcher `{}` stopped", launcher.name()),
                );
            }
        }
    }

    fn no_device(&self, batch: PreparedBatch) {
        self.unroutable.fetch_add(1, Relaxed);
        tracing::warn!(router = %self.name, batch = batch.id, "no device in rotation");
        self.dead_letter(batch, "no device in rotation".to_owned());
    }

    fn dead_letter(&self, batch: PreparedBatch, reason: String) {
        let bytes = std::mem::size_of::<PreparedBatch>() + batch.data.capacity();
        let letter = DeadLetter {
            actor: self.name.clone(),
            reason: DeadLetterReason::Failed(reason),
            message_type: std::any::type_name::<PreparedBatch>(),
            message: Some(Box::new(batch)),
        };
        self.dead_letters.record(letter, bytes);
    }
}

impl Downstream<PreparedBatch> for Router {
    /// Routes the batch. Never an error: a batch no launcher can take is dead-lettered.
    fn send(&self, item: PreparedBatch) -> SendFuture<'_> {
        Box::pin(async move {
            self.route(item).await;
            Ok(())
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("name", &self.name)
            .field("launchers", &self.launchers.len())
            .field("routed", &self.routed())
            .field("unroutable", &self.unroutable())
            .finish()
    }
}
