//! Picking the least-loaded of several resource groups, and a preprocessor that declares
//! more than one CPU group running each batch on the least-loaded one.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;
use vortex::actors::preprocessor::{NormalizeImages, Preprocessor, PreprocessorConfig};
use vortex::messages::pipeline::{BatchKind, RawBatch};
use vortex::runtime::{
    buffer_pool::BufferPool,
    resource_group::{least_loaded, ResourceGroup, ResourceGroups},
    ResourceError, Runtime,
};

/// Occupies `group`'s only thread until the returned sender is dropped or sent to.
fn block(group: &ResourceGroup) -> std::sync::mpsc::Sender<()> {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    group.spawn(move || {
        let _ = wait.recv();
    });
    release
}

#[test]
fn the_group_with_the_fewest_active_tasks_is_picked_ties_go_to_the_first() {
    let mut groups = ResourceGroups::new();
    let busy = groups.create("busy", 1, None).unwrap();
    let idle = groups.create("idle", 1, None).unwrap();
    assert_eq!(least_loaded(&[]).map(|g| g.name().to_owned()), None);
    let both = [Arc::clone(&busy), Arc::clone(&idle)];
    assert_eq!(
        least_loaded(&both).unwrap().name(),
        "busy",
        "a tie: the first"
    );
    let release = block(&busy);
    assert_eq!(busy.active_tasks(), 1);
    assert_eq!(least_loaded(&both).unwrap().name(), "idle");
    assert_eq!(groups.best_of(&["busy", "idle"]).unwrap().name(), "idle");
    assert!(matches!(
        groups.best_of(&["busy", "nope"]),
        Err(ResourceError::UnknownGroup { name }) if name == "nope"
    ));
    drop(release);
    assert!(busy.wait_idle(Duration::from_secs(10)));
}

fn image(id: u64) -> RawBatch {
    RawBatch {
        id,
        kind: BatchKind::Images {
            width: 2,
            height: 2,
            channels: 3,
        },
        items: 1,
        data: vec![7; 12],
        created_at_micros: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preprocessor_on_two_groups_runs_batches_on_the_idle_one() {
    let rt = Runtime::builder().build().unwrap();
    let busy = Arc::new(ResourceGroup::new("pp-busy", 1, None).unwrap());
    let idle = Arc::new(ResourceGroup::new("pp-idle", 1, None).unwrap());
    let release = block(&busy);
    let (prepared, mut out) = mpsc::channel(64);
    let config = PreprocessorConfig::new(
        "pp-two-groups",
        Arc::clone(&busy),
        Arc::new(NormalizeImages::imagenet()),
        BufferPool::default(),
    )
    .also_on(Arc::clone(&idle))
    .workers(1);
    let preprocessor = Preprocessor::spawn(&rt, config, prepared).await.unwrap();
    for id in 0..10 {
        preprocessor.submit(image(id)).await.unwrap();
    }
    for _ in 0..10 {
        tokio::time::timeout(Duration::from_secs(10), out.recv())
            .await
            .expect("prepared in time")
            .expect("open");
    }
    assert_eq!(idle.completed_tasks(), 10);
    assert_eq!(busy.completed_tasks(), 0, "the busy group ran none of them");
    drop(release);
    rt.shutdown().await;
}
