//! bincode 2 encoding for every wire type, with a size limit and a typed error.
//!
//! `bincode` 3.0.0 on crates.io is a tombstone that does not compile; this crate pins
//! bincode 2 and uses its serde integration with the standard configuration plus a limit,
//! so a malformed or hostile frame cannot make the decoder allocate without bound.

use serde::{de::DeserializeOwned, Serialize};

/// The largest encoded message accepted by [`decode`] and produced by [`encode`]: 16 MiB.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The bytes decode, but more bytes follow the value.
    #[error("{trailing} trailing bytes after the message")]
    Trailing {
        /// How many bytes were left over.
        trailing: usize,
    },
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// The message's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>()
}

/// Encodes a value as bincode 2 (standard configuration).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let bytes = bincode::serde::encode_to_vec(value, config())
        .map_err(|error| WireError::Encode(error.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::Oversized {
            size: bytes.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    Ok(bytes)
}

/// Decodes exactly one value from `bytes`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::Oversized {
            size: bytes.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|error| WireError::Malformed(error.to_string()))?;
    if used != bytes.len() {
        return Err(WireError::Trailing {
            trailing: bytes.len() - used,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Control, ControlError, ControlReply};

    #[test]
    fn every_control_command_round_trips() {
        let commands = [
            Control::Pause,
            Control::Resume,
            Control::Checkpoint,
            Control::Scale { n: 7 },
            Control::Status,
            Control::Stop,
        ];
        for command in commands {
            let bytes = encode(&command).unwrap();
            assert_eq!(decode::<Control>(&bytes).unwrap(), command);
        }
    }

    #[test]
    fn malformed_and_trailing_bytes_are_typed_errors() {
        assert!(matches!(
            decode::<Control>(&[0xff, 0xff]),
            Err(WireError::Malformed(_))
        ));
        let mut bytes = encode(&ControlReply::Paused).unwrap();
        bytes.push(0);
        assert_eq!(
            decode::<ControlReply>(&bytes),
            Err(WireError::Trailing { trailing: 1 })
        );
    }

    #[test]
    fn errors_round_trip_as_data() {
        let error = ControlError::UnknownActor("nope".into());
        let bytes = encode(&error).unwrap();
        assert_eq!(decode::<ControlError>(&bytes).unwrap(), error);
        assert_eq!(error.to_string(), "unknown actor `nope`");
    }
}
