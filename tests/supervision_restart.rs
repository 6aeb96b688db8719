//! Supervision semantics: each strategy, restart policies, intensity escalation through
//! nested supervisors, exponential back-off on tokio's paused clock, checkpoint restore.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use vortex::prelude::*;

/// Journal of starts: (child name, virtual time of start).
type Starts = Arc<Mutex<Vec<(String, Instant)>>>;

struct Worker {
    name: String,
    starts: Starts,
    state: u64,
}

enum WorkerMessage {
    Crash,
    Fail,
    Exit,
    Add(u64),
    Get(Reply<u64>),
}

impl Actor for Worker {
    type Message = WorkerMessage;

    async fn on_start(&mut self, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.starts
            .lock()
            .unwrap()
            .push((self.name.clone(), Instant::now()));
        Ok(())
    }

    async fn handle(
        &mut self,
        message: WorkerMessage,
        ctx: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        match message {
            WorkerMessage::Crash => panic!("crash requested"),
            WorkerMessage::Fail => return Err("failure requested".into()),
            WorkerMessage::Exit => ctx.restart(),
            WorkerMessage::Add(n) => self.state += n,
            WorkerMessage::Get(reply) => reply.send(self.state),
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Option<Vec<u8>> {
        Some(self.state.to_le_bytes().to_vec())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.state = u64::from_le_bytes(snapshot.try_into()?);
        Ok(())
    }
}

fn worker(name: &str, starts: &Starts) -> ActorSpec<Worker> {
    let (name, starts) = (name.to_string(), starts.clone());
    ActorSpec::new(name.clone(), move || Worker {
        name: name.clone(),
        starts: starts.clone(),
        state: 0,
    })
}

fn count(starts: &Starts, name: &str) -> usize {
    starts
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| n == name)
        .count()
}

async fn three_children(strategy: Strategy) -> (Runtime, Starts) {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder().build().unwrap();
    let starts: Starts = Default::default();
    let tree = SupervisorSpec::new("sup", strategy)
        .backoff(Backoff::none())
        .child(worker("a", &starts))
        .child(worker("b", &starts))
        .child(worker("c", &starts));
    rt.start_supervisor(tree).await.unwrap();
    assert_eq!(starts.lock().unwrap().len(), 3);
    let order: Vec<_> = starts
        .lock()
        .unwrap()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(order, ["a", "b", "c"], "children start in order");
    (rt, starts)
}

async fn crash(rt: &Runtime, name: &str) {
    rt.lookup::<Worker>(name)
        .unwrap()
        .tell(WorkerMessage::Crash)
        .await
        .unwrap();
}

async fn wait_starts(starts: &Starts, total: usize) {
    support::wait_until("restarts", Duration::from_secs(10), || {
        starts.lock().unwrap().len() >= total
    })
    .await;
}

async fn wait_starts_virtual(starts: &Starts, total: usize) {
    support::wait_until_virtual("restarts", Duration::from_secs(60), || {
        starts.lock().unwrap().len() >= total
    })
    .await;
}

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let (rt, starts) = three_children(Strategy::OneForOne).await;
    crash(&rt, "b").await;
    wait_starts(&starts, 4).await;
    assert_eq!(
        (
            count(&starts, "a"),
            count(&starts, "b"),
            count(&starts, "c")
        ),
        (1, 2, 1)
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn one_for_all_restarts_every_child() {
    let (rt, starts) = three_children(Strategy::OneForAll).await;
    crash(&rt, "b").await;
    wait_starts(&starts, 6).await;
    assert_eq!(
        (
            count(&starts, "a"),
            count(&starts, "b"),
            count(&starts, "c")
        ),
        (2, 2, 2)
    );
    let restarted: Vec<_> = starts.lock().unwrap()[3..]
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(restarted, ["a", "b", "c"], "restarted in start order");
    rt.shutdown().await;
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_younger_siblings() {
    let (rt, starts) = three_children(Strategy::RestForOne).await;
    crash(&rt, "b").await;
    wait_starts(&starts, 5).await;
    assert_eq!(
        (
            count(&starts, "a"),
            count(&starts, "b"),
            count(&starts, "c")
        ),
        (1, 2, 2)
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn restart_policies_decide_after_errors_and_normal_exits() {
    let rt = Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap();
    let starts: Starts = Default::default();
    for (name, restart) in [
        ("perm", Restart::Permanent),
        ("trans", Restart::Transient),
        ("temp", Restart::Temporary),
    ] {
        rt.spawn_actor(worker(name, &starts).restart(restart))
            .await
            .unwrap();
    }
    for name in ["perm", "trans", "temp"] {
        rt.lookup::<Worker>(name)
            .unwrap()
            .tell(WorkerMessage::Fail)
            .await
            .unwrap();
    }
    support::wait_until("temp failed", Duration::from_secs(5), || {
        rt.actors()
            .iter()
            .any(|i| i.name == "temp" && i.state == ActorState::Failed)
    })
    .await;
    wait_starts(&starts, 5).await;
    assert_eq!(
        (
            count(&starts, "perm"),
            count(&starts, "trans"),
            count(&starts, "temp")
        ),
        (2, 2, 1)
    );
    // A normal exit (Context::restart): only the permanent child comes back.
    let trans = rt.lookup::<Worker>("trans").unwrap();
    for name in ["perm", "trans"] {
        rt.lookup::<Worker>(name)
            .unwrap()
            .tell(WorkerMessage::Exit)
            .await
            .unwrap();
    }
    support::wait_until(
        "trans stopped and forgotten",
        Duration::from_secs(5),
        || rt.status("trans").is_err(),
    )
    .await;
    wait_starts(&starts, 6).await;
    assert_eq!((count(&starts, "perm"), count(&starts, "trans")), (3, 2));
    assert!(
        trans.is_closed(),
        "a child that ends for good refuses messages"
    );
    assert!(
        rt.lookup::<Worker>("trans").is_err(),
        "its name is released"
    );
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_between_restarts_up_to_the_cap() {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder().build().unwrap();
    let starts: Starts = Default::default();
    let tree = SupervisorSpec::new("backoff-sup", Strategy::OneForOne)
        .intensity(Intensity::new(100, Duration::from_secs(60)))
        .backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_millis(400),
        ))
        .child(worker("flaky", &starts));
    rt.start_supervisor(tree).await.unwrap();
    let flaky = rt.lookup::<Worker>("flaky").unwrap();
    let mut crashes = Vec::new();
    for round in 1..=5 {
        crashes.push(Instant::now());
        flaky.tell(WorkerMessage::Crash).await.unwrap();
        wait_starts_virtual(&starts, round + 1).await;
    }
    let restarts: Vec<Instant> = starts.lock().unwrap()[1..]
        .iter()
        .map(|(_, t)| *t)
        .collect();
    let gaps: Vec<u128> = crashes
        .iter()
        .zip(&restarts)
        .map(|(crash, restart)| (*restart - *crash).as_millis())
        .collect();
    // The crash is handled at once on the paused clock; the time to the restart is the back-off.
    assert_eq!(gaps, vec![100, 200, 400, 400, 400]);
    let ControlReply::Status(status) = rt.control("flaky", Control::Status).await.unwrap() else {
        panic!()
    };
    assert_eq!(status.restarts, 5);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn exceeding_intensity_escalates_to_the_parent() {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder().build().unwrap();
    let starts: Starts = Default::default();
    let inner = SupervisorSpec::new("inner", Strategy::OneForOne)
        .intensity(Intensity::new(2, Duration::from_secs(10)))
        .backoff(Backoff::none())
        .child(worker("leaf", &starts));
    let outer = SupervisorSpec::new("outer", Strategy::OneForOne)
        .intensity(Intensity::new(1, Duration::from_secs(10)))
        .backoff(Backoff::none())
        .child(inner)
        .child(worker("sibling", &starts));
    rt.start_supervisor(outer).await.unwrap();
    let leaf = rt.lookup::<Worker>("leaf").unwrap();
    // Two crashes are within the inner budget; the third escalates: the outer supervisor
    // restarts the whole inner subtree once (a fresh inner supervisor, fresh budget).
    for expected in [2, 3, 4] {
        leaf.tell(WorkerMessage::Crash).await.unwrap();
        support::wait_until_virtual("leaf restarted", Duration::from_secs(10), || {
            count(&starts, "leaf") == expected
        })
        .await;
    }
    let ControlReply::Status(inner) = rt.control("inner", Control::Status).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        inner.restarts, 1,
        "the inner supervisor itself was restarted once"
    );
    assert_eq!(inner.state, ActorState::Running);
    assert_eq!(
        count(&starts, "sibling"),
        1,
        "one-for-one: the sibling was untouched"
    );
    // Three more crashes exhaust the fresh inner budget again; the outer budget (1) is spent
    // too, so the outer supervisor fails: everything under it is failed and halted.
    for _ in 0..3 {
        leaf.tell(WorkerMessage::Crash).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await; // virtual: lets the restart run
    }
    support::wait_until_virtual("outer failed", Duration::from_secs(10), || {
        rt.actors()
            .iter()
            .any(|i| i.name == "outer" && i.state == ActorState::Failed)
    })
    .await;
    let states: Vec<_> = rt.actors().into_iter().map(|i| (i.name, i.state)).collect();
    for (name, state) in states {
        assert_eq!(state, ActorState::Failed, "{name}");
    }
    rt.shutdown().await;
}

#[tokio::test]
async fn a_checkpoint_survives_a_crash() {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap();
    let starts: Starts = Default::default();
    let stateful = rt.spawn_actor(worker("stateful", &starts)).await.unwrap();
    stateful.tell(WorkerMessage::Add(41)).await.unwrap();
    // A control command does not wait for data queued before it (it waits behind at most
    // the batch in progress): wait until the message was handled, then checkpoint.
    support::wait_until("Add handled", Duration::from_secs(10), || {
        stateful.handled() == 1
    })
    .await;
    let ControlReply::Checkpointed(checkpoint) =
        rt.control("stateful", Control::Checkpoint).await.unwrap()
    else {
        panic!("checkpoint expected")
    };
    assert_eq!(
        (checkpoint.epoch, checkpoint.bytes.clone()),
        (1, 41u64.to_le_bytes().to_vec())
    );
    stateful.tell(WorkerMessage::Add(1000)).await.unwrap(); // lost with the crash
    stateful.tell(WorkerMessage::Crash).await.unwrap();
    stateful.tell(WorkerMessage::Add(1)).await.unwrap(); // queued across the restart
    assert_eq!(stateful.ask(WorkerMessage::Get).await.unwrap(), 42);
    assert_eq!(count(&starts, "stateful"), 2);
    let ControlReply::Checkpointed(second) =
        rt.control("stateful", Control::Checkpoint).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(second.epoch, 2);
    rt.shutdown().await;
}

/// Regression: a restarted actor that fails on the very first message it drains (queued
/// while it was down) must be restarted again — its supervisor used to wait forever for
/// a start-up that kameo never finished.
#[tokio::test]
async fn an_actor_failing_right_after_each_restart_keeps_being_restarted() {
    let rt = Runtime::builder()
        .root_backoff(Backoff::none())
        .build()
        .unwrap();
    let starts: Starts = Default::default();
    let worker_addr = rt.spawn_actor(worker("eager", &starts)).await.unwrap();
    rt.control("eager", Control::Pause).await.unwrap();
    for _ in 0..3 {
        worker_addr.tell(WorkerMessage::Fail).await.unwrap();
    }
    worker_addr.tell(WorkerMessage::Add(5)).await.unwrap();
    rt.control("eager", Control::Resume).await.unwrap();
    assert_eq!(worker_addr.ask(WorkerMessage::Get).await.unwrap(), 5);
    assert_eq!(rt.status("eager").unwrap().restarts, 3);
    assert_eq!(count(&starts, "eager"), 4);
    rt.shutdown().await;
}
