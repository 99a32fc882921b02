//! The record-batch v2 codec shared by the client, the protocol and the
//! storage engine: build, parse, validate, CRC. No I/O, no allocation per
//! record.
//!
//! * [`BatchBuilder`] encodes records into a batch.
//! * [`validate`] checks a batch completely (length, magic, CRC-32C,
//!   attributes, every record against the declared count).
//! * [`RecordBatch`] is a zero-copy view over validated `Bytes`.
//! * [`BatchWalk`] steps through concatenated batches, as a produce request
//!   or a segment file holds them.

mod batch;
mod builder;
pub mod varint;

pub use batch::{
    ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, BatchError,
    BatchInfo, BatchWalk, Framing, HEADER_BYTES, Header, HeaderIter, LOG_OVERHEAD_BYTES, MAGIC_V2,
    Record, RecordBatch, RecordIter, StoredInfo, read_framing, set_max_timestamp,
    stamp_base_offset, validate, verify_stored,
};
pub use builder::BatchBuilder;

#[cfg(test)]
pub(crate) use batch::CRC_AT;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::BATCH_BYTES_MAX;
    use crate::types::{Offset, Timestamp};
    use bytes::Bytes;
    use proptest::prelude::*;

    type OwnedRecord = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn build(records: &[OwnedRecord]) -> Bytes {
        let mut builder = BatchBuilder::default();
        for (ts, key, value, headers) in records {
            let headers: Vec<Header<'_>> = headers
                .iter()
                .map(|(k, v)| Header {
                    key: k,
                    value: v.as_deref(),
                })
                .collect();
            builder.push(Timestamp(*ts), key.as_deref(), value.as_deref(), &headers);
        }
        builder.finish()
    }

    fn read_back(batch: &RecordBatch) -> Vec<OwnedRecord> {
        let base = batch.base_timestamp().0;
        batch
            .records()
            .map(|r| {
                (
                    base + r.timestamp_delta,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                    r.headers()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect(),
                )
            })
            .collect()
    }

    fn arb_record() -> impl Strategy<Value = OwnedRecord> {
        (
            0i64..4_000_000_000_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            proptest::collection::vec(
                (
                    "[a-zA-Z0-9ü_-]{0,12}",
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                ),
                0..4,
            ),
        )
    }

    proptest! {
        #[test]
        fn built_batches_validate_and_read_back(records in proptest::collection::vec(arb_record(), 1..40)) {
            let bytes = build(&records);
            let batch = RecordBatch::parse(bytes.clone(), BATCH_BYTES_MAX).unwrap();
            prop_assert_eq!(batch.record_count() as usize, records.len());
            prop_assert_eq!(read_back(&batch), records.clone());
            let max_ts = records.iter().map(|r| r.0).max().unwrap();
            prop_assert_eq!(batch.max_timestamp(), Timestamp(max_ts));
            prop_assert_eq!(batch.base_timestamp(), Timestamp(records[0].0));
        }

        #[test]
        fn stamping_an_offset_keeps_the_batch_valid(records in proptest::collection::vec(arb_record(), 1..5), base in 0u64..(i64::MAX as u64 / 2)) {
            let mut bytes = build(&records).to_vec();
            stamp_base_offset(&mut bytes, Offset(base));
            let batch = RecordBatch::parse(Bytes::from(bytes), BATCH_BYTES_MAX).unwrap();
            prop_assert_eq!(batch.base_offset(), Offset(base));
            prop_assert_eq!(batch.last_offset(), Offset(base + records.len() as u64 - 1));
        }

        #[test]
        fn any_single_byte_flip_in_the_crc_range_is_caught(records in proptest::collection::vec(arb_record(), 1..5), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = build(&records).to_vec();
            let i = CRC_AT + 4 + at.index(bytes.len() - CRC_AT - 4);
            bytes[i] ^= 1 << bit;
            let crc_caught = matches!(validate(&bytes, BATCH_BYTES_MAX), Err(BatchError::CrcMismatch { .. }));
            prop_assert!(crc_caught);
        }

        #[test]
        fn validation_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate(&bytes, BATCH_BYTES_MAX);
            let _ = BatchWalk::new(&bytes, BATCH_BYTES_MAX).count();
        }
    }

    /// The records `tests/vectors/gen_kafka_python_batches.py` encodes, in the
    /// same order (the script's comment points here).
    fn kafka_python_vector() -> Vec<(Vec<OwnedRecord>, (i64, i16, i32))> {
        const BASE_TS: i64 = 1_700_000_000_000;
        let none = (-1, -1, -1);
        let batch1 = vec![
            (
                BASE_TS,
                Some(b"key-0".to_vec()),
                Some(b"value-0".to_vec()),
                vec![("h1".to_string(), Some(b"v1".to_vec()))],
            ),
            (BASE_TS + 5, None, Some(b"v".to_vec()), vec![]),
            (
                BASE_TS - 3,
                Some(vec![]),
                None,
                vec![
                    ("n".to_string(), None),
                    ("utf8-\u{fc}".to_string(), Some(vec![0x00, 0xff])),
                ],
            ),
        ];
        let batch2 = (0..200i64)
            .map(|i| {
                let len = (i * 37) % 301;
                let value = (0..len).map(|j| ((i + j) % 256) as u8).collect();
                (
                    BASE_TS + 7 * i,
                    Some(format!("k{i}").into_bytes()),
                    Some(value),
                    vec![],
                )
            })
            .collect();
        let batch3 = vec![
            (BASE_TS, Some(b"a".to_vec()), Some(b"1".to_vec()), vec![]),
            (
                BASE_TS + 1,
                Some(b"b".to_vec()),
                Some(b"2".to_vec()),
                vec![],
            ),
        ];
        vec![(batch1, none), (batch2, none), (batch3, (12345, 3, 42))]
    }

    #[test]
    fn kafka_python_batches_parse_and_corelog_encodes_them_identically() {
        let vector = Bytes::from_static(include_bytes!(
            "../../tests/vectors/kafka_python_batches.bin"
        ));
        let expected = kafka_python_vector();
        let walked: Vec<_> = BatchWalk::new(&vector, BATCH_BYTES_MAX)
            .collect::<Result<_, _>>()
            .expect("kafka-python's batches must validate");
        assert_eq!(walked.len(), expected.len());
        for ((at, info), (records, (pid, epoch, seq))) in walked.into_iter().zip(expected) {
            let theirs = vector.slice(at..at + info.bytes);
            let batch = RecordBatch::parse(theirs.clone(), BATCH_BYTES_MAX).unwrap();
            assert_eq!(
                read_back(&batch),
                records,
                "records decoded from kafka-python's batch"
            );
            assert_eq!(
                (
                    batch.producer_id(),
                    batch.producer_epoch(),
                    batch.base_sequence()
                ),
                (pid, epoch, seq)
            );

            let mut builder = BatchBuilder::default();
            builder.set_producer(pid, epoch, seq);
            for (ts, key, value, headers) in &records {
                let headers: Vec<Header<'_>> = headers
                    .iter()
                    .map(|(k, v)| Header {
                        key: k,
                        value: v.as_deref(),
                    })
                    .collect();
                builder.push(Timestamp(*ts), key.as_deref(), value.as_deref(), &headers);
            }
            let ours = builder.finish();
            assert_eq!(
                ours, theirs,
                "corelog's encoding must be byte-identical to kafka-python's"
            );
        }
    }

    fn one_batch() -> Vec<u8> {
        build(&[
            (10, Some(b"k".to_vec()), Some(b"v".to_vec()), vec![]),
            (11, None, Some(b"w".to_vec()), vec![]),
        ])
        .to_vec()
    }

    fn recrc(bytes: &mut [u8]) {
        let crc = crc32c::crc32c(&bytes[CRC_AT + 4..]);
        bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let mut b = one_batch();
        b[16] = 1;
        assert_eq!(
            validate(&b, BATCH_BYTES_MAX),
            Err(BatchError::UnsupportedMagic { magic: 1 })
        );
    }

    #[test]
    fn record_count_that_disagrees_with_the_bytes_is_rejected() {
        for (count, detail) in [
            (3i32, "the bytes end before the last record"),
            (1, "bytes remain after the last record"),
        ] {
            let mut b = one_batch();
            b[57..61].copy_from_slice(&count.to_be_bytes());
            b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
            recrc(&mut b);
            assert_eq!(
                validate(&b, BATCH_BYTES_MAX),
                Err(BatchError::RecordCountMismatch {
                    declared: count,
                    detail
                })
            );
        }
    }

    #[test]
    fn truncated_and_oversized_batches_are_rejected() {
        let b = one_batch();
        assert!(matches!(
            validate(&b[..b.len() - 1], BATCH_BYTES_MAX),
            Err(BatchError::LengthMismatch { .. })
        ));
        assert!(matches!(
            validate(&b[..30], BATCH_BYTES_MAX),
            Err(BatchError::TooShort { available: 30 })
        ));
        assert!(matches!(
            validate(&b, 64),
            Err(BatchError::TooLarge { max: 64, .. })
        ));
    }

    #[test]
    fn compressed_and_transactional_batches_are_rejected_with_their_reason() {
        let mut b = one_batch();
        b[22] |= 2; // snappy
        recrc(&mut b);
        assert_eq!(
            validate(&b, BATCH_BYTES_MAX),
            Err(BatchError::UnsupportedCompression { codec: 2 })
        );
        let mut b = one_batch();
        b[22] |= ATTR_TRANSACTIONAL as u8;
        recrc(&mut b);
        assert!(matches!(
            validate(&b, BATCH_BYTES_MAX),
            Err(BatchError::UnsupportedAttributes { .. })
        ));
    }

    #[test]
    fn walk_stops_at_the_first_bad_batch() {
        let mut two = one_batch();
        two.extend_from_slice(&one_batch());
        let n = two.len();
        two[n - 1] ^= 0xff;
        let results: Vec<_> = BatchWalk::new(&two, BATCH_BYTES_MAX).collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(BatchError::CrcMismatch { .. })));
    }
}
