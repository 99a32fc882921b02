//! The frame reader and the native request decoder, as a connection runs
//! them on whatever bytes a client sends.
//!
//! Input: one control byte, then the byte stream. The control byte picks
//! the length prefix (native little-endian or Kafka big-endian), the frame
//! size limit, and how the stream is cut into reads (so frames straddle
//! reads at every position).
//!
//! Properties:
//! * frames come out in order, each exactly its prefix plus the length it
//!   declares, and together they are the start of the stream;
//! * a clean end means the whole stream was frames; `TooLarge` only for a
//!   declared length above the limit; `Truncated` only when the stream
//!   really ends inside a frame, by the number of bytes it says;
//! * every native frame decodes or is refused with an error (no panic);
//!   a decoded produce request's record data are the very bytes its
//!   records vectors hold, and encoding the request again with the
//!   client's frame writer decodes to the same request.
#![no_main]

use bytes::{Bytes, BytesMut};
use corelog::fuzzing::{NativeRequest, decode_native};
use corelog::protocol::produce_frame::{ProducePart, encode_produce};
use corelog::protocol::{FrameError, FrameReader, FrameSource, LengthPrefix, parse_request};
use libfuzzer_sys::fuzz_target;
use std::io;

/// Hands out the stream in reads whose sizes cycle through `sizes`.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: [usize; 4],
    reads: usize,
}

impl FrameSource for Chunked<'_> {
    async fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let size = self.sizes[self.reads % self.sizes.len()];
        self.reads += 1;
        let n = size.min(max).min(self.data.len() - self.pos);
        buf.extend_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn declared(head: &[u8], prefix: LengthPrefix) -> u64 {
    let head: [u8; 4] = head.try_into().unwrap();
    match prefix {
        LengthPrefix::U32LittleEndian => u32::from_le_bytes(head) as u64,
        LengthPrefix::I32BigEndian => i32::from_be_bytes(head) as i64 as u64,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let prefix = if control & 1 == 0 {
        LengthPrefix::U32LittleEndian
    } else {
        LengthPrefix::I32BigEndian
    };
    let max = if control & 2 == 0 { 1 << 20 } else { 100 };
    let k = (control >> 2) as usize;
    let sizes = [1 + k % 7, 1 + k * 13, 64 << 10, 3 + k % 5];
    let mut reader = FrameReader::with_prefix(
        Chunked {
            data,
            pos: 0,
            sizes,
            reads: 0,
        },
        max,
        prefix,
    );
    let mut at = 0usize;
    // Each frame takes at least its 4-byte prefix: the loop is bounded.
    for _ in 0..=data.len() / 4 + 1 {
        match futures::executor::block_on(reader.next_frame()) {
            Ok(Some(frame)) => {
                assert!(frame.len() >= 4, "a frame holds its prefix");
                assert_eq!(
                    &frame[..],
                    &data[at..at + frame.len()],
                    "frames are the stream, in order"
                );
                assert_eq!(declared(&frame[..4], prefix), frame.len() as u64 - 4);
                assert!(frame.len() - 4 <= max);
                at += frame.len();
                if prefix == LengthPrefix::U32LittleEndian {
                    check_native(frame);
                }
            }
            Ok(None) => {
                assert_eq!(at, data.len(), "a clean end only between frames at the end");
                return;
            }
            Err(FrameError::TooLarge {
                declared: d,
                max: m,
            }) => {
                assert_eq!(m, max);
                assert!(d > max as u64);
                assert_eq!(d, declared(&data[at..at + 4], prefix));
                return;
            }
            Err(FrameError::Truncated { missing }) => {
                let rest = data.len() - at;
                assert!(missing > 0);
                if rest < 4 {
                    assert_eq!(missing, 4 - rest);
                } else {
                    let want = 4 + declared(&data[at..at + 4], prefix) as usize;
                    assert!(want > rest, "truncated, yet the frame was all there");
                }
                return;
            }
            Err(FrameError::Io(e)) => panic!("the source never fails, yet: {e}"),
        }
    }
    panic!("more frames than the stream can hold");
});

fn check_native(frame: BytesMut) {
    let copy = frame.clone().freeze();
    let (start, end) = (
        frame.as_ptr() as usize,
        frame.as_ptr() as usize + frame.len(),
    );
    let decoded = decode_native(frame);
    let Ok((corr, NativeRequest::Produce(request))) = decoded else {
        return;
    };
    // The record data are the records vectors of the frame, carved out of
    // its buffer (so they lie within it) without a copy.
    let envelope = parse_request(&copy).expect("a decoded frame verifies");
    let wire = envelope.request_as_produce_request().unwrap();
    let mut expected = Vec::new();
    for topic in wire.topics().iter().flatten() {
        for part in topic.partitions().iter().flatten() {
            expected.push(
                part.records()
                    .map(|r| r.bytes().to_vec())
                    .unwrap_or_default(),
            );
        }
    }
    let got: Vec<Vec<u8>> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|(_, data)| data.to_vec()))
        .collect();
    assert_eq!(got, expected, "record data are the frame's records vectors");
    for (_, data) in request.topics.iter().flat_map(|t| &t.partitions) {
        let at = data.as_ptr() as usize;
        assert!(
            data.is_empty() || (at >= start && at + data.len() <= end),
            "carved, not copied"
        );
    }

    // Encode the request again as the client does, and decode it.
    let owned: Vec<(String, Vec<(u32, Bytes)>)> = request
        .topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|(p, data)| (*p, Bytes::copy_from_slice(data)))
                .collect();
            (t.name.clone(), parts)
        })
        .collect();
    let topics: Vec<(&str, Vec<ProducePart<'_>>)> = owned
        .iter()
        .map(|(name, parts)| {
            let parts = parts
                .iter()
                .map(|(partition, records)| ProducePart {
                    partition: *partition,
                    records,
                })
                .collect();
            (name.as_str(), parts)
        })
        .collect();
    let timeout_ms = u32::try_from(request.timeout.as_millis()).unwrap();
    let again = encode_produce(corr, request.acks.to_wire() as i8, timeout_ms, &topics).to_vec();
    let Ok((corr2, NativeRequest::Produce(request2))) = decode_native(BytesMut::from(&again[..]))
    else {
        panic!("a re-encoded produce request does not decode as one");
    };
    assert_eq!(corr2, corr);
    assert_eq!(request2.acks, request.acks);
    assert_eq!(request2.timeout, request.timeout);
    assert_eq!(request2.topics.len(), request.topics.len());
    for (a, b) in request2.topics.iter().zip(&request.topics) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.partitions, b.partitions);
    }
}
