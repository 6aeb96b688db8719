//! A small Wing–Gong–Lowe linearizability checker for a map of registers.
//!
//! The history is split by key (a map of independent registers is linearizable when
//! each register is: linearizability is compositional), and each key's history is
//! searched with Lowe's just-in-time linearization: walk the events in time order; at a
//! call, try to linearize that operation now (it must be legal in the current state)
//! and restart from the first event; at a return whose operation is not linearized
//! yet, backtrack. A cache of (linearized set, state) pairs already explored keeps the
//! search from repeating itself.
//!
//! An operation whose outcome is unknown (a write that may or may not have been
//! applied) has no return: it may be linearized at any point after its call, or never.
//! The search succeeds once every operation that returned is linearized.

use std::collections::{BTreeMap, HashSet};

/// A register operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Write `value`.
    Put(u64),
    /// Read; `Some(value)` is what was read (0 when never written).
    Get(u64),
}

/// One operation of a history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operation {
    /// The register.
    pub key: u8,
    /// What it did.
    pub op: Op,
    /// When it was called (a global event counter).
    pub call: u64,
    /// When it returned; `None` when its outcome is unknown.
    pub ret: Option<u64>,
}

/// Whether `history` is linearizable; on failure, the first key whose history is not.
pub(crate) fn check(history: &[Operation]) -> Result<(), u8> {
    let mut by_key: BTreeMap<u8, Vec<Operation>> = BTreeMap::new();
    for operation in history {
        by_key.entry(operation.key).or_default().push(*operation);
    }
    for (key, operations) in by_key {
        if !check_register(&operations) {
            return Err(key);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Event {
    operation: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// The linked list of events, with a head sentinel at index 0.
struct Events {
    events: Vec<Event>,
    /// Per operation: its call and return event indices.
    of: Vec<(usize, Option<usize>)>,
}

impl Events {
    fn new(operations: &[Operation]) -> Self {
        let mut raw: Vec<(u64, bool, usize)> = Vec::new();
        for (index, operation) in operations.iter().enumerate() {
            raw.push((operation.call, true, index));
            if let Some(ret) = operation.ret {
                raw.push((ret, false, index));
            }
        }
        // At equal times a call sorts after a return: the operations do not overlap.
        raw.sort_by_key(|&(time, is_call, _)| (time, is_call));
        let mut events = vec![Event {
            operation: usize::MAX,
            is_call: false,
            prev: 0,
            next: usize::MAX,
        }];
        let mut of = vec![(0, None); operations.len()];
        for (_, is_call, operation) in raw {
            let index = events.len();
            events.push(Event {
                operation,
                is_call,
                prev: index - 1,
                next: usize::MAX,
            });
            events[index - 1].next = index;
            if is_call {
                of[operation].0 = index;
            } else {
                of[operation].1 = Some(index);
            }
        }
        Self { events, of }
    }

    fn unlink(&mut self, index: usize) {
        let Event { prev, next, .. } = self.events[index];
        self.events[prev].next = next;
        if next != usize::MAX {
            self.events[next].prev = prev;
        }
    }

    fn relink(&mut self, index: usize) {
        let Event { prev, next, .. } = self.events[index];
        self.events[prev].next = index;
        if next != usize::MAX {
            self.events[next].prev = index;
        }
    }

    /// Takes an operation's call and return out of the list.
    fn lift(&mut self, operation: usize) {
        let (call, ret) = self.of[operation];
        self.unlink(call);
        if let Some(ret) = ret {
            self.unlink(ret);
        }
    }

    /// Puts them back (in the reverse order of `lift`).
    fn unlift(&mut self, operation: usize) {
        let (call, ret) = self.of[operation];
        if let Some(ret) = ret {
            self.relink(ret);
        }
        self.relink(call);
    }

    /// True when no return is left in the list: every completed operation is
    /// linearized.
    fn only_calls_left(&self) -> bool {
        let mut index = self.events[0].next;
        while index != usize::MAX {
            if !self.events[index].is_call {
                return false;
            }
            index = self.events[index].next;
        }
        true
    }
}

fn step(state: u64, op: Op) -> Option<u64> {
    match op {
        Op::Put(value) => Some(value),
        Op::Get(value) if value == state => Some(state),
        Op::Get(_) => None,
    }
}

fn check_register(operations: &[Operation]) -> bool {
    let mut events = Events::new(operations);
    let words = operations.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, u64)> = HashSet::new();
    let mut stack: Vec<(usize, u64)> = Vec::new();
    let mut state = 0;
    let mut entry = events.events[0].next;
    loop {
        if events.only_calls_left() {
            return true;
        }
        if entry == usize::MAX {
            // Only unknown calls were left after this point: back up.
            let Some((call, previous)) = stack.pop() else {
                return false;
            };
            let operation = events.events[call].operation;
            events.unlift(operation);
            linearized[operation / 64] &= !(1 << (operation % 64));
            state = previous;
            entry = events.events[call].next;
            continue;
        }
        let event = events.events[entry];
        if event.is_call {
            let operation = event.operation;
            if let Some(next) = step(state, operations[operation].op) {
                let mut candidate = linearized.clone();
                candidate[operation / 64] |= 1 << (operation % 64);
                if cache.insert((candidate.clone(), next)) {
                    stack.push((entry, state));
                    linearized = candidate;
                    state = next;
                    events.lift(operation);
                    entry = events.events[0].next;
                    continue;
                }
            }
            entry = event.next;
        } else {
            // A return whose operation could not be linearized before it: back up.
            let Some((call, previous)) = stack.pop() else {
                return false;
            };
            let operation = events.events[call].operation;
            events.unlift(operation);
            linearized[operation / 64] &= !(1 << (operation % 64));
            state = previous;
            entry = events.events[call].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: Op, call: u64, ret: Option<u64>) -> Operation {
        Operation {
            key: 1,
            op,
            call,
            ret,
        }
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let history = [
            op(Op::Get(0), 1, Some(2)),
            op(Op::Put(5), 3, Some(4)),
            op(Op::Get(5), 5, Some(6)),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        let history = [
            op(Op::Put(1), 1, Some(10)),
            op(Op::Get(1), 2, Some(3)),
            op(Op::Get(0), 4, Some(5)),
        ];
        // Get(1) then Get(0) cannot both hold: once 1 is visible it stays.
        assert_eq!(check(&history), Err(1));
        let history = [
            op(Op::Put(1), 1, Some(10)),
            op(Op::Get(0), 2, Some(3)),
            op(Op::Get(1), 4, Some(5)),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_rejected() {
        let history = [op(Op::Put(7), 1, Some(2)), op(Op::Get(0), 3, Some(4))];
        assert_eq!(check(&history), Err(1));
    }

    #[test]
    fn a_read_of_a_write_from_the_future_is_rejected() {
        let history = [op(Op::Get(9), 1, Some(2)), op(Op::Put(9), 3, Some(4))];
        assert_eq!(check(&history), Err(1));
    }

    #[test]
    fn an_unknown_write_may_have_happened_or_not() {
        let applied = [
            op(Op::Put(3), 1, None),
            op(Op::Get(0), 2, Some(3)),
            op(Op::Get(3), 4, Some(5)),
        ];
        assert_eq!(check(&applied), Ok(()));
        let never = [op(Op::Put(3), 1, None), op(Op::Get(0), 2, Some(3))];
        assert_eq!(check(&never), Ok(()));
        // But not before it was called.
        let early = [op(Op::Get(3), 1, Some(2)), op(Op::Put(3), 3, None)];
        assert_eq!(check(&early), Err(1));
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut history = vec![op(Op::Put(1), 1, Some(2))];
        history.push(Operation {
            key: 2,
            op: Op::Get(1),
            call: 3,
            ret: Some(4),
        });
        assert_eq!(check(&history), Err(2));
    }

    #[test]
    fn concurrent_writers_and_readers_are_searched() {
        // Two writers overlap; readers see 1 then 2: linearizable (1 before 2).
        let history = [
            op(Op::Put(1), 1, Some(8)),
            op(Op::Put(2), 2, Some(9)),
            op(Op::Get(1), 3, Some(4)),
            op(Op::Get(2), 5, Some(6)),
            op(Op::Get(2), 10, Some(11)),
        ];
        assert_eq!(check(&history), Ok(()));
        // Readers see 2, then 1, then 2 again: impossible.
        let history = [
            op(Op::Put(1), 1, Some(8)),
            op(Op::Put(2), 2, Some(9)),
            op(Op::Get(2), 3, Some(4)),
            op(Op::Get(1), 5, Some(6)),
            op(Op::Get(2), 10, Some(11)),
        ];
        assert_eq!(check(&history), Err(1));
    }
}
