//! The permissively licensed backend, and the reference the mesocarp one is tested against.

use std::{cmp::Reverse, collections::BTreeMap, collections::BinaryHeap};

use super::{Entry, HORIZON};

/// The permissively licensed backend: a `BTreeMap` from tick to the entries due then.
///
/// Same API and same horizon as the mesocarp backend, so the core behaves the same on
/// both; O(log n) per insert instead of O(1).
#[derive(Debug)]
pub(crate) struct BTreeWheel {
    ticks: BTreeMap<u64, Vec<Entry>>,
    next_tick: u64,
    stored: usize,
    taken: bool,
}

impl BTreeWheel {
    pub(crate) fn new(start: u64) -> Self {
        Self {
            ticks: BTreeMap::new(),
            next_tick: start,
            stored: 0,
            taken: false,
        }
    }

    pub(crate) fn next_tick(&self) -> u64 {
        self.next_tick
    }

    pub(crate) fn first_insertable(&self) -> u64 {
        self.next_tick + u64::from(self.taken)
    }

    pub(crate) fn insert(&mut self, entry: Entry) -> Result<(), Entry> {
        if entry.deadline < self.first_insertable() || entry.deadline - self.next_tick >= HORIZON {
            return Err(entry);
        }
        self.ticks.entry(entry.deadline).or_default().push(entry);
        self.stored += 1;
        Ok(())
    }

    pub(crate) fn take_due(&mut self, out: &mut Vec<Entry>) {
        debug_assert!(!self.taken, "take_due twice for one tick");
        self.taken = true;
        if let Some(entries) = self.ticks.remove(&self.next_tick) {
            self.stored -= entries.len();
            out.extend(entries);
        }
    }

    pub(crate) fn advance(&mut self, limit: u64, _overflow: &mut BinaryHeap<Reverse<Entry>>) {
        debug_assert!(self.taken, "advance before take_due would skip a tick");
        debug_assert!(limit > self.next_tick, "advance needs a later limit");
        self.taken = false;
        self.next_tick = match self.ticks.first_key_value() {
            Some((&tick, _)) if tick < limit => tick,
            _ => limit,
        };
    }

    pub(crate) fn earliest(&self, live: impl Fn(&Entry) -> bool) -> Option<u64> {
        self.ticks
            .iter()
            .find(|(_, entries)| entries.iter().any(&live))
            .map(|(&tick, _)| tick)
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.ticks.retain(|_, entries| {
            entries.retain(&mut keep);
            !entries.is_empty()
        });
        self.stored = self.ticks.values().map(Vec::len).sum();
    }
}
