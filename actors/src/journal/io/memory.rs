//! [`MemoryFileSystem`]: an in-memory file system that remembers what is durable, for
//! crash tests.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::crash::{CrashCases, Inode, SplitMix64};
use super::{FileSystem, StorageFile};

/// EIO on Linux and macOS.
const EIO: i32 = 5;
/// ENOSPC on Linux and macOS.
const ENOSPC: i32 = 28;

/// An in-memory file system that models what a power loss keeps.
///
/// * File data lives in 4 KiB pages. Until the file's `sync_data`, each dirty page may
///   persist or not, at any version it went through, or torn at a 512-byte sector
///   boundary, independently of the others; the size persists old or new. `sync_data`
///   makes data and size durable (see the `crash` module for the page model).
/// * Creations, renames and removals are volatile until `sync_dir` of the parent.
/// * [`MemoryFileSystem::crash`] returns the disk as a reboot would find it, chosen by a
///   seed, so that a failing case replays from its seed; [`MemoryFileSystem::crash_counted`]
///   also says which [`CrashCases`] that crash produced.
/// * Faults: an EIO on the n-th fsync (file or directory; the failed sync's pages are then
///   lost for good, as Linux may drop them), ENOSPC once a byte budget is spent (a write
///   lands partially; `allocate` fails whole), failing renames, and a power cut after the
///   n-th mutating call ([`MemoryFileSystem::cut_power_after`]), after which every
///   mutating call fails with EIO and changes nothing.
///
/// Directories are implicit: every path has a parent, and `create_dir_all` does nothing.
#[derive(Debug, Clone, Default)]
pub struct MemoryFileSystem {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default, Clone)]
struct MemoryState {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    fsync_calls: u64,
    fail_fsync_at: Option<u64>,
    space_left: Option<u64>,
    fail_renames: bool,
    /// Mutating calls left before the power goes.
    power_left: Option<u64>,
    /// True once a call was refused for want of power.
    power_off: bool,
}

#[derive(Debug)]
struct MemoryFile {
    state: Arc<Mutex<MemoryState>>,
    inode: u64,
}

impl MemoryFileSystem {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        lock(&self.state)
    }

    /// Makes the `number`-th fsync from now (1 = the next one) fail with EIO.
    pub fn fail_fsync_number(&self, number: u64) {
        let mut state = self.lock();
        state.fail_fsync_at = Some(state.fsync_calls + number);
    }

    /// Lets only `bytes` more bytes be allocated before writes fail with ENOSPC;
    /// `None` lifts the limit. Writes inside allocated space need no budget.
    pub fn limit_space(&self, bytes: Option<u64>) {
        self.lock().space_left = bytes;
    }

    /// Makes every rename fail with EIO while `fail` is true.
    pub fn fail_renames(&self, fail: bool) {
        self.lock().fail_renames = fail;
    }

    /// Lets `calls` more mutating calls (write, set_len, allocate, sync, create, rename,
    /// remove, directory sync) through, then cuts the power: every later mutating call
    /// fails with EIO and changes nothing. `None` keeps the power on.
    pub fn cut_power_after(&self, calls: Option<u64>) {
        self.lock().power_left = calls;
    }

    /// True once a power cut armed with [`MemoryFileSystem::cut_power_after`] refused a
    /// call.
    pub fn power_is_off(&self) -> bool {
        self.lock().power_off
    }

    /// The current (page-cache) contents of a file, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.names.get(path)?;
        Some(state.inodes[inode].current.clone())
    }

    /// Creates or replaces a file with `bytes`, already durable, name included.
    pub fn write_durable_file(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.lock();
        let inode = state.allocate(Inode::durable(bytes.to_vec()));
        state.names.insert(path.to_path_buf(), inode);
        state.durable_names.insert(path.to_path_buf(), inode);
    }

    /// The names of all files, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().names.keys().cloned().collect()
    }

    /// An independent copy of this file system as it is now, page cache and power
    /// switch included.
    pub fn duplicate(&self) -> MemoryFileSystem {
        MemoryFileSystem {
            state: Arc::new(Mutex::new(self.lock().clone())),
        }
    }

    /// The disk after a power loss, as a new independent file system with the power on;
    /// `seed` picks what of the un-synced state survives. This file system is left as
    /// it was.
    pub fn crash(&self, seed: u64) -> MemoryFileSystem {
        self.crash_counted(seed).0
    }

    /// Like [`MemoryFileSystem::crash`], and which crash cases this crash produced.
    pub fn crash_counted(&self, seed: u64) -> (MemoryFileSystem, CrashCases) {
        let state = self.lock();
        let mut random = SplitMix64(seed);
        let mut cases = CrashCases {
            crashes: 1,
            ..CrashCases::default()
        };
        state.count_lost_names(&mut cases);
        let mut survivor = MemoryState::default();
        let mut images: HashMap<u64, u64> = HashMap::new();
        for (path, inode) in &state.durable_names {
            let new_inode = match images.get(inode) {
                Some(&new_inode) => new_inode,
                None => {
                    let contents = state.inodes[inode].after_crash(&mut random, &mut cases);
                    let new_inode = survivor.allocate(Inode::durable(contents));
                    images.insert(*inode, new_inode);
                    new_inode
                }
            };
            survivor.names.insert(path.clone(), new_inode);
            survivor.durable_names.insert(path.clone(), new_inode);
        }
        let after = MemoryFileSystem {
            state: Arc::new(Mutex::new(survivor)),
        };
        (after, cases)
    }
}

fn lock(state: &Mutex<MemoryState>) -> MutexGuard<'_, MemoryState> {
    // A panic while holding the lock leaves the maps consistent (every change is one
    // insert or one assignment), so a poisoned lock is safe to reuse.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn power_cut() -> io::Error {
    io::Error::from_raw_os_error(EIO)
}

impl MemoryState {
    fn allocate(&mut self, inode: Inode) -> u64 {
        self.next_inode += 1;
        self.inodes.insert(self.next_inode, inode);
        self.next_inode
    }

    /// Counts one mutating call against the power budget; fails once the power is off.
    fn spend_power(&mut self) -> io::Result<()> {
        match self.power_left.as_mut() {
            Some(0) => {
                self.power_off = true;
                Err(power_cut())
            }
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts an fsync; true when this one is the injected failure.
    fn fsync_fails(&mut self) -> bool {
        self.fsync_calls += 1;
        self.fail_fsync_at == Some(self.fsync_calls)
    }

    fn inode(&mut self, inode: u64) -> &mut Inode {
        self.inodes
            .get_mut(&inode)
            .expect("open files keep their inode")
    }

    /// Takes `wanted` bytes from the space budget; returns how many were granted.
    fn take_space(&mut self, wanted: u64) -> u64 {
        match self.space_left.as_mut() {
            Some(left) => {
                let granted = wanted.min(*left);
                *left -= granted;
                granted
            }
            None => wanted,
        }
    }

    /// Counts the name changes a crash now would undo.
    fn count_lost_names(&self, cases: &mut CrashCases) {
        let durable_inodes: HashMap<u64, &PathBuf> = self
            .durable_names
            .iter()
            .map(|(path, inode)| (*inode, path))
            .collect();
        for (path, inode) in &self.names {
            if self.durable_names.get(path) == Some(inode) {
                continue;
            }
            match durable_inodes.get(inode) {
                Some(_) => cases.lost_renames += 1,
                None => cases.lost_creates += 1,
            }
        }
        let current_inodes: std::collections::HashSet<u64> = self.names.values().copied().collect();
        for (path, inode) in &self.durable_names {
            if !self.names.contains_key(path) && !current_inodes.contains(inode) {
                cases.lost_removes += 1;
            }
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl FileSystem for MemoryFileSystem {
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.lock();
        state.spend_power()?;
        let inode = state.allocate(Inode::default());
        state.names.insert(path.to_path_buf(), inode);
        Ok(Box::new(MemoryFile {
            state: Arc::clone(&self.state),
            inode,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let inode = *self.lock().names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(MemoryFile {
            state: Arc::clone(&self.state),
            inode,
        }))
    }

    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        let names = state
            .names
            .keys()
            .filter(|path| path.parent() == Some(directory))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.spend_power()?;
        if state.fail_renames {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.spend_power()?;
        state
            .names
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, directory: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.spend_power()?;
        if state.fsync_fails() {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let in_directory = |path: &PathBuf| path.parent() == Some(directory);
        state.durable_names.retain(|path, _| !in_directory(path));
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(path, _)| in_directory(path))
            .map(|(path, inode)| (path.clone(), *inode))
            .collect();
        state.durable_names.extend(current);
        Ok(())
    }
}

impl StorageFile for MemoryFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.spend_power()?;
        let end = offset + bytes.len() as u64;
        let allocated = state.inode(self.inode).allocated;
        let wanted = end.saturating_sub(allocated.max(offset));
        let granted = state.take_space(wanted);
        let written = (bytes.len() as u64 - (wanted - granted)) as usize;
        let inode = state.inode(self.inode);
        inode.write(offset as usize, &bytes[..written]);
        inode.allocated = inode.allocated.max(offset + written as u64);
        if granted < wanted {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
        let mut state = lock(&self.state);
        let current = &state.inode(self.inode).current;
        let start = (offset as usize).min(current.len());
        let read = buffer.len().min(current.len() - start);
        buffer[..read].copy_from_slice(&current[start..start + read]);
        Ok(read)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.state).inode(self.inode).current.len() as u64)
    }

    fn set_len(&mut self, length: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.spend_power()?;
        state.inode(self.inode).set_len(length as usize);
        Ok(())
    }

    fn allocate(&mut self, length: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.spend_power()?;
        let allocated = state.inode(self.inode).allocated;
        let wanted = length.saturating_sub(allocated);
        if state.space_left.is_some_and(|left| left < wanted) {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        state.take_space(wanted);
        let inode = state.inode(self.inode);
        inode.extend(length as usize);
        inode.allocated = inode.allocated.max(length);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.spend_power()?;
        let failed = state.fsync_fails();
        // Like Linux after a write-back error: the page cache keeps the new bytes, the
        // disk may never get them, and a retry reports success without writing them.
        state.inode(self.inode).sync(failed);
        if failed {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }
}
