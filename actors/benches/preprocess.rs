//! Preprocessing throughput: `NormalizeImages` through the preprocessor actor pipeline
//! (runtime pool → resource group → buffer pool → next stage) against a hand-written
//! rayon loop on the global pool doing the same transform on the same data.
//!
//! Run: `cargo bench -p vortex-actors --bench preprocess` (about a minute). Criterion
//! reports time per round of batches and input GB/s; afterwards an interleaved A/B pass
//! (the variants alternate round by round, so load from other processes hits both alike)
//! prints median batches/s, GB/s of input and the ratio pipeline / raw.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use tokio::sync::mpsc;
use vortex_actors::preprocessor::{
    NormalizeImages, Preprocessor, PreprocessorConfig, PreprocessorHandle,
};
use vortex_messages::pipeline::{BatchKind, PreparedBatch, RawBatch};
use vortex_runtime::{
    buffer_pool::BufferPool,
    resource_group::{rayon, rayon::prelude::*, ResourceGroup},
    Runtime,
};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

fn image_batches(count: u64, items: u32, side: u32) -> Vec<RawBatch> {
    let length = (items * side * side * 3) as usize;
    (0..count)
        .map(|id| RawBatch {
            id,
            kind: BatchKind::Images {
                width: side,
                height: side,
                channels: 3,
            },
            items,
            data: (0..length)
                .map(|index| ((index as u64 + id) * 31 % 253) as u8)
                .collect(),
            created_at_micros: 0,
        })
        .collect()
}

/// The baseline a user would write by hand: a lookup table per channel, a fresh output
/// per batch, and a rayon loop over batches and (image, channel) planes on the global pool.
struct RawNormalize {
    table: [[f32; 256]; 3],
}

impl RawNormalize {
    fn new() -> Self {
        let mut table = [[0.0; 256]; 3];
        for (channel, row) in table.iter_mut().enumerate() {
            for (value, entry) in row.iter_mut().enumerate() {
                *entry = (value as f32 / 255.0 - MEAN[channel]) / STD[channel];
            }
        }
        Self { table }
    }

    fn batch(&self, input: &[u8], pixels: usize) -> Vec<u8> {
        let mut output = vec![0_u8; input.len() * 4];
        output
            .par_chunks_mut(pixels * 4)
            .enumerate()
            .for_each(|(index, plane)| {
                let image = &input[index / 3 * pixels * 3..][..pixels * 3];
                let table = &self.table[index % 3];
                for (target, pixel) in plane.chunks_exact_mut(4).zip(image.chunks_exact(3)) {
                    target.copy_from_slice(&table[usize::from(pixel[index % 3])].to_le_bytes());
                }
            });
        output
    }

    fn round(&self, batches: Vec<RawBatch>, pixels: usize) {
        let outputs: Vec<Vec<u8>> = batches
            .par_iter()
            .map(|batch| self.batch(&batch.data, pixels))
            .collect();
        black_box(outputs);
    }
}

/// The actor pipeline: a preprocessor pool whose next stage is a channel this side
/// drains, handing every buffer back to the pool (as a GPU launcher would after copying).
struct ActorPipeline {
    rt: Runtime,
    preprocessor: PreprocessorHandle,
    prepared: tokio::sync::Mutex<mpsc::Receiver<PreparedBatch>>,
    buffers: BufferPool,
}

impl ActorPipeline {
    fn new(name: &str) -> Self {
        let threads = rayon::current_num_threads();
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let group = Arc::new(ResourceGroup::new(format!("{name}-cpu"), threads, None).unwrap());
        let buffers = BufferPool::default();
        let (next, prepared) = mpsc::channel(64);
        let normalize = Arc::new(NormalizeImages::new(MEAN, STD).unwrap());
        let config = PreprocessorConfig::new(name, group, normalize, buffers.clone())
            .workers(2 * threads as u32)
            .capacity(64);
        let preprocessor = rt.block_on(Preprocessor::spawn(&rt, config, next)).unwrap();
        Self {
            rt,
            preprocessor,
            prepared: tokio::sync::Mutex::new(prepared),
            buffers,
        }
    }

    fn round(&self, batches: Vec<RawBatch>) {
        let count = batches.len();
        self.rt.block_on(async {
            let preprocessor = self.preprocessor.clone();
            let producer = tokio::spawn(async move {
                for batch in batches {
                    preprocessor.submit(batch).await.unwrap();
                }
            });
            let mut prepared = self.prepared.lock().await;
            for _ in 0..count {
                let batch = prepared.recv().await.unwrap();
                self.buffers.put(black_box(batch).data);
            }
            producer.await.unwrap();
        });
    }
}

const SIZES: [(u64, u32, u32); 2] = [(64, 16, 64), (8, 16, 224)];

fn throughput(criterion: &mut Criterion) {
    let pipeline = ActorPipeline::new("bench-preprocess");
    let raw = RawNormalize::new();
    let mut benches = criterion.benchmark_group("preprocess_normalize");
    benches
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);
    for (count, items, side) in SIZES {
        let batches = image_batches(count, items, side);
        let pixels = (side * side) as usize;
        let label = format!("{count}x[{items}x{side}x{side}]");
        let bytes: usize = batches.iter().map(|batch| batch.data.len()).sum();
        benches.throughput(Throughput::Bytes(bytes as u64));
        benches.bench_function(BenchmarkId::new("actor_pipeline", &label), |bencher| {
            bencher.iter_batched(
                || batches.clone(),
                |round| pipeline.round(round),
                BatchSize::PerIteration,
            )
        });
        benches.bench_function(BenchmarkId::new("raw_rayon", &label), |bencher| {
            bencher.iter_batched(
                || batches.clone(),
                |round| raw.round(round, pixels),
                BatchSize::PerIteration,
            )
        });
    }
    benches.finish();
}

/// Times both variants in alternating rounds and prints medians and the ratio.
fn interleaved_ratio(
    pipeline: &ActorPipeline,
    raw: &RawNormalize,
    size: (u64, u32, u32),
    rounds: usize,
) {
    let (count, items, side) = size;
    let batches = image_batches(count, items, side);
    let pixels = (side * side) as usize;
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for offset in 0..2 {
            let variant = (round + offset) % 2;
            let input = batches.clone();
            let start = Instant::now();
            if variant == 0 {
                pipeline.round(input);
            } else {
                raw.round(input, pixels);
            }
            samples[variant].push(start.elapsed());
        }
    }
    let [actor, hand] = samples.map(|mut times| {
        times.sort();
        times[times.len() / 2].as_secs_f64()
    });
    let gigabytes = batches.iter().map(|batch| batch.data.len()).sum::<usize>() as f64 / 1e9;
    println!(
        "interleaved {count}x[{items}x{side}x{side}]: actor_pipeline {:.0} batches/s {:.2} GB/s; \
         raw_rayon {:.0} batches/s {:.2} GB/s; ratio pipeline/raw {:.2}",
        count as f64 / actor,
        gigabytes / actor,
        count as f64 / hand,
        gigabytes / hand,
        hand / actor,
    );
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated functions
// have no docs and trip `missing_docs`.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    throughput(&mut criterion);
    criterion.final_summary();
    if std::env::args().any(|argument| argument == "--bench") {
        let pipeline = ActorPipeline::new("ab-preprocess");
        let raw = RawNormalize::new();
        interleaved_ratio(&pipeline, &raw, SIZES[0], 60);
        interleaved_ratio(&pipeline, &raw, SIZES[1], 40);
    }
}
