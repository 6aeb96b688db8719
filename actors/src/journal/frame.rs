//! Record frames: `len u32 | crc32c u32 | seq u64 | ts u64 | kind u16 | flags u16 |
//! batch_rest u32 | payload | pad to 8`, all little-endian.
//!
//! The CRC covers the length, every other header field and the payload. The padding is
//! required to be zero, so every byte of a frame is checked: a flipped bit anywhere in a
//! frame is caught.
//!
//! `batch_rest` is how many frames of the same atomic batch follow this one: a batch of
//! `n` records is written as frames with `batch_rest` `n-1, n-2, …, 0`, and the frame with
//! 0 commits the batch. Recovery keeps a batch only when its committing frame is intact,
//! so a crash leaves all of a batch or none of it. A record appended on its own is a
//! batch of one (`batch_rest` 0).

/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 32;
/// Frames start and end on this boundary.
pub const FRAME_ALIGNMENT: usize = 8;

/// The fields of one decoded frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameView<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch when the record was appended.
    pub timestamp_nanos: u64,
    /// Caller-defined record kind.
    pub kind: u16,
    /// Caller-defined flags.
    pub flags: u16,
    /// Frames of the same atomic batch after this one (0: this frame commits its batch).
    pub batch_rest: u32,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl FrameView<'_> {
    /// Bytes the frame occupies on disk, padding included.
    pub fn encoded_len(&self) -> usize {
        encoded_len(self.payload.len())
    }
}

/// Why bytes at some offset are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameProblem {
    /// The header is all zeros: nothing was ever written here.
    Empty,
    /// The buffer ends before the frame does.
    Truncated,
    /// The length field is larger than any record may be.
    BadLength,
    /// The checksum does not match.
    BadChecksum,
    /// The padding after the payload is not zero.
    BadPadding,
}

impl FrameProblem {
    /// A short description for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Empty => "empty frame header",
            Self::Truncated => "frame runs past the end of the segment",
            Self::BadLength => "frame length out of range",
            Self::BadChecksum => "frame checksum mismatch",
            Self::BadPadding => "non-zero frame padding",
        }
    }
}

/// Rounds `length` up to the frame alignment.
pub fn align_up(length: usize) -> usize {
    length.div_ceil(FRAME_ALIGNMENT) * FRAME_ALIGNMENT
}

/// Bytes a frame with a payload of `payload_len` bytes occupies on disk.
pub fn encoded_len(payload_len: usize) -> usize {
    align_up(FRAME_HEADER_BYTES + payload_len)
}

/// Appends one encoded frame to `out`.
///
/// # Panics
/// If the payload is longer than `u32::MAX`; callers check the configured maximum first.
pub fn encode_into(out: &mut Vec<u8>, frame: &FrameView<'_>) {
    let length = u32::try_from(frame.payload.len()).expect("payload length checked by caller");
    let start = out.len();
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&frame.seq.to_le_bytes());
    out.extend_from_slice(&frame.timestamp_nanos.to_le_bytes());
    out.extend_from_slice(&frame.kind.to_le_bytes());
    out.extend_from_slice(&frame.flags.to_le_bytes());
    out.extend_from_slice(&frame.batch_rest.to_le_bytes());
    out.extend_from_slice(frame.payload);
    out.resize(start + frame.encoded_len(), 0);
    let checksum = checksum(&out[start..start + FRAME_HEADER_BYTES], frame.payload);
    out[start + 4..start + 8].copy_from_slice(&checksum.to_le_bytes());
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&header[0..4]);
    let crc = crc32c::crc32c_append(crc, &header[8..FRAME_HEADER_BYTES]);
    crc32c::crc32c_append(crc, payload)
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buffer = [0; 4];
    buffer.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buffer)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buffer = [0; 8];
    buffer.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buffer)
}

/// Decodes the frame starting at the beginning of `bytes`.
///
/// `max_payload` bounds the length field so that garbage cannot make the reader look
/// gigabytes ahead.
pub fn decode(bytes: &[u8], max_payload: usize) -> Result<FrameView<'_>, FrameProblem> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return if bytes.iter().all(|&byte| byte == 0) {
            Err(FrameProblem::Empty)
        } else {
            Err(FrameProblem::Truncated)
        };
    }
    let header = &bytes[..FRAME_HEADER_BYTES];
    if header.iter().all(|&byte| byte == 0) {
        return Err(FrameProblem::Empty);
    }
    let length = read_u32(header, 0) as usize;
    if length > max_payload {
        return Err(FrameProblem::BadLength);
    }
    let total = encoded_len(length);
    if bytes.len() < total {
        return Err(FrameProblem::Truncated);
    }
    let payload = &bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + length];
    if checksum(header, payload) != read_u32(header, 4) {
        return Err(FrameProblem::BadChecksum);
    }
    if bytes[FRAME_HEADER_BYTES + length..total]
        .iter()
        .any(|&byte| byte != 0)
    {
        return Err(FrameProblem::BadPadding);
    }
    Ok(FrameView {
        seq: read_u64(header, 8),
        timestamp_nanos: read_u64(header, 16),
        kind: read_u16(header, 24),
        flags: read_u16(header, 26),
        batch_rest: read_u32(header, 28),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> FrameView<'_> {
        FrameView {
            seq: 7,
            timestamp_nanos: 99,
            kind: 3,
            flags: 1,
            batch_rest: 2,
            payload,
        }
    }

    #[test]
    fn round_trips_and_pads_to_eight() {
        for length in 0..40 {
            let payload: Vec<u8> = (0..length).map(|index| index as u8 + 1).collect();
            let mut out = Vec::new();
            encode_into(&mut out, &sample(&payload));
            assert_eq!(out.len() % FRAME_ALIGNMENT, 0);
            assert_eq!(decode(&out, 1024), Ok(sample(&payload)));
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut out = Vec::new();
        encode_into(&mut out, &sample(b"hello"));
        for index in 0..out.len() {
            let mut damaged = out.clone();
            damaged[index] ^= 0x40;
            assert!(decode(&damaged, 1024).is_err(), "byte {index} not covered");
        }
    }

    #[test]
    fn problems_are_classified() {
        let mut out = Vec::new();
        encode_into(&mut out, &sample(b"hello"));
        assert_eq!(decode(&[0; 40], 1024), Err(FrameProblem::Empty));
        assert_eq!(decode(&out[..20], 1024), Err(FrameProblem::Truncated));
        assert_eq!(decode(&out[..34], 1024), Err(FrameProblem::Truncated));
        assert_eq!(decode(&out, 2), Err(FrameProblem::BadLength));
    }
}
