//! [`ImageSource`]: the source actor and its batch-size knob.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use vortex_messages::{pipeline::RawBatch, Control, ControlError, ControlReply};
use vortex_runtime::{
    Actor, ActorError, ActorSpec, Addr, AskError, Context, Reply, Runtime, RuntimeError,
};

use crate::{
    preprocessor::{now_micros, Downstream},
    source::core::image_batch,
};

/// The largest batch size `SetBatchSize` accepts unless configured otherwise.
pub const DEFAULT_MAX_BATCH_ITEMS: u32 = 4096;

/// A source's settings.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    name: String,
    side: u32,
    batch_items: u32,
    max_batch_items: u32,
}

impl SourceConfig {
    /// A source named `name` making batches of `batch_items` images of `side × side` RGB.
    pub fn new(name: impl Into<String>, side: u32, batch_items: u32) -> Self {
        SourceConfig {
            name: name.into(),
            side: side.max(1),
            batch_items: batch_items.max(1),
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
        }
    }

    /// The largest batch size `SetBatchSize` may ask for.
    pub fn max_batch_items(mut self, max: u32) -> Self {
        self.max_batch_items = max.max(1);
        self
    }
}

/// What a source is asked to do.
#[derive(Debug)]
pub enum SourceMessage {
    /// Make and send `batches` batches, then answer how many the next stage took.
    Emit {
        /// Batches to make.
        batches: u32,
        /// How many were sent.
        reply: Reply<u64>,
    },
}

struct Shared {
    side: u32,
    batch_items: AtomicU32,
    max_batch_items: u32,
    next_id: AtomicU64,
    downstream: Arc<dyn Downstream<RawBatch>>,
}

/// The source actor. Spawn it with [`ImageSource::spawn`].
pub struct ImageSource {
    shared: Arc<Shared>,
}

impl ImageSource {
    /// Spawns the source, sending every batch to `downstream`.
    pub async fn spawn(
        rt: &Runtime,
        config: SourceConfig,
        downstream: impl Downstream<RawBatch>,
    ) -> Result<SourceHandle, RuntimeError> {
        let shared = Arc::new(Shared {
            side: config.side,
            batch_items: AtomicU32::new(config.batch_items.min(config.max_batch_items)),
            max_batch_items: config.max_batch_items,
            next_id: AtomicU64::new(0),
            downstream: Arc::new(downstream),
        });
        let for_factory = Arc::clone(&shared);
        let addr = rt
            .spawn_actor(ActorSpec::new(config.name, move || ImageSource {
                shared: Arc::clone(&for_factory),
            }))
            .await?;
        Ok(SourceHandle { addr, shared })
    }
}

impl Actor for ImageSource {
    type Message = SourceMessage;

    async fn handle(
        &mut self,
        message: SourceMessage,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        let SourceMessage::Emit { batches, reply } = message;
        let shared = &self.shared;
        let mut sent = 0;
        for _ in 0..batches {
            let items = shared.batch_items.load(Relaxed);
            let id = shared.next_id.fetch_add(1, Relaxed);
            let batch = image_batch(id, shared.side, items, now_micros());
            if shared.downstream.send(batch).await.is_err() {
                break;
            }
            sent += 1;
        }
        reply.send(sent);
        Ok(())
    }

    async fn on_control(
        &mut self,
        command: &Control,
        ctx: &mut Context<Self>,
    ) -> Option<Result<ControlReply, ControlError>> {
        let Control::SetBatchSize { items } = command else {
            return None;
        };
        let max = self.shared.max_batch_items;
        if *items == 0 || *items > max {
            return Some(Err(ControlError::Rejected {
                actor: ctx.name().to_owned(),
                reason: format!("batch size {items} is outside 1..={max}"),
            }));
        }
        let before = self.shared.batch_items.swap(*items, Relaxed);
        Some(Ok(ControlReply::Custom(format!(
            "batch size {before} -> {items} items"
        ))))
    }

    /// The next batch id and the batch size: a restored source (a restart, or a new
    /// process on the same data directory) goes on numbering where it left off.
    fn snapshot(&mut self) -> Option<Vec<u8>> {
        let shared = &self.shared;
        let mut bytes = shared.next_id.load(Relaxed).to_le_bytes().to_vec();
        bytes.extend_from_slice(&shared.batch_items.load(Relaxed).to_le_bytes());
        Some(bytes)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        let (Some(next_id), Some(items)) = (snapshot.get(..8), snapshot.get(8..12)) else {
            return Err(format!("source snapshot of {} bytes, expected 12", snapshot.len()).into());
        };
        let next_id = u64::from_le_bytes(next_id.try_into().expect("8 bytes"));
        let items = u32::from_le_bytes(items.try_into().expect("4 bytes"));
        // Never number backwards: the ids already made in this process stay unique.
        self.shared.next_id.fetch_max(next_id, Relaxed);
        if (1..=self.shared.max_batch_items).contains(&items) {
            self.shared.batch_items.store(items, Relaxed);
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        let shared = &self.shared;
        Some(format!(
            "batch_items={} image={}x{}x3 made={}",
            shared.batch_items.load(Relaxed),
            shared.side,
            shared.side,
            shared.next_id.load(Relaxed)
        ))
    }
}

/// A running source.
#[derive(Clone)]
pub struct SourceHandle {
    addr: Addr<ImageSource>,
    shared: Arc<Shared>,
}

impl SourceHandle {
    /// Makes and sends `batches` batches; answers how many the next stage took. Waits as
    /// long as the next stage holds them (up to a minute).
    pub async fn emit(&self, batches: u32) -> Result<u64, AskError> {
        self.addr
            .ask_timeout(
                |reply| SourceMessage::Emit { batches, reply },
                Duration::from_secs(60),
            )
            .await
    }

    /// The registered name.
    pub fn name(&self) -> &str {
        self.addr.name()
    }

    /// The id the next batch gets (batches made so far, counting a restored checkpoint).
    pub fn next_id(&self) -> u64 {
        self.shared.next_id.load(Relaxed)
    }

    /// Items per batch in force.
    pub fn batch_items(&self) -> u32 {
        self.shared.batch_items.load(Relaxed)
    }
}

impl std::fmt::Debug for SourceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceHandle")
            .field("name", &self.name())
            .field("batch_items", &self.batch_items())
            .finish()
    }
}
