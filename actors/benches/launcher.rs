//! The device launcher on CPU devices, on equal terms with a hand-written loop.
//!
//! 1. End to end: raw image batches → preprocessor pool → router → one launcher per CPU
//!    device (one pinned thread each) → sink, against a hand-written loop doing the same
//!    normalise → MLP forward with the same GEMM crate (`vortex-gemm` over
//!    matrixmultiply), batch-parallel on a pool of the same number of threads pinned to
//!    the same cores, into per-task buffers it reuses (as the pipeline reuses pooled ones).
//!    Reports batches/s of both, the ratio (goal ≥ 0.9) and the pipeline's
//!    data-stall ratio (goal ≤ 5 % with enough preprocessor workers).
//! 2. The MLP kernel launched on a CPU device against the two GEMMs of the same shapes
//!    called directly on the same device thread: GFLOP/s of both (goal ≥ 0.8×).
//!
//! Each comparison runs twice — criterion, then an interleaved pass — and a ratio is
//! reported only when the passes agree within 20 % (see `ab/mod.rs`). Both variants exist
//! for the whole run but only the one being timed has work: the other's pools are idle.
//!
//! Run: `cargo bench -p vortex-actors --bench launcher -- --measurement-time 3 --warm-up-time 1`.

#[path = "ab/mod.rs"]
mod ab;

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput};
use tokio::sync::mpsc;
use vortex_actors::{
    launcher::{
        ComputeDevice, CpuDevice, Launcher, LauncherConfig, LauncherHandle, MlpKernel, Router,
        ScoreWeights,
    },
    preprocessor::{NormalizeImages, Preprocessor, PreprocessorConfig, PreprocessorHandle},
    source::image_batch,
};
use vortex_messages::pipeline::{FinishedBatch, RawBatch};
use vortex_runtime::{
    buffer_pool::BufferPool,
    resource_group::{rayon::prelude::*, ResourceGroup},
    Runtime,
};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
const SIDE: u32 = 32;
const ITEMS: u32 = 32;
const FEATURES: usize = (3 * SIDE * SIDE) as usize;
const HIDDEN: usize = 128;
const OUTPUTS: usize = 10;
const BATCHES: u64 = 192;
const GEMM_ROWS: usize = 256;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn batches() -> Vec<RawBatch> {
    (0..BATCHES)
        .map(|id| {
            let mut batch = image_batch(id, SIDE, ITEMS, 0);
            for (index, byte) in batch.data.iter_mut().enumerate() {
                *byte = ((index as u64 + id) * 31 % 253) as u8;
            }
            batch
        })
        .collect()
}

/// What a user would write by hand: per batch, normalise into CHW f32 with a lookup table,
/// then GEMM → bias → ReLU → GEMM → bias; batches in parallel on a pinned pool.
struct HandLoop {
    pool: ResourceGroup,
    table: [[f32; 256]; 3],
    mlp: MlpWeights,
}

#[derive(Clone)]
struct MlpWeights {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl MlpWeights {
    fn seeded() -> Self {
        let value = |i: usize, scale: f32| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * scale;
        MlpWeights {
            w1: (0..FEATURES * HIDDEN).map(|i| value(i, 0.05)).collect(),
            b1: (0..HIDDEN).map(|i| value(i + 1, 0.2)).collect(),
            w2: (0..HIDDEN * OUTPUTS).map(|i| value(i + 2, 0.2)).collect(),
            b2: (0..OUTPUTS).map(|i| value(i + 3, 0.2)).collect(),
        }
    }

    fn kernel(&self) -> MlpKernel {
        let w = self.clone();
        MlpKernel::new(FEATURES, HIDDEN, OUTPUTS, w.w1, w.b1, w.w2, w.b2).expect("sizes")
    }

    /// The forward pass into reused scratch buffers (`hidden`, `out`).
    fn forward(&self, x: &[f32], rows: usize, hidden: &mut Vec<f32>, out: &mut Vec<f32>) {
        hidden.resize(rows * HIDDEN, 0.0);
        vortex_gemm::sgemm(rows, FEATURES, HIDDEN, 1.0, x, &self.w1, 0.0, hidden).unwrap();
        for row in hidden.chunks_exact_mut(HIDDEN) {
            for (v, b) in row.iter_mut().zip(&self.b1) {
                *v = (*v + b).max(0.0);
            }
        }
        out.resize(rows * OUTPUTS, 0.0);
        vortex_gemm::sgemm(rows, HIDDEN, OUTPUTS, 1.0, hidden, &self.w2, 0.0, out).unwrap();
        for row in out.chunks_exact_mut(OUTPUTS) {
            for (v, b) in row.iter_mut().zip(&self.b2) {
                *v += b;
            }
        }
    }
}

/// Per-task scratch of the hand loop, reused from batch to batch (as the pipeline reuses
/// pooled buffers), so the baseline does not pay an allocation and its page faults per
/// batch.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    hidden: Vec<f32>,
    out: Vec<f32>,
}

impl HandLoop {
    fn new(threads: usize) -> Self {
        let pool = ResourceGroup::new("bench-hand", threads, ab::cores(threads)).unwrap();
        let mut table = [[0.0; 256]; 3];
        for (channel, row) in table.iter_mut().enumerate() {
            for (value, entry) in row.iter_mut().enumerate() {
                *entry = (value as f32 / 255.0 - MEAN[channel]) / STD[channel];
            }
        }
        HandLoop {
            pool,
            table,
            mlp: MlpWeights::seeded(),
        }
    }

    fn normalize(&self, batch: &RawBatch, out: &mut Vec<f32>) {
        let pixels = (SIDE * SIDE) as usize;
        out.resize(batch.data.len(), 0.0);
        for (image, planes) in out.chunks_exact_mut(3 * pixels).enumerate() {
            let input = &batch.data[image * 3 * pixels..][..3 * pixels];
            for (channel, plane) in planes.chunks_exact_mut(pixels).enumerate() {
                let table = &self.table[channel];
                for (target, pixel) in plane.iter_mut().zip(input.chunks_exact(3)) {
                    *target = table[usize::from(pixel[channel])];
                }
            }
        }
    }

    /// One round; takes the batches by value and frees them, as the pipeline does.
    fn round(&self, batches: Vec<RawBatch>) {
        self.pool.install(|| {
            batches
                .into_par_iter()
                .for_each_init(Scratch::default, |scratch, batch| {
                    self.normalize(&batch, &mut scratch.x);
                    let rows = batch.items as usize;
                    self.mlp
                        .forward(&scratch.x, rows, &mut scratch.hidden, &mut scratch.out);
                    black_box(&scratch.out);
                })
        });
    }
}

/// The actor pipeline: preprocessor pool → router → one launcher per CPU device → channel.
struct Pipeline {
    rt: Runtime,
    preprocessor: PreprocessorHandle,
    launchers: Vec<LauncherHandle>,
    finished: tokio::sync::Mutex<mpsc::Receiver<FinishedBatch>>,
}

impl Pipeline {
    fn new(threads: usize, weights: &MlpWeights) -> Self {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let cores = ab::cores(threads);
        let group = ResourceGroup::new("bench-pre", threads, cores.clone()).unwrap();
        let buffers = BufferPool::default();
        let (sink, finished) = mpsc::channel(256);
        let kernel = Arc::new(weights.kernel());
        let mut launchers = Vec::new();
        for index in 0..threads {
            let pin = cores.as_ref().map(|cores| vec![cores[index]]);
            let group = ResourceGroup::new(format!("bench-device-{index}"), 1, pin).unwrap();
            let device = ComputeDevice::Cpu(CpuDevice::new(
                index as u32,
                Arc::new(group),
                1 << 30,
                Duration::from_millis(100),
            ));
            let config = LauncherConfig::new(format!("launcher-{index}"), device, kernel.clone())
                .prefetch_depth(2)
                .return_buffers_to(buffers.clone());
            let launcher = rt
                .block_on(Launcher::spawn(&rt, config, sink.clone()))
                .unwrap();
            launchers.push(launcher);
        }
        let router = Arc::new(Router::new(
            "router",
            launchers.clone(),
            ScoreWeights::default(),
            rt.dead_letters().clone(),
        ));
        let normalize = Arc::new(NormalizeImages::new(MEAN, STD).unwrap());
        let config = PreprocessorConfig::new("preprocess", Arc::new(group), normalize, buffers)
            .workers(2 * threads as u32)
            .capacity(64);
        let preprocessor = rt
            .block_on(Preprocessor::spawn(&rt, config, router))
            .unwrap();
        Pipeline {
            rt,
            preprocessor,
            launchers,
            finished: tokio::sync::Mutex::new(finished),
        }
    }

    /// One round; returns the launchers' mean data-stall ratio over it.
    fn round(&self, batches: Vec<RawBatch>) -> f64 {
        for launcher in &self.launchers {
            launcher.stats().restart_stall_meter();
        }
        let count = batches.len();
        self.rt.block_on(async {
            let preprocessor = self.preprocessor.clone();
            let producer = tokio::spawn(async move {
                for batch in batches {
                    preprocessor.submit(batch).await.unwrap();
                }
            });
            let mut finished = self.finished.lock().await;
            for _ in 0..count {
                black_box(finished.recv().await.unwrap());
            }
            producer.await.unwrap();
        });
        let ratios: f64 = self
            .launchers
            .iter()
            .map(|l| l.stats().data_stall_ratio())
            .sum();
        ratios / self.launchers.len() as f64
    }
}

fn end_to_end(criterion: &mut Criterion, pipeline: &Pipeline, hand: &HandLoop) -> (f64, f64) {
    let input = batches();
    let (pipeline_times, hand_times) = (ab::Recorder::default(), ab::Recorder::default());
    let mut group = criterion.benchmark_group("launcher_end_to_end");
    group.throughput(Throughput::Elements(BATCHES));
    let label = format!("{BATCHES}x[{ITEMS}x{SIDE}x{SIDE}]_mlp{HIDDEN}");
    group.bench_function(BenchmarkId::new("actor_pipeline", &label), |bencher| {
        bencher.iter_custom(|n| {
            ab::timed_rounds(
                &pipeline_times,
                n,
                || {
                    ab::settle();
                    input.clone()
                },
                |round| {
                    pipeline.round(round);
                },
            )
        })
    });
    group.bench_function(BenchmarkId::new("hand_loop", &label), |bencher| {
        bencher.iter_custom(|n| {
            ab::timed_rounds(
                &hand_times,
                n,
                || {
                    ab::settle();
                    input.clone()
                },
                |round| hand.round(round),
            )
        })
    });
    group.finish();
    (pipeline_times.median(), hand_times.median())
}

fn gemm(criterion: &mut Criterion, weights: &MlpWeights) -> (f64, f64) {
    let group = Arc::new(ResourceGroup::new("bench-gemm", 1, ab::cores(1)).unwrap());
    let cpu = CpuDevice::new(0, Arc::clone(&group), 1 << 30, Duration::from_millis(100));
    let kernel = weights.kernel();
    let x: Vec<f32> = (0..GEMM_ROWS * FEATURES)
        .map(|i| (i % 17) as f32 / 17.0)
        .collect();
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut input = cpu.allocate(x.len()).unwrap();
    cpu.copy_to_device(&bytes, &mut input).unwrap();
    let mut output = cpu.allocate(GEMM_ROWS * OUTPUTS).unwrap();
    let (mut hidden, mut out) = (
        vec![0.0; GEMM_ROWS * HIDDEN],
        vec![0.0; GEMM_ROWS * OUTPUTS],
    );
    let (kernel_times, raw_times) = (ab::Recorder::default(), ab::Recorder::default());
    let mut bench = criterion.benchmark_group("cpu_mlp_gflops");
    bench.throughput(Throughput::Elements(kernel.flops(GEMM_ROWS)));
    let label = format!("{GEMM_ROWS}x{FEATURES}x{HIDDEN}x{OUTPUTS}");
    bench.bench_function(
        BenchmarkId::new("mlp_kernel_on_device", &label),
        |bencher| {
            bencher.iter_custom(|n| {
                kernel_times.time(n, || {
                    cpu.launch(&kernel, &input, GEMM_ROWS, &mut output).unwrap()
                })
            })
        },
    );
    bench.bench_function(BenchmarkId::new("gemm_direct", &label), |bencher| {
        bencher.iter_custom(|n| {
            raw_times.time(n, || {
                group.install(|| {
                    vortex_gemm::sgemm(
                        GEMM_ROWS,
                        FEATURES,
                        HIDDEN,
                        1.0,
                        &x,
                        &weights.w1,
                        0.0,
                        &mut hidden,
                    )
                    .unwrap();
                    vortex_gemm::sgemm(
                        GEMM_ROWS,
                        HIDDEN,
                        OUTPUTS,
                        1.0,
                        &hidden,
                        &weights.w2,
                        0.0,
                        &mut out,
                    )
                    .unwrap();
                    black_box(&out);
                })
            })
        })
    });
    bench.finish();
    let (kernel_inter, raw_inter) = ab::interleaved(
        30,
        || (),
        |()| cpu.launch(&kernel, &input, GEMM_ROWS, &mut output).unwrap(),
        |()| {
            group.install(|| {
                vortex_gemm::sgemm(
                    GEMM_ROWS,
                    FEATURES,
                    HIDDEN,
                    1.0,
                    &x,
                    &weights.w1,
                    0.0,
                    &mut hidden,
                )
                .unwrap();
                vortex_gemm::sgemm(
                    GEMM_ROWS,
                    HIDDEN,
                    OUTPUTS,
                    1.0,
                    &hidden,
                    &weights.w2,
                    0.0,
                    &mut out,
                )
                .unwrap();
            })
        },
    );
    let gflops = |seconds: f64| kernel.flops(GEMM_ROWS) as f64 / seconds / 1e9;
    let (kernel_c, raw_c) = (kernel_times.median(), raw_times.median());
    println!(
        "cpu mlp {label}: criterion kernel {:.1} GFLOP/s, gemm direct {:.1} GFLOP/s; \
         interleaved kernel {:.1}, direct {:.1}",
        gflops(kernel_c),
        gflops(raw_c),
        gflops(kernel_inter),
        gflops(raw_inter)
    );
    (raw_c / kernel_c, raw_inter / kernel_inter)
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated functions
// have no docs and trip `missing_docs`.
fn main() {
    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    let threads = threads();
    let weights = MlpWeights::seeded();
    let pipeline = Pipeline::new(threads, &weights);
    let hand = HandLoop::new(threads);
    let (pipeline_c, hand_c) = end_to_end(&mut criterion, &pipeline, &hand);
    let (gemm_ratio_c, gemm_ratio_i) = gemm(&mut criterion, &weights);
    criterion.final_summary();
    if !std::env::args().any(|argument| argument == "--bench") {
        return; // `cargo test --benches` runs each bench once; no report then.
    }
    let input = batches();
    let mut stalls = Vec::new();
    let (pipeline_i, hand_i) = ab::interleaved(
        20,
        || {
            ab::settle();
            input.clone()
        },
        |round| stalls.push(pipeline.round(round)),
        |round| hand.round(round),
    );
    println!(
        "end to end, {threads} threads: criterion pipeline {:.0} batches/s, hand loop {:.0}; \
         interleaved pipeline {:.0}, hand loop {:.0}; pipeline data-stall ratio (median) {:.1}%",
        BATCHES as f64 / pipeline_c,
        BATCHES as f64 / hand_c,
        BATCHES as f64 / pipeline_i,
        BATCHES as f64 / hand_i,
        ab::median(stalls) * 100.0
    );
    ab::report(
        "end to end",
        hand_c / pipeline_c,
        hand_i / pipeline_i,
        Some(0.9),
    );
    ab::report(
        "cpu mlp vs gemm direct",
        gemm_ratio_c,
        gemm_ratio_i,
        Some(0.8),
    );
}
