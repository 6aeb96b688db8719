//! [`Gpu`]: one CUDA device — its context, a compute stream and a copy stream, a cuBLAS
//! handle bound to the compute stream, and the bias/activation kernel loaded from the PTX
//! text shipped in this crate.

use std::sync::Arc;

use cudarc::{
    cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig},
    driver::{
        sys::CUevent_flags, CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream,
        LaunchConfig, PinnedHostSlice, PushKernelArg,
    },
    nvrtc::Ptx,
};

use crate::{availability, error::CudaError};

/// The bias + activation kernel, PTX text generated from `bias_act.ll` (see its header).
pub const BIAS_ACT_PTX: &str = include_str!("bias_act.ptx");

/// What the driver says about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// The CUDA ordinal.
    pub ordinal: usize,
    /// The marketing name (`NVIDIA H200`).
    pub name: String,
    /// The UUID in NVML's spelling (`GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), so NVML
    /// can look the same device up.
    pub uuid: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Device memory in total, bytes.
    pub memory_total: u64,
}

/// One CUDA device, ready to copy and compute. Cheap to clone (a shared handle).
///
/// Work is ordered on two streams: copies go on [`copy_stream`](Gpu::copy_stream),
/// GEMMs and kernels on [`compute_stream`](Gpu::compute_stream); whoever mixes them orders
/// them with events (see [`Pipeline`](crate::Pipeline)).
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<GpuInner>,
}

struct GpuInner {
    info: GpuInfo,
    ctx: Arc<CudaContext>,
    compute: Arc<CudaStream>,
    copy: Arc<CudaStream>,
    blas: CudaBlas,
    bias_act: CudaFunction,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

impl Gpu {
    /// Opens device `ordinal`: checks that the driver and cuBLAS libraries load (cudarc
    /// panics without them, so this looks first), creates the context, both streams, the
    /// cuBLAS handle, and loads the bias/activation PTX.
    pub fn open(ordinal: usize) -> Result<Gpu, CudaError> {
        availability::guarded("open device", || Self::open_checked(ordinal))?
    }

    fn open_checked(ordinal: usize) -> Result<Gpu, CudaError> {
        let count = availability::device_count()?;
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        if !availability::cublas_present() {
            return Err(CudaError::CublasMissing {
                major: availability::CUDA_MAJOR,
            });
        }
        let ctx = CudaContext::new(ordinal).map_err(CudaError::driver("cuCtxCreate"))?;
        let compute = ctx
            .new_stream()
            .map_err(CudaError::driver("cuStreamCreate"))?;
        let copy = ctx
            .new_stream()
            .map_err(CudaError::driver("cuStreamCreate"))?;
        let blas =
            CudaBlas::new(Arc::clone(&compute)).map_err(CudaError::cublas("cublasCreate"))?;
        let module = ctx
            .load_module(Ptx::from_src(BIAS_ACT_PTX))
            .map_err(CudaError::driver("cuModuleLoadData"))?;
        let bias_act = module
            .load_function("bias_act")
            .map_err(CudaError::driver("cuModuleGetFunction"))?;
        let info = GpuInfo {
            ordinal,
            name: ctx.name().map_err(CudaError::driver("cuDeviceGetName"))?,
            uuid: nvml_uuid(
                &ctx.uuid()
                    .map_err(CudaError::driver("cuDeviceGetUuid"))?
                    .bytes,
            ),
            compute_capability: ctx
                .compute_capability()
                .map_err(CudaError::driver("cuDeviceGetAttribute"))?,
            memory_total: ctx
                .total_mem()
                .map_err(CudaError::driver("cuDeviceTotalMem"))? as u64,
        };
        Ok(Gpu {
            inner: Arc::new(GpuInner {
                info,
                ctx,
                compute,
                copy,
                blas,
                bias_act,
            }),
        })
    }

    /// What the driver says about the device.
    pub fn info(&self) -> &GpuInfo {
        &self.inner.info
    }

    /// The CUDA context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// The stream GEMMs and kernels run on.
    pub fn compute_stream(&self) -> &Arc<CudaStream> {
        &self.inner.compute
    }

    /// The stream host↔device copies run on.
    pub fn copy_stream(&self) -> &Arc<CudaStream> {
        &self.inner.copy
    }

    /// Free and total device memory, bytes, as the driver reports them now.
    pub fn memory(&self) -> Result<(u64, u64), CudaError> {
        let (free, total) = self
            .inner
            .ctx
            .mem_get_info()
            .map_err(CudaError::driver("cuMemGetInfo"))?;
        Ok((free as u64, total as u64))
    }

    /// `len` zeroed f32 values of device memory (allocated on the compute stream).
    pub fn alloc(&self, len: usize) -> Result<CudaSlice<f32>, CudaError> {
        self.inner
            .compute
            .alloc_zeros::<f32>(len.max(1))
            .map_err(CudaError::driver("cuMemAlloc"))
    }

    /// Copies `host` into a new device buffer and waits for the copy (for weights and
    /// one-off uploads; batches go through a [`Pipeline`](crate::Pipeline)).
    pub fn upload(&self, host: &[f32]) -> Result<CudaSlice<f32>, CudaError> {
        let mut device = self.alloc(host.len())?;
        let copy = &self.inner.copy;
        copy.memcpy_htod(host, &mut device)
            .map_err(CudaError::driver("cuMemcpyHtoD"))?;
        copy.synchronize()
            .map_err(CudaError::driver("cuStreamSynchronize"))?;
        Ok(device)
    }

    /// Copies `device` to the host and waits (the synchronous path; tests and probes).
    pub fn download(&self, device: &CudaSlice<f32>, host: &mut Vec<f32>) -> Result<(), CudaError> {
        host.clear();
        host.resize(device.len(), 0.0);
        let copy = &self.inner.copy;
        copy.memcpy_dtoh(device, host.as_mut_slice())
            .map_err(CudaError::driver("cuMemcpyDtoH"))?;
        copy.synchronize()
            .map_err(CudaError::driver("cuStreamSynchronize"))
    }

    /// `len` f32 values of pinned (page-locked) host memory, zeroed. Copies from pinned
    /// memory are asynchronous; copies from plain slices make cudarc synchronise.
    pub fn pinned(
        &self,
        len: usize,
        write_combined: bool,
    ) -> Result<PinnedHostSlice<f32>, CudaError> {
        let flags = if write_combined {
            cudarc::driver::sys::CU_MEMHOSTALLOC_WRITECOMBINED
        } else {
            0
        };
        // SAFETY: `alloc_pinned_with_flags` is unsafe only because the memory is
        // uninitialised; it is zeroed below before anyone reads it.
        #[allow(unsafe_code)]
        let mut slice = unsafe {
            self.inner
                .ctx
                .alloc_pinned_with_flags::<f32>(len.max(1), flags)
        }
        .map_err(CudaError::driver("cuMemHostAlloc"))?;
        slice
            .as_mut_slice()
            .map_err(CudaError::driver("cuEventSynchronize"))?
            .fill(0.0);
        Ok(slice)
    }

    /// An event that records timing (for the copy/compute timeline).
    pub fn timing_event(&self) -> Result<CudaEvent, CudaError> {
        self.inner
            .ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(CudaError::driver("cuEventCreate"))
    }

    /// Row-major `C (m×n) ← A (m×k) · B (k×n)` through cuBLAS on the compute stream.
    ///
    /// cuBLAS is column-major: a row-major `X` is a column-major `Xᵀ`, so this computes
    /// `Cᵀ = Bᵀ · Aᵀ`, i.e. calls GEMM with the operands swapped and no transposes.
    pub fn sgemm(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        c: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        check_len("a", m, k, a.len())?;
        check_len("b", k, n, b.len())?;
        check_len("c", m, n, c.len())?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let dim = |value: usize| {
            i32::try_from(value)
                .map_err(|_| CudaError::Shape(format!("dimension {value} exceeds i32")))
        };
        let config = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: dim(n)?,
            n: dim(m)?,
            k: dim(k)?,
            alpha: 1.0f32,
            lda: dim(n)?,
            ldb: dim(k.max(1))?,
            beta: 0.0f32,
            ldc: dim(n)?,
        };
        // SAFETY: every operand was checked above to hold at least the elements the
        // shapes address (`a` m×k, `b` k×n, `c` m×n, leading dimensions equal to the row
        // lengths), so cuBLAS reads and writes only inside the three allocations; the
        // handle is bound to the compute stream, which orders it after earlier work.
        #[allow(unsafe_code)]
        unsafe { self.inner.blas.gemm(config, b, a, c) }.map_err(CudaError::cublas("cublasSgemm"))
    }

    /// `y[r][c] += bias[c]` for `rows × cols` row-major `y`, then ReLU when `relu`, on the
    /// compute stream (the PTX kernel).
    pub fn bias_act(
        &self,
        y: &mut CudaSlice<f32>,
        bias: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        relu: bool,
    ) -> Result<(), CudaError> {
        check_len("y", rows, cols, y.len())?;
        if bias.len() < cols {
            return Err(CudaError::Shape(format!(
                "bias holds {} values, {cols} columns need one each",
                bias.len()
            )));
        }
        let total = rows
            .checked_mul(cols)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| CudaError::Shape(format!("{rows}x{cols} exceeds u32 elements")))?;
        if total == 0 {
            return Ok(());
        }
        let cols = u32::try_from(cols).map_err(|_| CudaError::Shape("cols exceeds u32".into()))?;
        let relu = u32::from(relu);
        let mut launch = self.inner.compute.launch_builder(&self.inner.bias_act);
        launch.arg(y).arg(bias).arg(&total).arg(&cols).arg(&relu);
        // SAFETY: the kernel's signature is (f32*, const f32*, u32 n, u32 cols, u32 relu),
        // matching the five arguments pushed above in order; `y` holds `n` = rows·cols
        // values and `bias` at least `cols` (both checked), and the kernel touches only
        // indices below `n` (`y`) and below `cols` (`bias`).
        #[allow(unsafe_code)]
        unsafe { launch.launch(LaunchConfig::for_num_elems(total)) }
            .map(drop)
            .map_err(CudaError::driver("cuLaunchKernel"))
    }

    /// Waits for everything queued on both streams.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.inner
            .compute
            .synchronize()
            .and_then(|()| self.inner.copy.synchronize())
            .map_err(CudaError::driver("cuStreamSynchronize"))
    }
}

fn check_len(
    operand: &'static str,
    rows: usize,
    cols: usize,
    actual: usize,
) -> Result<(), CudaError> {
    let needed = rows
        .checked_mul(cols)
        .ok_or_else(|| CudaError::Shape(format!("{operand}: {rows}x{cols} overflows")))?;
    if actual < needed {
        return Err(CudaError::Shape(format!(
            "{operand} holds {actual} values, {rows}x{cols} needs {needed}"
        )));
    }
    Ok(())
}

/// A CUDA UUID in NVML's spelling: `GPU-` and 32 hex digits grouped 8-4-4-4-12.
pub fn nvml_uuid(bytes: &[std::ffi::c_char; 16]) -> String {
    let hex: Vec<String> = bytes.iter().map(|&b| format!("{:02x}", b as u8)).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    )
}
