//! A synthetic batch source: an actor that makes raw RGB image batches and sends them to
//! the next stage (the preprocessor), waiting while it is full. It owns the batch-size
//! knob: `Control::SetBatchSize { items }` changes the items per batch from the next
//! batch on, and `Status` shows the size in force.
//!
//! # Layout
//! - [`core`] — [`image_batch`], the pure batch maker.
//! - [`actor`] — [`ImageSource`], [`SourceConfig`], [`SourceHandle`], [`SourceMessage`].
//!
//! # Example
//! ```
//! use vortex_actors::source::{ImageSource, SourceConfig};
//! use vortex_messages::{pipeline::RawBatch, Control};
//! use vortex_runtime::Runtime;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let rt = Runtime::builder().build().unwrap();
//! let (next, mut raw) = tokio::sync::mpsc::channel::<RawBatch>(8);
//! let source = ImageSource::spawn(&rt, SourceConfig::new("source", 4, 2), next).await.unwrap();
//! rt.control("source", Control::SetBatchSize { items: 3 }).await.unwrap();
//! assert_eq!(source.emit(1).await.unwrap(), 1);
//! assert_eq!(raw.recv().await.unwrap().items, 3);
//! rt.shutdown().await;
//! # }
//! ```

pub mod actor;
pub mod core;

pub use self::core::image_batch;
pub use actor::{ImageSource, SourceConfig, SourceHandle, SourceMessage};
