//! The per-runtime registry: name → control handle. Not kameo's registry, which is
//! process-global and typed: two runtimes in one process never see each other's names,
//! and `Runtime::control` needs no type.

use crate::sync::lock;
use std::{
    any::Any,
    sync::{Arc, Mutex, MutexGuard},
};

use futures::future::BoxFuture;
use vortex_messages::{ActorKind, ActorState, Control, ControlError, ControlReply, StatusReport};

use crate::{
    actor::Actor,
    error::RuntimeError,
    sample::ActorSample,
    shared::Shared,
    supervisor::{child::ActorChild, ScalePool, SupervisorChild},
};

/// One line of [`Runtime::actors`](crate::Runtime::actors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorInfo {
    /// The registered name.
    pub name: String,
    /// Actor, pool or supervisor.
    pub kind: ActorKind,
    /// Its state now.
    pub state: ActorState,
}

/// What the registry holds for a name.
pub(crate) trait Target: Send + Sync {
    fn kind(&self) -> ActorKind;
    fn status(&self) -> StatusReport;
    fn control(&self, command: Control) -> BoxFuture<'_, Result<ControlReply, ControlError>>;
    /// The answer to `command` when the runtime can give it at once, exactly as the
    /// actor's control lane would (no round trip, nothing boxed); `None` otherwise.
    fn control_now(&self, _command: &Control) -> Option<Result<ControlReply, ControlError>> {
        None
    }
    /// Refuses new messages (shutdown).
    fn close(&self) {}
    /// Moves queued messages to the dead-letter sink; returns how many.
    fn collect_undelivered(&self) -> usize {
        0
    }
    /// Fault injection: fail the running incarnation (single actors only).
    fn inject_failure(&self, _reason: String) -> BoxFuture<'_, Result<(), ControlError>> {
        let status = self.status();
        Box::pin(async move {
            Err(ControlError::Unsupported {
                actor: status.name,
                command: "inject-failure".into(),
                reason: "only single actors take injected failures".into(),
            })
        })
    }
    /// The typed shared state, for `Runtime::lookup`.
    fn shared(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
    /// What an exporter samples (actors and pools; supervisors have no mailbox).
    fn sample(&self) -> Option<ActorSample> {
        None
    }
}

impl<A: Actor> Target for ActorChild<A> {
    fn kind(&self) -> ActorKind {
        ActorKind::Actor
    }
    fn status(&self) -> StatusReport {
        ActorChild::status(self)
    }
    fn control(&self, command: Control) -> BoxFuture<'_, Result<ControlReply, ControlError>> {
        Box::pin(ActorChild::control(self, command))
    }
    fn control_now(&self, command: &Control) -> Option<Result<ControlReply, ControlError>> {
        ActorChild::control_now(self, command)
    }
    fn close(&self) {
        self.shared.mailbox.close();
    }
    fn collect_undelivered(&self) -> usize {
        self.shared.retire()
    }
    fn inject_failure(&self, reason: String) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(ActorChild::inject_failure(self, reason))
    }
    fn shared(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(erase(&self.shared))
    }
    fn sample(&self) -> Option<ActorSample> {
        Some(self.shared.sample())
    }
}

/// A pool: control at pool level (all workers share the flags); `Scale` goes to its
/// internal supervisor.
pub(crate) struct PoolTarget<A: Actor> {
    pub(crate) shared: Arc<Shared<A>>,
    pub(crate) supervisor: Arc<SupervisorChild>,
}

impl<A: Actor> Target for PoolTarget<A> {
    fn kind(&self) -> ActorKind {
        ActorKind::Pool
    }
    fn status(&self) -> StatusReport {
        self.shared.status()
    }
    fn control(&self, command: Control) -> BoxFuture<'_, Result<ControlReply, ControlError>> {
        Box::pin(async move {
            match command {
                Control::Scale { n } => {
                    // A pool that is stopping (or stopped) takes no new workers.
                    let cell = self
                        .supervisor
                        .cell()
                        .filter(|_| !self.shared.is_stopping() && !self.shared.is_retired());
                    let Some(cell) = cell else {
                        return Err(ControlError::NotRunning {
                            actor: self.shared.name.to_string(),
                            command: "scale".into(),
                            state: self.shared.state(),
                        });
                    };
                    match cell.ask(ScalePool(n)).await {
                        Ok((from, to)) => Ok(ControlReply::Scaled { from, to }),
                        Err(kameo::error::SendError::HandlerError(error)) => Err(error),
                        Err(_) => Err(ControlError::NotRunning {
                            actor: self.shared.name.to_string(),
                            command: "scale".into(),
                            state: self.shared.state(),
                        }),
                    }
                }
                Control::Status => {
                    // Pool-level counters, and the detail of the first worker that has one
                    // (workers of one pool describe the state they share).
                    let mut report = self.shared.status();
                    let workers: Vec<_> = lock(&self.supervisor.plan.children)
                        .iter()
                        .map(|(child, _)| Arc::clone(child))
                        .collect();
                    for worker in workers {
                        if let Some(detail) = worker.describe().await {
                            report.detail = detail;
                            break;
                        }
                    }
                    Ok(ControlReply::Status(report))
                }
                Control::Checkpoint => Err(ControlError::Unsupported {
                    actor: self.shared.name.to_string(),
                    command: "checkpoint".into(),
                    reason: "pool workers are stateless replicas; checkpoint single actors".into(),
                }),
                other => self.shared.default_control(&other),
            }
        })
    }
    fn close(&self) {
        self.shared.mailbox.close();
    }
    fn collect_undelivered(&self) -> usize {
        self.shared.retire()
    }
    fn shared(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(erase(&self.shared))
    }
    fn sample(&self) -> Option<ActorSample> {
        Some(self.shared.sample())
    }
}

/// A supervisor: answers `Status` and `Stop` (halts its subtree).
pub(crate) struct SupervisorTarget {
    pub(crate) supervisor: Arc<SupervisorChild>,
}

impl Target for SupervisorTarget {
    fn kind(&self) -> ActorKind {
        ActorKind::Supervisor
    }
    fn status(&self) -> StatusReport {
        let status = &self.supervisor.plan.status;
        StatusReport {
            name: self.supervisor.plan.name.to_string(),
            kind: ActorKind::Supervisor,
            state: status.state(),
            mailbox_depth: 0,
            mailbox_capacity: 0,
            handled: 0,
            handler_micros: 0,
            restarts: status.restarts.load(std::sync::atomic::Ordering::SeqCst),
            dead_letters: 0,
            workers: status.children.load(std::sync::atomic::Ordering::SeqCst),
            detail: String::new(),
        }
    }
    fn control(&self, command: Control) -> BoxFuture<'_, Result<ControlReply, ControlError>> {
        Box::pin(async move {
            match command {
                Control::Status => Ok(ControlReply::Status(self.status())),
                other => Err(ControlError::Unsupported {
                    actor: self.supervisor.plan.name.to_string(),
                    command: other.name().into(),
                    reason: "supervisors answer status; address their children".into(),
                }),
            }
        })
    }
}

/// Lets the registry hand out typed addresses: `Arc<dyn Any>` of the shared state.
fn erase<A: Actor>(shared: &Arc<Shared<A>>) -> Arc<dyn Any + Send + Sync> {
    Arc::clone(shared) as Arc<dyn Any + Send + Sync>
}

/// Name → target, for one runtime.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Mutex<NameMap<Arc<str>, Arc<dyn Target>>>,
}

impl Registry {
    fn entries(&self) -> MutexGuard<'_, NameMap<Arc<str>, Arc<dyn Target>>> {
        lock(&self.entries)
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn Target>> {
        self.entries().get(name).cloned()
    }

    /// The registered name (shared, not copied) and its target.
    pub(crate) fn get_entry(&self, name: &str) -> Option<(Arc<str>, Arc<dyn Target>)> {
        self.entries()
            .get_key_value(name)
            .map(|(name, target)| (Arc::clone(name), Arc::clone(target)))
    }

    /// Every entry, sorted by name.
    pub(crate) fn all(&self) -> Vec<(Arc<str>, Arc<dyn Target>)> {
        let mut all: Vec<_> = self
            .entries()
            .iter()
            .map(|(name, target)| (Arc::clone(name), Arc::clone(target)))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Registers every name of a reservation, or none (a name taken meanwhile).
    pub(crate) fn commit(&self, reservation: &Reservation<'_>) -> Result<(), RuntimeError> {
        let mut entries = self.entries();
        if let Some((name, _)) = reservation
            .entries()
            .find(|(name, _)| entries.contains_key(name))
        {
            return Err(RuntimeError::DuplicateName(name.to_string()));
        }
        for (name, target) in reservation.entries() {
            entries.insert(Arc::clone(name), Arc::clone(target));
        }
        Ok(())
    }

    /// Unregisters every name of a committed reservation (its start failed).
    pub(crate) fn remove_all(&self, reservation: &Reservation<'_>) {
        let mut entries = self.entries();
        for (name, _) in reservation.entries() {
            entries.remove(name);
        }
    }

    pub(crate) fn remove(&self, name: &str) {
        self.entries().remove(name);
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries().contains_key(name)
    }
}

/// A reserved name and what it will name.
type Entry = (Arc<str>, Arc<dyn Target>);

/// Names collected while a spec is instantiated, registered together at the end.
pub(crate) struct Reservation<'a> {
    registry: &'a Registry,
    /// In spec order (a tree has a handful of names: a scan beats a set); the first
    /// inline, so spawning a single actor allocates nothing here.
    first: Option<Entry>,
    more: Vec<Entry>,
}

impl<'a> Reservation<'a> {
    pub(crate) fn new(registry: &'a Registry) -> Self {
        Reservation {
            registry,
            first: None,
            more: Vec::new(),
        }
    }

    /// Validates a name and checks it is free (in the runtime and in this spec).
    pub(crate) fn check(&self, name: &str) -> Result<(), RuntimeError> {
        validate_name(name)?;
        if self.entries().any(|(seen, _)| **seen == *name) || self.registry.contains(name) {
            return Err(RuntimeError::DuplicateName(name.to_owned()));
        }
        Ok(())
    }

    /// Checks `name` (see [`Reservation::check`]) and reserves it for `target`.
    pub(crate) fn add(
        &mut self,
        name: Arc<str>,
        target: Arc<dyn Target>,
    ) -> Result<(), RuntimeError> {
        self.check(&name)?;
        self.add_checked(name, target);
        Ok(())
    }

    /// Reserves a name that [`Reservation::check`] accepted, with nothing reserved since
    /// (a leaf: an actor or a pool, which reserve no other name in between).
    pub(crate) fn add_checked(&mut self, name: Arc<str>, target: Arc<dyn Target>) {
        match self.first {
            None => self.first = Some((name, target)),
            Some(_) => self.more.push((name, target)),
        }
    }

    /// The first name (the spec's own), for error messages.
    pub(crate) fn first_name(&self) -> String {
        self.entries()
            .next()
            .map(|(name, _)| name.to_string())
            .unwrap_or_default()
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.first.iter().chain(self.more.iter())
    }
}

/// Names are 1–128 characters of `[A-Za-z0-9._-]`: safe in file paths, metric labels and
/// command lines.
pub(crate) fn validate_name(name: &str) -> Result<(), RuntimeError> {
    let valid = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(RuntimeError::InvalidName(name.to_owned()))
    }
}

/// FNV-1a, for maps keyed by actor names. Names are validated program identifiers (at
/// most 128 bytes, see [`validate_name`]), not keys an attacker picks, so a
/// flooding-resistant hash buys nothing here, while SipHash was a visible share of every
/// spawn and stop (each touches the registry several times).
#[derive(Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        // hashbrown takes its control bits from the top of the hash: fold the better
        // mixed low bits up there too.
        self.0 ^ (self.0 << 57)
    }
}

/// A `HashMap` keyed by names, hashed with [`NameHasher`].
pub(crate) type NameMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<NameHasher>>;
