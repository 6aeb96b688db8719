//! What goes in ([`PendingRecord`], [`Durability`]) and what comes out ([`Record`]).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::journal::error::{JournalError, JournalResult};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledged once written to the file (the page cache); a crash may lose it.
    None,
    /// Acknowledged after an `fdatasync` shared with other records. The writer syncs when
    /// its queue runs dry, and at the latest once this record has waited `max_delay` or
    /// `max_bytes` of un-synced records have piled up.
    Batch {
        /// The longest this record waits for its sync while more records keep arriving.
        max_delay: Duration,
        /// Un-synced bytes that force a sync.
        max_bytes: usize,
    },
    /// Acknowledged after an `fdatasync` issued right after the batch holding it.
    Each,
}

impl Default for Durability {
    /// `Batch` with a 1 ms delay and 1 MiB of bytes.
    fn default() -> Self {
        Self::Batch {
            max_delay: Duration::from_millis(1),
            max_bytes: 1 << 20,
        }
    }
}

impl Durability {
    /// True when the acknowledgement waits for an `fdatasync`.
    pub fn needs_sync(&self) -> bool {
        !matches!(self, Self::None)
    }
}

/// A record waiting to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// Caller-defined record kind.
    pub kind: u16,
    /// Caller-defined flags.
    pub flags: u16,
    /// The payload bytes (by convention bincode 2, see [`PendingRecord::encode`]).
    pub payload: Vec<u8>,
    /// When the append is acknowledged.
    pub durability: Durability,
}

impl PendingRecord {
    /// A record with raw payload bytes and the default durability.
    pub fn raw(kind: u16, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            kind,
            flags: 0,
            payload: payload.into(),
            durability: Durability::default(),
        }
    }

    /// A record whose payload is `value` encoded with bincode 2 (standard config, serde).
    pub fn encode<T: Serialize + ?Sized>(kind: u16, value: &T) -> JournalResult<Self> {
        let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|error| JournalError::Encode(error.to_string()))?;
        Ok(Self::raw(kind, payload))
    }

    /// Sets the durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the flags.
    pub fn with_flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }
}

/// A record read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (the first record is 1; no gaps).
    pub seq: u64,
    /// Nanoseconds since the Unix epoch when the record was appended.
    pub timestamp_nanos: u64,
    /// Caller-defined record kind.
    pub kind: u16,
    /// Caller-defined flags.
    pub flags: u16,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl Record {
    /// Decodes the payload with bincode 2 (standard config, serde).
    pub fn decode<T: DeserializeOwned>(&self) -> JournalResult<T> {
        bincode::serde::decode_from_slice(&self.payload, bincode::config::standard())
            .map(|(value, _)| value)
            .map_err(|error| JournalError::Decode(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_payloads_round_trip() {
        let pending = PendingRecord::encode(4, &("actor-1", 42u64)).unwrap();
        let record = Record {
            seq: 1,
            timestamp_nanos: 0,
            kind: pending.kind,
            flags: 0,
            payload: pending.payload,
        };
        assert_eq!(
            record.decode::<(String, u64)>().unwrap(),
            ("actor-1".into(), 42)
        );
        assert!(matches!(
            record.decode::<(String, String)>(),
            Err(JournalError::Decode(_))
        ));
    }
}
