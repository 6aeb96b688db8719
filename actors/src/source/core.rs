//! The pure part of the source: making one raw batch.

use vortex_messages::pipeline::{BatchKind, RawBatch};

/// A raw batch of `items` square RGB images of `side × side` pixels, every byte derived
/// from the batch id (so batches differ and the content is reproducible).
pub fn image_batch(id: u64, side: u32, items: u32, created_at_micros: u64) -> RawBatch {
    let bytes = side as usize * side as usize * 3 * items as usize;
    RawBatch {
        id,
        kind: BatchKind::Images {
            width: side,
            height: side,
            channels: 3,
        },
        items,
        data: vec![(id % 251) as u8; bytes],
        created_at_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_have_the_declared_shape() {
        for (side, items) in [(1, 1), (4, 3), (36, 8)] {
            let batch = image_batch(300, side, items, 5);
            assert_eq!(batch.items, items);
            assert_eq!(batch.data.len(), (side * side * 3 * items) as usize);
            assert!(batch.data.iter().all(|&b| b == 49));
        }
    }
}
