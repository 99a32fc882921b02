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
//! * [`Compression`], [`compress`] and [`decompress`] handle the codecs a
//!   batch's records area may be compressed with (gzip, snappy, lz4, zstd);
//!   validation and reading decompress transparently.

mod batch;
mod builder;
mod compression;
mod murmur2;
pub mod varint;

pub use batch::{
    ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, BatchError,
    BatchInfo, BatchWalk, Framing, HEADER_BYTES, Header, HeaderIter, LOG_OVERHEAD_BYTES, MAGIC_V2,
    ProducerFields, Record, RecordBatch, RecordIter, StoredInfo, leader_epoch, producer_fields,
    read_framing, set_max_timestamp, set_timestamps, stamp_base_offset, stamp_leader_epoch,
    validate, validate_stored_with, validate_with, verify_stored,
};
pub use builder::{BatchBuilder, filler_batch, rewrite_batch};
pub use compression::{
    Compression, DecompressError, GZIP_LEVEL, ParseCompressionError, ZSTD_LEVEL, compress,
    decompress,
};
pub use murmur2::murmur2;

#[cfg(test)]
pub(crate) use batch::CRC_AT;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::{BATCH_BYTES_MAX, DECOMPRESSED_BATCH_BYTES_MAX};
    use crate::types::{Offset, Timestamp};
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;

    type OwnedRecord = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
    );

    fn fill(builder: &mut BatchBuilder, records: &[OwnedRecord]) {
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
    }

    fn build(records: &[OwnedRecord]) -> Bytes {
        let mut builder = BatchBuilder::default();
        fill(&mut builder, records);
        builder.finish()
    }

    fn build_compressed(records: &[OwnedRecord], codec: Compression) -> Bytes {
        let mut builder = BatchBuilder::default();
        fill(&mut builder, records);
        builder.finish_compressed(codec).unwrap()
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

    fn arb_codec() -> impl Strategy<Value = Compression> {
        prop::sample::select(Compression::ALL.to_vec())
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
        fn compressed_batches_validate_and_read_back_for_every_codec(records in proptest::collection::vec(arb_record(), 1..40), codec in arb_codec()) {
            let bytes = build_compressed(&records, codec);
            prop_assert!(verify_stored(&bytes, BATCH_BYTES_MAX).is_ok());
            let batch = RecordBatch::parse(bytes, BATCH_BYTES_MAX).unwrap();
            prop_assert_eq!(batch.compression(), codec);
            prop_assert_eq!(read_back(&batch), records.clone());
            let max_ts = records.iter().map(|r| r.0).max().unwrap();
            prop_assert_eq!(batch.max_timestamp(), Timestamp(max_ts));
        }

        #[test]
        fn validation_never_panics_on_corrupted_compressed_payloads(records in proptest::collection::vec(arb_record(), 1..8), codec in arb_codec(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in 0usize..64) {
            let mut bytes = build_compressed(&records, codec).to_vec();
            let i = HEADER_BYTES + at.index(bytes.len() - HEADER_BYTES);
            bytes[i] = byte;
            let end = bytes.len() - cut.min(bytes.len() - HEADER_BYTES);
            let bytes = with_records_area(&bytes, codec.id(), &bytes[HEADER_BYTES..end]);
            let _ = validate(&bytes, BATCH_BYTES_MAX);
            let _ = RecordBatch::parse(Bytes::from(bytes), BATCH_BYTES_MAX);
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
    fn undefined_codecs_and_transactional_batches_are_rejected_with_their_reason() {
        for codec in 5..=7 {
            let mut b = one_batch();
            b[22] |= codec;
            recrc(&mut b);
            assert_eq!(
                validate(&b, BATCH_BYTES_MAX),
                Err(BatchError::UnsupportedCompression { codec })
            );
        }
        let mut b = build_compressed(&sample_records(), Compression::Lz4).to_vec();
        b[22] |= ATTR_TRANSACTIONAL as u8;
        recrc(&mut b);
        assert!(matches!(
            validate(&b, BATCH_BYTES_MAX),
            Err(BatchError::UnsupportedAttributes { .. })
        ));
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

    /// Records with nulls, empty keys, headers (a null header value, a
    /// non-ASCII key), negative timestamp deltas, and values that compress.
    fn sample_records() -> Vec<OwnedRecord> {
        (0..50i64)
            .map(|i| {
                let key = (i % 7 != 3).then(|| format!("key-{}", i % 5).into_bytes());
                let value =
                    (i % 11 != 10).then(|| format!("value {i} ").repeat(1 + i as usize % 9));
                let headers = match i % 10 {
                    9 => vec![
                        ("n".to_string(), None),
                        ("utf8-\u{fc}".to_string(), Some(vec![0x00, 0xff])),
                    ],
                    0 | 4 | 8 => vec![("trace".to_string(), Some(format!("t-{i}").into_bytes()))],
                    _ => vec![],
                };
                let ts = 1_700_000_000_000 + 13 * i - if i % 6 == 5 { 40 } else { 0 };
                (ts, key, value.map(String::into_bytes), headers)
            })
            .collect()
    }

    /// `batch` with its records area replaced by `area` and its codec bits
    /// set to `codec`, length and CRC fixed up: a batch as a client that
    /// compressed `area` itself would send it.
    fn with_records_area(batch: &[u8], codec: u8, area: &[u8]) -> Vec<u8> {
        let mut out = batch[..HEADER_BYTES].to_vec();
        out.extend_from_slice(area);
        let attributes = u16::from_be_bytes([out[21], out[22]]);
        let attributes = (attributes & !ATTR_COMPRESSION_MASK) | u16::from(codec);
        out[21..23].copy_from_slice(&attributes.to_be_bytes());
        let length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES).unwrap();
        out[8..12].copy_from_slice(&length.to_be_bytes());
        recrc(&mut out);
        out
    }

    #[test]
    fn every_codec_round_trips_keys_values_headers_and_timestamps() {
        let records = sample_records();
        let plain = build(&records);
        let mut builder = BatchBuilder::default();
        builder.set_producer(99, 2, 7);
        let mut log = Vec::new();
        for codec in Compression::ALL {
            fill(&mut builder, &records);
            let bytes = builder.finish_compressed(codec).unwrap();
            assert_eq!(bytes[22] & 0x07, codec.id(), "codec bits of {codec}");
            if codec != Compression::None {
                assert!(bytes.len() < plain.len() / 2, "{codec} did not compress");
            }
            let info = validate(&bytes, BATCH_BYTES_MAX).unwrap();
            assert_eq!(info.compression, codec);
            assert_eq!(info.records, records.len() as u32);
            let stored = verify_stored(&bytes, BATCH_BYTES_MAX).unwrap();
            assert_eq!(stored.max_timestamp, info.max_timestamp);
            let batch = RecordBatch::parse(bytes.clone(), BATCH_BYTES_MAX).unwrap();
            assert_eq!(read_back(&batch), records, "records read back from {codec}");
            assert_eq!(batch.records_area().len(), plain.len() - HEADER_BYTES);
            assert_eq!(
                batch.max_timestamp(),
                Timestamp(1_700_000_000_000 + 13 * 49)
            );
            assert_eq!(
                (
                    batch.producer_id(),
                    batch.producer_epoch(),
                    batch.base_sequence()
                ),
                (99, 2, 7)
            );
            let first = batch.records().next().unwrap();
            assert_eq!(&batch.slice_of(first.value.unwrap())[..], b"value 0 ");
            log.extend_from_slice(&bytes);
        }
        let walked: Vec<_> = BatchWalk::new(&log, BATCH_BYTES_MAX)
            .map(|r| r.unwrap().1.compression)
            .collect();
        assert_eq!(walked, Compression::ALL, "the walk steps over every batch");
        fill(&mut builder, &records);
        builder.set_producer(-1, -1, -1);
        assert_eq!(
            builder.finish(),
            plain,
            "the builder is reusable after compressed batches"
        );
    }

    #[test]
    fn raw_snappy_and_xerial_snappy_batches_are_both_accepted() {
        let records = sample_records();
        let plain = build(&records);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&plain[HEADER_BYTES..])
            .unwrap();
        let raw_batch = with_records_area(&plain, Compression::Snappy.id(), &raw);
        let xerial_batch = build_compressed(&records, Compression::Snappy);
        assert_eq!(
            &xerial_batch[HEADER_BYTES..HEADER_BYTES + 8],
            b"\x82SNAPPY\x00"
        );
        for bytes in [Bytes::from(raw_batch), xerial_batch] {
            let batch = RecordBatch::parse(bytes, BATCH_BYTES_MAX).unwrap();
            assert_eq!(batch.compression(), Compression::Snappy);
            assert_eq!(read_back(&batch), records);
        }
    }

    #[test]
    fn a_compressed_batch_whose_record_count_lies_is_rejected() {
        let two = &sample_records()[..2];
        for codec in Compression::ALL.into_iter().skip(1) {
            for (count, detail) in [
                (3i32, "the bytes end before the last record"),
                (1, "bytes remain after the last record"),
            ] {
                let mut b = build_compressed(two, codec).to_vec();
                b[57..61].copy_from_slice(&count.to_be_bytes());
                b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
                recrc(&mut b);
                assert_eq!(
                    validate(&b, BATCH_BYTES_MAX),
                    Err(BatchError::RecordCountMismatch {
                        declared: count,
                        detail
                    }),
                    "{codec}"
                );
            }
        }
    }

    #[test]
    fn a_corrupted_compressed_payload_with_a_fixed_up_crc_is_rejected_as_undecompressable() {
        let records = sample_records();
        for codec in Compression::ALL.into_iter().skip(1) {
            let bytes = build_compressed(&records, codec);
            let area = &bytes[HEADER_BYTES..];
            let truncated = with_records_area(&bytes, codec.id(), &area[..area.len() - 3]);
            let garbage = with_records_area(&bytes, codec.id(), b"\xff plainly not compressed");
            for bad in [truncated, garbage] {
                let error = validate(&bad, BATCH_BYTES_MAX).unwrap_err();
                assert!(
                    matches!(&error, BatchError::Decompression { codec: c, .. } if *c == codec),
                    "{codec}: {error:?}"
                );
                let message = error.to_string();
                assert!(
                    message.starts_with(&format!(
                        "record batch compressed with {codec} does not decompress: "
                    )),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn a_decompression_bomb_over_the_bound_is_rejected() {
        // One record whose zero-filled value alone passes the bound: a few
        // KiB compressed, more than the bound decompressed.
        let value = vec![0u8; DECOMPRESSED_BATCH_BYTES_MAX];
        let mut builder = BatchBuilder::with_capacity(DECOMPRESSED_BATCH_BYTES_MAX + 4096);
        builder.push(Timestamp(1), None, Some(&value), &[]);
        drop(value);
        let plain = builder.finish();
        let mut area = Vec::new();
        for codec in Compression::ALL.into_iter().skip(1) {
            compress(codec, &plain[HEADER_BYTES..], &mut area).unwrap();
            let bomb = with_records_area(&plain, codec.id(), &area);
            assert!(
                bomb.len() < BATCH_BYTES_MAX,
                "{codec} bomb is {} bytes",
                bomb.len()
            );
            assert_eq!(
                validate(&bomb, BATCH_BYTES_MAX),
                Err(BatchError::DecompressedTooLarge {
                    codec,
                    max: DECOMPRESSED_BATCH_BYTES_MAX
                }),
                "{codec}"
            );
        }
        // A raw snappy preamble (a varint) declaring 1 GiB, then nothing.
        let raw_claim = [0x80, 0x80, 0x80, 0x80, 0x04, 0x00];
        let claim = with_records_area(&plain, Compression::Snappy.id(), &raw_claim);
        assert!(
            matches!(
                validate(&claim, BATCH_BYTES_MAX),
                Err(BatchError::DecompressedTooLarge { .. })
            ),
            "a raw snappy preamble claiming 1 GiB is refused before allocating"
        );
    }

    #[test]
    fn a_log_append_time_compressed_batch_keeps_the_header_max_timestamp() {
        let mut b = build_compressed(&sample_records(), Compression::Zstd).to_vec();
        b[22] |= ATTR_LOG_APPEND_TIME as u8;
        b[35..43].copy_from_slice(&42i64.to_be_bytes());
        recrc(&mut b);
        let info = validate(&b, BATCH_BYTES_MAX).unwrap();
        assert_eq!(info.max_timestamp, Timestamp(42));
    }

    #[test]
    fn validate_with_leaves_the_decompressed_records_in_the_callers_buffer() {
        let records = sample_records();
        let plain = build(&records);
        let mut scratch = Vec::new();
        for codec in Compression::ALL.into_iter().skip(1) {
            let bytes = build_compressed(&records, codec);
            validate_with(&bytes, BATCH_BYTES_MAX, &mut scratch).unwrap();
            assert_eq!(scratch, plain[HEADER_BYTES..], "{codec}");
        }
    }

    /// The records `tests/vectors/gen_kafka_python_compressed_batches.py`
    /// puts in every batch, in the same order.
    fn kafka_python_compressed_records() -> Vec<OwnedRecord> {
        const BASE_TS: i64 = 1_700_000_000_000;
        (0..60i64)
            .map(|i| {
                let key = (i % 7 != 3).then(|| format!("key-{}", i % 5).into_bytes());
                let value =
                    (i % 11 != 10).then(|| format!("value {i} ").repeat(1 + i as usize % 9));
                let headers = if i % 10 == 9 {
                    vec![
                        ("n".to_string(), None),
                        ("utf8-\u{fc}".to_string(), Some(vec![0x00, 0xff])),
                    ]
                } else if i % 4 == 0 {
                    vec![("trace".to_string(), Some(format!("t-{i}").into_bytes()))]
                } else {
                    vec![]
                };
                let ts = BASE_TS + 13 * i - if i % 6 == 5 { 5 } else { 0 };
                (ts, key, value.map(String::into_bytes), headers)
            })
            .collect()
    }

    #[test]
    fn kafka_python_compressed_batches_validate_and_read_back() {
        let vector = Bytes::from_static(include_bytes!(
            "../../tests/vectors/kafka_python_compressed_batches.bin"
        ));
        let records = kafka_python_compressed_records();
        let walked: Vec<_> = BatchWalk::new(&vector, BATCH_BYTES_MAX)
            .collect::<Result<_, _>>()
            .expect("kafka-python's compressed batches must validate");
        let expected = [
            (Compression::Gzip, true, (-1, -1, -1)),
            (Compression::Snappy, true, (-1, -1, -1)),
            (Compression::Snappy, false, (-1, -1, -1)),
            (Compression::Lz4, true, (-1, -1, -1)),
            (Compression::Zstd, true, (777, 1, 5)),
        ];
        assert_eq!(walked.len(), expected.len());
        for ((at, info), (codec, xerial, (pid, epoch, seq))) in walked.into_iter().zip(expected) {
            let theirs = vector.slice(at..at + info.bytes);
            let batch = RecordBatch::parse(theirs.clone(), BATCH_BYTES_MAX).unwrap();
            assert_eq!(batch.compression(), codec);
            if codec == Compression::Snappy {
                assert_eq!(
                    theirs[HEADER_BYTES..].starts_with(b"\x82SNAPPY\x00"),
                    xerial
                );
            }
            assert_eq!(
                read_back(&batch),
                records,
                "records of kafka-python's {codec} batch"
            );

            // Ours, compressed with the same codec: every header field but
            // length and CRC, and the uncompressed records, byte for byte.
            let mut builder = BatchBuilder::default();
            builder.set_producer(pid, epoch, seq);
            fill(&mut builder, &records);
            let ours =
                RecordBatch::parse(builder.finish_compressed(codec).unwrap(), BATCH_BYTES_MAX)
                    .unwrap();
            let header = |b: &Bytes| [&b[..8], &b[12..17], &b[21..HEADER_BYTES]].concat();
            assert_eq!(header(ours.as_bytes()), header(&theirs), "{codec} header");
            assert_eq!(ours.records_area(), batch.records_area(), "{codec} records");
        }
    }

    #[test]
    fn compacted_batches_keep_offsets_and_codecs_and_only_stored_reads_accept_them() {
        let records = sample_records();
        for codec in Compression::ALL {
            let mut builder = BatchBuilder::default();
            builder.set_producer(42, 3, 100);
            fill(&mut builder, &records);
            let mut original = BytesMut::from(&builder.finish_compressed(codec).unwrap()[..]);
            stamp_base_offset(&mut original, Offset(1000));
            let original = RecordBatch::parse(original.freeze(), BATCH_BYTES_MAX).unwrap();
            // Keep every third record.
            let kept: Vec<&[u8]> = original
                .raw_records()
                .filter(|(r, _)| r.offset_delta % 3 == 0)
                .map(|(_, raw)| raw)
                .collect();
            let rewritten = rewrite_batch(&original, &kept).unwrap();
            // A producer may not send such a batch …
            assert!(validate(&rewritten, BATCH_BYTES_MAX).is_err(), "{codec}");
            // … but a log stores and reads it.
            let stored = verify_stored(&rewritten, BATCH_BYTES_MAX).unwrap();
            assert_eq!(stored.records, records.len() as u32, "{codec}: the span");
            let batch = RecordBatch::parse(rewritten, BATCH_BYTES_MAX).unwrap();
            assert_eq!(batch.compression(), codec);
            assert_eq!(batch.base_offset(), Offset(1000));
            assert_eq!(batch.last_offset(), original.last_offset());
            assert_eq!(batch.record_count() as usize, kept.len());
            assert_eq!(
                (
                    batch.producer_id(),
                    batch.producer_epoch(),
                    batch.base_sequence()
                ),
                (42, 3, 100)
            );
            let want: Vec<OwnedRecord> = read_back(&original)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 3 == 0)
                .map(|(_, r)| r)
                .collect();
            assert_eq!(read_back(&batch), want, "{codec}: kept records unchanged");
            let deltas: Vec<i32> = batch.records().map(|r| r.offset_delta).collect();
            assert_eq!(deltas, (0..50).step_by(3).collect::<Vec<_>>());
            // Emptied: the batch still spans its offsets.
            let empty = RecordBatch::parse(rewrite_batch(&original, &[]).unwrap(), BATCH_BYTES_MAX)
                .unwrap();
            assert_eq!(empty.record_count(), 0);
            assert_eq!(empty.last_offset(), original.last_offset());
            assert_eq!(empty.compression(), Compression::None);
        }
        let filler = filler_batch(Offset(7), 5, Timestamp(123));
        assert!(matches!(
            validate(&filler, BATCH_BYTES_MAX),
            Err(BatchError::NoRecords)
        ));
        let filler = RecordBatch::parse(filler, BATCH_BYTES_MAX).unwrap();
        assert_eq!(
            (filler.base_offset(), filler.last_offset()),
            (Offset(7), Offset(11))
        );
        assert_eq!(filler.max_timestamp(), Timestamp(123));
        assert_eq!(filler.producer_id(), -1);
    }

    #[test]
    fn stored_batches_with_impossible_counts_or_deltas_are_rejected() {
        let records = sample_records();
        let plain = build(&records);
        // More records than the span.
        let mut b = plain.to_vec();
        b[23..27].copy_from_slice(&10i32.to_be_bytes());
        recrc(&mut b);
        assert!(RecordBatch::parse(Bytes::from(b.clone()), BATCH_BYTES_MAX).is_err());
        assert!(verify_stored(&b, BATCH_BYTES_MAX).is_err());
        // A negative last offset delta.
        let mut b = plain.to_vec();
        b[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        recrc(&mut b);
        assert!(verify_stored(&b, BATCH_BYTES_MAX).is_err());
        assert!(RecordBatch::parse(Bytes::from(b), BATCH_BYTES_MAX).is_err());
        // Deltas that do not increase: two records swapped.
        let original = RecordBatch::parse(plain.clone(), BATCH_BYTES_MAX).unwrap();
        let raws: Vec<&[u8]> = original.raw_records().map(|(_, raw)| raw).collect();
        let swapped = rewrite_batch(&original, &[raws[1], raws[0]]).unwrap();
        assert!(RecordBatch::parse(swapped, BATCH_BYTES_MAX).is_err());
    }

    #[test]
    fn a_stamped_leader_epoch_reads_back_and_keeps_the_crc_valid() {
        let batch = build(&[(1000, Some(b"k".to_vec()), Some(b"v".to_vec()), vec![])]);
        let mut bytes = BytesMut::from(&batch[..]);
        assert_eq!(leader_epoch(&bytes), 0, "the builder writes 0");
        stamp_leader_epoch(&mut bytes, 7);
        assert_eq!(leader_epoch(&bytes), 7);
        let parsed = RecordBatch::parse(bytes.freeze(), BATCH_BYTES_MAX).unwrap();
        assert_eq!(parsed.partition_leader_epoch(), 7);
    }

    #[test]
    fn a_stored_walk_accepts_compacted_batches_a_plain_walk_refuses() {
        let filler = filler_batch(Offset(10), 5, Timestamp(1000));
        assert!(
            BatchWalk::new(&filler, BATCH_BYTES_MAX)
                .next()
                .unwrap()
                .is_err()
        );
        let (at, info) = BatchWalk::stored(&filler, BATCH_BYTES_MAX)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!((at, info.records, info.offset_span), (0, 0, 5));
    }
}
