//! Registry errors, isolation between runtimes, typed lookup, shutdown reports, drop.

use std::time::Duration;

use vortex::prelude::*;

struct Quiet;

impl Actor for Quiet {
    type Message = u32;
    async fn handle(&mut self, _: u32, _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
}

struct Other;

impl Actor for Other {
    type Message = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
}

#[tokio::test]
async fn unknown_and_duplicate_names_are_typed_errors() {
    let rt = Runtime::builder().build().unwrap();
    assert_eq!(
        rt.control("ghost", Control::Status).await,
        Err(ControlError::UnknownActor("ghost".into()))
    );
    rt.spawn("quiet", || Quiet).await.unwrap();
    assert_eq!(
        rt.spawn("quiet", || Quiet).await.unwrap_err(),
        RuntimeError::DuplicateName("quiet".into())
    );
    assert!(matches!(
        rt.spawn("bad name!", || Quiet).await,
        Err(RuntimeError::InvalidName(_))
    ));
    assert!(matches!(
        rt.lookup::<Other>("quiet"),
        Err(RuntimeError::WrongType { .. })
    ));
    assert!(matches!(
        rt.lookup::<Quiet>("nobody"),
        Err(RuntimeError::UnknownActor(_))
    ));
    // A tree whose names clash registers nothing.
    let clash = SupervisorSpec::new("tree", Strategy::OneForOne)
        .child(ActorSpec::new("fresh", || Quiet))
        .child(ActorSpec::new("fresh", || Quiet));
    assert_eq!(
        rt.start_supervisor(clash).await.unwrap_err(),
        RuntimeError::DuplicateName("fresh".into())
    );
    assert!(rt.lookup::<Quiet>("fresh").is_err());
    let names: Vec<_> = rt
        .actors()
        .into_iter()
        .map(|info| (info.name, info.kind))
        .collect();
    assert_eq!(names, vec![("quiet".to_string(), ActorKind::Actor)]);
    rt.shutdown().await;
}

#[tokio::test]
async fn two_runtimes_do_not_see_each_others_names() {
    let first = Runtime::builder().build().unwrap();
    let second = Runtime::builder().build().unwrap();
    first.spawn("shared-name", || Quiet).await.unwrap();
    second.spawn("shared-name", || Quiet).await.unwrap();
    first.spawn("only-first", || Quiet).await.unwrap();
    assert!(second.lookup::<Quiet>("only-first").is_err());
    assert!(matches!(
        second.control("only-first", Control::Status).await,
        Err(ControlError::UnknownActor(_))
    ));
    first.control("shared-name", Control::Pause).await.unwrap();
    let ControlReply::Status(status) = second
        .control("shared-name", Control::Status)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        status.state,
        ActorState::Running,
        "pausing one runtime's actor leaves the other"
    );
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn shutdown_reports_pending_messages_and_dead_letters_them() {
    let rt = Runtime::builder().build().unwrap();
    let quiet = rt.spawn("pending", || Quiet).await.unwrap();
    rt.control("pending", Control::Pause).await.unwrap();
    for n in 0..10 {
        quiet.tell(n).await.unwrap();
    }
    let report = rt.shutdown().await;
    assert_eq!(report.undelivered.get("pending"), Some(&10));
    assert_eq!(report.total_undelivered(), 10);
    assert!(
        matches!(quiet.tell(1).await, Err(SendError(1))),
        "intake is stopped"
    );
    let letters = rt.dead_letters().drain();
    assert_eq!(letters.len(), 10);
    let values: Vec<u32> = letters
        .into_iter()
        .filter_map(|letter| letter.downcast::<u32>())
        .collect();
    assert_eq!(
        values,
        (0..10).collect::<Vec<_>>(),
        "undelivered messages come back in order"
    );
    assert_eq!(
        rt.shutdown().await,
        ShutdownReport::default(),
        "shutdown is idempotent"
    );
    assert!(matches!(
        rt.spawn("late", || Quiet).await,
        Err(RuntimeError::ShutDown)
    ));
}

#[test]
fn dropping_a_runtime_never_hangs() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        let quiet = rt.block_on(rt.spawn("q", || Quiet)).unwrap();
        rt.block_on(rt.control("q", Control::Pause)).unwrap();
        for n in 0..100 {
            quiet.try_tell(n).unwrap();
        }
        drop(rt);
        assert!(quiet.is_closed());
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("dropping the runtime must not hang");
}

#[test]
fn a_runtime_without_tokio_creates_its_own() {
    let rt = Runtime::new().unwrap();
    let quiet = rt.block_on(rt.spawn("own", || Quiet)).unwrap();
    rt.block_on(quiet.tell(1)).unwrap();
    let report = rt.block_on(rt.shutdown());
    assert!(report.total_undelivered() <= 1);
}

/// The root keeps its top-level children in a table that a stop empties again: thousands
/// of spawn + stop cycles leave nothing listed, every name reusable, and a runtime that
/// still spawns and shuts down cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_and_stop_churn_leaves_nothing_behind() {
    let rt = Runtime::builder().build().unwrap();
    for round in 0..2_000 {
        let name = format!("churn-{}", round % 7);
        let addr = rt.spawn(name.clone(), || Quiet).await.unwrap();
        addr.tell(round).await.unwrap();
        assert_eq!(
            rt.control(&name, Control::Stop).await,
            Ok(ControlReply::Stopping)
        );
        let wait = tokio::time::timeout(Duration::from_secs(10), async {
            while rt.status(&name).is_ok() {
                tokio::task::yield_now().await;
            }
        });
        assert!(wait.await.is_ok(), "`{name}` was not released");
        assert_eq!(addr.handled(), 1);
    }
    assert!(rt.actors().is_empty(), "{:?}", rt.actors());
    let last = rt.spawn("last", || Quiet).await.unwrap();
    last.tell(1).await.unwrap();
    let report = rt.shutdown().await;
    assert!(report.total_undelivered() <= 1);
    assert_eq!(
        rt.dead_letters().count() as usize,
        report.total_undelivered()
    );
}
