//! Preprocessing throughput: `NormalizeImages` through the preprocessor actor pipeline
//! (runtime pool → resource group → buffer pool → next stage) against a hand-written
//! rayon loop doing the same transform on the same data.
//!
//! Equal terms: the hand-written loop runs on its own pool with the same number of
//! threads as the pipeline's resource group, pinned to the same cores (it used to run on
//! the global rayon pool, unpinned, next to the pipeline's idle group — one run put the
//! pipeline at 1.8× in criterion and 0.49× interleaved). Only the variant being timed has
//! work. Criterion's samples are recorded (`iter_custom`) and compared with an interleaved
//! A/B pass (the variants alternate round by round); a ratio is reported only when the two
//! passes agree within 20 % (see `ab/mod.rs`).
//!
//! Run: `cargo bench -p vortex-actors --bench preprocess -- --measurement-time 3 --warm-up-time 1`.

#[path = "ab/mod.rs"]
mod ab;

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput};
use tokio::sync::mpsc;
use vortex_actors::preprocessor::{
    NormalizeImages, Preprocessor, PreprocessorConfig, PreprocessorHandle,
};
use vortex_messages::pipeline::{BatchKind, PreparedBatch, RawBatch};
use vortex_runtime::{
    buffer_pool::BufferPool,
    resource_group::{rayon::prelude::*, ResourceGroup},
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
/// per batch, and a rayon loop over batches and (image, channel) planes, on a pool of the
/// pipeline's size pinned to the same cores.
struct RawNormalize {
    table: [[f32; 256]; 3],
    pool: ResourceGroup,
}

impl RawNormalize {
    fn new(threads: usize) -> Self {
        let mut table = [[0.0; 256]; 3];
        for (channel, row) in table.iter_mut().enumerate() {
            for (value, entry) in row.iter_mut().enumerate() {
                *entry = (value as f32 / 255.0 - MEAN[channel]) / STD[channel];
            }
        }
        let pool = ResourceGroup::new("bench-hand", threads, ab::cores(threads)).unwrap();
        Self { table, pool }
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
        self.pool.install(|| {
            let outputs: Vec<Vec<u8>> = batches
                .par_iter()
                .map(|batch| self.batch(&batch.data, pixels))
                .collect();
            black_box(outputs);
        });
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
    fn new(name: &str, threads: usize) -> Self {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let group = ResourceGroup::new(format!("{name}-cpu"), threads, ab::cores(threads));
        let group = Arc::new(group.unwrap());
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

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The criterion pass; returns (pipeline, raw) median seconds per round for each size.
fn throughput(
    criterion: &mut Criterion,
    pipeline: &ActorPipeline,
    raw: &RawNormalize,
) -> Vec<(f64, f64)> {
    let mut medians = Vec::new();
    let mut benches = criterion.benchmark_group("preprocess_normalize");
    benches.sample_size(20);
    for (count, items, side) in SIZES {
        let batches = image_batches(count, items, side);
        let pixels = (side * side) as usize;
        let label = format!("{count}x[{items}x{side}x{side}]");
        let bytes: usize = batches.iter().map(|batch| batch.data.len()).sum();
        benches.throughput(Throughput::Bytes(bytes as u64));
        let (actor_times, raw_times) = (ab::Recorder::default(), ab::Recorder::default());
        benches.bench_function(BenchmarkId::new("actor_pipeline", &label), |bencher| {
            bencher.iter_custom(|n| {
                ab::timed_rounds(
                    &actor_times,
                    n,
                    || {
                        ab::settle();
                        batches.clone()
                    },
                    |round| pipeline.round(round),
                )
            })
        });
        benches.bench_function(BenchmarkId::new("raw_rayon", &label), |bencher| {
            bencher.iter_custom(|n| {
                ab::timed_rounds(
                    &raw_times,
                    n,
                    || {
                        ab::settle();
                        batches.clone()
                    },
                    |round| raw.round(round, pixels),
                )
            })
        });
        medians.push((actor_times.median(), raw_times.median()));
    }
    benches.finish();
    medians
}

/// The interleaved pass for one size: prints medians; returns (pipeline, raw) seconds.
fn interleaved_ratio(
    pipeline: &ActorPipeline,
    raw: &RawNormalize,
    size: (u64, u32, u32),
    rounds: usize,
) -> (f64, f64) {
    let (count, items, side) = size;
    let batches = image_batches(count, items, side);
    let pixels = (side * side) as usize;
    let (actor, hand) = ab::interleaved(
        rounds,
        || {
            ab::settle();
            batches.clone()
        },
        |round| pipeline.round(round),
        |round| raw.round(round, pixels),
    );
    let gigabytes = batches.iter().map(|batch| batch.data.len()).sum::<usize>() as f64 / 1e9;
    println!(
        "interleaved {count}x[{items}x{side}x{side}]: actor_pipeline {:.0} batches/s {:.2} GB/s; \
         raw_rayon {:.0} batches/s {:.2} GB/s",
        count as f64 / actor,
        gigabytes / actor,
        count as f64 / hand,
        gigabytes / hand,
    );
    (actor, hand)
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated functions
// have no docs and trip `missing_docs`.
fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let threads = threads();
    let pipeline = ActorPipeline::new("bench-preprocess", threads);
    let raw = RawNormalize::new(threads);
    let medians = throughput(&mut criterion, &pipeline, &raw);
    criterion.final_summary();
    if !std::env::args().any(|argument| argument == "--bench") {
        return; // `cargo test --benches` runs each bench once; no report then.
    }
    for (index, rounds) in [(0, 60), (1, 40)] {
        let (count, items, side) = SIZES[index];
        let (actor, hand) = interleaved_ratio(&pipeline, &raw, SIZES[index], rounds);
        let (actor_c, hand_c) = medians[index];
        let label = format!("preprocess {count}x[{items}x{side}x{side}], {threads} threads");
        ab::report(&label, hand_c / actor_c, hand / actor, None);
    }
}
