//! The runtime's root: the parent of everything started with `Runtime::spawn*` and
//! `Runtime::start_supervisor`.
//!
//! The root is not an actor. Its children are independent — each has its own restart
//! budget and back-off, as if it had its own one-for-one supervisor — so nothing one child
//! does has to be ordered with what another does, and every decision is taken where the
//! news arrives, under one short lock that is never held across an `await`:
//!
//! - a spawn adds its child to the table and starts it from the spawner's own task (no
//!   round trip through a supervisor task);
//! - a child's exit report (sent by its cell once `on_stop` finished) decides its fate in
//!   place: forgotten (stopped), retired (failed for good, or not restarted by its policy),
//!   or restarted after its own back-off (a timer task; at once when the back-off is zero);
//! - a restart that fails to start is a failure of that child like any other.
//!
//! Children live in a slab: finding one is an index, and removing one moves nothing.
//! Shutdown halts them youngest first, each bounded by its stop timeout.

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio::{runtime::Handle, time::Instant};
use vortex_messages::ActorState;

use super::{
    child::Child,
    policy::{wants_restart, RestartBudget, Verdict},
    Backoff, Intensity, Restart,
};
use crate::{
    cell::{Exit, ExitReport, ExitSink, StartReport},
    sync::lock,
};

/// Where a child sits in the root's table, and which of its incarnations is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    index: usize,
    /// Unique per incarnation (never reused, also when the slab reuses the index): a report
    /// or timer of an older incarnation is recognised and ignored.
    generation: u64,
}

struct Slot {
    child: Arc<dyn Child>,
    restart: Restart,
    /// This child's own intensity window and back-off sequence.
    budget: RestartBudget,
    generation: u64,
    /// Start order, for shutdown (youngest first).
    order: u64,
    /// Waiting for its restart (back-off): `generation` is the restart's.
    pending: bool,
}

#[derive(Default)]
struct Table {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    next_generation: u64,
    next_order: u64,
    /// Shutdown began: nothing is added or restarted any more.
    closed: bool,
}

impl Table {
    fn current(&mut self, key: Key) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index)?
            .as_mut()
            .filter(|slot| slot.generation == key.generation)
    }

    fn remove(&mut self, index: usize) -> Option<Slot> {
        let slot = self.slots.get_mut(index)?.take()?;
        self.free.push(index);
        Some(slot)
    }

    fn next_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

/// What to do about a child once the lock is released.
enum Decision {
    /// It will never run again (its policy, a stop, or its budget is spent): retire it; a
    /// failed child stays listed as `Failed`, another is forgotten (its name released).
    EndForGood(Arc<dyn Child>, bool),
    /// Restart it after its back-off.
    Restart(Arc<dyn Child>, Key, Duration),
}

impl ExitSink for Root {
    fn exited(&self, index: usize, generation: u64, exit: Exit) {
        self.child_exited(Key { index, generation }, exit);
    }
}

/// The root of a runtime's supervision tree (see the module docs).
pub(crate) struct Root {
    table: Mutex<Table>,
    intensity: Intensity,
    backoff: Backoff,
    handle: Handle,
    /// Handed to exit reports and restart timers: they never keep the root alive.
    this: Weak<Root>,
}

impl Root {
    pub(crate) fn new(intensity: Intensity, backoff: Backoff, handle: Handle) -> Arc<Root> {
        Arc::new_cyclic(|this| Root {
            table: Mutex::new(Table::default()),
            intensity,
            backoff,
            handle,
            this: this.clone(),
        })
    }

    /// Adds a child that its spawner is about to start (`None` once shutdown began). The
    /// child is listed before it starts, so its exit report always finds it.
    pub(crate) fn adopt(&self, child: Arc<dyn Child>, restart: Restart) -> Option<Key> {
        let mut table = lock(&self.table);
        if table.closed {
            return None;
        }
        let generation = table.next_generation();
        table.next_order += 1;
        let slot = Slot {
            child,
            restart,
            budget: RestartBudget::new(self.intensity, self.backoff),
            generation,
            order: table.next_order,
            pending: false,
        };
        let index = match table.free.pop() {
            Some(index) => {
                table.slots[index] = Some(slot);
                index
            }
            None => {
                table.slots.push(Some(slot));
                table.slots.len() - 1
            }
        };
        Some(Key { index, generation })
    }

    /// The child's first start failed: its spawner reports it and releases its names.
    pub(crate) fn abandon(&self, key: Key) {
        let mut table = lock(&self.table);
        if table.current(key).is_some() {
            table.remove(key.index);
        }
    }

    /// Where incarnation `key` of a child reports how it ended (nothing allocated).
    pub(crate) fn exit_report(&self, key: Key) -> ExitReport {
        let sink: Weak<dyn ExitSink> = self.this.clone();
        ExitReport::Keyed(sink, key.index, key.generation)
    }

    /// Where a restarted incarnation reports its start-up: a failure is a failure of the
    /// child like any other.
    fn start_report(&self, key: Key) -> StartReport {
        let root = self.this.clone();
        Box::new(move |result: Result<(), String>| {
            let (Err(reason), Some(root)) = (result, root.upgrade()) else {
                return;
            };
            let name = root.name_of(key);
            tracing::warn!(target: "vortex.restart", supervisor = "root", child = %name,
                %reason, "start failed");
            root.child_exited(key, Exit::Failed(format!("start failed: {reason}")));
        })
    }

    fn name_of(&self, key: Key) -> String {
        lock(&self.table)
            .current(key)
            .map(|slot| slot.child.name().to_owned())
            .unwrap_or_default()
    }

    /// Incarnation `key` ended: policy, the child's own budget, back-off.
    fn child_exited(&self, key: Key, exit: Exit) {
        let decision = {
            let mut table = lock(&self.table);
            let closed = table.closed;
            let Some(slot) = table.current(key) else {
                return; // an older incarnation, or already removed
            };
            if matches!(exit, Exit::Halted) || (closed && !matches!(exit, Exit::Stopped)) {
                // Halted by shutdown (or failing while it runs): shutdown retires it.
                return;
            }
            if !wants_restart(slot.restart, &exit) {
                let child = Arc::clone(&slot.child);
                table.remove(key.index);
                Decision::EndForGood(child, matches!(exit, Exit::Failed(_)))
            } else {
                match slot.budget.record(Instant::now()) {
                    Verdict::RestartAfter(delay) => {
                        let child = Arc::clone(&slot.child);
                        let generation = table.next_generation();
                        let slot = table.current(key).expect("the slot is still there");
                        slot.generation = generation;
                        slot.pending = true;
                        let next = Key {
                            index: key.index,
                            generation,
                        };
                        Decision::Restart(child, next, delay)
                    }
                    Verdict::Escalate => {
                        let child = Arc::clone(&slot.child);
                        table.remove(key.index);
                        tracing::error!(target: "vortex.restart", supervisor = "root",
                            child = %child.name(), reason = ?exit,
                            "restart intensity exceeded; the child stays failed");
                        Decision::EndForGood(child, true)
                    }
                }
            }
        };
        match decision {
            Decision::EndForGood(child, failed) => {
                child.set_state(if failed {
                    ActorState::Failed
                } else {
                    ActorState::Stopped
                });
                child.retire();
                if !failed {
                    child.forget();
                }
            }
            Decision::Restart(child, next, delay) => {
                child.set_state(ActorState::Restarting);
                tracing::info_span!("vortex.restart", supervisor = "root", child = %child.name())
                    .in_scope(|| {
                        tracing::warn!(
                            target: "vortex.restart",
                            reason = ?exit,
                            delay_ms = delay.as_millis() as u64,
                            restarting = 1,
                            "restarting after failure"
                        )
                    });
                if delay.is_zero() {
                    self.restart_due(next);
                } else {
                    let root = self.this.clone();
                    self.handle.spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Some(root) = root.upgrade() {
                            root.restart_due(next);
                        }
                    });
                }
            }
        }
    }

    /// A child's back-off elapsed: start its next incarnation (without waiting for it).
    /// Started under the table's lock (a start only spawns the cell), so a shutdown that
    /// begins meanwhile either sees the new incarnation and halts it, or comes first and
    /// this start does not happen.
    fn restart_due(&self, key: Key) {
        let mut table = lock(&self.table);
        if table.closed {
            return;
        }
        let Some(slot) = table.current(key).filter(|slot| slot.pending) else {
            return;
        };
        slot.pending = false;
        slot.child.note_restart();
        drop(
            slot.child
                .start(self.exit_report(key), self.start_report(key)),
        );
    }

    /// Shutdown: from now on nothing is added or restarted; halts every child, youngest
    /// first, each after its current message and `on_stop` (bounded by its stop timeout).
    pub(crate) async fn halt_all(&self) {
        let children = {
            let mut table = lock(&self.table);
            table.closed = true;
            let mut children: Vec<(u64, Arc<dyn Child>)> = table
                .slots
                .iter()
                .flatten()
                .map(|slot| (slot.order, Arc::clone(&slot.child)))
                .collect();
            children.sort_by_key(|(order, _)| std::cmp::Reverse(*order));
            children
        };
        for (_, child) in children {
            child.halt().await;
        }
    }

    /// The runtime was dropped without shutdown: kill every child at once, never wait.
    pub(crate) fn kill_all(&self) {
        let children: Vec<Arc<dyn Child>> = {
            let mut table = lock(&self.table);
            table.closed = true;
            table
                .slots
                .iter()
                .flatten()
                .map(|slot| Arc::clone(&slot.child))
                .collect()
        };
        for child in children {
            child.kill();
        }
    }
}
