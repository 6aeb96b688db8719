//! Is CUDA here? The checks cudarc needs before anything else: with dynamic loading, a
//! call into a library that is not installed panics, so every entry point looks first.

use cudarc::driver::CudaContext;

use crate::error::CudaError;

/// The CUDA major version this build's bindings target: cudarc looks for
/// `libcublas.so.<major>` first.
pub const CUDA_MAJOR: &str = "13";

/// Whether the CUDA driver library (`libcuda.so`) loads.
pub fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on the candidate library names and
    // closes what it opened; it calls no CUDA function. It is `unsafe` because loading a
    // library runs its initialisers, which is what loading the driver means.
    #[allow(unsafe_code)]
    unsafe {
        cudarc::driver::sys::is_culib_present()
    }
}

/// Whether the cuBLAS library loads.
pub fn cublas_present() -> bool {
    // SAFETY: as for `driver_present`: a `dlopen` probe of cuBLAS's library names.
    #[allow(unsafe_code)]
    unsafe {
        cudarc::cublas::sys::is_culib_present()
    }
}

/// Devices the driver reports: [`CudaError::DriverMissing`] without the library, the
/// driver's error when it cannot initialise (no device node, no kernel module).
pub fn device_count() -> Result<usize, CudaError> {
    if !driver_present() {
        return Err(CudaError::DriverMissing);
    }
    let count = guarded("cuInit", CudaContext::device_count)?
        .map_err(CudaError::driver("cuDeviceGetCount"))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Runs `call`, turning a panic into [`CudaError::Driver`]. cudarc panics when a library
/// lacks a symbol its bindings expect (a driver older than the pinned CUDA version): that
/// means "no usable CUDA device", not a crash.
pub(crate) fn guarded<T>(call: &'static str, f: impl FnOnce() -> T) -> Result<T, CudaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panicked".to_owned());
        CudaError::Driver {
            call,
            reason: format!("cudarc panicked (driver older than CUDA {CUDA_MAJOR}?): {reason}"),
        }
    })
}
