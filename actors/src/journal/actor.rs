//! The journal as an actor: appends arrive as messages and are handed to the
//! group-committing [`JournalWriter`] without waiting, so many appenders share one
//! `fdatasync`; each append's [`Reply`] is completed from the writer thread when the
//! record is acknowledged (durable if it asked to be). `Control::Status` answers with
//! segments, bytes, last seq and fsync latency percentiles.

use std::{path::PathBuf, sync::Arc};

use vortex_runtime::{Actor, ActorError, ActorSpec, Addr, Context, Reply, Runtime, RuntimeError};

use crate::journal::{
    Journal, JournalConfig, JournalError, JournalReader, JournalResult, JournalStatus,
    JournalWriter, PendingRecord,
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
}

/// The journal actor's state: the writer, opened once and shared across restarts
/// (a restart of the actor must not reopen, and so re-recover, a live journal).
pub struct JournalActor {
    writer: Arc<JournalWriter>,
}

impl JournalActor {
    /// Opens (recovering) the journal in `directory` and spawns the actor named `name`.
    pub async fn spawn(
        rt: &Runtime,
        name: &str,
        directory: impl Into<PathBuf>,
        config: JournalConfig,
    ) -> Result<(Addr<JournalActor>, JournalReader), JournalSpawnError> {
        let (journal, _report) = Journal::open(directory.into(), config)?;
        let writer = Arc::new(JournalWriter::spawn(journal)?);
        let reader = writer.reader().clone();
        let addr = rt
            .spawn_actor(ActorSpec::new(name, move || JournalActor {
                writer: Arc::clone(&writer),
            }))
            .await?;
        Ok((addr, reader))
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
}

impl Actor for JournalActor {
    type Message = JournalMessage;

    async fn handle(
        &mut self,
        message: JournalMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            JournalMessage::Append { record, reply } => {
                self.writer
                    .append_with(record, move |outcome| reply.send(outcome));
            }
            JournalMessage::Status(reply) => reply.send(self.writer.reader().status()),
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(Self::status_text(&self.writer.reader().status()))
    }
}
