//! An exhaustive interleaving check of the wake-up hand-off in [`super::dispatch`].
//!
//! The protocol is modelled step by step — one step per atomic operation of the real code —
//! and every interleaving of a few producers, consumers and one consumer restart is
//! explored. In every state where nothing can run any more, no message may be left queued
//! (a message waiting while its consumer sleeps is a lost wake-up), and every message is
//! handled exactly once.
//!
//! Steps, as in the real code:
//! - producer: `push` (ring) → load an idle word → `fetch_and` one bit → `wake` that slot;
//! - consumer (the cell's loop and `wait_for_work`): `pop` → `register` waker → set idle bit
//!   (`park`) → `pop` again → on a message clear its bit (`busy`), else return `Pending`;
//! - a consumer that stops: clear its bit, then if messages are queued, notify as a
//!   producer does (`detach`); its replacement starts only after it ended.
//! - `AtomicWaker::wake` takes the registered waker and schedules its task; a task woken
//!   before it returned `Pending` is polled again.

use std::collections::HashSet;

const CONSUMERS: usize = 2;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Producer {
    /// About to push message.
    Push,
    /// About to load the idle word.
    Load,
    /// Loaded `bits`; about to `fetch_and` its lowest bit.
    Clear(u8),
    /// Cleared consumer `i`'s bit; about to wake it.
    Wake(usize),
    Done,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Consumer {
    /// Running: about to pop (the batch loop).
    Pop,
    Register,
    SetBit,
    Recheck,
    /// Found a message on the re-check: about to clear its bit.
    Busy,
    /// Returned `Pending`; runs again once its task is scheduled.
    Asleep,
    /// Stopping: about to clear its bit.
    Detach,
    /// Detached: about to look at the queue and notify (as `Producer::Load`).
    DetachNotify(Box<Producer>),
    Done,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct State {
    queued: u8,
    handled: u8,
    bits: u8,
    /// A waker is registered in slot `i`.
    registered: [bool; CONSUMERS],
    /// Consumer `i`'s task was scheduled by a wake (polled again after `Pending`).
    scheduled: [bool; CONSUMERS],
    producers: Vec<Producer>,
    consumers: [Consumer; CONSUMERS],
    /// Restarts of consumer 0 still to happen.
    restarts: u8,
}

impl State {
    fn wake(&mut self, index: usize) {
        if std::mem::take(&mut self.registered[index]) {
            self.scheduled[index] = true;
        }
    }

    /// One notify step shared by producers and detaching consumers.
    fn notify_step(&mut self, step: Producer) -> Producer {
        match step {
            Producer::Load => {
                if self.bits == 0 {
                    Producer::Done
                } else {
                    Producer::Clear(self.bits)
                }
            }
            Producer::Clear(seen) => {
                let bit = seen & seen.wrapping_neg();
                let before = self.bits;
                self.bits &= !bit;
                if before & bit != 0 {
                    Producer::Wake(bit.trailing_zeros() as usize)
                } else if before & !bit == 0 {
                    Producer::Done
                } else {
                    Producer::Clear(before & !bit)
                }
            }
            Producer::Wake(index) => {
                self.wake(index);
                Producer::Done
            }
            other => other,
        }
    }

    fn successors(&self) -> Vec<State> {
        let mut next = Vec::new();
        for (p, step) in self.producers.iter().enumerate() {
            if matches!(step, Producer::Done) {
                continue;
            }
            let mut s = self.clone();
            s.producers[p] = match step.clone() {
                Producer::Push => {
                    s.queued += 1;
                    Producer::Load
                }
                other => s.notify_step(other),
            };
            next.push(s);
        }
        for c in 0..CONSUMERS {
            if let Some(s) = self.consumer_step(c) {
                next.push(s);
            }
            if c == 0 && self.restarts > 0 && matches!(self.consumers[0], Consumer::Pop) {
                let mut s = self.clone();
                s.restarts -= 1;
                s.consumers[0] = Consumer::Detach;
                next.push(s);
            }
        }
        next
    }

    fn consumer_step(&self, c: usize) -> Option<State> {
        let mut s = self.clone();
        let bit = 1u8 << c;
        s.consumers[c] = match self.consumers[c].clone() {
            Consumer::Pop if s.queued > 0 => {
                s.queued -= 1;
                s.handled += 1;
                Consumer::Pop
            }
            Consumer::Pop => Consumer::Register,
            Consumer::Register => {
                s.registered[c] = true;
                Consumer::SetBit
            }
            Consumer::SetBit => {
                s.bits |= bit;
                Consumer::Recheck
            }
            Consumer::Recheck if s.queued > 0 => {
                s.queued -= 1;
                s.handled += 1;
                Consumer::Busy
            }
            Consumer::Recheck if std::mem::take(&mut s.scheduled[c]) => Consumer::Pop,
            Consumer::Recheck => Consumer::Asleep,
            Consumer::Busy => {
                s.bits &= !bit;
                Consumer::Pop
            }
            Consumer::Asleep if std::mem::take(&mut s.scheduled[c]) => Consumer::Pop,
            Consumer::Asleep => return None,
            Consumer::Detach => {
                s.bits &= !bit;
                if s.queued > 0 {
                    Consumer::DetachNotify(Box::new(Producer::Load))
                } else {
                    s.fresh_incarnation(c);
                    Consumer::Pop
                }
            }
            Consumer::DetachNotify(step) => match s.notify_step(*step) {
                Producer::Done => {
                    s.fresh_incarnation(c);
                    Consumer::Pop
                }
                other => Consumer::DetachNotify(Box::new(other)),
            },
            Consumer::Done => return None,
        };
        Some(s)
    }

    /// The old incarnation ended; its waker is gone, the new one starts running.
    fn fresh_incarnation(&mut self, c: usize) {
        self.registered[c] = false;
        self.scheduled[c] = false;
    }
}

fn explore(producers: usize, restarts: u8) -> usize {
    let initial = State {
        queued: 0,
        handled: 0,
        bits: 0,
        registered: [false; CONSUMERS],
        scheduled: [false; CONSUMERS],
        producers: vec![Producer::Push; producers],
        consumers: [Consumer::Pop, Consumer::Pop],
        restarts,
    };
    let mut seen = HashSet::new();
    let mut stack = vec![initial];
    let mut terminal = 0;
    while let Some(state) = stack.pop() {
        if !seen.insert(state.clone()) {
            continue;
        }
        let next = state.successors();
        if next.is_empty() {
            terminal += 1;
            assert_eq!(
                state.queued, 0,
                "a message waits while every consumer sleeps: {state:#?}"
            );
            assert_eq!(state.handled as usize, producers, "{state:#?}");
        }
        stack.extend(next);
    }
    assert!(terminal > 0);
    seen.len()
}

#[test]
fn no_interleaving_loses_a_wake_up() {
    for producers in 1..=3 {
        let states = explore(producers, 0);
        assert!(states > 10, "{producers} producers: only {states} states");
    }
}

#[test]
fn no_interleaving_loses_a_wake_up_across_a_consumer_restart() {
    for producers in 1..=3 {
        explore(producers, 1);
    }
}

/// The check can fail: a consumer that skips the re-check after setting its bit (a
/// classic lost wake-up) is caught.
#[test]
fn the_check_catches_a_protocol_without_the_recheck() {
    let broken = std::panic::catch_unwind(|| {
        let mut stack = vec![State {
            queued: 0,
            handled: 0,
            bits: 0,
            registered: [false; CONSUMERS],
            scheduled: [false; CONSUMERS],
            producers: vec![Producer::Push],
            // Consumer 1 is already done; consumer 0 sets its bit before registering.
            consumers: [Consumer::Pop, Consumer::Done],
            restarts: 0,
        }];
        let mut seen = HashSet::new();
        while let Some(state) = stack.pop() {
            if !seen.insert(state.clone()) {
                continue;
            }
            let next: Vec<State> = state
                .successors()
                .into_iter()
                .map(|mut s| {
                    // Break the protocol: go to sleep right after setting the bit.
                    if s.consumers[0] == Consumer::Recheck {
                        s.consumers[0] = Consumer::Asleep;
                    }
                    s
                })
                .collect();
            if next.is_empty() {
                assert_eq!(state.queued, 0);
            }
            stack.extend(next);
        }
    });
    assert!(broken.is_err(), "the model must reject a lost wake-up");
}
