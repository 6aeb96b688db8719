//! The CPU preprocessor: turns [`RawBatch`]es into device-ready [`PreparedBatch`]es.
//!
//! A runtime pool of [`Preprocessor`] workers shares one mailbox of raw batches. Each
//! worker runs a [`Transform`] on a [`ResourceGroup`] (an isolated rayon pool; never on
//! tokio's workers), writing into a buffer from a [`BufferPool`], and sends the prepared
//! batch to the next stage — any [`Downstream`] — waiting while that stage is full. The
//! runtime's pool control applies unchanged: `Scale{n}`, `Pause`, `Resume`, `Status`.
//!
//! Whoever consumes a prepared batch hands its buffer back with
//! [`BufferPool::put`](vortex_runtime::buffer_pool::BufferPool::put), so steady-state
//! preprocessing does not allocate.
//!
//! # Layout
//! - [`transform`]: the [`Transform`] trait users implement, the two shipped transforms
//!   ([`NormalizeImages`], [`TokenizePad`]) and [`prepare`].
//! - [`downstream`]: the [`Downstream`] trait (the next stage) and its implementations
//!   for an actor's [`Addr`](vortex_runtime::Addr), a tokio `mpsc::Sender` and a closure.
//! - [`config`]: the settings, [`PreprocessorConfig`].
//! - [`core`]: timing, the per-batch counters [`PreprocessorStats`], [`FailedBatch`].
//! - [`actor`]: [`Preprocessor`] (the worker) and [`PreprocessorHandle`].
//! - [`error`]: [`TransformError`], [`DownstreamError`], [`PreprocessorError`].
//! - `vortex_messages::pipeline`: the batch types themselves.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use vortex_actors::preprocessor::{NormalizeImages, Preprocessor, PreprocessorConfig};
//! use vortex_messages::pipeline::{BatchKind, PreparedBatch, RawBatch};
//! use vortex_runtime::{buffer_pool::BufferPool, resource_group::ResourceGroup, Runtime};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
//! let rt = Runtime::builder().build().unwrap();
//! let group = Arc::new(ResourceGroup::new("cpu", 2, None).unwrap());
//! let buffers = BufferPool::default();
//! let (next_stage, mut prepared) = tokio::sync::mpsc::channel::<PreparedBatch>(8);
//! let config = PreprocessorConfig::new(
//!     "preprocess",
//!     group,
//!     Arc::new(NormalizeImages::imagenet()),
//!     buffers.clone(),
//! );
//! let preprocessor = Preprocessor::spawn(&rt, config, next_stage).await.unwrap();
//! preprocessor
//!     .submit(RawBatch {
//!         id: 7,
//!         kind: BatchKind::Images { width: 2, height: 1, channels: 3 },
//!         items: 1,
//!         data: vec![0, 128, 255, 255, 128, 0],
//!         created_at_micros: 0,
//!     })
//!     .await
//!     .unwrap();
//! let batch = prepared.recv().await.unwrap();
//! assert_eq!((batch.id, batch.shape.clone()), (7, vec![1, 3, 1, 2]));
//! buffers.put(batch.data); // the next batch reuses this allocation
//! // Shutdown lets each worker finish its current batch, so the counters are final.
//! rt.shutdown().await;
//! assert_eq!(preprocessor.stats().delivered(), 1);
//! # }
//! ```

pub mod actor;
pub mod config;
pub mod core;
pub mod downstream;
pub mod error;
pub mod transform;

pub use self::core::{now_micros, FailedBatch, PreprocessorSnapshot, PreprocessorStats};
pub use actor::{Preprocessor, PreprocessorHandle};
pub use config::{PreprocessorConfig, DEFAULT_CAPACITY};
pub use downstream::{Downstream, FnDownstream, SendFuture};
pub use error::{DownstreamError, PreprocessorError, TransformError};
pub use transform::{prepare, NormalizeImages, TokenizePad, Transform, CLS_TOKEN, PAD_TOKEN};
pub use vortex_messages::pipeline::{BatchKind, DType, PreparedBatch, PreparedLayout, RawBatch};
pub use vortex_runtime::{buffer_pool::BufferPool, resource_group::ResourceGroup};
