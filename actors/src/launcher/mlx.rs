//! [`MlxDevice`]: the seam for an Apple MLX backend (cargo feature `mlx`). It has its
//! place in the [`ComputeDevice`](crate::launcher::ComputeDevice) dispatch and reports
//! [`DeviceError::Unsupported`] for every operation: nothing runs on it yet, and nothing
//! presents it as working (a launcher refuses it: no kernel supports the backend).

use vortex_messages::telemetry::DeviceId;

use crate::launcher::error::DeviceError;

/// An MLX device placeholder: every operation is [`DeviceError::Unsupported`].
#[derive(Debug, Clone)]
pub struct MlxDevice {
    index: DeviceId,
    label: String,
}

/// Memory of an MLX device (never handed out: allocating is unsupported).
#[derive(Debug)]
pub struct MlxBuffer {
    _private: (),
}

impl MlxDevice {
    /// The placeholder for device `index`.
    pub fn new(index: DeviceId) -> Self {
        MlxDevice {
            index,
            label: format!("mlx:{index}"),
        }
    }

    /// The device's index.
    pub fn index(&self) -> DeviceId {
        self.index
    }

    /// `mlx:<index>`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The error every operation returns.
    pub fn unsupported(&self, operation: &'static str) -> DeviceError {
        DeviceError::Unsupported {
            device: self.label.clone(),
            operation,
        }
    }
}
