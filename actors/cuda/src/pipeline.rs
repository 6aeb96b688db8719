//! [`Pipeline`]: keeps the GPU fed. A batch is cut into chunks of `chunk_rows` items;
//! each chunk is staged in pinned host memory, copied on the copy stream, computed on the
//! compute stream and copied back on the copy stream, with events ordering the two
//! streams. Two staging sets alternate (double buffering), so the copy of chunk N+1 runs
//! while chunk N computes.
//!
//! Per chunk `i` (stage `s = i % 2`), the host queues, in this order:
//!
//! ```text
//!   copy stream:    [H2D i] ──record uploaded[s]
//!   compute stream:  wait uploaded[s] ── [GEMM, bias+ReLU, GEMM, bias] ──record computed[s]
//!   copy stream:    wait computed[s-1] ── [D2H i-1] ──record downloaded[s-1]
//! ```
//!
//! then waits for `downloaded[s-1]` and reads chunk `i-1`'s output out of its pinned
//! buffer while chunk `i` computes. The upload of chunk `i+1` is queued on the copy
//! stream *before* the download of chunk `i`, which waits for chunk `i`'s compute, so an
//! upload never queues behind a compute it does not need.

use std::time::Duration;

use cudarc::driver::{CudaEvent, CudaSlice, PinnedHostSlice};

use crate::{error::CudaError, gpu::Gpu};

/// What a [`Pipeline::run`] took, from the device's own event timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PipelineTimings {
    /// Host→device plus device→host copy time, all chunks added up.
    pub copy: Duration,
    /// Compute time, all chunks added up.
    pub compute: Duration,
    /// From the first upload's start to the last download's end, on the device.
    pub span: Duration,
    /// Chunks the batch was cut into.
    pub chunks: usize,
}

impl PipelineTimings {
    /// How much of the shorter phase ran hidden under the other one, 0–1: `0` when copies
    /// and compute ran one after the other, `1` when the shorter one ran entirely during
    /// the longer one.
    pub fn overlap(&self) -> f64 {
        let copy = self.copy.as_secs_f64();
        let compute = self.compute.as_secs_f64();
        let shorter = copy.min(compute);
        if shorter <= 0.0 {
            return 0.0;
        }
        ((copy + compute - self.span.as_secs_f64()) / shorter).clamp(0.0, 1.0)
    }
}

/// One staging set: pinned host buffers, device buffers and the events of one chunk.
struct Stage {
    host_in: PinnedHostSlice<f32>,
    host_out: PinnedHostSlice<f32>,
    device_in: CudaSlice<f32>,
    device_out: CudaSlice<f32>,
    upload_start: CudaEvent,
    uploaded: CudaEvent,
    compute_start: CudaEvent,
    computed: CudaEvent,
    download_start: CudaEvent,
    downloaded: CudaEvent,
    /// The chunk it holds: first row and rows.
    rows: usize,
    first_row: usize,
}

/// Double-buffered, two-stream batch execution on one [`Gpu`] for a fixed number of
/// input and output values per item.
pub struct Pipeline {
    gpu: Gpu,
    chunk_rows: usize,
    in_features: usize,
    out_features: usize,
    stages: [Stage; 2],
    begin: CudaEvent,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("chunk_rows", &self.chunk_rows)
            .field("in_features", &self.in_features)
            .field("out_features", &self.out_features)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Staging for chunks of `chunk_rows` items of `in_features` values in and
    /// `out_features` out: two sets of pinned host and device buffers, allocated once.
    pub fn new(
        gpu: &Gpu,
        chunk_rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<Pipeline, CudaError> {
        let chunk_rows = chunk_rows.max(1);
        let values = |features: usize| {
            chunk_rows
                .checked_mul(features.max(1))
                .ok_or_else(|| CudaError::Shape(format!("{chunk_rows}x{features} overflows")))
        };
        let (inputs, outputs) = (values(in_features)?, values(out_features)?);
        let stage = || -> Result<Stage, CudaError> {
            Ok(Stage {
                // Write-combined for the upload side (the host only writes it), cached
                // for the download side (the host reads it).
                host_in: gpu.pinned(inputs, true)?,
                host_out: gpu.pinned(outputs, false)?,
                device_in: gpu.alloc(inputs)?,
                device_out: gpu.alloc(outputs)?,
                upload_start: gpu.timing_event()?,
                uploaded: gpu.timing_event()?,
                compute_start: gpu.timing_event()?,
                computed: gpu.timing_event()?,
                download_start: gpu.timing_event()?,
                downloaded: gpu.timing_event()?,
                rows: 0,
                first_row: 0,
            })
        };
        Ok(Pipeline {
            gpu: gpu.clone(),
            chunk_rows,
            in_features,
            out_features,
            stages: [stage()?, stage()?],
            begin: gpu.timing_event()?,
        })
    }

    /// Items per chunk.
    pub fn chunk_rows(&self) -> usize {
        self.chunk_rows
    }

    /// `(in_features, out_features)` per item.
    pub fn features(&self) -> (usize, usize) {
        (self.in_features, self.out_features)
    }

    /// Runs `rows` items of `input` through `compute`, writing `rows × out_features`
    /// values to `output` (replacing its contents). `compute(gpu, input, rows, output)`
    /// queues the work for one chunk on the compute stream and returns.
    /// An error of `compute` ends the run and is returned as it is (`E` carries the
    /// pipeline's own [`CudaError`]s too).
    pub fn run<F, E>(
        &mut self,
        input: &[f32],
        rows: usize,
        output: &mut Vec<f32>,
        mut compute: F,
    ) -> Result<PipelineTimings, E>
    where
        F: FnMut(&Gpu, &CudaSlice<f32>, usize, &mut CudaSlice<f32>) -> Result<(), E>,
        E: From<CudaError>,
    {
        let (inputs, outputs) = (self.in_features, self.out_features);
        if Some(input.len()) != rows.checked_mul(inputs) {
            return Err(CudaError::Shape(format!(
                "{} input values for {rows} items of {inputs}",
                input.len()
            ))
            .into());
        }
        output.clear();
        output.resize(rows * outputs, 0.0);
        let mut timings = PipelineTimings::default();
        if rows == 0 {
            return Ok(timings);
        }
        let gpu = &self.gpu;
        let (copy, compute_stream) = (gpu.copy_stream(), gpu.compute_stream());
        self.begin
            .record(copy)
            .map_err(CudaError::driver("cuEventRecord"))?;
        let chunks = rows.div_ceil(self.chunk_rows);
        for index in 0..chunks {
            let first_row = index * self.chunk_rows;
            let chunk = self.chunk_rows.min(rows - first_row);
            let stage = &mut self.stages[index % 2];
            stage.first_row = first_row;
            stage.rows = chunk;
            // Waits (on its own event) until this buffer's previous upload finished.
            let staging = stage
                .host_in
                .as_mut_slice()
                .map_err(CudaError::driver("cuEventSynchronize"))?;
            staging[..chunk * inputs]
                .copy_from_slice(&input[first_row * inputs..(first_row + chunk) * inputs]);
            let event = CudaError::driver("cuEventRecord");
            stage.upload_start.record(copy).map_err(event)?;
            copy.memcpy_htod(&stage.host_in, &mut stage.device_in)
                .map_err(CudaError::driver("cuMemcpyHtoDAsync"))?;
            stage
                .uploaded
                .record(copy)
                .map_err(CudaError::driver("cuEventRecord"))?;
            compute_stream
                .wait(&stage.uploaded)
                .map_err(CudaError::driver("cuStreamWaitEvent"))?;
            stage
                .compute_start
                .record(compute_stream)
                .map_err(CudaError::driver("cuEventRecord"))?;
            compute(gpu, &stage.device_in, chunk, &mut stage.device_out)?;
            stage
                .computed
                .record(compute_stream)
                .map_err(CudaError::driver("cuEventRecord"))?;
            if index > 0 {
                let previous = &mut self.stages[(index - 1) % 2];
                download(gpu, previous)?;
                collect(previous, outputs, output, &mut timings)?;
            }
        }
        let last = &mut self.stages[(chunks - 1) % 2];
        download(gpu, last)?;
        collect(last, outputs, output, &mut timings)?;
        timings.span = elapsed(&self.begin, &last.downloaded)?;
        timings.chunks = chunks;
        Ok(timings)
    }
}

/// Queues a stage's download after its compute, on the copy stream.
fn download(gpu: &Gpu, stage: &mut Stage) -> Result<(), CudaError> {
    let copy = gpu.copy_stream();
    copy.wait(&stage.computed)
        .map_err(CudaError::driver("cuStreamWaitEvent"))?;
    stage
        .download_start
        .record(copy)
        .map_err(CudaError::driver("cuEventRecord"))?;
    copy.memcpy_dtoh(&stage.device_out, &mut stage.host_out)
        .map_err(CudaError::driver("cuMemcpyDtoHAsync"))?;
    stage
        .downloaded
        .record(copy)
        .map_err(CudaError::driver("cuEventRecord"))
}

/// Waits for a stage's download, copies its rows into `output`, adds its times.
fn collect(
    stage: &mut Stage,
    outputs: usize,
    output: &mut [f32],
    timings: &mut PipelineTimings,
) -> Result<(), CudaError> {
    stage
        .downloaded
        .synchronize()
        .map_err(CudaError::driver("cuEventSynchronize"))?;
    let values = stage
        .host_out
        .as_slice()
        .map_err(CudaError::driver("cuEventSynchronize"))?;
    let start = stage.first_row * outputs;
    let len = stage.rows * outputs;
    output[start..start + len].copy_from_slice(&values[..len]);
    timings.copy += elapsed(&stage.upload_start, &stage.uploaded)?;
    timings.copy += elapsed(&stage.download_start, &stage.downloaded)?;
    timings.compute += elapsed(&stage.compute_start, &stage.computed)?;
    Ok(())
}

fn elapsed(start: &CudaEvent, end: &CudaEvent) -> Result<Duration, CudaError> {
    let ms = start
        .elapsed_ms(end)
        .map_err(CudaError::driver("cuEventElapsedTime"))?;
    Ok(Duration::from_secs_f64(f64::from(ms.max(0.0)) / 1e3))
}
