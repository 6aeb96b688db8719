//! The journal as a supervised actor. Appends arrive as messages and are handed to the
//! group-committing [`JournalWriter`] without waiting, so many appenders share one
//! `fdatasync`; each append's [`Reply`] is completed from the writer thread when the
//! record is acknowledged (durable if it asked to be).
//!
//! The writer is the actor's: a writer that fails — its journal poisoned by a failed
//! `fsync`, or its thread dead — fails the actor, so its supervisor sees it, and every
//! incarnation (the first, and each restart) opens the journal with recovery, logs the
//! [`RecoveryReport`](crate::journal::RecoveryReport), shows it in `Status` detail and
//! publishes it as a `JournalRecovered` event. Nothing here blocks an async worker: a
//! full writer queue is waited for on a blocking thread, and the writer thread is
//! joined only off the workers.
//!
//! Retention runs while the journal is live: [`JournalMessage::Retain`] on demand, and a
//! [`RetentionSchedule`](crate::journal::RetentionSchedule) the actor applies on its own timer.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use vortex_runtime::{
    Actor, ActorError, ActorSpec, Addr, Context, Reply, Runtime, RuntimeError, TrySendError,
};

use crate::journal::lineage::{JournalActorConfig, JournalHandle, Lineage, Opened};
use crate::journal::writer::{QueueFull, WriterFailure};
use crate::journal::{
    JournalConfig, JournalError, JournalResult, JournalStatus, JournalWriter, PendingRecord,
    RetentionPolicy, RetentionReport,
};

/// Messages the journal actor handles.
pub enum JournalMessage {
    /// Append one record; the reply carries its sequence number once acknowledged.
    Append {
        /// The record (kind, payload, durability).
        record: PendingRecord,
        /// Completed with the record's seq, or the typed error (oversized, poisoned, …).
        reply: Reply<JournalResult<u64>>,
    },
    /// Report the journal's status.
    Status(Reply<JournalStatus>),
    /// Remove sealed segments as `policy` says, now (between two group commits).
    /// Segments a replay still reads are kept and counted in `deferred`.
    Retain {
        /// What to remove.
        policy: RetentionPolicy,
        /// Completed with what was removed.
        reply: Reply<JournalResult<RetentionReport>>,
    },
    /// Apply the configured [`RetentionSchedule`](crate::journal::RetentionSchedule) (sent by the actor's own timer).
    ApplyRetention,
    /// The writer of the journal opened for the `opens`-th time failed: the actor fails
    /// with it, and its supervisor decides (a restart reopens the journal). Sent by the
    /// writer's watcher; a failure of an earlier writer is ignored.
    WriterFailed {
        /// Which opening of the journal the failed writer belongs to.
        opens: u64,
        /// What failed.
        failure: WriterFailure,
    },
}

/// Why the journal actor failed (the exit reason its supervisor sees).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalActorError {
    /// The writer thread failed.
    #[error("journal {journal}: {failure}")]
    WriterFailed {
        /// The actor's name.
        journal: String,
        /// What failed.
        failure: WriterFailure,
    },
    /// Opening the journal for a new incarnation failed.
    #[error("journal {journal}: reopening failed: {source}")]
    Reopen {
        /// The actor's name.
        journal: String,
        /// Why.
        #[source]
        source: JournalError,
    },
    /// A blocking task the actor waited on panicked.
    #[error("journal {journal}: a blocking task panicked: {reason}")]
    Blocking {
        /// The actor's name.
        journal: String,
        /// The panic.
        reason: String,
    },
}

/// Aborts a task when its incarnation ends.
struct OwnedTask(JoinHandle<()>);

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One incarnation of the journal actor; spawn it with [`JournalActor::spawn`].
pub struct JournalActor {
    lineage: Arc<Lineage>,
    writer: Option<Arc<JournalWriter>>,
    opens: u64,
    tasks: Vec<OwnedTask>,
}

impl JournalActor {
    /// Opens (recovering) the journal in `directory` and spawns the actor named `name`
    /// under the runtime's root supervisor.
    pub async fn spawn(
        rt: &Runtime,
        name: &str,
        directory: impl Into<PathBuf>,
        config: JournalConfig,
    ) -> Result<(Addr<JournalActor>, JournalHandle), JournalSpawnError> {
        Self::spawn_with(rt, name, directory, config.into()).await
    }

    /// [`JournalActor::spawn`] with the full configuration (retention schedule, metrics,
    /// telemetry, file system).
    pub async fn spawn_with(
        rt: &Runtime,
        name: &str,
        directory: impl Into<PathBuf>,
        config: JournalActorConfig,
    ) -> Result<(Addr<JournalActor>, JournalHandle), JournalSpawnError> {
        let (spec, handle) = Self::spec(name, directory, config).await?;
        match rt.spawn_actor(spec).await {
            Ok(addr) => Ok((addr, handle)),
            Err(error) => {
                if let Some(writer) = handle.lineage.current() {
                    writer.close();
                }
                Err(error.into())
            }
        }
    }

    /// Opens (recovering) the journal and returns the actor's spec, to place under a
    /// supervisor of your own, and its handle.
    pub async fn spec(
        name: &str,
        directory: impl Into<PathBuf>,
        config: JournalActorConfig,
    ) -> Result<(ActorSpec<JournalActor>, JournalHandle), JournalSpawnError> {
        let lineage = Arc::new(Lineage::new(name, directory.into(), config));
        let opening = Arc::clone(&lineage);
        let opened = tokio::task::spawn_blocking(move || opening.open_next())
            .await
            .map_err(|error| JournalSpawnError::Blocking(error.to_string()))??;
        lineage.set_first(opened);
        let for_actor = Arc::clone(&lineage);
        let spec = ActorSpec::new(name, move || JournalActor {
            lineage: Arc::clone(&for_actor),
            writer: None,
            opens: 0,
            tasks: Vec::new(),
        });
        Ok((spec, JournalHandle { lineage }))
    }

    fn writer(&self) -> &JournalWriter {
        self.writer.as_deref().expect("on_start opened the journal")
    }

    fn blocking_failed(&self, error: &tokio::task::JoinError) -> ActorError {
        Box::new(JournalActorError::Blocking {
            journal: self.lineage.name.clone(),
            reason: error.to_string(),
        })
    }

    /// Queues a request the writer's queue had no room for, waiting on a blocking thread
    /// (the actor waits — back-pressure — but no async worker blocks).
    async fn send_full(&self, full: QueueFull) -> Result<(), ActorError> {
        tokio::task::spawn_blocking(move || full.send_blocking())
            .await
            .map_err(|error| self.blocking_failed(&error))
    }

    async fn retain(
        &self,
        policy: RetentionPolicy,
        done: impl FnOnce(JournalResult<RetentionReport>) + Send + 'static,
    ) -> Result<(), ActorError> {
        match self.writer().retain_with(policy, done) {
            Ok(()) => Ok(()),
            Err(full) => self.send_full(full).await,
        }
    }

    /// Starts the tasks this incarnation owns: the watch on its writer and, if
    /// configured, the retention timer.
    fn start_tasks(
        &mut self,
        failures: tokio::sync::oneshot::Receiver<WriterFailure>,
        ctx: &Context<Self>,
    ) {
        let (addr, opens) = (ctx.addr().clone(), self.opens);
        self.tasks.push(OwnedTask(tokio::spawn(async move {
            if let Ok(failure) = failures.await {
                // A closed mailbox means the actor is gone: nothing left to fail.
                let _ = addr
                    .tell(JournalMessage::WriterFailed { opens, failure })
                    .await;
            }
        })));
        if let Some(schedule) = self.lineage.config.retention {
            let addr = ctx.addr().clone();
            self.tasks.push(OwnedTask(tokio::spawn(async move {
                let mut timer = tokio::time::interval(schedule.every);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                timer.tick().await;
                loop {
                    timer.tick().await;
                    // A full mailbox skips this round; the next tick tries again.
                    if let Err(TrySendError::Closed(_)) =
                        addr.try_tell(JournalMessage::ApplyRetention)
                    {
                        break;
                    }
                }
            })));
        }
    }

    fn status_text(status: &JournalStatus) -> String {
        format!(
            "segments={} bytes={} first_seq={} last_seq={} durable_seq={} poisoned={} \
             fsync_p50_us={} fsync_p99_us={} fsync_max_us={}",
            status.segments,
            status.bytes,
            status.first_seq,
            status.last_seq,
            status.durable_seq,
            status
                .poisoned
                .as_ref()
                .map_or("no".to_owned(), ToString::to_string),
            status.fsync_latency.p50.as_micros(),
            status.fsync_latency.p99.as_micros(),
            status.fsync_latency.max.as_micros(),
        )
    }
}

/// Why the journal actor could not be spawned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalSpawnError {
    /// Opening or recovering the journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The runtime refused the actor (name taken, shut down, …).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The blocking task that opened the journal panicked.
    #[error("opening the journal panicked: {0}")]
    Blocking(String),
}

impl Actor for JournalActor {
    type Message = JournalMessage;

    async fn on_start(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let opened: Opened = match self.lineage.take_first() {
            Some(opened) => opened,
            None => {
                let lineage = Arc::clone(&self.lineage);
                tokio::task::spawn_blocking(move || lineage.open_next())
                    .await
                    .map_err(|error| self.blocking_failed(&error))?
                    .map_err(|source| JournalActorError::Reopen {
                        journal: self.lineage.name.clone(),
                        source,
                    })?
            }
        };
        self.opens = opened.opens;
        self.writer = Some(opened.writer);
        self.start_tasks(opened.failures, ctx);
        Ok(())
    }

    async fn handle(
        &mut self,
        message: JournalMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            JournalMessage::Append { record, reply } => {
                let queued = self
                    .writer()
                    .try_append_with(record, move |outcome| reply.send(outcome));
                if let Err(full) = queued {
                    self.send_full(full).await?;
                }
            }
            JournalMessage::Status(reply) => reply.send(self.writer().reader().status()),
            JournalMessage::Retain { policy, reply } => {
                self.retain(policy, move |report| reply.send(report))
                    .await?;
            }
            JournalMessage::ApplyRetention => {
                let Some(schedule) = self.lineage.config.retention else {
                    return Ok(());
                };
                let journal = self.lineage.name.clone();
                self.retain(schedule.policy, move |report| match report {
                    Ok(report) if report.removed_segments.is_empty() => {}
                    Ok(report) => tracing::info!(
                        journal,
                        removed_segments = report.removed_segments.len(),
                        removed_records = report.removed_records,
                        deferred = report.deferred,
                        "journal retention"
                    ),
                    Err(error) => tracing::warn!(journal, %error, "journal retention failed"),
                })
                .await?;
            }
            JournalMessage::WriterFailed { opens, failure } => {
                if opens == self.opens {
                    return Err(Box::new(JournalActorError::WriterFailed {
                        journal: self.lineage.name.clone(),
                        failure,
                    }));
                }
            }
        }
        Ok(())
    }

    async fn on_stop(&mut self, _: &mut Context<Self>) {
        self.tasks.clear();
        if let Some(writer) = self.writer.take() {
            // Finish and sync what is queued before the actor counts as stopped.
            let waited = tokio::task::spawn_blocking(move || writer.wait_stopped()).await;
            if let Ok(Err(error)) = waited {
                tracing::debug!(journal = %self.lineage.name, %error, "journal writer stopped");
            }
        }
    }

    fn describe(&self) -> Option<String> {
        let status = self.writer.as_ref()?.reader().status();
        let recovery = self
            .lineage
            .recovery()
            .map_or_else(|| "none".to_owned(), |report| report.summary());
        Some(format!(
            "{} opens={} recovery: {}",
            Self::status_text(&status),
            self.opens,
            recovery
        ))
    }
}
