//! The CUDA backend behind a launcher (features `cuda`). Every test needs a
//! CUDA device and says it skipped without one; on a GPU it checks the MLP against the
//! float64 reference through the launcher, the batch pipeline's chunking, and that the
//! device's host thread is pinned where asked.
//!
//! On a GPU: `cargo test --release -p vortex-actors --features cuda --test cuda_launcher -- --nocapture`.
#![cfg(feature = "cuda-backend")]

use std::{sync::Arc, time::Duration};

use vortex_actors::launcher::{
    ComputeDevice, CudaDevice, CudaOptions, Kernel, Launcher, LauncherConfig, MlpKernel,
};
use vortex_messages::pipeline::{DType, FinishedBatch, PreparedBatch};
use vortex_runtime::Runtime;

fn open(test: &str, options: CudaOptions) -> Option<CudaDevice> {
    match CudaDevice::open(0, 0, options) {
        Ok(device) => Some(device),
        Err(why) => {
            eprintln!("SKIPPED {test}: no CUDA device ({why})");
            None
        }
    }
}

fn batch(id: u64, rows: usize, features: usize) -> (PreparedBatch, Vec<f32>) {
    let values: Vec<f32> = (0..rows * features)
        .map(|i| ((i * 31 + id as usize * 7) % 97) as f32 / 50.0 - 0.97)
        .collect();
    let batch = PreparedBatch {
        id,
        items: rows as u32,
        dtype: DType::F32,
        shape: vec![rows as u32, features as u32],
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        created_at_micros: 0,
    };
    (batch, values)
}

fn relative_error(bytes: &[u8], reference: &[f64]) -> f64 {
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got.len(), reference.len());
    let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_diff = got
        .iter()
        .zip(reference)
        .fold(0.0f64, |m, (g, r)| m.max((f64::from(*g) - r).abs()));
    max_diff / max_ref
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launcher_runs_the_mlp_on_cuda_within_tolerance() {
    let Some(device) = open(
        "launcher_runs_the_mlp_on_cuda_within_tolerance",
        CudaOptions::default().chunk_rows(64),
    ) else {
        return;
    };
    let rt = Runtime::builder().build().unwrap();
    let mlp = Arc::new(MlpKernel::seeded(768, 256, 10, 7));
    let (sink, mut finished) = tokio::sync::mpsc::channel::<FinishedBatch>(8);
    let kernel: Arc<dyn Kernel> = mlp.clone();
    let launcher = Launcher::spawn(
        &rt,
        LauncherConfig::new("gpu-launcher-0", ComputeDevice::Cuda(device), kernel),
        sink,
    )
    .await
    .unwrap();
    // 200 rows in chunks of 64: four chunks, the last one short.
    for id in 0..4u64 {
        let (prepared, values) = batch(id, 200, 768);
        launcher.addr().tell(prepared.into()).await.unwrap();
        let out = tokio::time::timeout(Duration::from_secs(30), finished.recv())
            .await
            .expect("batch in time")
            .expect("a finished batch");
        assert_eq!((out.id, out.shape.clone()), (id, vec![200, 10]));
        let error = relative_error(&out.data, &mlp.reference(&values, 200));
        assert!(error < 1e-4, "batch {id}: {error:e}");
        eprintln!(
            "batch {id}: copy {} us, compute {} us, error {error:e}",
            out.copy_micros, out.compute_micros
        );
    }
    let snapshot = launcher.stats().snapshot();
    assert_eq!((snapshot.batches, snapshot.faults), (4, 0));
    eprintln!("data-stall ratio {:.3}", snapshot.data_stall_ratio);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_thread_is_pinned_where_asked() {
    let cpus = vortex_actors::launcher::affinity::current_thread_cpus().unwrap();
    let first = cpus[0];
    let Some(device) = open(
        "the_host_thread_is_pinned_where_asked",
        CudaOptions::default().cpus(vec![first]),
    ) else {
        return;
    };
    let device = ComputeDevice::Cuda(device);
    let seen = device
        .run(|_| vortex_actors::launcher::affinity::current_thread_cpus().unwrap())
        .await
        .unwrap();
    assert_eq!(seen, [first]);
    let name = device
        .run(|_| std::thread::current().name().map(str::to_owned))
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("cuda-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_batch_is_a_typed_device_error_not_a_panic() {
    let Some(device) = open(
        "a_wrong_batch_is_a_typed_device_error_not_a_panic",
        CudaOptions::default(),
    ) else {
        return;
    };
    let device = ComputeDevice::Cuda(device);
    let mlp = Arc::new(MlpKernel::seeded(8, 4, 2, 1));
    let (mut prepared, _) = batch(1, 3, 8);
    prepared.data.truncate(10);
    let kernel = Arc::clone(&mlp);
    let outcome = device
        .run(move |device| {
            device
                .execute_batch(&*kernel, &prepared, Vec::new())
                .map(drop)
        })
        .await
        .unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
}
