//! The CUDA backend against float64 references. Every test needs a CUDA device: without
//! one (no driver library, no device, no cuBLAS) it prints why and passes as skipped, so
//! the suite runs on machines without a GPU; `no_driver_is_a_typed_error` checks that path.
//!
//! On a GPU: `cargo test --release -p vortex-cuda -- --nocapture` prints the copy/compute
//! timeline of the pipeline test.
#![cfg(feature = "cuda-13")]

use vortex_cuda::{CudaError, DeviceMlp, Gpu, MlpWeights, Pipeline};

/// The device, or `None` after saying why the test is skipped.
fn gpu(test: &str) -> Option<Gpu> {
    match Gpu::open(0) {
        Ok(gpu) => Some(gpu),
        Err(why) => {
            eprintln!("SKIPPED {test}: no CUDA device ({why})");
            None
        }
    }
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn relative_error(got: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(got.len(), reference.len());
    let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_diff = got
        .iter()
        .zip(reference)
        .fold(0.0f64, |m, (g, r)| m.max((f64::from(*g) - r).abs()));
    max_diff / max_ref.max(f64::MIN_POSITIVE)
}

struct Mlp {
    inputs: usize,
    hidden: usize,
    outputs: usize,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl Mlp {
    fn new(inputs: usize, hidden: usize, outputs: usize) -> Mlp {
        Mlp {
            inputs,
            hidden,
            outputs,
            w1: values(inputs * hidden, 1),
            b1: values(hidden, 2),
            w2: values(hidden * outputs, 3),
            b2: values(outputs, 4),
        }
    }

    fn weights(&self) -> MlpWeights<'_> {
        MlpWeights {
            inputs: self.inputs,
            hidden: self.hidden,
            outputs: self.outputs,
            w1: &self.w1,
            b1: &self.b1,
            w2: &self.w2,
            b2: &self.b2,
        }
    }

    fn reference(&self, x: &[f32], rows: usize) -> Vec<f64> {
        let (i_n, h_n, o_n) = (self.inputs, self.hidden, self.outputs);
        let mut out = vec![0.0; rows * o_n];
        for r in 0..rows {
            let h: Vec<f64> = (0..h_n)
                .map(|j| {
                    let dot: f64 = (0..i_n)
                        .map(|i| f64::from(x[r * i_n + i]) * f64::from(self.w1[i * h_n + j]))
                        .sum();
                    (dot + f64::from(self.b1[j])).max(0.0)
                })
                .collect();
            for k in 0..o_n {
                let dot: f64 = (0..h_n)
                    .map(|j| h[j] * f64::from(self.w2[j * o_n + k]))
                    .sum();
                out[r * o_n + k] = dot + f64::from(self.b2[k]);
            }
        }
        out
    }
}

#[test]
fn no_driver_is_a_typed_error() {
    if vortex_cuda::driver_present() {
        eprintln!("SKIPPED no_driver_is_a_typed_error: a CUDA driver library is present");
        return;
    }
    assert_eq!(vortex_cuda::device_count(), Err(CudaError::DriverMissing));
    let error = Gpu::open(0).unwrap_err();
    assert_eq!(error, CudaError::DriverMissing);
    assert!(error.to_string().contains("libcuda"), "{error}");
}

#[test]
fn sgemm_is_row_major() {
    let Some(gpu) = gpu("sgemm_is_row_major") else {
        return;
    };
    for (m, k, n) in [(2, 2, 2), (7, 5, 3), (64, 33, 17)] {
        let (a, b) = (values(m * k, 5), values(k * n, 6));
        let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
        let mut dc = gpu.alloc(m * n).unwrap();
        gpu.sgemm(m, k, n, &da, &db, &mut dc).unwrap();
        gpu.synchronize().unwrap();
        let mut c = Vec::new();
        gpu.download(&dc, &mut c).unwrap();
        let reference: Vec<f64> = (0..m * n)
            .map(|idx| {
                let (r, col) = (idx / n, idx % n);
                (0..k)
                    .map(|i| f64::from(a[r * k + i]) * f64::from(b[i * n + col]))
                    .sum()
            })
            .collect();
        let error = relative_error(&c, &reference);
        assert!(error < 1e-5, "{m}x{k}x{n}: {error:e}");
    }
}

#[test]
fn sgemm_refuses_short_operands() {
    let Some(gpu) = gpu("sgemm_refuses_short_operands") else {
        return;
    };
    let a = gpu.alloc(3).unwrap();
    let b = gpu.alloc(4).unwrap();
    let mut c = gpu.alloc(4).unwrap();
    let error = gpu.sgemm(2, 2, 2, &a, &b, &mut c).unwrap_err();
    assert!(matches!(error, CudaError::Shape(_)), "{error}");
}

#[test]
fn bias_act_adds_per_column_and_clamps() {
    let Some(gpu) = gpu("bias_act_adds_per_column_and_clamps") else {
        return;
    };
    let y = [1.0, -2.0, 3.0, -4.0, 5.0, -6.0];
    let bias = [0.5, 1.0, -10.0];
    for relu in [false, true] {
        let mut dy = gpu.upload(&y).unwrap();
        let db = gpu.upload(&bias).unwrap();
        gpu.bias_act(&mut dy, &db, 2, 3, relu).unwrap();
        gpu.synchronize().unwrap();
        let mut got = Vec::new();
        gpu.download(&dy, &mut got).unwrap();
        let want: Vec<f32> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[i % 3])
            .map(|v| if relu { v.max(0.0) } else { v })
            .collect();
        assert_eq!(got, want, "relu={relu}");
    }
}

#[test]
fn mlp_matches_the_float64_reference() {
    let Some(gpu) = gpu("mlp_matches_the_float64_reference") else {
        return;
    };
    for (inputs, hidden, outputs, rows) in [(7, 5, 3, 1), (48, 32, 10, 9), (768, 256, 10, 64)] {
        let mlp = Mlp::new(inputs, hidden, outputs);
        let mut device = DeviceMlp::upload(&gpu, mlp.weights()).unwrap();
        let x = values(rows * inputs, 9);
        let dx = gpu.upload(&x).unwrap();
        let mut dy = gpu.alloc(rows * outputs).unwrap();
        device.forward(&gpu, &dx, rows, &mut dy).unwrap();
        gpu.synchronize().unwrap();
        let mut y = Vec::new();
        gpu.download(&dy, &mut y).unwrap();
        let error = relative_error(&y, &mlp.reference(&x, rows));
        assert!(
            error < 1e-4,
            "{inputs}x{hidden}x{outputs}, {rows} rows: {error:e}"
        );
    }
}

#[test]
fn pipeline_overlaps_copies_with_compute_and_keeps_every_row() {
    let Some(gpu) = gpu("pipeline_overlaps_copies_with_compute_and_keeps_every_row") else {
        return;
    };
    let mlp = Mlp::new(768, 1024, 10);
    let mut device = DeviceMlp::upload(&gpu, mlp.weights()).unwrap();
    // 4 096 rows in chunks of 512 with a 64-row tail: nine chunks, the last one short.
    let rows = 8 * 512 + 64;
    let x = values(rows * mlp.inputs, 11);
    let mut pipeline = Pipeline::new(&gpu, 512, mlp.inputs, mlp.outputs).unwrap();
    let mut y = Vec::new();
    let mut run = |y: &mut Vec<f32>| {
        pipeline
            .run(&x, rows, y, |gpu, input, rows, output| {
                device.forward(gpu, input, rows, output)
            })
            .unwrap()
    };
    run(&mut y); // warm-up: module JIT, cuBLAS heuristics
    let timings = run(&mut y);
    let error = relative_error(&y, &mlp.reference(&x, rows));
    assert!(error < 1e-4, "{error:e}");
    assert_eq!(timings.chunks, 9);
    eprintln!(
        "pipeline: {} chunks, copy {:?}, compute {:?}, span {:?}, overlap {:.2}",
        timings.chunks,
        timings.copy,
        timings.compute,
        timings.span,
        timings.overlap()
    );
}

#[test]
fn pipeline_refuses_a_wrong_input_length() {
    let Some(gpu) = gpu("pipeline_refuses_a_wrong_input_length") else {
        return;
    };
    let mut pipeline = Pipeline::new(&gpu, 4, 3, 2).unwrap();
    let mut y = Vec::new();
    let error = pipeline
        .run(&[0.0; 5], 2, &mut y, |_, _, _, _| Ok(()))
        .unwrap_err();
    assert!(matches!(error, CudaError::Shape(_)), "{error}");
}
