//! The MLX seam (feature `mlx`): the device variant exists in the dispatch and reports
//! every operation unsupported; no launcher accepts it.
#![cfg(feature = "mlx")]

use std::sync::Arc;

use vortex_actors::launcher::{
    ComputeDevice, DeviceError, DeviceKind, Launcher, LauncherConfig, LauncherError, MlpKernel,
    MlxDevice,
};
use vortex_messages::pipeline::{DType, PreparedBatch};
use vortex_runtime::Runtime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mlx_operation_is_unsupported() {
    let device = ComputeDevice::Mlx(MlxDevice::new(0));
    assert_eq!((device.kind(), device.label()), (DeviceKind::Mlx, "mlx:0"));
    let error = device.allocate(4).unwrap_err();
    assert!(
        matches!(
            error,
            DeviceError::Unsupported {
                operation: "allocate",
                ..
            }
        ),
        "{error}"
    );
    assert!(matches!(
        device.synchronize(),
        Err(DeviceError::Unsupported { .. })
    ));
    assert_eq!((device.memory_total(), device.utilisation()), (None, None));
    let mlp = Arc::new(MlpKernel::seeded(2, 2, 2, 1));
    let batch = PreparedBatch {
        id: 1,
        items: 1,
        dtype: DType::F32,
        shape: vec![1, 2],
        data: vec![0; 8],
        created_at_micros: 0,
    };
    let kernel = Arc::clone(&mlp);
    let outcome = device
        .run(move |device| device.execute_batch(&*kernel, &batch, Vec::new()).map(drop))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Err(DeviceError::Unsupported { .. })),
        "{outcome:?}"
    );

    let rt = Runtime::builder().build().unwrap();
    let (sink, _finished) = tokio::sync::mpsc::channel(1);
    let refused =
        Launcher::spawn(&rt, LauncherConfig::new("mlx-launcher", device, mlp), sink).await;
    assert!(
        matches!(refused, Err(LauncherError::KernelUnsupported { .. })),
        "{refused:?}"
    );
    rt.shutdown().await;
}
