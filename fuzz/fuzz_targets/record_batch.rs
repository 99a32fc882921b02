//! The record-batch validator, on what a producer sends: the record data
//! of a produce request, one or more v2 batches.
//!
//! Input: one control byte, then the batches. The control byte can make
//! the first batch's length field cover the rest of the input and
//! recompute every framed batch's CRC-32C, so mutations get past the
//! length and CRC checks and reach the records (a fuzzer cannot forge a
//! CRC by itself), and can pick a small size limit.
//!
//! Properties, for every batch the append path's walk accepts:
//! * validation is deterministic, and the checks on stored batches
//!   (`validate_stored_with`, `verify_stored`, `RecordBatch::parse`) accept
//!   it too, with the same facts;
//! * its records iterate (records, headers, raw records) without a panic,
//!   and the raw records tile the records area exactly;
//! * stamping it as the log does (base offset, timestamps, CRC) keeps it
//!   valid;
//! * rebuilding it from its records with the client's builder, in the same
//!   codec, gives a batch that validates and reads back the same records;
//! * compaction's rewrite keeping every other record gives a valid stored
//!   batch with the same offsets.
#![no_main]

use bytes::Bytes;
use corelog::record::{
    BatchBuilder, BatchInfo, BatchWalk, Compression, HEADER_BYTES, Header, LOG_OVERHEAD_BYTES,
    RecordBatch, read_framing, rewrite_batch, set_timestamps, stamp_base_offset, validate,
    validate_stored_with, verify_stored,
};
use corelog::types::{Offset, Timestamp};
use libfuzzer_sys::fuzz_target;

const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// Recomputes the CRC of every batch the framing fields delimit.
fn fix_crcs(buf: &mut [u8]) {
    let mut at = 0usize;
    while let Some(framing) = read_framing(&buf[at..]) {
        let total = framing.total_bytes;
        if total < HEADER_BYTES as u64 || total > (buf.len() - at) as u64 {
            return;
        }
        let batch = &mut buf[at..at + total as usize];
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        at += total as usize;
    }
}

type OwnedRecord = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

/// Every record with its absolute timestamp, or `None` if one overflows.
fn records_of(batch: &RecordBatch) -> Option<Vec<OwnedRecord>> {
    let base = batch.base_timestamp().0;
    batch
        .records()
        .map(|r| {
            Some((
                base.checked_add(r.timestamp_delta)?,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
                r.headers()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect(),
            ))
        })
        .collect()
}

fn check_batch(bytes: &[u8], info: BatchInfo, max: usize) {
    assert_eq!(bytes.len(), info.bytes);
    assert_eq!(
        validate(bytes, max),
        Ok(info),
        "validation is deterministic"
    );
    assert!(info.records >= 1 && info.records == info.offset_span);
    let stored = validate_stored_with(bytes, max, &mut Vec::new()).expect("stored check");
    assert_eq!(stored, info, "a produced batch is a valid stored batch");
    let verified = verify_stored(bytes, max).expect("verify_stored");
    assert_eq!(
        (verified.bytes, verified.records),
        (info.bytes, info.records)
    );

    let batch = RecordBatch::parse(Bytes::copy_from_slice(bytes), max).expect("parse");
    assert_eq!(*batch.info(), info);
    assert_eq!(batch.records().count(), info.records as usize);
    let mut tiled = Vec::new();
    for (record, raw) in batch.raw_records() {
        let _ = record.headers().count();
        tiled.extend_from_slice(raw);
    }
    assert_eq!(
        &tiled[..],
        &batch.records_area()[..],
        "raw records tile the area"
    );

    // Stamped as the log stamps an append, in either timestamp type.
    for log_append_time in [false, true] {
        let mut stamped = bytes.to_vec();
        stamp_base_offset(&mut stamped, Offset(1 << 40));
        let max_ts = if log_append_time {
            Timestamp(1_700_000_000_000)
        } else {
            info.create_max_timestamp
        };
        set_timestamps(&mut stamped, log_append_time, max_ts);
        let again = validate(&stamped, max).expect("a stamped batch stays valid");
        assert_eq!(again.records, info.records);
        assert_eq!(again.log_append_time, log_append_time);
        assert_eq!(verify_stored(&stamped, max).unwrap().max_timestamp, max_ts);
    }

    // Rebuilt from its records by the client's builder.
    if let Some(records) = records_of(&batch) {
        let first = records[0].0;
        if records.iter().all(|r| r.0.checked_sub(first).is_some()) {
            let mut builder = BatchBuilder::default();
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
            let rebuilt = builder
                .finish_compressed(info.compression)
                .expect("the codec compresses");
            if rebuilt.len() <= max {
                let again = validate(&rebuilt, max).expect("a rebuilt batch validates");
                assert_eq!(again.records, info.records);
                assert_eq!(again.compression, info.compression);
                let reparsed = RecordBatch::parse(rebuilt, max).unwrap();
                assert_eq!(records_of(&reparsed).as_ref(), Some(&records));
                assert_eq!(again.create_max_timestamp, info.create_max_timestamp);
            }
        }
    }

    // Compaction keeping every other record.
    let kept: Vec<&[u8]> = batch.raw_records().step_by(2).map(|(_, raw)| raw).collect();
    let rewritten = rewrite_batch(&batch, &kept).expect("the codec compresses");
    let info2 = validate_stored_with(&rewritten, usize::MAX, &mut Vec::new())
        .expect("a compacted batch is a valid stored batch");
    assert_eq!(info2.records as usize, kept.len());
    assert_eq!(info2.offset_span, info.offset_span);
    let empty = rewrite_batch(&batch, &[]).unwrap();
    let info3 = validate_stored_with(&empty, usize::MAX, &mut Vec::new()).unwrap();
    assert_eq!((info3.records, info3.offset_span), (0, info.offset_span));
    assert_eq!(info3.compression, Compression::None);
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let mut buf = data.to_vec();
    if control & 1 != 0 && buf.len() >= LOG_OVERHEAD_BYTES {
        let length = (buf.len() - LOG_OVERHEAD_BYTES) as i32;
        buf[8..12].copy_from_slice(&length.to_be_bytes());
    }
    if control & 2 != 0 {
        fix_crcs(&mut buf);
    }
    let max = if control & 4 == 0 { 1 << 20 } else { 256 };
    let mut end = 0usize;
    for result in BatchWalk::new(&buf, max) {
        match result {
            Ok((at, info)) => {
                assert_eq!(at, end, "batches follow each other");
                end = at + info.bytes;
                check_batch(&buf[at..end], info, max);
            }
            Err(_) => return,
        }
    }
    assert_eq!(end, buf.len(), "the walk ends at the end or at an error");
});
