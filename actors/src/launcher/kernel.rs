//! [`Kernel`]: what a device runs on a batch. Users implement it (a trait, because users
//! add their own); a [`KernelRegistry`] maps names to kernels so a topology names its
//! kernel. The one built-in is [`MlpKernel`], a two-layer perceptron forward pass
//! (GEMM → bias → ReLU → GEMM → bias) on `vortex-gemm` (matrixmultiply).

use std::{collections::BTreeMap, sync::Arc};

use rayon::prelude::*;

#[cfg(feature = "cuda-backend")]
use crate::launcher::cuda::CudaLaunch;
use crate::launcher::{device::DeviceKind, error::KernelError};

/// One launch of a kernel on the CPU backend: `rows` items of `input_features()` f32
/// each in, `rows` items of `output_features()` out, both row-major.
#[derive(Debug)]
#[non_exhaustive]
pub struct CpuLaunch<'a> {
    /// The input, `rows × input_features` values.
    pub input: &'a [f32],
    /// Items in the batch.
    pub rows: usize,
    /// Where the output goes, `rows × output_features` values (contents unspecified).
    pub output: &'a mut [f32],
    /// Threads of the device's resource group; the call runs on one of them, so rayon
    /// parallelism inside it (`par_chunks_mut`, `join`) stays on the device's pinned pool.
    pub threads: usize,
}

/// A computation a device runs on a batch: batch in, output out, per backend it supports.
///
/// Implement the `run_*` method of each backend the kernel supports and say so in
/// [`supports`](Kernel::supports). Shapes are per item: a batch of `rows` items is a
/// `rows × input_features` matrix.
pub trait Kernel: Send + Sync + 'static {
    /// The kernel's name (the registry key).
    fn name(&self) -> &str;

    /// Values per input item.
    fn input_features(&self) -> usize;

    /// Values per output item.
    fn output_features(&self) -> usize;

    /// Whether the kernel runs on this backend (default: the CPU only).
    fn supports(&self, kind: DeviceKind) -> bool {
        kind == DeviceKind::Cpu
    }

    /// Runs on the CPU backend, on a thread of the device's resource group.
    fn run_cpu(&self, launch: CpuLaunch<'_>) -> Result<(), KernelError> {
        let _ = launch;
        Err(KernelError::UnsupportedBackend {
            kernel: self.name().to_owned(),
            backend: DeviceKind::Cpu.to_string(),
        })
    }

    /// Queues the kernel on a CUDA device's compute stream (feature `cuda`),
    /// on the device's host thread. Return once the work is queued; the
    /// device orders the copies after it with an event.
    #[cfg(feature = "cuda-backend")]
    fn run_cuda(&self, launch: CudaLaunch<'_>) -> Result<(), KernelError> {
        let _ = launch;
        Err(KernelError::UnsupportedBackend {
            kernel: self.name().to_owned(),
            backend: DeviceKind::Cuda.to_string(),
        })
    }
}

/// Name → kernel. Cheap to clone (kernels are shared).
#[derive(Clone, Default)]
pub struct KernelRegistry {
    kernels: BTreeMap<String, Arc<dyn Kernel>>,
}

impl KernelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `kernel` under its name, replacing (and returning) one of the same name.
    pub fn register(&mut self, kernel: Arc<dyn Kernel>) -> Option<Arc<dyn Kernel>> {
        self.kernels.insert(kernel.name().to_owned(), kernel)
    }

    /// The kernel named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Kernel>> {
        self.kernels.get(name).cloned()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kernels.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for KernelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kernels.keys()).finish()
    }
}

/// A two-layer perceptron forward pass: `y = relu(x·W1 + b1)·W2 + b2`.
///
/// Weights are row-major: `W1` is `inputs × hidden`, `W2` is `hidden × outputs`. On the
/// CPU the batch's rows are split across the device's threads (at least
/// [`MlpKernel::MIN_ROWS_PER_TASK`] rows each), each block one GEMM per layer.
#[derive(Debug, Clone)]
pub struct MlpKernel {
    name: String,
    /// Unique per construction (clones share it: same weights), so a device's weight
    /// cache tells two MLPs of the same name apart.
    #[cfg_attr(not(feature = "cuda-backend"), allow(dead_code))]
    id: u64,
    inputs: usize,
    hidden: usize,
    outputs: usize,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl MlpKernel {
    /// The registry name of the built-in MLP.
    pub const NAME: &'static str = "mlp";

    /// Rows below which a block is not split further across threads.
    pub const MIN_ROWS_PER_TASK: usize = 4;

    /// An MLP with the given weights; `None` when a length does not match the sizes.
    pub fn new(
        inputs: usize,
        hidden: usize,
        outputs: usize,
        w1: Vec<f32>,
        b1: Vec<f32>,
        w2: Vec<f32>,
        b2: Vec<f32>,
    ) -> Option<Self> {
        let sizes_ok = w1.len() == inputs.checked_mul(hidden)?
            && b1.len() == hidden
            && w2.len() == hidden.checked_mul(outputs)?
            && b2.len() == outputs;
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        sizes_ok.then(|| MlpKernel {
            name: Self::NAME.to_owned(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            inputs,
            hidden,
            outputs,
            w1,
            b1,
            w2,
            b2,
        })
    }

    /// An MLP with small deterministic pseudo-random weights (a fixed seed), for demos,
    /// tests and benchmarks.
    pub fn seeded(inputs: usize, hidden: usize, outputs: usize, seed: u64) -> Self {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |scale: f32| {
            // xorshift64*: deterministic, no dependency.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32;
            (bits / (1u64 << 24) as f32 - 0.5) * scale
        };
        let s1 = 2.0 / (inputs.max(1) as f32).sqrt();
        let s2 = 2.0 / (hidden.max(1) as f32).sqrt();
        let w1 = (0..inputs * hidden).map(|_| next(s1)).collect();
        let b1 = (0..hidden).map(|_| next(0.2)).collect();
        let w2 = (0..hidden * outputs).map(|_| next(s2)).collect();
        let b2 = (0..outputs).map(|_| next(0.2)).collect();
        Self::new(inputs, hidden, outputs, w1, b1, w2, b2).expect("sizes match by construction")
    }

    /// Renames the kernel (to register several MLPs side by side).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Hidden units.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Floating-point operations for a batch of `rows` items (2 per multiply-add of both
    /// GEMMs; bias and ReLU not counted).
    pub fn flops(&self, rows: usize) -> u64 {
        2 * rows as u64 * (self.inputs * self.hidden + self.hidden * self.outputs) as u64
    }

    /// The forward pass in float64 on the host, as plain loops: the reference the GEMM
    /// path is checked against.
    pub fn reference(&self, input: &[f32], rows: usize) -> Vec<f64> {
        let (inputs, hidden, outputs) = (self.inputs, self.hidden, self.outputs);
        let mut out = vec![0.0f64; rows * outputs];
        let mut h = vec![0.0f64; hidden];
        for r in 0..rows {
            let x = &input[r * inputs..(r + 1) * inputs];
            for (j, hj) in h.iter_mut().enumerate() {
                let dot: f64 = (0..inputs)
                    .map(|i| f64::from(x[i]) * f64::from(self.w1[i * hidden + j]))
                    .sum();
                *hj = (dot + f64::from(self.b1[j])).max(0.0);
            }
            for k in 0..outputs {
                let dot: f64 = (0..hidden)
                    .map(|j| h[j] * f64::from(self.w2[j * outputs + k]))
                    .sum();
                out[r * outputs + k] = dot + f64::from(self.b2[k]);
            }
        }
        out
    }

    /// Forward pass of one block of rows, on the calling thread.
    fn forward_block(&self, input: &[f32], output: &mut [f32]) -> Result<(), KernelError> {
        let rows = input.len() / self.inputs;
        let gemm_failed = |error: vortex_gemm::GemmError| KernelError::Failed {
            kernel: self.name.clone(),
            reason: error.to_string(),
        };
        let mut hidden = vec![0.0f32; rows * self.hidden];
        vortex_gemm::sgemm(
            rows,
            self.inputs,
            self.hidden,
            1.0,
            input,
            &self.w1,
            0.0,
            &mut hidden,
        )
        .map_err(gemm_failed)?;
        for row in hidden.chunks_exact_mut(self.hidden) {
            for (value, bias) in row.iter_mut().zip(&self.b1) {
                *value = (*value + bias).max(0.0);
            }
        }
        vortex_gemm::sgemm(
            rows,
            self.hidden,
            self.outputs,
            1.0,
            &hidden,
            &self.w2,
            0.0,
            output,
        )
        .map_err(gemm_failed)?;
        for row in output.chunks_exact_mut(self.outputs) {
            for (value, bias) in row.iter_mut().zip(&self.b2) {
                *value += bias;
            }
        }
        Ok(())
    }
}

impl Kernel for MlpKernel {
    fn name(&self) -> &str {
        &self.name
    }

    fn input_features(&self) -> usize {
        self.inputs
    }

    fn output_features(&self) -> usize {
        self.outputs
    }

    /// The CPU and, when compiled in, CUDA (cuBLAS GEMMs and the PTX bias/ReLU kernel).
    fn supports(&self, kind: DeviceKind) -> bool {
        kind == DeviceKind::Cpu || (cfg!(feature = "cuda-backend") && kind == DeviceKind::Cuda)
    }

    #[cfg(feature = "cuda-backend")]
    fn run_cuda(&self, launch: CudaLaunch<'_>) -> Result<(), KernelError> {
        let CudaLaunch {
            gpu,
            input,
            rows,
            output,
            weights,
            ..
        } = launch;
        let failed = |error: vortex_cuda::CudaError| KernelError::Failed {
            kernel: self.name.clone(),
            reason: error.to_string(),
        };
        let host = vortex_cuda::MlpWeights {
            inputs: self.inputs,
            hidden: self.hidden,
            outputs: self.outputs,
            w1: &self.w1,
            b1: &self.b1,
            w2: &self.w2,
            b2: &self.b2,
        };
        // Keyed by name and construction id: two MLPs of one name keep their own weights.
        let key = format!("{}#{}", self.name, self.id);
        let mlp = weights.mlp(gpu, &key, host).map_err(failed)?;
        mlp.forward(gpu, input, rows, output).map_err(failed)
    }

    fn run_cpu(&self, launch: CpuLaunch<'_>) -> Result<(), KernelError> {
        let CpuLaunch {
            input,
            rows,
            output,
            threads,
            ..
        } = launch;
        if input.len() != rows * self.inputs || output.len() != rows * self.outputs {
            return Err(KernelError::Shape {
                kernel: self.name.clone(),
                expected: self.inputs,
                actual: input.len() / rows.max(1),
            });
        }
        let tasks = threads.max(1).min(rows / Self::MIN_ROWS_PER_TASK).max(1);
        if tasks == 1 {
            return self.forward_block(input, output);
        }
        let block = rows.div_ceil(tasks);
        input
            .par_chunks(block * self.inputs)
            .zip(output.par_chunks_mut(block * self.outputs))
            .try_for_each(|(x, y)| self.forward_block(x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative_error(got: &[f32], reference: &[f64]) -> f64 {
        let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let max_diff = got
            .iter()
            .zip(reference)
            .fold(0.0f64, |m, (g, r)| m.max((f64::from(*g) - r).abs()));
        max_diff / max_ref
    }

    #[test]
    fn mlp_matches_the_float64_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for (inputs, hidden, outputs, rows, threads) in [
            (7, 5, 3, 1, 1),
            (48, 32, 10, 9, 3),
            (768, 256, 10, 64, 3),
            (100, 64, 1, 13, 2),
        ] {
            let mlp = MlpKernel::seeded(inputs, hidden, outputs, 42);
            let input: Vec<f32> = (0..rows * inputs)
                .map(|i| ((i * 31 % 97) as f32 - 48.0) / 50.0)
                .collect();
            let mut output = vec![f32::NAN; rows * outputs];
            pool.install(|| {
                mlp.run_cpu(CpuLaunch {
                    input: &input,
                    rows,
                    output: &mut output,
                    threads,
                })
            })
            .unwrap();
            let error = relative_error(&output, &mlp.reference(&input, rows));
            assert!(
                error < 1e-5,
                "{inputs}x{hidden}x{outputs}, {rows} rows: {error:e}"
            );
        }
    }

    #[test]
    fn wrong_shapes_are_kernel_errors() {
        let mlp = MlpKernel::seeded(4, 3, 2, 1);
        let mut output = vec![0.0; 2];
        let error = mlp
            .run_cpu(CpuLaunch {
                input: &[0.0; 5],
                rows: 1,
                output: &mut output,
                threads: 1,
            })
            .unwrap_err();
        assert!(matches!(
            error,
            KernelError::Shape {
                expected: 4,
                actual: 5,
                ..
            }
        ));
        assert!(MlpKernel::new(
            2,
            2,
            2,
            vec![0.0; 3],
            vec![0.0; 2],
            vec![0.0; 4],
            vec![0.0; 2]
        )
        .is_none());
    }

    #[test]
    fn registry_maps_names_to_kernels() {
        let mut registry = KernelRegistry::new();
        assert!(registry
            .register(Arc::new(MlpKernel::seeded(4, 3, 2, 1)))
            .is_none());
        let small = MlpKernel::seeded(2, 2, 2, 1).named("small");
        assert!(registry.register(Arc::new(small)).is_none());
        assert_eq!(registry.names().collect::<Vec<_>>(), ["mlp", "small"]);
        assert_eq!(registry.get("small").unwrap().input_features(), 2);
        assert!(registry.get("missing").is_none());
        assert!(registry
            .register(Arc::new(MlpKernel::seeded(8, 3, 2, 1)))
            .is_some());
    }
}
