//! The frame codec of the control socket (and, later, of raft peers): a `u32` big-endian
//! length (tokio-util's [`LengthDelimitedCodec`]), then a version byte, then one bincode 2
//! value ([`vortex_messages::wire`]).
//!
//! Decoding separates two kinds of bad input:
//! * a frame that arrived whole but whose payload is bad (wrong version byte, malformed
//!   bincode, trailing bytes) is an *item* `Err(FrameError)`: the stream is still in step,
//!   so a server answers with an error and keeps reading;
//! * a length header above the limit, or a stream that ends inside a frame, is the
//!   decoder's *error*: the stream is out of step, so the connection is closed. An
//!   oversized header is refused as soon as its 4 bytes arrive, before any payload is
//!   buffered, so a hostile length cannot make the reader allocate.
//!
//! ```
//! use bytes::BytesMut;
//! use tokio_util::codec::{Decoder, Encoder};
//! use vortex_actors::control::frame::FrameCodec;
//!
//! let mut codec = FrameCodec::<String, String>::new();
//! let mut buffer = BytesMut::new();
//! codec.encode("hello".to_owned(), &mut buffer).unwrap();
//! let decoded = codec.decode(&mut buffer).unwrap().unwrap();
//! assert_eq!(decoded.unwrap(), "hello");
//! ```

use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};
use vortex_messages::ctl::CTL_PROTOCOL_VERSION;
use vortex_messages::wire::{self, WireError};

/// The largest frame (version byte and payload) accepted or sent by default: 1 MiB.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Bytes of the length header.
const HEADER_BYTES: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame's version byte is not the one this codec speaks.
    #[error("frame version {got} is not supported (expected {expected})")]
    Version {
        /// The byte received.
        got: u8,
        /// The version spoken.
        expected: u8,
    },
    /// An empty frame (no version byte).
    #[error("empty frame")]
    Empty,
    /// The payload is not a valid encoding of the expected type.
    #[error("bad payload: {0}")]
    Payload(#[from] WireError),
    /// A frame (announced or to be sent) is larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// The frame's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The stream ended inside a frame, or the socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Decodes `In` and encodes `Out` as versioned, length-prefixed bincode 2 frames.
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    inner: LengthDelimitedCodec,
    /// The inner codec has taken a frame's header and waits for its payload.
    in_frame: bool,
    limit: usize,
    version: u8,
    types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec with [`MAX_FRAME_BYTES`] and the control protocol's version.
    pub fn new() -> Self {
        Self::with_limit(MAX_FRAME_BYTES, CTL_PROTOCOL_VERSION)
    }

    /// A codec with its own frame limit and version byte (raft peers use their own).
    pub fn with_limit(limit: usize, version: u8) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_length(HEADER_BYTES)
            .max_frame_length(limit)
            .new_codec();
        FrameCodec {
            inner,
            in_frame: false,
            limit,
            version,
            types: PhantomData,
        }
    }

    /// The frame limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn payload(&self, frame: BytesMut) -> Result<In, FrameError>
    where
        In: DeserializeOwned,
    {
        let mut frame = frame;
        if frame.is_empty() {
            return Err(FrameError::Empty);
        }
        let version = frame.get_u8();
        if version != self.version {
            return Err(FrameError::Version {
                got: version,
                expected: self.version,
            });
        }
        Ok(wire::decode(&frame)?)
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    /// A whole frame: its value, or why its payload is bad (the stream is still in step).
    type Item = Result<In, FrameError>;
    /// The stream is out of step (oversized header, truncated at the end, I/O): close.
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        // Between frames the buffer starts with a header: refuse an oversized one with
        // its size (the inner codec would refuse it too, but without saying how big).
        if !self.in_frame && src.len() >= HEADER_BYTES {
            let size = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
            if size > self.limit {
                return Err(FrameError::Oversized {
                    size,
                    limit: self.limit,
                });
            }
        }
        let had_header = src.len() >= HEADER_BYTES || self.in_frame;
        match self.inner.decode(src)? {
            Some(frame) => {
                self.in_frame = false;
                Ok(Some(self.payload(frame)))
            }
            None => {
                // The inner codec consumes a whole header before it waits for a payload.
                self.in_frame = had_header;
                Ok(None)
            }
        }
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = wire::encode(&item)?;
        let size = payload.len() + 1;
        if size > self.limit {
            return Err(FrameError::Oversized {
                size,
                limit: self.limit,
            });
        }
        dst.reserve(HEADER_BYTES + size);
        dst.put_u32(size as u32);
        dst.put_u8(self.version);
        dst.extend_from_slice(&payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(version: u8, payload: &[u8]) -> BytesMut {
        let mut buffer = BytesMut::new();
        buffer.put_u32(payload.len() as u32 + 1);
        buffer.put_u8(version);
        buffer.extend_from_slice(payload);
        buffer
    }

    #[test]
    fn a_bad_payload_is_an_item_and_the_next_frame_still_decodes() {
        let mut codec = FrameCodec::<u32, u32>::new();
        let mut buffer = frame(9, &[1]);
        buffer.extend_from_slice(&frame(CTL_PROTOCOL_VERSION, &[0xff, 0xff]));
        codec.encode(5, &mut buffer).unwrap();
        assert!(matches!(
            codec.decode(&mut buffer).unwrap().unwrap(),
            Err(FrameError::Version { got: 9, .. })
        ));
        assert!(matches!(
            codec.decode(&mut buffer).unwrap().unwrap(),
            Err(FrameError::Payload(_))
        ));
        assert_eq!(codec.decode(&mut buffer).unwrap().unwrap().unwrap(), 5);
        assert!(codec.decode(&mut buffer).unwrap().is_none());
    }

    #[test]
    fn an_oversized_header_is_refused_before_its_payload_arrives() {
        let mut codec = FrameCodec::<u32, u32>::with_limit(64, 1);
        let mut buffer = BytesMut::new();
        buffer.put_u32(65);
        assert!(matches!(
            codec.decode(&mut buffer),
            Err(FrameError::Oversized {
                size: 65,
                limit: 64
            })
        ));
        assert!(matches!(
            codec.encode(u32::MAX, &mut BytesMut::new()),
            Ok(())
        ));
        let mut big = FrameCodec::<Vec<u8>, Vec<u8>>::with_limit(8, 1);
        assert!(matches!(
            big.encode(vec![0; 16], &mut BytesMut::new()),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[test]
    fn a_payload_arriving_after_its_header_is_not_taken_for_a_header() {
        // The payload's first bytes read as a huge length; they must not be checked as one.
        let mut codec = FrameCodec::<Vec<u8>, Vec<u8>>::new();
        let mut whole = BytesMut::new();
        codec.encode(vec![0xff; 40], &mut whole).unwrap();
        let mut buffer = whole.split_to(HEADER_BYTES + 3);
        assert!(codec.decode(&mut buffer).unwrap().is_none());
        buffer.extend_from_slice(&whole);
        assert_eq!(
            codec.decode(&mut buffer).unwrap().unwrap().unwrap(),
            vec![0xff; 40]
        );
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_an_error() {
        let mut codec = FrameCodec::<u32, u32>::new();
        let mut buffer = BytesMut::new();
        codec.encode(5, &mut buffer).unwrap();
        buffer.truncate(buffer.len() - 1);
        assert!(codec.decode(&mut buffer).unwrap().is_none());
        assert!(codec.decode_eof(&mut buffer).is_err());
    }
}
