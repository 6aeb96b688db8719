//! Declarative specs for what a runtime runs: single actors, pools and supervisor trees.
//!
//! A spec is plain data until the runtime instantiates it: then names are registered (all
//! or none), mailboxes are created, and the supervisor starts the children in order.

use std::sync::{Arc, Mutex};

use vortex_messages::ActorKind;

use crate::{
    actor::Actor,
    config::RuntimeConfig,
    mailbox::{Dispatch, Mailbox},
    registry::{PoolTarget, Registry, Reservation, SupervisorTarget},
    shared::{ActorConfig, Factory, Services, Shared},
    supervisor::{
        child::{ActorChild, Child, OnForget},
        Backoff, Intensity, Restart, Strategy, SupervisorChild, SupervisorPlan,
    },
};

/// What instantiating a spec needs from its runtime.
pub(crate) struct SpawnEnv {
    pub(crate) config: RuntimeConfig,
    pub(crate) registry: Arc<Registry>,
    pub(crate) services: Services,
}

/// A single actor: a name, a factory (called again for every restart) and its settings.
pub struct ActorSpec<A: Actor> {
    name: String,
    factory: Box<Factory<A>>,
    capacity: Option<usize>,
    batch: Option<usize>,
    restart: Restart,
}

impl<A: Actor> ActorSpec<A> {
    /// An actor named `name`, built by `factory` (runtime defaults for everything else).
    pub fn new(name: impl Into<String>, factory: impl Fn() -> A + Send + Sync + 'static) -> Self {
        ActorSpec {
            name: name.into(),
            factory: Box::new(factory),
            capacity: None,
            batch: None,
            restart: Restart::Permanent,
        }
    }

    /// Mailbox capacity in messages (default: the runtime's).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Messages handled per batch before control commands get a turn (default: runtime's).
    pub fn batch_size(mut self, batch: usize) -> Self {
        self.batch = Some(batch);
        self
    }

    /// When the supervisor restarts it (default `Permanent`).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }
}

/// A pool: `workers` identical actors sharing one mailbox, resizable with `Scale`.
pub struct PoolSpec<A: Actor> {
    actor: ActorSpec<A>,
    workers: u32,
    max_workers: Option<u32>,
    intensity: Intensity,
    backoff: Backoff,
}

impl<A: Actor> PoolSpec<A> {
    /// A pool named `name` of `workers` actors built by `factory`.
    pub fn new(
        name: impl Into<String>,
        workers: u32,
        factory: impl Fn() -> A + Send + Sync + 'static,
    ) -> Self {
        PoolSpec {
            actor: ActorSpec::new(name, factory),
            workers,
            max_workers: None,
            intensity: Intensity::default(),
            backoff: Backoff::default(),
        }
    }

    /// Shared mailbox capacity.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.actor = self.actor.capacity(capacity);
        self
    }

    /// Messages per batch per worker.
    pub fn batch_size(mut self, batch: usize) -> Self {
        self.actor = self.actor.batch_size(batch);
        self
    }

    /// Restart policy of every worker.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.actor = self.actor.restart(restart);
        self
    }

    /// The largest size `Scale` may ask for (default: the runtime's `max_pool_workers`).
    pub fn max_workers(mut self, max: u32) -> Self {
        self.max_workers = Some(max);
        self
    }

    /// Restart intensity of the pool's internal supervisor.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Back-off between worker restarts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub(crate) fn name(&self) -> &str {
        self.actor.name()
    }
}

/// A supervisor and its children, started in order, halted in reverse order.
pub struct SupervisorSpec {
    name: String,
    strategy: Strategy,
    intensity: Intensity,
    backoff: Backoff,
    restart: Restart,
    children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A supervisor named `name` with `strategy`, default intensity and back-off.
    pub fn new(name: impl Into<String>, strategy: Strategy) -> Self {
        SupervisorSpec {
            name: name.into(),
            strategy,
            intensity: Intensity::default(),
            backoff: Backoff::default(),
            restart: Restart::Permanent,
            children: Vec::new(),
        }
    }

    /// Restart intensity: more restarts than this and the supervisor fails upward.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Back-off between restarts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How this supervisor's own parent restarts it when it fails.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Adds a child (an [`ActorSpec`], a [`PoolSpec`] or a nested [`SupervisorSpec`]).
    pub fn child(mut self, child: impl Into<ChildSpec>) -> Self {
        self.children.push(child.into());
        self
    }
}

/// Any child a supervisor can hold.
pub struct ChildSpec(Box<dyn Instantiate>);

impl<A: Actor> From<ActorSpec<A>> for ChildSpec {
    fn from(spec: ActorSpec<A>) -> Self {
        ChildSpec(Box::new(spec))
    }
}

impl<A: Actor> From<PoolSpec<A>> for ChildSpec {
    fn from(spec: PoolSpec<A>) -> Self {
        ChildSpec(Box::new(spec))
    }
}

impl From<SupervisorSpec> for ChildSpec {
    fn from(spec: SupervisorSpec) -> Self {
        ChildSpec(Box::new(spec))
    }
}

impl ChildSpec {
    pub(crate) fn instantiate(
        self,
        rt: &SpawnEnv,
        reservation: &mut Reservation<'_>,
    ) -> Result<(Arc<dyn Child>, Restart), crate::RuntimeError> {
        self.0.instantiate(rt, reservation)
    }
}

pub(crate) trait Instantiate: Send {
    fn instantiate(
        self: Box<Self>,
        rt: &SpawnEnv,
        reservation: &mut Reservation<'_>,
    ) -> Result<(Arc<dyn Child>, Restart), crate::RuntimeError>;
}

impl<A: Actor> ActorSpec<A> {
    pub(crate) fn build_shared(
        self,
        rt: &SpawnEnv,
        kind: ActorKind,
        dispatch: Dispatch,
    ) -> (Arc<Shared<A>>, Restart) {
        let defaults = &rt.config;
        let config = ActorConfig {
            capacity: self.capacity.unwrap_or(defaults.mailbox_capacity).max(1),
            batch: self.batch.unwrap_or(defaults.batch_size).max(1),
            ask_timeout: defaults.ask_timeout,
            start_timeout: defaults.start_timeout,
            stop_timeout: defaults.stop_timeout,
        };
        let shared = Shared::new(
            Arc::from(self.name.as_str()),
            kind,
            Mailbox::new(config.capacity, dispatch),
            config,
            self.factory,
            rt.services.clone(),
        );
        (Arc::new(shared), self.restart)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Builds a single actor's child (typed: `Runtime::spawn` hands out its address
    /// without looking it up again) and reserves its name.
    pub(crate) fn instantiate_actor(
        self,
        rt: &SpawnEnv,
        reservation: &mut Reservation<'_>,
    ) -> Result<(Arc<ActorChild<A>>, Restart), crate::RuntimeError> {
        reservation.check(self.name())?;
        let (shared, restart) = self.build_shared(rt, ActorKind::Actor, Dispatch::single());
        let on_forget = OnForget::new(&rt.registry, &shared.name);
        let child = Arc::new(ActorChild::registered(shared, on_forget));
        reservation.add_checked(Arc::clone(&child.shared.name), child.clone());
        Ok((child, restart))
    }
}

impl<A: Actor> Instantiate for ActorSpec<A> {
    fn instantiate(
        self: Box<Self>,
        rt: &SpawnEnv,
        reservation: &mut Reservation<'_>,
    ) -> Result<(Arc<dyn Child>, Restart), crate::RuntimeError> {
        let (child, restart) = self.instantiate_actor(rt, reservation)?;
        Ok((child, restart))
    }
}

impl<A: Actor> Instantiate for PoolSpec<A> {
    fn instantiate(
        self: Box<Self>,
        rt: &SpawnEnv,
        reservation: &mut Reservation<'_>,
    ) -> Result<(Arc<dyn Child>, Restart), crate::RuntimeError> {
        reservation.check(self.actor.name())?;
        let max = self
            .max_workers
            .unwrap_or(rt.config.max_pool_workers)
            .max(1);
        if self.workers == 0 || self.workers > max {
            return Err(crate::RuntimeError::InvalidConfig(format!(
                "pool `{}` needs 1..={max} workers, not {}",
                self.actor.name(),
                self.workers
            )));
        }
        let (shared, restart) =
            self.actor
                .build_shared(rt, ActorKind::Pool, Dispatch::pool(max as usize));
        let maker_shared = Arc::clone(&shared);
        let maker: crate::supervisor::WorkerMaker = Arc::new(move |index| {
            Arc::new(ActorChild::new(Arc::clone(&maker_shared), index)) as Arc<dyn Child>
        });
        let workers = (0..self.workers as usize)
            .map(|index| (maker(index), restart))
            .collect();
        let plan = SupervisorPlan {
            name: Arc::clone(&shared.name),
            strategy: Strategy::OneForOne,
            intensity: self.intensity,
            backoff: self.backoff,
            children: Arc::new(Mutex::new(workers)),
            worker_maker: Some(maker),
            max_workers: max,
            status: Default::default(),
            ids: Default::default(),
        };
        let supervisor = Arc::new(SupervisorChild::registered(
            plan,
            OnForget::new(&rt.registry, &shared.name),
        ));
        let target = Arc::new(PoolTarget {
            shared,
            supervisor: Arc::clone(&supervisor),
        });
        reservation.add_checked(Arc::clone(&target.shared.name), target);
        Ok((supervisor, Restart::Permanent))
    }
}

impl Instantiate for SupervisorSpec {
    fn instantiate(
        self: Box<Self>,
        rt: &SpawnEnv,
        reservation: &mut Reservation<'_>,
    ) -> Result<(Arc<dyn Child>, Restart), crate::RuntimeError> {
        reservation.check(&self.name)?;
        let mut children = Vec::with_capacity(self.children.len());
        for child in self.children {
            children.push(child.instantiate(rt, reservation)?);
        }
        let plan = SupervisorPlan {
            name: Arc::from(self.name.as_str()),
            strategy: self.strategy,
            intensity: self.intensity,
            backoff: self.backoff,
            children: Arc::new(Mutex::new(children)),
            worker_maker: None,
            max_workers: 0,
            status: Default::default(),
            ids: Default::default(),
        };
        let supervisor = Arc::new(SupervisorChild::new(plan));
        reservation.add(
            Arc::from(self.name.as_str()),
            Arc::new(SupervisorTarget {
                supervisor: Arc::clone(&supervisor),
            }),
        )?;
        Ok((supervisor, self.restart))
    }
}
