//! Fuzzes the control frame decoder on stable Rust (proptest, bounded cases): random
//! bytes and mutated valid frames, fed whole or in random chunks, never panic, never
//! hang (every call consumes input, waits for more, or fails), and never make the
//! decoder buffer more than one frame's limit.

use bytes::{BufMut as _, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder as _, Encoder as _};
use vortex_actors::control::FrameCodec;
use vortex_messages::ctl::{CtlCommand, CtlRequest};
use vortex_messages::Control;

const LIMIT: usize = 4096;

fn codec() -> FrameCodec<CtlRequest, CtlRequest> {
    FrameCodec::with_limit(LIMIT, 1)
}

fn request(id: u64, actor: String, n: u32) -> CtlRequest {
    let command = match n % 4 {
        0 => CtlCommand::List,
        1 => CtlCommand::Events,
        2 => CtlCommand::Control {
            actor,
            command: Control::Scale { n },
        },
        _ => CtlCommand::Control {
            actor,
            command: Control::Pause,
        },
    };
    CtlRequest { id, command }
}

/// Feeds `input` in `chunks`; returns (good frames, bad frames, stream broken).
fn feed(input: &[u8], chunks: &[usize]) -> (usize, usize, bool) {
    let mut codec = codec();
    let mut buffer = BytesMut::new();
    let (mut good, mut bad) = (0, 0);
    let mut offset = 0;
    let mut sizes = chunks.iter().copied().cycle();
    while offset < input.len() {
        let size = sizes
            .next()
            .unwrap_or(input.len())
            .clamp(1, input.len() - offset);
        buffer.extend_from_slice(&input[offset..offset + size]);
        offset += size;
        // Each decode either takes a frame out, waits for more, or fails: bounded.
        for _ in 0..=input.len() {
            let before = buffer.len();
            match codec.decode(&mut buffer) {
                Ok(Some(Ok(_))) => good += 1,
                Ok(Some(Err(_))) => bad += 1,
                Ok(None) => break,
                Err(_) => return (good, bad, true),
            }
            assert!(buffer.len() < before, "a decoded frame consumed input");
        }
        assert!(
            buffer.capacity() <= input.len() + LIMIT + 64,
            "buffered {} bytes for {} input bytes",
            buffer.capacity(),
            input.len()
        );
    }
    match codec.decode_eof(&mut buffer) {
        Ok(Some(Ok(_))) => good += 1,
        Ok(Some(Err(_))) => bad += 1,
        Ok(None) => {}
        Err(_) => return (good, bad, true),
    }
    (good, bad, false)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_or_hang(
        input in proptest::collection::vec(any::<u8>(), 0..2048),
        chunks in proptest::collection::vec(1usize..64, 1..8),
    ) {
        feed(&input, &chunks);
    }

    #[test]
    fn valid_frames_decode_in_any_chunking(
        requests in proptest::collection::vec((any::<u64>(), "[a-z-]{0,12}", any::<u32>()), 1..8),
        chunks in proptest::collection::vec(1usize..32, 1..8),
    ) {
        let mut encoder = codec();
        let mut bytes = BytesMut::new();
        for (id, actor, n) in &requests {
            encoder.encode(request(*id, actor.clone(), *n), &mut bytes).unwrap();
        }
        let (good, bad, broken) = feed(&bytes, &chunks);
        prop_assert_eq!((good, bad, broken), (requests.len(), 0, false));
    }

    #[test]
    fn mutated_frames_never_panic_and_later_frames_survive_payload_damage(
        id in any::<u64>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        truncate in any::<bool>(),
    ) {
        let mut encoder = codec();
        let mut frame = BytesMut::new();
        encoder.encode(request(id, "source".into(), 3), &mut frame).unwrap();
        let mut damaged = frame.to_vec();
        for (at, value) in &flips {
            let at = at % damaged.len();
            damaged[at] ^= value | 1;
        }
        if truncate {
            damaged.pop();
        }
        feed(&damaged, &[7]);
        // Damage only past the length header: the frame is refused (or decodes to some
        // other request), and the next, intact frame still decodes.
        let mut payload_damaged = frame.to_vec();
        for (at, value) in &flips {
            let at = 4 + at % (payload_damaged.len() - 4);
            payload_damaged[at] ^= value | 1;
        }
        payload_damaged.extend_from_slice(&frame);
        let (good, bad, broken) = feed(&payload_damaged, &[5]);
        prop_assert!(!broken);
        prop_assert_eq!(good + bad, 2);
        prop_assert!(good >= 1);
    }
}

#[test]
fn an_oversized_header_fails_at_once_without_buffering() {
    let mut codec = codec();
    let mut buffer = BytesMut::new();
    buffer.put_u32(u32::MAX);
    assert!(codec.decode(&mut buffer).is_err());
    assert!(buffer.capacity() < 64);
}
