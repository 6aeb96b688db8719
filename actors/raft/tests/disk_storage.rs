//! `DiskStorage` on the power-loss double and on real files: what is persisted comes
//! back, a `Ready` is atomic across a crash, and damage is a typed error.

use std::sync::Arc;

use raft::prelude::{ConfState, Entry, HardState};
use raft::Storage;
use vortex_actors::journal::io::MemoryFileSystem;
use vortex_actors::journal::{Journal, JournalConfig, PendingRecord};
use vortex_raft::storage::Persist;
use vortex_raft::{DiskStorage, RaftError, RaftStorage};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("entry {index} of term {term}").into_bytes().into(),
        ..Entry::default()
    }
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    }
}

fn open(fs: &MemoryFileSystem) -> Result<RaftStorage, RaftError> {
    let config = JournalConfig {
        segment_bytes: 64 << 10,
        ..JournalConfig::default()
    };
    DiskStorage::open_with(Arc::new(fs.clone()), "/peer/log", config, &[1, 2, 3])
        .map(RaftStorage::Disk)
}

fn terms(storage: &RaftStorage) -> Vec<u64> {
    let last = storage.last_index().unwrap();
    (1..=last)
        .map(|index| storage.term(index).unwrap())
        .collect()
}

#[test]
fn entries_hard_state_and_configuration_survive_a_crash() {
    let fs = MemoryFileSystem::new();
    let mut storage = open(&fs).unwrap();
    assert_eq!(
        storage.initial_state().unwrap().conf_state.voters,
        vec![1, 2, 3]
    );
    let entries: Vec<Entry> = (1..=4).map(|index| entry(index, 1)).collect();
    storage
        .persist(Persist {
            entries: &entries,
            hard_state: Some(&hard_state(1, 2, 3)),
            conf_state: None,
        })
        .unwrap();
    let conf = ConfState::from((vec![1, 2, 3, 4], Vec::new()));
    storage
        .persist(Persist {
            conf_state: Some(&conf),
            ..Persist::default()
        })
        .unwrap();
    drop(storage);
    for seed in 0..20 {
        let reopened = open(&fs.crash(seed)).unwrap();
        let state = reopened.initial_state().unwrap();
        assert_eq!(state.hard_state, hard_state(1, 2, 3), "the vote is durable");
        assert_eq!(state.conf_state.voters, vec![1, 2, 3, 4]);
        assert_eq!(terms(&reopened), vec![1, 1, 1, 1]);
        let read = reopened
            .entries(1, 5, None, raft::GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(read, entries);
    }
}

#[test]
fn a_conflicting_suffix_is_replaced_on_replay_as_it_was_when_written() {
    let fs = MemoryFileSystem::new();
    let mut storage = open(&fs).unwrap();
    let first: Vec<Entry> = (1..=5).map(|index| entry(index, 1)).collect();
    storage
        .persist(Persist {
            entries: &first,
            ..Persist::default()
        })
        .unwrap();
    let second = vec![entry(3, 2), entry(4, 2)];
    storage
        .persist(Persist {
            entries: &second,
            hard_state: Some(&hard_state(2, 0, 2)),
            conf_state: None,
        })
        .unwrap();
    assert_eq!(terms(&storage), vec![1, 1, 2, 2]);
    drop(storage);
    let reopened = open(&fs.crash(1)).unwrap();
    assert_eq!(terms(&reopened), vec![1, 1, 2, 2]);
}

#[test]
fn a_ready_cut_by_a_power_loss_is_kept_whole_or_not_at_all() {
    let mut outcomes = std::collections::BTreeSet::new();
    for calls in 1..24 {
        for seed in 0..8 {
            let fs = MemoryFileSystem::new();
            let mut storage = open(&fs).unwrap();
            let before: Vec<Entry> = (1..=2).map(|index| entry(index, 1)).collect();
            storage
                .persist(Persist {
                    entries: &before,
                    hard_state: Some(&hard_state(1, 1, 1)),
                    conf_state: None,
                })
                .unwrap();
            fs.cut_power_after(Some(calls));
            let batch: Vec<Entry> = (3..=6).map(|index| entry(index, 2)).collect();
            let written = storage.persist(Persist {
                entries: &batch,
                hard_state: Some(&hard_state(2, 3, 5)),
                conf_state: None,
            });
            drop(storage);
            let reopened = open(&fs.crash(seed)).unwrap();
            let state = reopened.initial_state().unwrap().hard_state;
            let last = reopened.last_index().unwrap();
            match (last, state.term) {
                (2, 1) => assert!(written.is_err(), "an acknowledged Ready was lost"),
                (6, 2) => assert_eq!(state, hard_state(2, 3, 5)),
                other => panic!("a torn Ready: last index and term {other:?}"),
            }
            outcomes.insert(last);
        }
    }
    assert_eq!(outcomes.len(), 2, "both outcomes were exercised");
}

#[test]
fn an_unknown_record_is_a_typed_error_not_a_guess() {
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("log");
    let (mut journal, _) = Journal::open(&log, JournalConfig::default()).unwrap();
    journal
        .append(PendingRecord::raw(0x7777, b"not raft".to_vec()))
        .unwrap();
    drop(journal);
    match DiskStorage::open(&log, &[1]) {
        Err(RaftError::Corrupt(reason)) => assert!(reason.contains("unknown record kind")),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn real_files_reopen_with_what_was_written() {
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("log");
    let mut storage = RaftStorage::Disk(DiskStorage::open(&log, &[1]).unwrap());
    let entries: Vec<Entry> = (1..=3).map(|index| entry(index, 1)).collect();
    storage
        .persist(Persist {
            entries: &entries,
            hard_state: Some(&hard_state(1, 1, 3)),
            conf_state: None,
        })
        .unwrap();
    drop(storage);
    let reopened = RaftStorage::Disk(DiskStorage::open(&log, &[9]).unwrap());
    assert_eq!(reopened.initial_state().unwrap().conf_state.voters, vec![1]);
    assert_eq!(terms(&reopened), vec![1, 1, 1]);
}
