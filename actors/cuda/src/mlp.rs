//! The two-layer perceptron on the GPU: weights uploaded once ([`DeviceMlp`]), a forward
//! pass of cuBLAS GEMMs and the PTX bias/activation kernel on the compute stream.

use cudarc::driver::CudaSlice;

use crate::{error::CudaError, gpu::Gpu};

/// Host-side MLP weights, row-major: `w1` is `inputs × hidden`, `w2` is `hidden × outputs`.
#[derive(Debug, Clone, Copy)]
pub struct MlpWeights<'a> {
    /// Values per input item.
    pub inputs: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Values per output item.
    pub outputs: usize,
    /// First-layer weights.
    pub w1: &'a [f32],
    /// First-layer bias.
    pub b1: &'a [f32],
    /// Second-layer weights.
    pub w2: &'a [f32],
    /// Second-layer bias.
    pub b2: &'a [f32],
}

/// MLP weights on a device, plus the hidden-activation scratch the forward pass reuses.
pub struct DeviceMlp {
    inputs: usize,
    hidden: usize,
    outputs: usize,
    w1: CudaSlice<f32>,
    b1: CudaSlice<f32>,
    w2: CudaSlice<f32>,
    b2: CudaSlice<f32>,
    scratch: Option<CudaSlice<f32>>,
}

impl std::fmt::Debug for DeviceMlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMlp")
            .field("inputs", &self.inputs)
            .field("hidden", &self.hidden)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl DeviceMlp {
    /// Uploads `weights` to `gpu` (checked against their sizes first).
    pub fn upload(gpu: &Gpu, weights: MlpWeights<'_>) -> Result<DeviceMlp, CudaError> {
        let MlpWeights {
            inputs,
            hidden,
            outputs,
            w1,
            b1,
            w2,
            b2,
        } = weights;
        let sizes_ok = Some(w1.len()) == inputs.checked_mul(hidden)
            && b1.len() == hidden
            && Some(w2.len()) == hidden.checked_mul(outputs)
            && b2.len() == outputs;
        if !sizes_ok {
            return Err(CudaError::Shape(format!(
                "MLP {inputs}x{hidden}x{outputs}: weight lengths {}, {}, {}, {} do not match",
                w1.len(),
                b1.len(),
                w2.len(),
                b2.len()
            )));
        }
        Ok(DeviceMlp {
            inputs,
            hidden,
            outputs,
            w1: gpu.upload(w1)?,
            b1: gpu.upload(b1)?,
            w2: gpu.upload(w2)?,
            b2: gpu.upload(b2)?,
            scratch: None,
        })
    }

    /// `(inputs, hidden, outputs)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.inputs, self.hidden, self.outputs)
    }

    /// Queues `output = relu(input·W1 + b1)·W2 + b2` for `rows` items on the compute
    /// stream (returns before it ran; order after it with an event or a synchronise).
    pub fn forward(
        &mut self,
        gpu: &Gpu,
        input: &CudaSlice<f32>,
        rows: usize,
        output: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        let needed = rows
            .checked_mul(self.hidden)
            .ok_or_else(|| CudaError::Shape(format!("{rows} rows overflow")))?;
        let scratch = match self.scratch.take() {
            Some(scratch) if scratch.len() >= needed => scratch,
            _ => gpu.alloc(needed)?,
        };
        let scratch = self.scratch.insert(scratch);
        gpu.sgemm(rows, self.inputs, self.hidden, input, &self.w1, scratch)?;
        gpu.bias_act(scratch, &self.b1, rows, self.hidden, true)?;
        gpu.sgemm(rows, self.hidden, self.outputs, scratch, &self.w2, output)?;
        gpu.bias_act(output, &self.b2, rows, self.outputs, false)
    }
}
