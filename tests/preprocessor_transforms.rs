//! Preprocessor transforms: exact outputs on hand-computed inputs, typed errors, pooled
//! output, and equal results on a resource group and sequentially.

use vortex::actors::preprocessor::{
    prepare, NormalizeImages, TokenizePad, Transform, TransformError,
};
use vortex::messages::{
    pipeline::{BatchKind, DType, PreparedBatch, RawBatch},
    wire,
};
use vortex::runtime::{buffer_pool::BufferPool, resource_group::ResourceGroup};

fn images(width: u32, height: u32, channels: u32, items: u32, data: Vec<u8>) -> RawBatch {
    RawBatch {
        id: 1,
        kind: BatchKind::Images {
            width,
            height,
            channels,
        },
        items,
        data,
        created_at_micros: 99,
    }
}

fn text(items: u32, data: &[u8]) -> RawBatch {
    RawBatch {
        id: 2,
        kind: BatchKind::Text,
        items,
        data: data.to_vec(),
        created_at_micros: 5,
    }
}

fn decode_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
        .collect()
}

fn decode_u32(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|chunk| u32::from_le_bytes(chunk.try_into().unwrap()))
        .collect()
}

fn apply(transform: &dyn Transform, input: &RawBatch) -> Result<PreparedBatch, TransformError> {
    prepare(transform, input, &BufferPool::default())
}

#[test]
fn normalize_images_writes_planar_normalised_values() {
    let normalize = NormalizeImages::new([0.0, 0.5, 1.0], [1.0, 0.5, 0.25]).unwrap();
    // Two 2×1 images: black then white, and white then black.
    let data = vec![0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0];
    let prepared = apply(&normalize, &images(2, 1, 3, 2, data)).unwrap();
    assert_eq!(
        (prepared.dtype, prepared.shape.clone()),
        (DType::F32, vec![2, 3, 1, 2])
    );
    assert_eq!(
        (prepared.id, prepared.items, prepared.created_at_micros),
        (1, 2, 99)
    );
    let expected = [
        0.0, 1.0, -1.0, 1.0, -4.0, 0.0, // image 0: R, G, B planes
        1.0, 0.0, 1.0, -1.0, 0.0, -4.0, // image 1
    ];
    assert_eq!(decode_f32(&prepared.data), expected);
}

#[test]
fn normalize_images_matches_the_formula_for_mid_values() {
    let normalize = NormalizeImages::new([0.5; 3], [0.25; 3]).unwrap();
    let prepared = apply(&normalize, &images(1, 1, 3, 1, vec![51, 102, 204])).unwrap();
    let formula = |value: u8| (f32::from(value) / 255.0 - 0.5) / 0.25;
    assert_eq!(
        decode_f32(&prepared.data),
        [formula(51), formula(102), formula(204)]
    );
    assert!((formula(51) - -1.2).abs() < 1e-6 && (formula(204) - 1.2).abs() < 1e-6);
}

#[test]
fn large_batch_in_a_group_equals_the_sequential_result() {
    let group = ResourceGroup::new("transform", 2, None).unwrap();
    let normalize = NormalizeImages::imagenet();
    let data: Vec<u8> = (0..16 * 32 * 32 * 3)
        .map(|index| (index * 7 % 251) as u8)
        .collect();
    let input = images(32, 32, 3, 16, data);
    let sequential = apply(&normalize, &input).unwrap();
    let parallel = group.run(|| apply(&normalize, &input)).unwrap().unwrap();
    assert_eq!(parallel, sequential);
    assert_eq!(parallel.data.len(), 16 * 32 * 32 * 3 * 4);
}

#[test]
fn normalize_images_rejects_malformed_input() {
    let normalize = NormalizeImages::imagenet();
    let short = apply(&normalize, &images(2, 2, 3, 1, vec![0; 11])).unwrap_err();
    assert_eq!(
        short,
        TransformError::DataLength {
            expected: 12,
            actual: 11
        }
    );
    let rgba = apply(&normalize, &images(1, 1, 4, 1, vec![0; 4])).unwrap_err();
    assert_eq!(
        rgba,
        TransformError::UnsupportedChannels {
            channels: 4,
            supported: 3
        }
    );
    let words = apply(&normalize, &text(1, b"hi")).unwrap_err();
    assert!(
        matches!(words, TransformError::KindMismatch { .. }),
        "{words:?}"
    );
    let zero_std = NormalizeImages::new([0.0; 3], [1.0, 0.0, 1.0]).unwrap_err();
    assert!(matches!(zero_std, TransformError::InvalidConfig { .. }));
    let huge = images(u32::MAX, u32::MAX, 3, u32::MAX, Vec::new());
    assert_eq!(normalize.output_len(&huge), Err(TransformError::TooLarge));
}

#[test]
fn tokenize_pad_hashes_pads_and_truncates() {
    // Ids from 64-bit FNV-1a: 2 + hash % 998 (computed independently).
    let (hello, world, naive, ete) = (335, 905, 991, 385);
    let (a, b, c, d) = (336, 319, 990, 353);
    let tokenize = TokenizePad::new(4, 1000).unwrap();
    let input = text(
        5,
        "Hello, world!\nHELLO\na b c d e\n\nnaïve ÉTÉ--x\n".as_bytes(),
    );
    let prepared = apply(&tokenize, &input).unwrap();
    assert_eq!(
        (prepared.dtype, prepared.shape.clone()),
        (DType::U32, vec![5, 4])
    );
    let expected = [
        [hello, world, 0, 0],
        [hello, 0, 0, 0],
        [a, b, c, d],
        [0, 0, 0, 0],
        [naive, ete, tokenize.token_id("x"), 0],
    ];
    assert_eq!(decode_u32(&prepared.data), expected.concat());

    let cased = TokenizePad::new(3, 1000)
        .unwrap()
        .with_lowercase(false)
        .with_cls(true);
    let prepared = apply(&cased, &text(1, b"Hello world")).unwrap();
    assert_eq!(decode_u32(&prepared.data), [1, 693, world]);
}

#[test]
fn large_text_batch_in_a_group_equals_the_sequential_result() {
    let group = ResourceGroup::new("tokenize", 2, None).unwrap();
    let tokenize = TokenizePad::new(64, 30_000).unwrap().with_cls(true);
    let lines: String = (0..2000)
        .map(|line| format!("line {line} says Word{}\n", line % 17))
        .collect();
    let input = text(2000, lines.as_bytes());
    let sequential = apply(&tokenize, &input).unwrap();
    let parallel = group.run(|| apply(&tokenize, &input)).unwrap().unwrap();
    assert_eq!(parallel, sequential);
}

#[test]
fn tokenize_pad_rejects_malformed_input() {
    let tokenize = TokenizePad::new(4, 1000).unwrap();
    let invalid = apply(&tokenize, &text(1, &[b'o', b'k', 0xff, b'\n'])).unwrap_err();
    assert_eq!(invalid, TransformError::InvalidUtf8 { valid_up_to: 2 });
    let count = apply(&tokenize, &text(3, b"one\ntwo\n")).unwrap_err();
    assert_eq!(
        count,
        TransformError::ItemCount {
            expected: 3,
            actual: 2
        }
    );
    let pixels = apply(&tokenize, &images(1, 1, 3, 1, vec![0; 3])).unwrap_err();
    assert!(matches!(pixels, TransformError::KindMismatch { .. }));
    assert!(matches!(
        TokenizePad::new(4, 2),
        Err(TransformError::InvalidConfig { .. })
    ));
    assert!(matches!(
        TokenizePad::new(0, 10),
        Err(TransformError::InvalidConfig { .. })
    ));
    let empty = apply(&tokenize, &text(0, b"")).unwrap();
    assert_eq!((empty.shape, empty.data.len()), (vec![0, 4], 0));
}

#[test]
fn prepare_reuses_pooled_output_buffers() {
    let pool = BufferPool::default();
    let normalize = NormalizeImages::imagenet();
    let input = images(8, 8, 3, 4, vec![9; 8 * 8 * 3 * 4]);
    let first = prepare(&normalize, &input, &pool).unwrap();
    let address = first.data.as_ptr();
    pool.put(first.data);
    let second = prepare(&normalize, &input, &pool).unwrap();
    assert_eq!(second.data.as_ptr(), address);
    assert_eq!((pool.stats().hits, pool.stats().misses), (1, 1));
    // A failed transform hands its buffer back.
    let broken = images(8, 8, 3, 4, vec![9; 10]);
    assert!(prepare(&normalize, &broken, &pool).is_err());
}

#[test]
fn batches_round_trip_through_bincode() {
    let raw = text(1, b"hello");
    let decoded: RawBatch = wire::decode(&wire::encode(&raw).unwrap()).unwrap();
    assert_eq!(decoded, raw);
    let prepared = apply(&TokenizePad::new(2, 50).unwrap(), &raw).unwrap();
    let decoded: PreparedBatch = wire::decode(&wire::encode(&prepared).unwrap()).unwrap();
    assert_eq!(decoded, prepared);
}

#[test]
fn stale_bytes_of_a_recycled_buffer_never_reach_the_output() {
    let pool = BufferPool::default();
    let tokenize = TokenizePad::new(4, 1000).unwrap();
    let input = text(2, b"hello\n\n");
    pool.put(vec![0xAB; 64]);
    let prepared = prepare(&tokenize, &input, &pool).unwrap();
    assert_eq!(pool.stats().hits, 1);
    assert_eq!(decode_u32(&prepared.data), [335, 0, 0, 0, 0, 0, 0, 0]);
}
