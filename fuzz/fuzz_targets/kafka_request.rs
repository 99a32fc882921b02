//! The Kafka request decoder, on a whole request frame as the server reads
//! it: header, version checks, the walker's bounds checks, then the body
//! (Produce by hand, everything else by the `kafka-protocol` crate).
//!
//! Input: a request frame; its 4-byte length prefix is overwritten with
//! the true length (the frame reader, fuzzed apart, guarantees it), so the
//! seeds are frames exactly as clients sent them.
//!
//! Properties, for every frame the decoder accepts:
//! * it never claims more bytes than the frame holds;
//! * an immediate answer is a well-formed response frame to the request's
//!   correlation id;
//! * Produce record data lie inside the frame (carved, not copied), do not
//!   overlap, and end within the bytes the request used;
//! * for every other API the walker and the crate agree on where the body
//!   ends (the walker is never more lenient than the crate), and the
//!   request encodes again in its version and decodes to the same value.
#![no_main]

use bytes::{Buf, BytesMut};
use corelog::fuzzing::{KafkaBody, decode_kafka};
use kafka_protocol::messages::{ApiKey, RequestKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let mut frame = BytesMut::from(data);
    let length = (data.len() - 4) as i32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    let (start, len) = (frame.as_ptr() as usize, frame.len());
    let Ok(request) = decode_kafka(frame) else {
        return;
    };
    assert!(request.used <= len, "used {} of {len} bytes", request.used);
    match request.body {
        KafkaBody::Reply(reply) => {
            assert!(reply.len() >= 8);
            let mut r = &reply[..];
            assert_eq!(r.get_i32() as usize, reply.len() - 4, "reply length prefix");
            assert_eq!(r.get_i32(), request.correlation_id);
        }
        KafkaBody::Produce(produce) => {
            let mut spans: Vec<(usize, usize)> = produce
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .filter(|(_, data)| !data.is_empty())
                .map(|(_, data)| {
                    let at = data.as_ptr() as usize;
                    assert!(
                        at >= start && at + data.len() <= start + len,
                        "not carved from the frame"
                    );
                    (at - start, data.len())
                })
                .collect();
            spans.sort();
            let mut end = 0;
            for (at, n) in spans {
                assert!(at >= end, "record data overlap");
                end = at + n;
            }
            assert!(end <= request.used, "record data past the request's end");
        }
        KafkaBody::Other {
            request: kind,
            unread,
        } => {
            assert_eq!(
                len - unread,
                request.used,
                "the walker and the crate disagree on where API {} v{} ends",
                request.api_key,
                request.version
            );
            let api = ApiKey::try_from(request.api_key).unwrap();
            let mut encoded = BytesMut::new();
            kind.encode(&mut encoded, request.version)
                .expect("a decoded request encodes in its version");
            let mut bytes = encoded.freeze();
            let again = RequestKind::decode(api, &mut bytes, request.version)
                .expect("a re-encoded request decodes");
            assert!(bytes.is_empty(), "re-encoded request decodes to its end");
            assert_eq!(again, *kind, "decode(encode(request)) == request");
        }
    }
});
