//! Segment files: naming (`{base_seq:020}.jrnl`), the 32-byte file header, creation with
//! preallocation, and listing.
//!
//! Header layout (little-endian): `magic [u8; 8] | version u32 | header_bytes u32 |
//! base_seq u64 | reserved u32 | crc32c u32`, the CRC covering the 28 bytes before it.
//! Frames start right after the header, at offset 32.

use std::path::{Path, PathBuf};

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::io::{FileSystem, StorageFile};

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"NXVJRNL\0";
/// On-disk format version (2: frames carry `batch_rest`).
pub const SEGMENT_VERSION: u32 = 2;
/// Bytes in a segment header; the first frame starts here.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// File name extension of segment files.
pub const SEGMENT_EXTENSION: &str = "jrnl";
/// Suffix of a segment file still being prepared (`{segment}.new`); recovery removes
/// such leftovers of a crash during rotation, which never held a record.
pub const PREPARING_SUFFIX: &str = ".new";

/// What the journal knows about one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number of the segment's first record.
    pub base_seq: u64,
    /// The segment file.
    pub path: PathBuf,
    /// Offset just past the last frame written.
    pub end_offset: u64,
    /// Sequence number of the last record (`base_seq - 1` when empty).
    pub last_seq: u64,
    /// Timestamp of the last record (0 when empty).
    pub last_timestamp_nanos: u64,
}

impl SegmentInfo {
    /// An empty segment.
    pub fn empty(directory: &Path, base_seq: u64) -> Self {
        Self {
            base_seq,
            path: segment_path(directory, base_seq),
            end_offset: SEGMENT_HEADER_BYTES as u64,
            last_seq: base_seq - 1,
            last_timestamp_nanos: 0,
        }
    }

    /// Records in the segment.
    pub fn record_count(&self) -> u64 {
        self.last_seq + 1 - self.base_seq
    }
}

/// The file name of the segment whose first record has sequence number `base_seq`.
pub fn segment_name(base_seq: u64) -> String {
    format!("{base_seq:020}.{SEGMENT_EXTENSION}")
}

/// The path of a segment inside the journal directory.
pub fn segment_path(directory: &Path, base_seq: u64) -> PathBuf {
    directory.join(segment_name(base_seq))
}

/// The base sequence number encoded in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_EXTENSION)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // Sequence numbers start at 1, so no segment can start at 0.
    stem.parse().ok().filter(|&base| base > 0)
}

/// Encodes the header of a segment starting at `base_seq`.
pub fn encode_header(base_seq: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0; SEGMENT_HEADER_BYTES];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
    header[16..24].copy_from_slice(&base_seq.to_le_bytes());
    let checksum = crc32c::crc32c(&header[0..28]);
    header[28..32].copy_from_slice(&checksum.to_le_bytes());
    header
}

/// Decodes a segment header, returning its base sequence number.
pub fn decode_header(bytes: &[u8]) -> Result<u64, &'static str> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err("segment shorter than its header");
    }
    let header = &bytes[..SEGMENT_HEADER_BYTES];
    let mut stored = [0; 4];
    stored.copy_from_slice(&header[28..32]);
    if crc32c::crc32c(&header[0..28]) != u32::from_le_bytes(stored) {
        return Err("segment header checksum mismatch");
    }
    if header[0..8] != SEGMENT_MAGIC {
        return Err("bad segment magic");
    }
    let mut version = [0; 4];
    version.copy_from_slice(&header[8..12]);
    if u32::from_le_bytes(version) != SEGMENT_VERSION {
        return Err("unsupported segment version");
    }
    let mut base = [0; 8];
    base.copy_from_slice(&header[16..24]);
    Ok(u64::from_le_bytes(base))
}

/// Lists the segment files of a journal directory, sorted by base sequence number.
/// Files that are not segments are ignored.
pub fn list_segments(fs: &dyn FileSystem, directory: &Path) -> JournalResult<Vec<(u64, PathBuf)>> {
    let names = fs
        .list(directory)
        .map_err(|error| JournalError::io("listing", directory.to_path_buf(), error))?;
    let mut segments: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|name| parse_segment_name(name).map(|base| (base, directory.join(name))))
        .collect();
    segments.sort_unstable_by_key(|(base, _)| *base);
    Ok(segments)
}

/// `fdatasync`s a file; a failure poisons the journal, so it maps to
/// [`JournalError::Poisoned`].
pub fn sync_file(file: &mut dyn StorageFile, path: &Path) -> JournalResult<()> {
    file.sync_data().map_err(|error| poisoned(path, error))
}

/// Fsyncs a directory; a failure poisons the journal.
pub fn sync_directory(fs: &dyn FileSystem, directory: &Path) -> JournalResult<()> {
    fs.sync_dir(directory)
        .map_err(|error| poisoned(directory, error))
}

fn poisoned(path: &Path, error: std::io::Error) -> JournalError {
    JournalError::Poisoned {
        path: path.to_path_buf(),
        source: std::sync::Arc::new(error),
    }
}

/// The name a segment has while it is prepared.
pub fn preparing_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(PREPARING_SUFFIX);
    PathBuf::from(name)
}

/// Creates a segment: header and preallocation (`fallocate`) under the name
/// `{segment}.new`, `fdatasync`, directory fsync, rename to the segment name, directory
/// fsync. Only then is the segment ready for records.
///
/// A crash therefore leaves either no segment or a complete one (header written,
/// blocks reserved), plus at worst a `.new` leftover that recovery removes. The first
/// directory fsync makes the prepared name durable before the rename, so that a lost
/// rename brings back a whole prepared file, never a half-made segment. Preallocating
/// here is what makes a full disk fail at rollover, not in the middle of a segment.
pub fn create_segment(
    fs: &dyn FileSystem,
    directory: &Path,
    base_seq: u64,
    segment_bytes: u64,
) -> JournalResult<Box<dyn StorageFile>> {
    let path = segment_path(directory, base_seq);
    let preparing = preparing_path(&path);
    let mut file = fs
        .create(&preparing)
        .map_err(|error| JournalError::from_write("creating", preparing.clone(), error))?;
    let prepared = file
        .write_at(0, &encode_header(base_seq))
        .and_then(|()| file.allocate(segment_bytes));
    if let Err(error) = prepared {
        // Best effort: recovery removes a leftover `.new` file anyway.
        let _ = fs.remove(&preparing);
        return Err(JournalError::from_write("preallocating", path, error));
    }
    sync_file(file.as_mut(), &preparing)?;
    sync_directory(fs, directory)?;
    if let Err(error) = fs.rename(&preparing, &path) {
        let _ = fs.remove(&preparing);
        return Err(JournalError::io("renaming", preparing, error));
    }
    sync_directory(fs, directory)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(42), "00000000000000000042.jrnl");
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "42.jrnl",
            "0000000000000000004x.jrnl",
            "00000000000000000042.tmp",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let header = encode_header(1234);
        assert_eq!(decode_header(&header), Ok(1234));
        for index in 0..SEGMENT_HEADER_BYTES {
            let mut damaged = header;
            damaged[index] ^= 1;
            assert!(decode_header(&damaged).is_err(), "byte {index}");
        }
        assert!(decode_header(&header[..31]).is_err());
    }
}
