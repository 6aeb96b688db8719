//! CPU transforms that turn a [`RawBatch`] into a device-ready [`PreparedBatch`].
//!
//! A transform is pure CPU work: no I/O, no async. It writes into an output buffer that the
//! caller takes from a [`BufferPool`] ([`prepare`] does both steps). Large batches are split
//! with rayon's `par_chunks_mut`; rayon runs that split on the pool of the calling worker
//! thread, so a transform called inside `ResourceGroup::run` uses the group's threads. Called
//! from a thread that belongs to no rayon pool, a transform runs sequentially instead of
//! falling through to rayon's global pool.

use vortex_messages::pipeline::{BatchKind, DType, PreparedBatch, PreparedLayout, RawBatch};
use vortex_runtime::buffer_pool::BufferPool;
use vortex_runtime::resource_group::rayon::{self, prelude::*};

use crate::preprocessor::error::TransformError;

/// Below this many output bytes a batch is processed on one thread: splitting costs more
/// than it saves.
const PARALLEL_MIN_OUTPUT_BYTES: usize = 64 * 1024;

/// A CPU transform from a raw batch to a dense little-endian tensor.
pub trait Transform: Send + Sync + 'static {
    /// A short name for logs and errors.
    fn name(&self) -> &str;

    /// The exact number of output bytes `apply` writes for `input`; fails when the input
    /// is of the wrong kind or its declared shape is unusable.
    fn output_len(&self, input: &RawBatch) -> Result<usize, TransformError>;

    /// Replaces the contents of `output` with the transformed batch (exactly
    /// `output_len(input)` bytes) and describes its layout. `output` may arrive with stale
    /// bytes (see [`BufferPool::get_for_overwrite`]); every byte must be overwritten. On
    /// error, `output`'s contents are unspecified.
    fn apply(
        &self,
        input: &RawBatch,
        output: &mut Vec<u8>,
    ) -> Result<PreparedLayout, TransformError>;
}

/// Transforms `input` into a buffer taken from `pool`. The prepared batch owns the buffer;
/// hand `data` back with [`BufferPool::put`] once it has been consumed.
pub fn prepare(
    transform: &dyn Transform,
    input: &RawBatch,
    pool: &BufferPool,
) -> Result<PreparedBatch, TransformError> {
    let mut output = pool.get_for_overwrite(transform.output_len(input)?);
    // On error the buffer goes back to the pool when `output` drops.
    let layout = transform.apply(input, &mut output)?;
    Ok(PreparedBatch {
        id: input.id,
        items: input.items,
        dtype: layout.dtype,
        shape: layout.shape,
        data: output.into_vec(),
        created_at_micros: input.created_at_micros,
    })
}

/// Whether to split work of this size: only when large, and only when running on a rayon
/// worker (the resource group's), never on the global pool by accident.
fn split_in_parallel(output_bytes: usize) -> bool {
    output_bytes >= PARALLEL_MIN_OUTPUT_BYTES && rayon::current_thread_index().is_some()
}

fn checked_product(factors: &[usize]) -> Result<usize, TransformError> {
    factors
        .iter()
        .try_fold(1_usize, |product, &factor| product.checked_mul(factor))
        .ok_or(TransformError::TooLarge)
}

fn to_usize(value: u32) -> usize {
    // u32 always fits in usize on the 32- and 64-bit targets we build for.
    value as usize
}

fn kind_mismatch(transform: &str, kind: BatchKind) -> TransformError {
    TransformError::KindMismatch {
        transform: transform.to_owned(),
        kind: kind.to_string(),
    }
}

/// Normalises interleaved RGB `u8` images into planar `f32` values.
///
/// Input: `BatchKind::Images` with 3 channels, HWC (`r g b r g b …` row by row).
/// Output: `F32`, shape `[items, 3, height, width]` (CHW), value
/// `(x / 255 - mean[c]) / std[c]`, little-endian.
#[derive(Debug, Clone)]
pub struct NormalizeImages {
    mean: [f32; 3],
    std: [f32; 3],
    /// Every possible output value per channel: 768 divisions once instead of one per
    /// value, and bit-identical to the formula.
    table: Box<[[f32; 256]; 3]>,
}

/// Channels [`NormalizeImages`] supports.
const RGB_CHANNELS: u32 = 3;

impl NormalizeImages {
    /// A normaliser with per-channel `mean` and `std` (in units of `x / 255`); every `std`
    /// must be finite and non-zero, every `mean` finite.
    pub fn new(mean: [f32; 3], std: [f32; 3]) -> Result<Self, TransformError> {
        let usable = mean.iter().all(|value| value.is_finite())
            && std.iter().all(|value| value.is_finite() && *value != 0.0);
        if !usable {
            return Err(TransformError::InvalidConfig {
                reason: format!("mean {mean:?} and std {std:?} must be finite, std non-zero"),
            });
        }
        let mut table = Box::new([[0.0_f32; 256]; 3]);
        for (channel, row) in table.iter_mut().enumerate() {
            for (value, entry) in row.iter_mut().enumerate() {
                *entry = (value as f32 / 255.0 - mean[channel]) / std[channel];
            }
        }
        Ok(Self { mean, std, table })
    }

    /// The ImageNet mean and standard deviation.
    pub fn imagenet() -> Self {
        Self::new([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
            .expect("ImageNet constants are finite and non-zero")
    }

    /// Per-channel mean.
    pub fn mean(&self) -> [f32; 3] {
        self.mean
    }

    /// Per-channel standard deviation.
    pub fn std(&self) -> [f32; 3] {
        self.std
    }

    /// Pixels per image, after checking the batch's kind, channels and data length.
    fn pixels_per_image(&self, input: &RawBatch) -> Result<(usize, u32, u32), TransformError> {
        let BatchKind::Images {
            width,
            height,
            channels,
        } = input.kind
        else {
            return Err(kind_mismatch(self.name(), input.kind));
        };
        if channels != RGB_CHANNELS {
            return Err(TransformError::UnsupportedChannels {
                channels,
                supported: RGB_CHANNELS,
            });
        }
        let pixels = checked_product(&[to_usize(width), to_usize(height)])?;
        let expected = checked_product(&[to_usize(input.items), pixels, 3])?;
        if input.data.len() != expected {
            return Err(TransformError::DataLength {
                expected,
                actual: input.data.len(),
            });
        }
        Ok((pixels, width, height))
    }

    /// Writes one channel plane of one image.
    fn fill_plane(&self, channel: usize, image: &[u8], plane: &mut [u8]) {
        let table = &self.table[channel];
        for (target, pixel) in plane.chunks_exact_mut(4).zip(image.chunks_exact(3)) {
            target.copy_from_slice(&table[usize::from(pixel[channel])].to_le_bytes());
        }
    }
}

impl Transform for NormalizeImages {
    fn name(&self) -> &str {
        "normalize-images"
    }

    fn output_len(&self, input: &RawBatch) -> Result<usize, TransformError> {
        let (pixels, _, _) = self.pixels_per_image(input)?;
        checked_product(&[to_usize(input.items), pixels, 3, DType::F32.size()])
    }

    fn apply(
        &self,
        input: &RawBatch,
        output: &mut Vec<u8>,
    ) -> Result<PreparedLayout, TransformError> {
        let (pixels, width, height) = self.pixels_per_image(input)?;
        let length = checked_product(&[to_usize(input.items), pixels, 3, DType::F32.size()])?;
        // Zero-fills only what the buffer did not hold before; every byte is rewritten.
        output.resize(length, 0);
        if length > 0 {
            let plane_bytes = pixels * DType::F32.size();
            let image_bytes = pixels * 3;
            // One unit of work per (image, channel) plane: a batch of one large image
            // still splits three ways.
            let fill = |(index, plane): (usize, &mut [u8])| {
                let image = &input.data[index / 3 * image_bytes..][..image_bytes];
                self.fill_plane(index % 3, image, plane);
            };
            if split_in_parallel(length) {
                output
                    .par_chunks_mut(plane_bytes)
                    .enumerate()
                    .for_each(fill);
            } else {
                output.chunks_mut(plane_bytes).enumerate().for_each(fill);
            }
        }
        Ok(PreparedLayout {
            dtype: DType::F32,
            shape: vec![input.items, RGB_CHANNELS, height, width],
        })
    }
}

/// Token id of padding.
pub const PAD_TOKEN: u32 = 0;
/// Token id of the classification marker that [`TokenizePad`] can put first.
pub const CLS_TOKEN: u32 = 1;
/// The first id a word can hash to.
const FIRST_WORD_TOKEN: u32 = 2;

/// Turns text lines into fixed-length `u32` token ids.
///
/// Each line is split on every character that is not alphanumeric (Unicode), empty words
/// are skipped, and each word (lowercased first, when enabled) is hashed with 64-bit
/// FNV-1a over its UTF-8 bytes into `2 + hash % (vocab_size - 2)`. Id 0 is padding, id 1
/// the optional leading classification marker. Every word gets a hashed id, so there is
/// no unknown-word id. Rows are truncated or padded to `seq_len`.
///
/// Input: `BatchKind::Text`, `items` lines separated by `\n` (one trailing `\n` allowed).
/// Output: `U32`, shape `[items, seq_len]`, little-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizePad {
    seq_len: usize,
    vocab_size: u32,
    lowercase: bool,
    prepend_cls: bool,
}

impl TokenizePad {
    /// A tokenizer producing rows of `seq_len` ids below `vocab_size`; lowercasing on,
    /// no leading marker. Needs `seq_len ≥ 1` (and within `u32`) and `vocab_size ≥ 3`.
    pub fn new(seq_len: usize, vocab_size: u32) -> Result<Self, TransformError> {
        if seq_len == 0 || u32::try_from(seq_len).is_err() || vocab_size <= FIRST_WORD_TOKEN {
            return Err(TransformError::InvalidConfig {
                reason: format!(
                    "seq_len {seq_len} must be in 1..=u32::MAX and vocab_size {vocab_size} at least 3"
                ),
            });
        }
        Ok(Self {
            seq_len,
            vocab_size,
            lowercase: true,
            prepend_cls: false,
        })
    }

    /// Whether words are lowercased before hashing.
    pub fn with_lowercase(mut self, lowercase: bool) -> Self {
        self.lowercase = lowercase;
        self
    }

    /// Whether every row starts with [`CLS_TOKEN`].
    pub fn with_cls(mut self, prepend_cls: bool) -> Self {
        self.prepend_cls = prepend_cls;
        self
    }

    /// The id of one word.
    pub fn token_id(&self, word: &str) -> u32 {
        const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0100_0000_01b3;
        let mut hash = OFFSET_BASIS;
        let mut feed = |character: char| {
            let mut encoded = [0_u8; 4];
            for byte in character.encode_utf8(&mut encoded).bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
            }
        };
        for character in word.chars() {
            if self.lowercase {
                character.to_lowercase().for_each(&mut feed);
            } else {
                feed(character);
            }
        }
        let words = u64::from(self.vocab_size - FIRST_WORD_TOKEN);
        // The remainder is below `vocab_size - 2`, so it fits in u32.
        FIRST_WORD_TOKEN + (hash % words) as u32
    }

    /// Writes one row of `seq_len` ids.
    fn fill_row(&self, line: &str, row: &mut [u8]) {
        let marker = self.prepend_cls.then_some(CLS_TOKEN);
        let words = line
            .split(|character: char| !character.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .map(|word| self.token_id(word));
        let ids = marker
            .into_iter()
            .chain(words)
            .chain(std::iter::repeat(PAD_TOKEN));
        for (target, id) in row.chunks_exact_mut(4).zip(ids) {
            target.copy_from_slice(&id.to_le_bytes());
        }
    }
}

/// Splits text data into lines, checking UTF-8 and the declared item count.
fn text_lines(input: &RawBatch) -> Result<Vec<&str>, TransformError> {
    let text = std::str::from_utf8(&input.data).map_err(|error| TransformError::InvalidUtf8 {
        valid_up_to: error.valid_up_to(),
    })?;
    let lines: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.strip_suffix('\n')
            .unwrap_or(text)
            .split('\n')
            .collect()
    };
    if lines.len() != to_usize(input.items) {
        return Err(TransformError::ItemCount {
            expected: to_usize(input.items),
            actual: lines.len(),
        });
    }
    Ok(lines)
}

impl Transform for TokenizePad {
    fn name(&self) -> &str {
        "tokenize-pad"
    }

    fn output_len(&self, input: &RawBatch) -> Result<usize, TransformError> {
        if input.kind != BatchKind::Text {
            return Err(kind_mismatch(self.name(), input.kind));
        }
        checked_product(&[to_usize(input.items), self.seq_len, DType::U32.size()])
    }

    fn apply(
        &self,
        input: &RawBatch,
        output: &mut Vec<u8>,
    ) -> Result<PreparedLayout, TransformError> {
        let length = self.output_len(input)?;
        let lines = text_lines(input)?;
        // Zero-fills only what the buffer did not hold before; every byte is rewritten.
        output.resize(length, 0);
        let row_bytes = self.seq_len * DType::U32.size();
        if split_in_parallel(length) {
            output
                .par_chunks_mut(row_bytes)
                .zip(lines.par_iter())
                .for_each(|(row, line)| self.fill_row(line, row));
        } else {
            for (row, line) in output.chunks_mut(row_bytes).zip(&lines) {
                self.fill_row(line, row);
            }
        }
        Ok(PreparedLayout {
            dtype: DType::U32,
            // `new` checked that `seq_len` fits in u32.
            shape: vec![input.items, self.seq_len as u32],
        })
    }
}
