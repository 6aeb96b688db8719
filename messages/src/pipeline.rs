//! Batches of the preprocessing pipeline: what a source hands the CPU preprocessor
//! ([`RawBatch`]), what the preprocessor hands a device ([`PreparedBatch`]) and what a
//! device launcher hands the next stage ([`FinishedBatch`]).
//!
//! Plain wire data (serde, bincode 2); nothing here names a runtime type.

use serde::{Deserialize, Serialize};

/// What a raw batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BatchKind {
    /// `items` images of `height × width × channels` u8 values, interleaved (HWC), one
    /// image after the other.
    Images {
        /// Pixels per row.
        width: u32,
        /// Rows per image.
        height: u32,
        /// Values per pixel (3 for RGB).
        channels: u32,
    },
    /// `items` UTF-8 text lines separated by `\n`; one trailing `\n` is allowed.
    Text,
}

impl std::fmt::Display for BatchKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Images {
                width,
                height,
                channels,
            } => write!(formatter, "image ({width}x{height}x{channels})"),
            Self::Text => formatter.write_str("text"),
        }
    }
}

/// A batch as it arrives from a source, before preprocessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawBatch {
    /// Batch id, unique per source.
    pub id: u64,
    /// What `data` holds.
    pub kind: BatchKind,
    /// Number of items (images or lines).
    pub items: u32,
    /// The items' bytes, laid out as `kind` says.
    pub data: Vec<u8>,
    /// When the batch was created, in microseconds since the Unix epoch.
    pub created_at_micros: u64,
}

/// Element type of a prepared batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DType {
    /// 32-bit float, little-endian.
    F32,
    /// 32-bit unsigned integer, little-endian.
    U32,
    /// Byte.
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 | Self::U32 => 4,
            Self::U8 => 1,
        }
    }
}

/// Element type and shape of a transform's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedLayout {
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first; the first is the item count.
    pub shape: Vec<u32>,
}

/// A device-ready batch: a dense little-endian tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedBatch {
    /// The id of the raw batch it came from.
    pub id: u64,
    /// Number of items.
    pub items: u32,
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first; the first is `items`.
    pub shape: Vec<u32>,
    /// `shape.product() × dtype.size()` bytes, little-endian, row-major.
    pub data: Vec<u8>,
    /// The raw batch's creation time (microseconds since the Unix epoch), carried along
    /// so that end-to-end latency can be measured.
    pub created_at_micros: u64,
}

/// A batch a device finished: the kernel's output, with where and how long it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedBatch {
    /// The id of the raw batch it came from.
    pub id: u64,
    /// The device that ran it (the launcher's device index).
    pub device: u32,
    /// Number of items.
    pub items: u32,
    /// Element type of `data`.
    pub dtype: DType,
    /// Dimensions of the output, outermost first; the first is `items`.
    pub shape: Vec<u32>,
    /// The output tensor, little-endian, row-major.
    pub data: Vec<u8>,
    /// The raw batch's creation time (microseconds since the Unix epoch).
    pub created_at_micros: u64,
    /// Host→device and device→host copy time, in microseconds.
    pub copy_micros: u64,
    /// Kernel time (launch to synchronise), in microseconds.
    pub compute_micros: u64,
}
