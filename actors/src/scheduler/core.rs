//! [`Timers`]: the pure timer table, driven by [`Timers::advance_to`].

use std::{cmp::Reverse, collections::BinaryHeap, fmt, mem};

use crate::scheduler::{
    error::Error,
    missed::MissedTicks,
    wheel::{Entry, Wheel, HORIZON},
};

/// Marks "no slot" in the free list.
const NO_SLOT: u32 = u32::MAX;

/// Cancelled entries are swept out of the wheel once there are more of them than live
/// timers (and at least this many), so cancelling costs O(1) amortised and a table that
/// arms and cancels far-future timers in a loop does not grow without bound.
const COMPACT_AT_LEAST: usize = 1024;

/// Names one armed timer of one [`Timers`] table: a slab index plus the generation the
/// slot had when the timer was armed.
///
/// A slot's generation is bumped whenever its timer fires (one-shot), is cancelled or
/// ends, so an old id never reaches a newer timer that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

impl TimerId {
    /// The id as one `u64` (`index << 32 | generation`). The index is never `u32::MAX`,
    /// so the three values above `(u32::MAX - 1) << 32 | u32::MAX` are never an id; the
    /// scheduler actor uses them as timer states.
    pub fn to_bits(self) -> u64 {
        (u64::from(self.index) << 32) | u64::from(self.generation)
    }

    /// The id that [`to_bits`](Self::to_bits) gave `bits`.
    pub fn from_bits(bits: u64) -> Self {
        Self {
            index: (bits >> 32) as u32,
            generation: bits as u32,
        }
    }
}

/// What [`Timers::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "an `AlreadyFired` outcome means the timer fired or was cancelled before"]
pub enum CancelOutcome {
    /// The timer was armed and now never fires; its payload was dropped.
    Cancelled,
    /// Nothing was armed under this id, and nothing changed: the timer already fired (a
    /// one-shot), was already cancelled, ended (an interval past [`Timers::MAX_TICK`]),
    /// or the id comes from another table. Cancelling is idempotent: a second `cancel`
    /// of the same id returns this.
    AlreadyFired,
}

/// One expiry handed to the callback of [`Timers::advance_to`].
///
/// A one-shot gives its payload away by value; an interval lends it, because the
/// interval stays armed (the payload may be changed through the reference).
#[derive(Debug)]
pub enum Fired<'a, T> {
    /// A one-shot timer fired; it is no longer armed.
    Once {
        /// The id it was armed under, now stale.
        id: TimerId,
        /// The tick it was armed for (never later than the tick advanced to).
        deadline: u64,
        /// Its payload, handed over.
        payload: T,
    },
    /// One period of an interval timer fired; it is re-armed for the deadline its
    /// [`MissedTicks`] policy gives (`deadline + period` when on time).
    Interval {
        /// The id it was armed under, still armed.
        id: TimerId,
        /// The tick this period was due at (`first_deadline + n * period` unless a
        /// [`MissedTicks::Delay`] interval moved its grid).
        deadline: u64,
        /// Its payload, lent for this period.
        payload: &'a mut T,
    },
}

impl<T> Fired<'_, T> {
    /// The id the timer was armed under.
    pub fn id(&self) -> TimerId {
        match self {
            Self::Once { id, .. } | Self::Interval { id, .. } => *id,
        }
    }

    /// The tick this expiry was due at.
    pub fn deadline(&self) -> u64 {
        match self {
            Self::Once { deadline, .. } | Self::Interval { deadline, .. } => *deadline,
        }
    }

    /// Whether this is one period of an interval timer.
    pub fn is_interval(&self) -> bool {
        matches!(self, Self::Interval { .. })
    }

    /// The payload, borrowed.
    pub fn payload(&self) -> &T {
        match self {
            Self::Once { payload, .. } => payload,
            Self::Interval { payload, .. } => payload,
        }
    }

    /// The payload, owned: moved out of a one-shot, cloned from an interval.
    pub fn into_owned(self) -> T
    where
        T: Clone,
    {
        match self {
            Self::Once { payload, .. } => payload,
            Self::Interval { payload, .. } => payload.clone(),
        }
    }
}

/// A live interval timer, as listed by [`Timers::intervals`].
#[derive(Debug, Clone, Copy)]
pub struct IntervalTimer<'a, T> {
    /// The id it is armed under.
    pub id: TimerId,
    /// The tick its next period is due at.
    pub next_deadline: u64,
    /// Ticks between two periods.
    pub period: u64,
    /// Its payload.
    pub payload: &'a T,
}

/// A timer ready to fire, with the key it fires in: `(deadline, sequence)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    deadline: u64,
    sequence: u64,
    index: u32,
    generation: u32,
}

impl Ready {
    fn entry(self) -> Entry {
        Entry {
            deadline: self.deadline,
            index: self.index,
            generation: self.generation,
        }
    }
}

/// One slab slot. The payload lives here, never in the wheel.
#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    state: State<T>,
}

#[derive(Debug)]
enum State<T> {
    Vacant { next_free: u32 },
    Once { sequence: u64, payload: T },
    // Boxed: intervals are few, and inline they would make every slot 16 bytes larger.
    Interval(Box<Interval<T>>),
}

#[derive(Debug)]
struct Interval<T> {
    sequence: u64,
    deadline: u64,
    period: u64,
    missed: MissedTicks,
    payload: T,
}

fn is_live<T>(slots: &[Slot<T>], index: u32, generation: u32) -> bool {
    slots.get(index as usize).is_some_and(|slot| {
        slot.generation == generation && !matches!(slot.state, State::Vacant { .. })
    })
}

/// A table of one-shot and interval timers over abstract ticks, on a hierarchical timing
/// wheel. Pure: no async, no I/O, no clock of its own — a driver calls
/// [`advance_to`](Self::advance_to) with the current tick (1 tick = 1 ms in Nexa Vortex,
/// but the table only knows `u64` ticks) and sleeps until
/// [`next_deadline`](Self::next_deadline).
///
/// # Guarantees
///
/// - **Never early.** A timer fires only in an `advance_to(now)` with `deadline <= now`.
/// - **Exactly once per arm.** A one-shot fires once unless cancelled first; each period
///   of an interval fires once.
/// - **Past and current deadlines fire on the next advance.** Arming with
///   `deadline <= now()` fires in the next `advance_to` call, even `advance_to(now())`.
/// - **Beyond the horizon is on time.** Deadlines more than [`Timers::HORIZON`] ticks
///   ahead wait in an overflow map and enter the wheel when they come within reach;
///   they fire at their tick like any other.
/// - **A late driver catches up in order.** One `advance_to` over many ticks fires
///   everything due in them, tick by tick, including every missed period of an interval
///   (its [`MissedTicks`] policy: `Burst`, the default, fires each one; `Skip` and
///   `Delay` fire once).
/// - **Order.** Within one `advance_to`, timers fire in `(deadline, arm sequence)` order:
///   earlier deadlines first, and for equal deadlines the timer armed first (an interval
///   keeps its place from its original arm).
/// - **Intervals do not drift.** Period `n` of an interval is due at
///   `first_deadline + n * period`, however late the driver is (`Delay` intervals move
///   their grid to the late firing instead, by definition).
/// - **Cancel is final.** After [`CancelOutcome::Cancelled`] the timer never fires.
///   Cancel is O(1): the slot's generation is bumped and the wheel entry is dropped when
///   reached (or swept once cancelled entries outnumber live timers).
/// - **Ticks saturate.** Time stops at [`Timers::MAX_TICK`]; a deadline beyond it never
///   fires, and an interval whose next period would pass it ends.
///
/// # Cost
///
/// Arm and cancel are O(1); a fired timer costs O(1) plus its share of sorting its tick.
/// Advancing skips ticks whose wheel slots are empty, so a driver that wakes after a long
/// idle stretch pays per occupied slot, not per elapsed tick; with nothing armed it jumps
/// at once. [`next_deadline`](Self::next_deadline) scans at most the wheel's 256 slots
/// plus the entries of the few slots it must look into.
///
/// # Threads
///
/// The wheel only stores plain `(deadline, slot, generation)` entries; payloads live in
/// the table, so `Timers<T>` is `Send` exactly when `T` is (mesocarp's `Clock` claims
/// `Send` for any content, which would be wrong for payloads):
///
/// ```compile_fail
/// fn require_send<S: Send>() {}
/// require_send::<vortex_actors::scheduler::Timers<std::rc::Rc<u32>>>();
/// ```
///
/// # Example
///
/// ```
/// use vortex_actors::scheduler::{Fired, Timers};
///
/// let mut timers = Timers::new();
/// let once = timers.arm_at(10, "once");
/// let tick = timers.arm_interval(5, 5, "tick").unwrap();
/// assert_eq!(timers.next_deadline(), Some(5));
///
/// let mut seen = Vec::new();
/// timers.advance_to(10, |fired| seen.push((fired.deadline(), *fired.payload()))).unwrap();
/// // Equal deadlines fire in arm order: "once" was armed first.
/// assert_eq!(seen, [(5, "tick"), (10, "once"), (10, "tick")]);
/// assert!(!timers.is_armed(once));
/// assert_eq!(timers.next_deadline(), Some(15));
/// let _ = timers.cancel(tick);
/// assert_eq!(timers.next_deadline(), None);
/// ```
pub struct Timers<T> {
    wheel: Wheel,
    /// Entries due beyond the wheel's horizon, earliest first (mesocarp trap 4).
    overflow: BinaryHeap<Reverse<Entry>>,
    /// Timers armed for a tick the wheel already passed; they fire first in the next
    /// advance. A heap, because catching-up intervals re-enter it.
    due: BinaryHeap<Reverse<Ready>>,
    slots: Vec<Slot<T>>,
    free_head: u32,
    live: usize,
    /// Cancelled entries still sitting in the wheel, the overflow map or `due`.
    tombstones: usize,
    next_sequence: u64,
    now: u64,
    /// Scratch buffers for one tick, kept to reuse their capacity.
    taken: Vec<Entry>,
    batch: Vec<Ready>,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Timers<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Timers")
            .field("now", &self.now)
            .field("len", &self.live)
            .field("tombstones", &self.tombstones)
            .field("overflow", &self.overflow.len())
            .field("due", &self.due.len())
            .finish_non_exhaustive()
    }
}

impl<T> Timers<T> {
    /// Ticks the wheel covers ahead of its next tick (`64 + 64^2 + 64^3 + 64^4`, about
    /// 4 h 44 min at 1 ms per tick). Farther deadlines wait in an overflow map.
    pub const HORIZON: u64 = HORIZON;

    /// The last tick time can reach; [`advance_to`](Self::advance_to) saturates here.
    pub const MAX_TICK: u64 = u64::MAX - 1;

    /// An empty table at tick 0.
    pub fn new() -> Self {
        Self::starting_at(0)
    }

    /// An empty table whose [`now`](Self::now) is `start` (for example the driver's
    /// current millisecond). Any start works; the wheel keeps its own time from 0 and the
    /// table keeps the offset (mesocarp trap 3).
    pub fn starting_at(start: u64) -> Self {
        let start = start.min(Self::MAX_TICK);
        Self {
            wheel: Wheel::new(start),
            overflow: BinaryHeap::new(),
            due: BinaryHeap::new(),
            slots: Vec::new(),
            free_head: NO_SLOT,
            live: 0,
            tombstones: 0,
            next_sequence: 0,
            now: start,
            taken: Vec::new(),
            batch: Vec::new(),
        }
    }

    /// An empty table at tick 0 with room for `capacity` timers before reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut timers = Self::new();
        timers.slots.reserve(capacity);
        timers
    }

    /// The tick of the last [`advance_to`](Self::advance_to) (or the start).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// How many timers are armed (one-shots not yet fired plus live intervals).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Whether `id` names a timer that is still armed.
    pub fn is_armed(&self, id: TimerId) -> bool {
        is_live(&self.slots, id.index, id.generation)
    }

    /// The payload of the armed timer `id`, if it is armed.
    pub fn get(&self, id: TimerId) -> Option<&T> {
        match &self.slots.get(id.index as usize)?.state {
            _ if !self.is_armed(id) => None,
            State::Once { payload, .. } => Some(payload),
            State::Interval(interval) => Some(&interval.payload),
            State::Vacant { .. } => None,
        }
    }

    /// Arms a one-shot timer for the absolute tick `deadline`. A deadline at or before
    /// [`now`](Self::now) fires on the next advance.
    ///
    /// # Panics
    ///
    /// If the table would hold more than `u32::MAX - 1` timers at once.
    pub fn arm_at(&mut self, deadline: u64, payload: T) -> TimerId {
        let sequence = self.take_sequence();
        self.arm(deadline, State::Once { sequence, payload }, sequence)
    }

    /// Arms a one-shot timer `delay` ticks after [`now`](Self::now).
    ///
    /// # Panics
    ///
    /// If the table would hold more than `u32::MAX - 1` timers at once.
    pub fn arm_after(&mut self, delay: u64, payload: T) -> TimerId {
        self.arm_at(self.now.saturating_add(delay), payload)
    }

    /// Arms an interval timer: due at `first_deadline`, then every `period` ticks after
    /// it, until cancelled. A past `first_deadline` fires all its missed periods on the
    /// next advance, in order ([`MissedTicks::Burst`]).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroPeriod`] when `period` is 0; nothing is armed.
    ///
    /// # Panics
    ///
    /// If the table would hold more than `u32::MAX - 1` timers at once.
    pub fn arm_interval(
        &mut self,
        first_deadline: u64,
        period: u64,
        payload: T,
    ) -> Result<TimerId, Error> {
        self.arm_interval_with(first_deadline, period, MissedTicks::Burst, payload)
    }

    /// [`arm_interval`](Self::arm_interval) with the policy `missed` for periods a late
    /// advance finds already past (see [`MissedTicks`]).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroPeriod`] when `period` is 0; nothing is armed.
    ///
    /// # Panics
    ///
    /// If the table would hold more than `u32::MAX - 1` timers at once.
    pub fn arm_interval_with(
        &mut self,
        first_deadline: u64,
        period: u64,
        missed: MissedTicks,
        payload: T,
    ) -> Result<TimerId, Error> {
        if period == 0 {
            return Err(Error::ZeroPeriod);
        }
        let sequence = self.take_sequence();
        let interval = Interval {
            sequence,
            deadline: first_deadline,
            period,
            missed,
            payload,
        };
        Ok(self.arm(
            first_deadline,
            State::Interval(Box::new(interval)),
            sequence,
        ))
    }

    /// Cancels the timer `id`. O(1); see [`CancelOutcome`] for the two answers.
    pub fn cancel(&mut self, id: TimerId) -> CancelOutcome {
        match self.remove(id) {
            Some(_) => CancelOutcome::Cancelled,
            None => CancelOutcome::AlreadyFired,
        }
    }

    /// Cancels the timer `id` and hands its payload back (so the caller decides where it
    /// is dropped); `None` when [`cancel`](Self::cancel) would say `AlreadyFired`.
    pub fn remove(&mut self, id: TimerId) -> Option<T> {
        if !self.is_armed(id) {
            return None;
        }
        let payload = match self.free_slot(id.index) {
            State::Once { payload, .. } => payload,
            State::Interval(interval) => interval.payload,
            State::Vacant { .. } => unreachable!("an armed id names an occupied slot"),
        };
        self.tombstones += 1;
        if self.tombstones >= COMPACT_AT_LEAST && self.tombstones > self.live {
            self.sweep_tombstones();
        }
        Some(payload)
    }

    /// Lists the live interval timers, for example to re-arm them elsewhere.
    pub fn intervals(&self) -> impl Iterator<Item = IntervalTimer<'_, T>> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match &slot.state {
                State::Interval(interval) => Some(IntervalTimer {
                    id: TimerId {
                        index: index as u32,
                        generation: slot.generation,
                    },
                    next_deadline: interval.deadline,
                    period: interval.period,
                    payload: &interval.payload,
                }),
                _ => None,
            })
    }

    /// The earliest deadline of an armed timer, or `None` when nothing is armed (the
    /// driver may then sleep until something is armed). A deadline at or before
    /// [`now`](Self::now) means "advance now".
    pub fn next_deadline(&self) -> Option<u64> {
        let slots = &self.slots;
        let live = |entry: &Entry| is_live(slots, entry.index, entry.generation);
        // Everything in `due` is before the wheel's next tick, and the wheel is never
        // later than the overflow map's earliest entry.
        let due = self
            .due
            .iter()
            .map(|Reverse(ready)| ready.entry())
            .filter(live);
        if let Some(deadline) = due.map(|entry| entry.deadline).min() {
            return Some(deadline);
        }
        let overflow_top = self.overflow.peek().map(|Reverse(entry)| *entry);
        match self.wheel.earliest(live) {
            Some(deadline) => Some(match overflow_top.filter(live) {
                Some(entry) => deadline.min(entry.deadline),
                None => deadline,
            }),
            None => self
                .overflow
                .iter()
                .map(|Reverse(entry)| *entry)
                .filter(live)
                .map(|entry| entry.deadline)
                .min(),
        }
    }

    /// Moves time to `now` and calls `on_fire` for every timer due at or before it, in
    /// `(deadline, arm sequence)` order. Returns how many fired.
    ///
    /// `now` above [`MAX_TICK`](Self::MAX_TICK) counts as `MAX_TICK`. Timers armed
    /// after this call with a deadline at or before `now` fire on the next call.
    ///
    /// # Errors
    ///
    /// [`Error::TimeWentBackwards`] when `now` is before [`now()`](Self::now); nothing
    /// fires and nothing changes.
    pub fn advance_to(
        &mut self,
        now: u64,
        mut on_fire: impl FnMut(Fired<'_, T>),
    ) -> Result<usize, Error> {
        if now < self.now {
            return Err(Error::TimeWentBackwards {
                now: self.now,
                requested: now,
            });
        }
        let target = now.min(Self::MAX_TICK);
        let mut fired = 0;
        while let Some(Reverse(ready)) = self.due.pop() {
            fired += usize::from(self.fire(ready, target, &mut on_fire));
        }
        while self.wheel.next_tick() <= target {
            self.bring_overflow_within_reach();
            fired += self.fire_next_tick(target, &mut on_fire);
            let mut limit = target + 1;
            if let Some(Reverse(entry)) = self.overflow.peek() {
                // Stop where the earliest overflow entry comes within the horizon.
                limit = limit.min(entry.deadline - HORIZON + 1);
            }
            self.wheel.advance(limit, &mut self.overflow);
        }
        self.now = target;
        Ok(fired)
    }

    fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    fn arm(&mut self, deadline: u64, state: State<T>, sequence: u64) -> TimerId {
        let id = self.occupy_slot(state);
        self.live += 1;
        self.schedule(Ready {
            deadline,
            sequence,
            index: id.index,
            generation: id.generation,
        });
        id
    }

    /// Puts a timer where its deadline belongs: the due heap (already passed), the wheel
    /// (within the horizon) or the overflow map (beyond it).
    fn schedule(&mut self, ready: Ready) {
        if ready.deadline < self.wheel.first_insertable() {
            self.due.push(Reverse(ready));
        } else if let Err(entry) = self.wheel.insert(ready.entry()) {
            self.overflow.push(Reverse(entry));
        }
    }

    fn occupy_slot(&mut self, state: State<T>) -> TimerId {
        if self.free_head != NO_SLOT {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            let State::Vacant { next_free } = mem::replace(&mut slot.state, state) else {
                unreachable!("the free list only links vacant slots");
            };
            self.free_head = next_free;
            return TimerId {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len())
            .ok()
            .filter(|&index| index != NO_SLOT)
            .expect("a timer table holds at most u32::MAX - 1 timers at once");
        self.slots.push(Slot {
            generation: 0,
            state,
        });
        TimerId {
            index,
            generation: 0,
        }
    }

    /// Empties a slot and bumps its generation, so ids and wheel entries of the old
    /// timer no longer match it. A slot whose generation would wrap is retired instead
    /// of reused, so a stale id can never match again.
    fn free_slot(&mut self, index: u32) -> State<T> {
        self.live -= 1;
        let slot = &mut self.slots[index as usize];
        let old = mem::replace(&mut slot.state, State::Vacant { next_free: NO_SLOT });
        if slot.generation < u32::MAX {
            slot.generation += 1;
            slot.state = State::Vacant {
                next_free: self.free_head,
            };
            self.free_head = index;
        }
        old
    }

    fn sweep_tombstones(&mut self) {
        let slots = &self.slots;
        let live = |index, generation| is_live(slots, index, generation);
        self.wheel
            .retain(|entry| live(entry.index, entry.generation));
        self.overflow
            .retain(|Reverse(entry)| live(entry.index, entry.generation));
        self.due
            .retain(|Reverse(ready)| live(ready.index, ready.generation));
        self.tombstones = 0;
    }

    /// Moves overflow entries that came within the horizon into the wheel, dropping
    /// cancelled ones on the way.
    fn bring_overflow_within_reach(&mut self) {
        let reach = self.wheel.next_tick().saturating_add(HORIZON);
        while let Some(&Reverse(entry)) = self.overflow.peek() {
            if entry.deadline >= reach {
                break;
            }
            self.overflow.pop();
            if !is_live(&self.slots, entry.index, entry.generation) {
                self.tombstones -= 1;
            } else if let Err(entry) = self.wheel.insert(entry) {
                unreachable!("an entry within the horizon fits the wheel: {entry:?}");
            }
        }
    }

    /// Takes the wheel's next tick and fires its timers in arm order.
    fn fire_next_tick(&mut self, now: u64, on_fire: &mut impl FnMut(Fired<'_, T>)) -> usize {
        let mut taken = mem::take(&mut self.taken);
        let mut batch = mem::take(&mut self.batch);
        self.wheel.take_due(&mut taken);
        for entry in taken.drain(..) {
            // Cancelled entries sort first and are dropped by `fire`.
            let sequence = match self.slots.get(entry.index as usize).map(|slot| &slot.state) {
                Some(State::Once { sequence, .. }) => *sequence,
                Some(State::Interval(interval)) => interval.sequence,
                _ => 0,
            };
            batch.push(Ready {
                deadline: entry.deadline,
                sequence,
                index: entry.index,
                generation: entry.generation,
            });
        }
        batch.sort_unstable();
        let mut fired = 0;
        for ready in batch.drain(..) {
            fired += usize::from(self.fire(ready, now, on_fire));
        }
        self.taken = taken;
        self.batch = batch;
        fired
    }

    /// Fires one timer if it is still armed; re-arms an interval by its policy, `now`
    /// being the tick advanced to. Returns whether it fired.
    fn fire(&mut self, ready: Ready, now: u64, on_fire: &mut impl FnMut(Fired<'_, T>)) -> bool {
        if !is_live(&self.slots, ready.index, ready.generation) {
            self.tombstones -= 1;
            return false;
        }
        let id = TimerId {
            index: ready.index,
            generation: ready.generation,
        };
        let deadline = ready.deadline;
        let next = match &mut self.slots[ready.index as usize].state {
            State::Interval(interval) => {
                on_fire(Fired::Interval {
                    id,
                    deadline,
                    payload: &mut interval.payload,
                });
                let next = interval
                    .missed
                    .next_deadline(deadline, interval.period, now)
                    .filter(|&next| next <= Self::MAX_TICK);
                if let Some(next) = next {
                    interval.deadline = next;
                }
                next
            }
            _ => {
                let State::Once { payload, .. } = self.free_slot(ready.index) else {
                    unreachable!("a live slot that is not an interval is a one-shot");
                };
                on_fire(Fired::Once {
                    id,
                    deadline,
                    payload,
                });
                return true;
            }
        };
        match next {
            Some(deadline) => self.schedule(Ready { deadline, ..ready }),
            None => drop(self.free_slot(ready.index)),
        }
        true
    }
}

#[cfg(test)]
mod tests;
