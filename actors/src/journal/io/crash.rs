//! The page model of one file in [`super::MemoryFileSystem`], and what a power loss makes
//! of it.
//!
//! A file has two images: `durable` (what the disk holds) and `current` (what the page
//! cache holds, what reads see). Every change to `current` dirties the 4 KiB pages it
//! touches, and each dirtied page remembers every version it went through since the last
//! `fdatasync`, because write-back may have caught it at any of them. A crash then decides
//! page by page: the disk keeps the durable page, or one of its later versions, or a
//! version torn at a 512-byte sector boundary (its first sectors new, the rest older). The
//! size survives as either the durable or the current one. Nothing ties one page's fate to
//! another's, so a later page may survive without an earlier one.
//!
//! An `fdatasync` makes `current` (data and size) durable. A failed one drops the dirty
//! set without writing it, as Linux does after a write-back error: the page cache keeps
//! the bytes, the disk never gets them, and a later successful sync does not retry them.

use std::collections::BTreeMap;

/// Bytes in a page: the unit write-back persists.
pub(crate) const PAGE_BYTES: usize = 4096;
/// Bytes in a sector: the unit a disk writes atomically.
pub(crate) const SECTOR_BYTES: usize = 512;

/// Crash outcomes a [`super::MemoryFileSystem`] produced, counted over its crashes.
///
/// A property test adds these up over its seeds and asserts that each case occurred, so
/// a change that makes the double tamer (or the workload too gentle to reach a case)
/// fails the test instead of silently proving less.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashCases {
    /// Crashes simulated.
    pub crashes: u64,
    /// Files in which a dirty page survived while an earlier dirty page of the same file
    /// was lost.
    pub later_page_without_earlier: u64,
    /// Pages that survived torn at a sector boundary.
    pub torn_pages: u64,
    /// Renames lost because their directory was not synced (the old name came back).
    pub lost_renames: u64,
    /// Created files lost because their directory was not synced.
    pub lost_creates: u64,
    /// Removals lost because their directory was not synced (the file came back).
    pub lost_removes: u64,
}

impl CrashCases {
    /// Adds another count to this one.
    pub fn add(&mut self, other: &CrashCases) {
        self.crashes += other.crashes;
        self.later_page_without_earlier += other.later_page_without_earlier;
        self.torn_pages += other.torn_pages;
        self.lost_renames += other.lost_renames;
        self.lost_creates += other.lost_creates;
        self.lost_removes += other.lost_removes;
    }
}

/// One file's contents, durable and cached.
#[derive(Debug, Default, Clone)]
pub(crate) struct Inode {
    pub(crate) durable: Vec<u8>,
    pub(crate) current: Vec<u8>,
    /// Page index → the versions it went through since the last sync, oldest first.
    dirty: BTreeMap<usize, Vec<Vec<u8>>>,
    /// Bytes with disk blocks reserved (by `allocate` or by writing them).
    pub(crate) allocated: u64,
}

impl Inode {
    /// A file whose contents are already durable.
    pub(crate) fn durable(contents: Vec<u8>) -> Self {
        Self {
            allocated: contents.len() as u64,
            durable: contents.clone(),
            current: contents,
            dirty: BTreeMap::new(),
        }
    }

    /// Writes `bytes` at `offset` into the page cache.
    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset + bytes.len();
        if self.current.len() < end {
            self.current.resize(end, 0);
        }
        self.current[offset..end].copy_from_slice(bytes);
        self.dirty_range(offset, end);
    }

    /// Truncates or extends the cached file.
    pub(crate) fn set_len(&mut self, length: usize) {
        let old = self.current.len();
        self.current.resize(length, 0);
        self.allocated = self.allocated.min(length as u64);
        // Pages are compared zero-padded, so extending with zeros changes no page: only
        // the size, which a crash keeps old or new.
        self.dirty_range(length, old);
    }

    /// Extends the cached file with zeros to `length` (no-op when already as long).
    pub(crate) fn extend(&mut self, length: usize) {
        if self.current.len() < length {
            self.current.resize(length, 0);
        }
    }

    /// Writes the dirty pages and the size to disk; `failed` drops the dirty pages
    /// unwritten instead. Pages that are not dirty are not written, even where the cache
    /// differs from the disk (after an earlier failed sync).
    pub(crate) fn sync(&mut self, failed: bool) {
        if !failed {
            let length = self.current.len();
            self.durable.resize(length, 0);
            for &page in self.dirty.keys() {
                let start = page * PAGE_BYTES;
                let end = (start + PAGE_BYTES).min(length);
                if start < end {
                    self.durable[start..end].copy_from_slice(&self.current[start..end]);
                }
            }
        }
        self.dirty.clear();
    }

    /// Records the current version of every page in `start..end`.
    fn dirty_range(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        for page in start / PAGE_BYTES..end.div_ceil(PAGE_BYTES) {
            let version = page_of(&self.current, page);
            let versions = self.dirty.entry(page).or_default();
            if versions.is_empty() && version == page_of(&self.durable, page) {
                // Same bytes as on disk (a preallocated zero page, say): nothing to lose.
                continue;
            }
            if versions.last() != Some(&version) {
                versions.push(version);
            }
        }
        self.dirty.retain(|_, versions| !versions.is_empty());
    }

    /// The file as the disk holds it after a power loss.
    pub(crate) fn after_crash(&self, random: &mut SplitMix64, cases: &mut CrashCases) -> Vec<u8> {
        let length = if self.current.len() != self.durable.len() && random.below(2) == 0 {
            self.current.len()
        } else {
            self.durable.len()
        };
        let mut image = self.durable.clone();
        let mut lost_before: Option<usize> = None;
        let mut later_kept = false;
        for (&page, versions) in &self.dirty {
            let old = page_of(&self.durable, page);
            // A third of dirty pages are lost outright; the rest keep one of their
            // versions. (Uniform over versions alone would almost never lose a page
            // that was written many times.)
            let choice = if random.below(3) == 0 {
                0
            } else {
                1 + random.below(versions.len() as u64) as usize
            };
            if choice == 0 {
                lost_before.get_or_insert(page);
                continue;
            }
            let mut kept = versions[choice - 1].clone();
            if random.below(4) == 0 {
                let earlier = if choice >= 2 {
                    &versions[choice - 2]
                } else {
                    &old
                };
                let sectors = 1 + random.below((PAGE_BYTES / SECTOR_BYTES - 1) as u64) as usize;
                let torn_at = sectors * SECTOR_BYTES;
                if kept[torn_at..] != earlier[torn_at..] {
                    kept[torn_at..].copy_from_slice(&earlier[torn_at..]);
                    cases.torn_pages += 1;
                }
            }
            later_kept |= lost_before.is_some() && kept != old;
            let start = page * PAGE_BYTES;
            if image.len() < start + PAGE_BYTES {
                image.resize(start + PAGE_BYTES, 0);
            }
            image[start..start + PAGE_BYTES].copy_from_slice(&kept);
        }
        cases.later_page_without_earlier += u64::from(later_kept);
        image.resize(length, 0);
        image
    }
}

/// Page `page` of `bytes`, zero-padded to a whole page.
fn page_of(bytes: &[u8], page: usize) -> Vec<u8> {
    let start = (page * PAGE_BYTES).min(bytes.len());
    let end = (start + PAGE_BYTES).min(bytes.len());
    let mut version = bytes[start..end].to_vec();
    version.resize(PAGE_BYTES, 0);
    version
}

/// A tiny deterministic generator for crash simulation (splitmix64).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        value ^ (value >> 31)
    }

    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next() % bound
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synced_file_survives_every_crash_unchanged() {
        let mut inode = Inode::default();
        inode.write(0, &[7; 10_000]);
        inode.sync(false);
        for seed in 0..20 {
            let mut cases = CrashCases::default();
            let image = inode.after_crash(&mut SplitMix64(seed), &mut cases);
            assert_eq!(image, vec![7; 10_000]);
            assert_eq!(cases, CrashCases::default());
        }
    }

    #[test]
    fn crashes_produce_every_page_outcome() {
        let mut inode = Inode::default();
        inode.write(0, &[1; 3 * PAGE_BYTES]);
        inode.sync(false);
        inode.write(0, &[2; 3 * PAGE_BYTES]);
        let mut cases = CrashCases::default();
        let mut seen_pages = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let image = inode.after_crash(&mut SplitMix64(seed), &mut cases);
            assert_eq!(image.len(), 3 * PAGE_BYTES);
            for page in image.chunks(PAGE_BYTES) {
                // Each page is old, new, or new sectors followed by old ones.
                let new_sectors = page.iter().take_while(|&&byte| byte == 2).count();
                assert_eq!(new_sectors % SECTOR_BYTES, 0);
                assert!(page[new_sectors..].iter().all(|&byte| byte == 1));
                seen_pages.insert(new_sectors);
            }
        }
        assert!(seen_pages.contains(&0) && seen_pages.contains(&PAGE_BYTES));
        assert!(seen_pages.len() > 3, "torn pages at several sectors");
        assert!(cases.torn_pages > 0 && cases.later_page_without_earlier > 0);
    }

    #[test]
    fn a_failed_sync_loses_the_dirty_pages_for_good() {
        let mut inode = Inode::default();
        inode.write(0, b"old");
        inode.sync(false);
        inode.write(0, b"new");
        inode.sync(true);
        inode.sync(false);
        let image = inode.after_crash(&mut SplitMix64(1), &mut CrashCases::default());
        assert_eq!(
            image, b"old",
            "a later sync does not write what write-back lost"
        );
        assert_eq!(inode.current, b"new", "the page cache keeps the bytes");
    }
}
