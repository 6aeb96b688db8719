//! A pool's `Status` carries its worker's `describe` detail.

use vortex::prelude::*;

struct Described;

impl Actor for Described {
    type Message = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
    fn describe(&self) -> Option<String> {
        Some("shared state: 7 widgets".into())
    }
}

#[tokio::test]
async fn a_pool_status_carries_the_worker_describe_detail() {
    let rt = Runtime::builder().build().unwrap();
    rt.spawn_pool("described", 3, || Described).await.unwrap();
    let ControlReply::Status(status) = rt.control("described", Control::Status).await.unwrap()
    else {
        panic!("a status reply")
    };
    assert_eq!(status.kind, ActorKind::Pool);
    assert_eq!(status.workers, 3);
    assert_eq!(status.detail, "shared state: 7 widgets");
    rt.shutdown().await;
}
