//! Lifecycle contracts of the core: shutdown and restarts wait for the hooks; what will
//! never run again refuses mail and fails its asks at once; actors spawn actors from their
//! own hooks and handlers; start and stop timeouts bound every wait; `Temporary` siblings
//! are never restarted; top-level actors have independent fates.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use vortex::prelude::*;

/// A shared journal of lifecycle events, in the order they happened.
type Events = Arc<Mutex<Vec<String>>>;

fn events(journal: &Events) -> Vec<String> {
    journal.lock().unwrap().clone()
}

/// Records its hooks; `on_stop` takes `stop_delay`; `Crash` panics.
struct Hooked {
    name: String,
    journal: Events,
    stop_delay: Duration,
}

enum Hook {
    Crash,
    Ping(Reply<()>),
    StopForGood,
}

impl Actor for Hooked {
    type Message = Hook;
    async fn on_start(&mut self, _: &mut Context<Self>) -> Result<(), ActorError> {
        self.journal
            .lock()
            .unwrap()
            .push(format!("start {}", self.name));
        Ok(())
    }
    async fn handle(&mut self, message: Hook, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        match message {
            Hook::Crash => panic!("crash requested"),
            Hook::Ping(reply) => reply.send(()),
            Hook::StopForGood => ctx.stop(),
        }
        Ok(())
    }
    async fn on_stop(&mut self, _: &mut Context<Self>) {
        tokio::time::sleep(self.stop_delay).await;
        self.journal
            .lock()
            .unwrap()
            .push(format!("stop {}", self.name));
    }
}

fn hooked(name: &str, journal: &Events, stop_delay: Duration) -> ActorSpec<Hooked> {
    let (name, journal) = (name.to_string(), journal.clone());
    ActorSpec::new(name.clone(), move || Hooked {
        name: name.clone(),
        journal: journal.clone(),
        stop_delay,
    })
}

#[tokio::test]
async fn shutdown_returns_after_every_on_stop_children_before_parents() {
    let rt = Runtime::builder().build().unwrap();
    let journal: Events = Default::default();
    let slow = Duration::from_millis(50);
    rt.spawn_actor(hooked("solo", &journal, slow))
        .await
        .unwrap();
    let tree = SupervisorSpec::new("tree", Strategy::OneForOne)
        .child(hooked("first", &journal, slow))
        .child(hooked("second", &journal, slow));
    rt.start_supervisor(tree).await.unwrap();
    rt.shutdown().await;
    let stops: Vec<String> = events(&journal)
        .into_iter()
        .filter(|event| event.starts_with("stop"))
        .collect();
    // Youngest first at the root (the tree, then solo); inside the tree, second then first.
    assert_eq!(stops, ["stop second", "stop first", "stop solo"]);
}

#[tokio::test]
async fn a_restarted_sibling_finished_its_on_stop_before_its_new_on_start() {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder().build().unwrap();
    let journal: Events = Default::default();
    let tree = SupervisorSpec::new("all", Strategy::OneForAll)
        .backoff(Backoff::none())
        .child(hooked("calm", &journal, Duration::from_millis(50)))
        .child(hooked("crashy", &journal, Duration::ZERO));
    rt.start_supervisor(tree).await.unwrap();
    let crashy: Addr<Hooked> = rt.lookup("crashy").unwrap();
    crashy.tell(Hook::Crash).await.unwrap();
    support::wait_until("both restarted", Duration::from_secs(10), || {
        events(&journal)
            .iter()
            .filter(|e| e.starts_with("start"))
            .count()
            == 4
    })
    .await;
    let log = events(&journal);
    let stop = log
        .iter()
        .position(|e| e == "stop calm")
        .expect("calm stopped");
    let restart = log.iter().rposition(|e| e == "start calm").unwrap();
    assert!(
        stop < restart,
        "the new calm started before the old one stopped: {log:?}"
    );
    rt.shutdown().await;
}

/// Spawns `child` through the runtime from its own `on_start` and from a handler.
struct Spawner {
    rt: Arc<Runtime>,
}

impl Actor for Spawner {
    type Message = Reply<Result<(), String>>;
    async fn on_start(&mut self, _: &mut Context<Self>) -> Result<(), ActorError> {
        let journal = Events::default();
        self.rt
            .spawn_actor(hooked("from-on-start", &journal, Duration::ZERO))
            .await?;
        Ok(())
    }
    async fn handle(
        &mut self,
        reply: Reply<Result<(), String>>,
        _: &mut Context<Self>,
    ) -> Result<(), ActorError> {
        let journal = Events::default();
        let spawned = self
            .rt
            .spawn_actor(hooked("from-handler", &journal, Duration::ZERO))
            .await;
        reply.send(spawned.map(|_| ()).map_err(|error| error.to_string()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_spawns_actors_from_on_start_and_from_handlers() {
    let rt = Arc::new(Runtime::builder().build().unwrap());
    let parent = Arc::clone(&rt);
    let spawner = tokio::time::timeout(
        Duration::from_secs(10),
        rt.spawn("spawner", move || Spawner {
            rt: Arc::clone(&parent),
        }),
    )
    .await
    .expect("spawning from on_start must not deadlock the root")
    .unwrap();
    assert!(rt.lookup::<Hooked>("from-on-start").is_ok());
    let from_handler = tokio::time::timeout(Duration::from_secs(10), spawner.ask(|reply| reply))
        .await
        .expect("spawning from a handler must not deadlock")
        .unwrap();
    assert_eq!(from_handler, Ok(()));
    assert!(rt.lookup::<Hooked>("from-handler").is_ok());
    rt.shutdown().await;
}

struct Stuck;

impl Actor for Stuck {
    type Message = ();
    async fn on_start(&mut self, _: &mut Context<Self>) -> Result<(), ActorError> {
        std::future::pending::<()>().await;
        Ok(())
    }
    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
}

struct StuckOnStop;

impl Actor for StuckOnStop {
    type Message = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
    async fn on_stop(&mut self, _: &mut Context<Self>) {
        std::future::pending::<()>().await;
    }
}

#[tokio::test(start_paused = true)]
async fn start_and_stop_timeouts_bound_every_wait() {
    let rt = Runtime::builder()
        .start_timeout(Duration::from_millis(200))
        .stop_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let began = Instant::now();
    let error = rt.spawn("stuck", || Stuck).await.unwrap_err();
    assert!(
        matches!(&error, RuntimeError::StartFailed { reason, .. } if reason.contains("start timeout")),
        "{error:?}"
    );
    assert!(Instant::now() - began < Duration::from_secs(1));
    assert!(
        rt.lookup::<Stuck>("stuck").is_err(),
        "the name was released"
    );
    // The root still serves spawns, and shutdown does not wait for a hook that never ends.
    rt.spawn("stuck-on-stop", || StuckOnStop).await.unwrap();
    let began = Instant::now();
    rt.shutdown().await;
    let took = Instant::now() - began;
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

struct Failing;

impl Actor for Failing {
    type Message = FailingMessage;
    async fn handle(&mut self, m: FailingMessage, _: &mut Context<Self>) -> Result<(), ActorError> {
        match m {
            FailingMessage::Fail => Err("failure requested".into()),
            FailingMessage::Ask(reply) => {
                reply.send(1);
                Ok(())
            }
        }
    }
}

enum FailingMessage {
    Fail,
    Ask(Reply<u64>),
}

#[tokio::test]
async fn a_temporary_actor_that_failed_refuses_mail_and_fails_queued_asks_at_once() {
    let rt = Runtime::builder().build().unwrap();
    let addr = rt
        .spawn_actor(ActorSpec::new("temp", || Failing).restart(Restart::Temporary))
        .await
        .unwrap();
    rt.control("temp", Control::Pause).await.unwrap();
    addr.tell(FailingMessage::Fail).await.unwrap();
    let asker = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let began = std::time::Instant::now();
            let answer = addr
                .ask_timeout(FailingMessage::Ask, Duration::from_secs(30))
                .await;
            (answer, began.elapsed())
        })
    };
    support::wait_until("the ask is queued", Duration::from_secs(5), || {
        addr.mailbox_len() == 2
    })
    .await;
    rt.control("temp", Control::Resume).await.unwrap();
    let (answer, waited) = asker.await.unwrap();
    assert_eq!(answer, Err(AskError::Stopped));
    assert!(waited < Duration::from_secs(1), "waited {waited:?}");
    assert!(matches!(
        addr.try_tell(FailingMessage::Fail),
        Err(TrySendError::Closed(_))
    ));
    assert!(matches!(
        addr.tell(FailingMessage::Fail).await,
        Err(SendError(_))
    ));
    assert_eq!(rt.status("temp").unwrap().state, ActorState::Failed);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_temporary_sibling_is_never_restarted_under_one_for_all() {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder().build().unwrap();
    let journal: Events = Default::default();
    let tree = SupervisorSpec::new("all", Strategy::OneForAll)
        .backoff(Backoff::none())
        .child(hooked("temp", &journal, Duration::ZERO).restart(Restart::Temporary))
        .child(hooked("perm", &journal, Duration::ZERO));
    rt.start_supervisor(tree).await.unwrap();
    let temp: Addr<Hooked> = rt.lookup("temp").unwrap();
    let perm: Addr<Hooked> = rt.lookup("perm").unwrap();
    perm.tell(Hook::Crash).await.unwrap();
    support::wait_until("perm restarted", Duration::from_secs(10), || {
        events(&journal)
            .iter()
            .filter(|e| *e == "start perm")
            .count()
            == 2
    })
    .await;
    perm.ask(Hook::Ping).await.unwrap();
    assert_eq!(
        events(&journal)
            .iter()
            .filter(|e| *e == "start temp")
            .count(),
        1,
        "temp was restarted"
    );
    assert!(
        temp.is_closed(),
        "a temporary child that will not run again refuses mail"
    );
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn top_level_actors_have_independent_budgets_and_back_off() {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder()
        .root_intensity(Intensity::new(3, Duration::from_secs(60)))
        .root_backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_secs(10),
        ))
        .build()
        .unwrap();
    let journal: Events = Default::default();
    let looping = rt
        .spawn_actor(hooked("looping", &journal, Duration::ZERO))
        .await
        .unwrap();
    let steady = rt
        .spawn_actor(hooked("steady", &journal, Duration::ZERO))
        .await
        .unwrap();
    // `looping` crashes until its own budget is spent; its back-off grows meanwhile.
    for round in 1..=4 {
        let _ = looping.tell(Hook::Crash).await;
        support::wait_until_virtual("looping down or back", Duration::from_secs(60), || {
            let state = rt.status("looping").unwrap().state;
            state == ActorState::Failed
                || events(&journal)
                    .iter()
                    .filter(|e| *e == "start looping")
                    .count()
                    == round + 1
        })
        .await;
    }
    assert_eq!(rt.status("looping").unwrap().state, ActorState::Failed);
    assert!(
        looping.is_closed(),
        "past its budget it will never run again"
    );
    // `steady` lives on, and its first crash waits its own first back-off (100 ms), not the
    // grown delay of `looping`.
    assert_eq!(rt.status("steady").unwrap().state, ActorState::Running);
    let crashed = Instant::now();
    steady.tell(Hook::Crash).await.unwrap();
    support::wait_until_virtual("steady restarted", Duration::from_secs(60), || {
        events(&journal)
            .iter()
            .filter(|e| *e == "start steady")
            .count()
            == 2
    })
    .await;
    let delay = Instant::now() - crashed;
    assert!(
        delay < Duration::from_millis(150),
        "steady waited {delay:?}"
    );
    steady.ask(Hook::Ping).await.unwrap();
    rt.shutdown().await;
}

#[tokio::test]
async fn context_stop_stops_a_permanent_actor_for_good() {
    let rt = Runtime::builder().build().unwrap();
    let journal: Events = Default::default();
    let addr = rt
        .spawn_actor(hooked("done", &journal, Duration::ZERO).restart(Restart::Permanent))
        .await
        .unwrap();
    addr.tell(Hook::StopForGood).await.unwrap();
    support::wait_until("stopped and forgotten", Duration::from_secs(10), || {
        rt.status("done").is_err()
    })
    .await;
    assert_eq!(
        events(&journal),
        ["start done", "stop done"],
        "not restarted"
    );
    assert!(addr.is_closed());
    rt.shutdown().await;
}

struct Blob;

impl Actor for Blob {
    type Message = [u8; 1024];
    async fn handle(&mut self, _: [u8; 1024], _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
}

#[tokio::test]
async fn dead_letter_retention_is_bounded_by_bytes() {
    let rt = Runtime::builder()
        .dead_letters_retained_bytes(10 * 1024)
        .build()
        .unwrap();
    let blob = rt.spawn("blob", || Blob).await.unwrap();
    rt.control("blob", Control::Pause).await.unwrap();
    for _ in 0..100 {
        blob.try_tell([7; 1024]).unwrap();
    }
    let report = rt.shutdown().await;
    assert_eq!(report.total_undelivered(), 100);
    assert_eq!(rt.dead_letters().count(), 100, "the count stays exact");
    assert_eq!(rt.dead_letters().len(), 10, "the newest 10 KiB are kept");
    assert!(rt.dead_letters().retained_bytes() <= 10 * 1024);
}

#[tokio::test]
async fn a_stopped_pool_releases_its_name_and_refuses_scale() {
    let rt = Runtime::builder().build().unwrap();
    let pool = rt.spawn_pool("pool", 3, || Blob).await.unwrap();
    rt.control("pool", Control::Pause).await.unwrap();
    pool.try_tell([0; 1024]).unwrap();
    assert_eq!(
        rt.control("pool", Control::Stop).await.unwrap(),
        ControlReply::Stopping
    );
    assert!(
        matches!(
            rt.control("pool", Control::Scale { n: 5 }).await,
            Err(ControlError::NotRunning { .. }) | Err(ControlError::UnknownActor(_))
        ),
        "a stopping pool takes no new workers"
    );
    support::wait_until(
        "the pool's name is released",
        Duration::from_secs(10),
        || rt.status("pool").is_err(),
    )
    .await;
    assert_eq!(
        rt.control("pool", Control::Scale { n: 2 }).await,
        Err(ControlError::UnknownActor("pool".into()))
    );
    // The name can be used again.
    rt.spawn_pool("pool", 1, || Blob).await.unwrap();
    rt.shutdown().await;
}

/// Records which worker handled each message; each takes a few milliseconds.
struct Tagged(Arc<Mutex<Vec<usize>>>);

impl Actor for Tagged {
    type Message = ();
    async fn handle(&mut self, _: (), ctx: &mut Context<Self>) -> Result<(), ActorError> {
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.0.lock().unwrap().push(ctx.worker_index());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_workers_get_work_after_many_resumes_and_scale_replies_what_runs() {
    let rt = Runtime::builder().build().unwrap();
    let seen: Arc<Mutex<Vec<usize>>> = Default::default();
    let s = Arc::clone(&seen);
    let pool = rt
        .spawn_pool("tagged", 1, move || Tagged(Arc::clone(&s)))
        .await
        .unwrap();
    rt.control("tagged", Control::Pause).await.unwrap();
    for _ in 0..60 {
        pool.try_tell(()).unwrap();
    }
    for _ in 0..100 {
        rt.control("tagged", Control::Resume).await.unwrap();
        rt.control("tagged", Control::Pause).await.unwrap();
    }
    assert_eq!(
        rt.control("tagged", Control::Scale { n: 4 }).await.unwrap(),
        ControlReply::Scaled { from: 1, to: 4 }
    );
    rt.control("tagged", Control::Resume).await.unwrap();
    support::wait_until("all handled", Duration::from_secs(20), || {
        seen.lock().unwrap().len() == 60
    })
    .await;
    let mut workers = seen.lock().unwrap().clone();
    workers.sort_unstable();
    workers.dedup();
    assert!(workers.len() >= 3, "only workers {workers:?} got work");
    rt.shutdown().await;
}

/// Fails its start-up on the attempts listed in `fail_on` (1-based, per name).
struct Picky {
    name: String,
    journal: Events,
    attempt: Arc<Mutex<u32>>,
    fail_on: Vec<u32>,
}

impl Actor for Picky {
    type Message = Hook;
    async fn on_start(&mut self, _: &mut Context<Self>) -> Result<(), ActorError> {
        let attempt = {
            let mut attempt = self.attempt.lock().unwrap();
            *attempt += 1;
            *attempt
        };
        if self.fail_on.contains(&attempt) {
            self.journal
                .lock()
                .unwrap()
                .push(format!("fail {}", self.name));
            return Err("start refused".into());
        }
        self.journal
            .lock()
            .unwrap()
            .push(format!("start {}", self.name));
        Ok(())
    }
    async fn handle(&mut self, message: Hook, _: &mut Context<Self>) -> Result<(), ActorError> {
        match message {
            Hook::Crash => panic!("crash requested"),
            Hook::Ping(reply) => reply.send(()),
            Hook::StopForGood => {}
        }
        Ok(())
    }
}

fn picky(name: &str, journal: &Events, fail_on: Vec<u32>) -> ActorSpec<Picky> {
    let (name, journal) = (name.to_string(), journal.clone());
    let attempt = Arc::new(Mutex::new(0));
    ActorSpec::new(name.clone(), move || Picky {
        name: name.clone(),
        journal: journal.clone(),
        attempt: Arc::clone(&attempt),
        fail_on: fail_on.clone(),
    })
}

async fn b_ping(rt: &Runtime) {
    let b: Addr<Picky> = rt.lookup("b").unwrap();
    b.ask(Hook::Ping).await.unwrap();
}

#[tokio::test]
async fn restarts_run_in_start_order_even_when_one_fails() {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder().build().unwrap();
    let journal: Events = Default::default();
    let tree = SupervisorSpec::new("ordered", Strategy::OneForAll)
        .backoff(Backoff::none())
        .child(picky("a", &journal, vec![]))
        .child(picky("b", &journal, vec![2]))
        .child(picky("c", &journal, vec![]));
    rt.start_supervisor(tree).await.unwrap();
    journal.lock().unwrap().clear();
    let a: Addr<Picky> = rt.lookup("a").unwrap();
    a.tell(Hook::Crash).await.unwrap();
    support::wait_until("the set restarted", Duration::from_secs(10), || {
        events(&journal).iter().any(|e| e == "start c")
    })
    .await;
    b_ping(&rt).await;
    let log = events(&journal);
    // First round: a, then b fails its start; one-for-all: that failure restarts the whole
    // set again from the top, in start order (c, still waiting for its turn, goes with it).
    assert_eq!(
        log,
        ["start a", "fail b", "start a", "start b", "start c"],
        "{log:?}"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_leaves_no_second_cell_on_a_mailbox() {
    support::quiet_panics("crash requested");
    let rt = Runtime::builder().build().unwrap();
    let journal: Events = Default::default();
    let tree = SupervisorSpec::new("fragile", Strategy::OneForOne)
        .intensity(Intensity::new(1, Duration::from_secs(60)))
        .backoff(Backoff::none())
        .child(hooked("leaf", &journal, Duration::from_millis(5)));
    rt.start_supervisor(tree).await.unwrap();
    let leaf: Addr<Hooked> = rt.lookup("leaf").unwrap();
    let sampler = {
        let observer = rt.observer();
        tokio::spawn(async move {
            let mut most = 0;
            for _ in 0..20_000 {
                if let Ok(status) = observer.status("leaf") {
                    most = most.max(status.workers);
                }
                tokio::task::yield_now().await;
            }
            most
        })
    };
    // Crash past the tree's budget: it escalates, the root restarts the tree.
    for _ in 0..6 {
        let _ = leaf.tell(Hook::Crash).await;
        tokio::task::yield_now().await;
    }
    support::wait_until("the tree came back", Duration::from_secs(10), || {
        rt.status("fragile")
            .is_ok_and(|s| s.restarts >= 1 && s.state == ActorState::Running)
    })
    .await;
    assert!(sampler.await.unwrap() <= 1, "two cells drained one mailbox");
    rt.shutdown().await;
}
