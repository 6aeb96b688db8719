//! The CPU preprocessor as a runtime pool: live `Scale` under load without losing or
//! duplicating a batch, `Pause`/`Resume`, back-pressure from a full next stage, typed
//! failures that cost no other batch, and CPU work only on the resource group's threads.

mod support;

use std::{
    collections::{BTreeSet, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::mpsc;
use vortex::actors::preprocessor::{
    now_micros, prepare, FailedBatch, NormalizeImages, Preprocessor, PreprocessorConfig,
    PreprocessorError, PreprocessorHandle, Transform, TransformError,
};
use vortex::messages::pipeline::{BatchKind, PreparedBatch, PreparedLayout, RawBatch};
use vortex::prelude::*;
use vortex::runtime::{buffer_pool::BufferPool, resource_group::ResourceGroup, ResourceError};

const DEADLINE: Duration = Duration::from_secs(30);

/// A small RGB image batch whose bytes depend on its id.
fn image_batch(id: u64, created_at_micros: u64) -> RawBatch {
    let (width, height, items) = (4_u32, 3_u32, 2_u32);
    let length = (width * height * 3 * items) as usize;
    RawBatch {
        id,
        kind: BatchKind::Images {
            width,
            height,
            channels: 3,
        },
        items,
        data: (0..length)
            .map(|index| (id as usize * 7 + index) as u8)
            .collect(),
        created_at_micros,
    }
}

/// The next stage: records every prepared batch's id and hands its buffer back.
struct Collector {
    seen: Arc<Mutex<Vec<PreparedBatch>>>,
    buffers: BufferPool,
}

impl Actor for Collector {
    type Message = PreparedBatch;
    async fn handle(
        &mut self,
        batch: PreparedBatch,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        let mut kept = batch.clone();
        self.buffers.put(std::mem::take(&mut kept.data));
        // Keep the bytes of a few batches to check them; the rest only by id.
        if batch.id < 4 {
            kept.data = batch.data;
        }
        self.seen.lock().unwrap().push(kept);
        Ok(())
    }
}

struct Pipeline {
    rt: Runtime,
    preprocessor: PreprocessorHandle,
    seen: Arc<Mutex<Vec<PreparedBatch>>>,
    buffers: BufferPool,
    group: Arc<ResourceGroup>,
}

/// A runtime with a collector and a preprocessor of `workers` workers on a 2-thread group.
async fn pipeline(
    name: &str,
    workers: u32,
    transform: Arc<dyn Transform>,
    failures: Option<mpsc::Sender<FailedBatch>>,
) -> Pipeline {
    let rt = Runtime::builder().build().unwrap();
    let buffers = BufferPool::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let collector = rt
        .spawn_actor(
            ActorSpec::new(format!("{name}-sink"), {
                let (seen, buffers) = (seen.clone(), buffers.clone());
                move || Collector {
                    seen: seen.clone(),
                    buffers: buffers.clone(),
                }
            })
            .capacity(16),
        )
        .await
        .unwrap();
    let group = Arc::new(ResourceGroup::new(format!("{name}-cpu"), 2, None).unwrap());
    let mut config = PreprocessorConfig::new(name, group.clone(), transform, buffers.clone())
        .workers(workers)
        .capacity(32);
    if let Some(sink) = failures {
        config = config.on_failure(sink);
    }
    let preprocessor = Preprocessor::spawn(&rt, config, collector).await.unwrap();
    Pipeline {
        rt,
        preprocessor,
        seen,
        buffers,
        group,
    }
}

fn ids(seen: &Mutex<Vec<PreparedBatch>>) -> Vec<u64> {
    seen.lock().unwrap().iter().map(|batch| batch.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_two_to_eight_to_one_under_load_every_batch_comes_out_exactly_once() {
    let normalize = Arc::new(NormalizeImages::imagenet());
    let p = pipeline("pp-scale", 2, normalize.clone(), None).await;
    let total = 3_000_u64;
    let producer = {
        let preprocessor = p.preprocessor.clone();
        tokio::spawn(async move {
            for id in 0..total {
                preprocessor
                    .submit(image_batch(id, now_micros()))
                    .await
                    .unwrap();
            }
        })
    };
    let stats = p.preprocessor.stats();
    let scale = |n| p.rt.control("pp-scale", Control::Scale { n });
    support::wait_until("some progress", DEADLINE, || stats.delivered() > 300).await;
    assert_eq!(
        scale(8).await.unwrap(),
        ControlReply::Scaled { from: 2, to: 8 }
    );
    let ControlReply::Status(status) = p.rt.control("pp-scale", Control::Status).await.unwrap()
    else {
        panic!("status")
    };
    assert_eq!((status.kind, status.workers), (ActorKind::Pool, 8));
    support::wait_until("more progress", DEADLINE, || stats.delivered() > 1_500).await;
    assert_eq!(
        scale(1).await.unwrap(),
        ControlReply::Scaled { from: 8, to: 1 }
    );
    producer.await.unwrap();
    support::wait_until("all delivered", DEADLINE, || {
        ids(&p.seen).len() as u64 == total
    })
    .await;

    let mut delivered = ids(&p.seen);
    delivered.sort_unstable();
    assert_eq!(
        delivered,
        (0..total).collect::<Vec<_>>(),
        "every batch exactly once"
    );
    let expected_pool = BufferPool::default();
    for batch in p
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|batch| !batch.data.is_empty())
    {
        let expected = prepare(&*normalize, &image_batch(batch.id, 0), &expected_pool).unwrap();
        assert_eq!(
            (&batch.data, &batch.shape),
            (&expected.data, &expected.shape)
        );
    }
    // The counter moves once `send` returned, just after the next stage got the batch.
    support::wait_until("all counted", DEADLINE, || stats.delivered() == total).await;
    let snapshot = stats.snapshot();
    assert_eq!(
        (snapshot.prepared, snapshot.delivered, snapshot.failed),
        (total, total, 0)
    );
    assert_eq!(snapshot.items, 2 * total);
    assert_eq!(snapshot.bytes_out, 4 * snapshot.bytes_in);
    assert!(p.buffers.stats().hits > 0, "output buffers are reused");
    assert_eq!(p.group.completed_tasks(), total);
    assert_eq!(p.rt.dead_letters().count(), 0);
    assert_eq!(p.rt.shutdown().await.total_undelivered(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_preprocessor_holds_batches_and_resume_delivers_them_with_their_queue_wait() {
    let p = pipeline("pp-pause", 4, Arc::new(NormalizeImages::imagenet()), None).await;
    assert_eq!(
        p.rt.control("pp-pause", Control::Pause).await,
        Ok(ControlReply::Paused)
    );
    // Created one second ago: the queue wait covers at least that second.
    let created = now_micros() - 1_000_000;
    for id in 0..20 {
        p.preprocessor
            .submit(image_batch(id, created))
            .await
            .unwrap();
    }
    let ControlReply::Status(status) = p.rt.control("pp-pause", Control::Status).await.unwrap()
    else {
        panic!("status")
    };
    assert_eq!(
        (status.state, status.mailbox_depth),
        (ActorState::Paused, 20)
    );
    assert_eq!(p.preprocessor.stats().snapshot().prepared, 0);

    assert_eq!(
        p.rt.control("pp-pause", Control::Resume).await,
        Ok(ControlReply::Resumed)
    );
    support::wait_until("drained", DEADLINE, || ids(&p.seen).len() == 20).await;
    support::wait_until("counted", DEADLINE, || {
        p.preprocessor.stats().delivered() == 20
    })
    .await;
    let snapshot = p.preprocessor.stats().snapshot();
    assert_eq!(
        (snapshot.prepared, snapshot.delivered, snapshot.items),
        (20, 20, 40)
    );
    assert_eq!(snapshot.bytes_in, 20 * 72);
    assert!(snapshot.queue_wait_max_micros >= 1_000_000, "{snapshot:?}");
    assert!(snapshot.mean_queue_wait() >= Duration::from_secs(1));
    p.rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_next_stage_holds_the_pool_and_its_producers() {
    let rt = Runtime::builder().build().unwrap();
    let group = Arc::new(ResourceGroup::new("pp-bp-cpu", 1, None).unwrap());
    let (next, mut prepared) = mpsc::channel::<PreparedBatch>(1);
    let config = PreprocessorConfig::new(
        "pp-backpressure",
        group,
        Arc::new(NormalizeImages::imagenet()),
        BufferPool::default(),
    )
    .workers(2)
    .capacity(4);
    let preprocessor = Preprocessor::spawn(&rt, config, next).await.unwrap();
    // Nobody reads the next stage: the pool fills, then producers are refused.
    let mut accepted = 0_u64;
    support::wait_until("mailbox full", DEADLINE, || {
        match preprocessor
            .addr()
            .try_tell(image_batch(accepted, now_micros()))
        {
            Ok(()) => {
                accepted += 1;
                false
            }
            Err(refused) => refused.is_full(),
        }
    })
    .await;
    // One batch in the channel, one held per worker, the rest queued: bounded.
    assert!(accepted <= 1 + 2 + 4, "accepted {accepted}");
    assert!(preprocessor.stats().delivered() <= 1);
    for id in 0..accepted {
        let batch = tokio::time::timeout(DEADLINE, prepared.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(batch.id < accepted, "batch {id}: got {}", batch.id);
    }
    // The counter moves once `send` returned, just after the receiver got the batch.
    support::wait_until("all counted", DEADLINE, || {
        preprocessor.stats().delivered() == accepted
    })
    .await;
    rt.shutdown().await;
}

/// Normalises images, except that it panics on ids ending in 3.
struct PanicsOnThree(NormalizeImages);

impl Transform for PanicsOnThree {
    fn name(&self) -> &str {
        "panics-on-three"
    }
    fn output_len(&self, input: &RawBatch) -> Result<usize, TransformError> {
        self.0.output_len(input)
    }
    fn apply(
        &self,
        input: &RawBatch,
        output: &mut Vec<u8>,
    ) -> Result<PreparedLayout, TransformError> {
        assert!(input.id % 10 != 3, "poison batch {}", input.id);
        self.0.apply(input, output)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_batches_go_to_the_failure_sink_typed_and_cost_no_other_batch() {
    support::quiet_panics("poison batch");
    let (failures, mut failed) = mpsc::channel(1_000);
    let transform = Arc::new(PanicsOnThree(NormalizeImages::imagenet()));
    let p = pipeline("pp-failures", 3, transform, Some(failures)).await;
    let total = 300_u64;
    for id in 0..total {
        let mut batch = image_batch(id, now_micros());
        if id % 10 == 7 {
            batch.data.truncate(5); // malformed: the shape says 72 bytes
        }
        p.preprocessor.submit(batch).await.unwrap();
    }
    let good: BTreeSet<u64> = (0..total)
        .filter(|id| id % 10 != 3 && id % 10 != 7)
        .collect();
    support::wait_until("good batches delivered", DEADLINE, || {
        ids(&p.seen).len() == good.len()
    })
    .await;
    let mut delivered = ids(&p.seen);
    delivered.sort_unstable();
    assert_eq!(delivered, good.iter().copied().collect::<Vec<_>>());

    let mut malformed = BTreeSet::new();
    let mut panicked = BTreeSet::new();
    for _ in 0..total - good.len() as u64 {
        let failure = tokio::time::timeout(DEADLINE, failed.recv())
            .await
            .unwrap()
            .unwrap();
        match (&failure.error, &failure.batch) {
            (
                PreprocessorError::Transform(TransformError::DataLength {
                    expected: 72,
                    actual: 5,
                }),
                Some(batch),
            ) => {
                assert_eq!(batch.id, failure.id);
                malformed.insert(failure.id);
            }
            (PreprocessorError::Resource(ResourceError::TaskPanicked { message, .. }), None) => {
                assert_eq!(message, &format!("poison batch {}", failure.id));
                panicked.insert(failure.id);
            }
            other => panic!("unexpected failure {other:?}"),
        }
    }
    assert_eq!(malformed, (0..total).filter(|id| id % 10 == 7).collect());
    assert_eq!(panicked, (0..total).filter(|id| id % 10 == 3).collect());
    assert_eq!(p.preprocessor.stats().failed(), 60);
    assert_eq!(p.group.panicked_tasks(), 30);
    // Failures are data: no worker failed, restarted or dead-lettered anything.
    let status = p.rt.status("pp-failures").unwrap();
    assert_eq!(
        (status.restarts, status.dead_letters, status.handled),
        (0, 0, total)
    );
    assert_eq!(p.rt.dead_letters().count(), 0);
    p.rt.shutdown().await;
}

/// Records the name of every thread it runs on.
struct ThreadRecorder(Mutex<HashSet<String>>, NormalizeImages);

impl Transform for ThreadRecorder {
    fn name(&self) -> &str {
        "thread-recorder"
    }
    fn output_len(&self, input: &RawBatch) -> Result<usize, TransformError> {
        self.1.output_len(input)
    }
    fn apply(
        &self,
        input: &RawBatch,
        output: &mut Vec<u8>,
    ) -> Result<PreparedLayout, TransformError> {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        self.0.lock().unwrap().insert(name);
        self.1.apply(input, output)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_run_on_the_resource_group_never_on_tokio_workers() {
    let recorder = Arc::new(ThreadRecorder(
        Mutex::default(),
        NormalizeImages::imagenet(),
    ));
    let p = pipeline("pp-threads", 4, recorder.clone(), None).await;
    for id in 0..200 {
        p.preprocessor
            .submit(image_batch(id, now_micros()))
            .await
            .unwrap();
    }
    support::wait_until("delivered", DEADLINE, || ids(&p.seen).len() == 200).await;
    let threads = recorder.0.lock().unwrap().clone();
    let allowed: HashSet<String> = ["pp-threads-cpu-0", "pp-threads-cpu-1"]
        .map(String::from)
        .into();
    assert!(
        !threads.is_empty() && threads.is_subset(&allowed),
        "{threads:?}"
    );
    p.rt.shutdown().await;
}
