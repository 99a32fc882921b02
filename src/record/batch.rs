//! The Kafka record-batch v2 layout (magic 2): parse, validate, and read
//! without copying.
//!
//! ```text
//! offset size field                     covered by CRC
//!      0    8 base offset               no  (stamped by the broker)
//!      8    4 batch length              no  (bytes after this field)
//!     12    4 partition leader epoch    no
//!     16    1 magic (= 2)               no
//!     17    4 CRC-32C                   no
//!     21    2 attributes                yes
//!     23    4 last offset delta         yes
//!     27    8 base (first) timestamp    yes
//!     35    8 max timestamp             yes
//!     43    8 producer id               yes
//!     51    2 producer epoch            yes
//!     53    4 base sequence             yes
//!     57    4 records count             yes
//!     61    … records (varint encoded)  yes
//! ```
//!
//! All fixed-width integers are big-endian. Because neither the base offset
//! nor the length is covered by the CRC, the log stamps offsets into a batch
//! without recomputing it; the same bytes travel on the wire and sit on disk.
//!
//! Validation is complete: length, magic, CRC, attributes, and every record
//! parsed so that the declared count matches the bytes exactly. A batch that
//! passes [`validate`] can be iterated without further checks.
//!
//! # Compressed batches
//!
//! A compressed batch (attribute bits 0–2, see [`Compression`]) keeps the
//! header as is and replaces the records area (bytes 61..) with the
//! compressed records; the CRC covers the compressed bytes. Validation checks
//! the header as for any batch, then decompresses the records area (bounded
//! by [`DECOMPRESSED_BATCH_BYTES_MAX`]) and runs the same record checks on
//! the result. [`validate_with`] decompresses into a buffer the caller
//! passes and reuses; [`validate`] uses one kept per thread, so the append
//! path allocates nothing per batch once warm.
//!
//! Reading: [`RecordBatch`] holds its records area as `Bytes`. For an
//! uncompressed batch that is a slice of the batch itself, so reading stays
//! zero-copy; for a compressed batch it is the decompressed bytes, produced
//! once by [`RecordBatch::parse`] into a buffer the batch then owns (one
//! allocation per batch, no copy). Records, and `Bytes` cut from them with
//! [`RecordBatch::slice_of`], borrow from that area either way, so readers
//! (the consumer, timestamp lookups) need no second code path. Stored
//! batches are not decompressed again by [`verify_stored`]: the CRC covers
//! the compressed bytes that were validated on append.

use super::compression::{Compression, DecompressError, decompress};
use super::varint::{VarintError, read_varint, read_varlong};
use crate::constants::{DECOMPRESS_SCRATCH_KEPT_BYTES_MAX, DECOMPRESSED_BATCH_BYTES_MAX};
use crate::types::{Offset, Timestamp, TimestampType};
use bytes::Bytes;
use std::cell::RefCell;
use std::fmt;

/// Bytes before the first record.
pub const HEADER_BYTES: usize = 61;
/// Base offset + batch length: the part not counted by the length field.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only magic this codec reads and writes.
pub const MAGIC_V2: u8 = 2;

pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const LENGTH_AT: usize = 8;
pub(crate) const LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORDS_COUNT_AT: usize = 57;

const _: () = assert!(RECORDS_COUNT_AT + 4 == HEADER_BYTES);

/// Attribute bits 0–2: compression codec (0 = none).
pub const ATTR_COMPRESSION_MASK: u16 = 0x07;
/// Attribute bit 3: timestamps are log-append time rather than create time.
pub const ATTR_LOG_APPEND_TIME: u16 = 0x08;
/// Attribute bit 4: part of a transaction.
pub const ATTR_TRANSACTIONAL: u16 = 0x10;
/// Attribute bit 5: a control batch (transaction markers).
pub const ATTR_CONTROL: u16 = 0x20;

/// Why bytes are not a valid v2 record batch. Every variant names what was
/// found, so the error a producer sees explains itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than a batch header.
    TooShort { available: usize },
    /// The length field disagrees with the bytes present.
    LengthMismatch { declared: u64, available: usize },
    /// The batch is larger than the broker accepts.
    TooLarge { bytes: usize, max: usize },
    /// Not magic 2.
    UnsupportedMagic { magic: u8 },
    /// The stored CRC does not match the bytes.
    CrcMismatch { stored: u32, computed: u32 },
    /// A compression codec id Kafka does not define (5–7).
    UnsupportedCompression { codec: u8 },
    /// The compressed records area is not valid for its codec.
    Decompression { codec: Compression, reason: String },
    /// The compressed records area decompresses to more than `max` bytes.
    DecompressedTooLarge { codec: Compression, max: usize },
    /// Transactional or control batches, which this broker does not support.
    UnsupportedAttributes { attributes: u16 },
    /// A batch must hold at least one record.
    NoRecords,
    /// The records count field disagrees with the records in the bytes.
    RecordCountMismatch { declared: i32, detail: &'static str },
    /// The header's last offset delta disagrees with the record count.
    LastOffsetDeltaMismatch { declared: i32, expected: i32 },
    /// A record inside the batch is malformed.
    BadRecord { index: u32, reason: &'static str },
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::TooShort { available } => write!(
                f,
                "record batch too short: {available} bytes, header needs {HEADER_BYTES}"
            ),
            BatchError::LengthMismatch {
                declared,
                available,
            } => write!(
                f,
                "record batch length field says {declared} bytes, {available} present"
            ),
            BatchError::TooLarge { bytes, max } => {
                write!(
                    f,
                    "record batch of {bytes} bytes exceeds the limit of {max}"
                )
            }
            BatchError::UnsupportedMagic { magic } => {
                write!(f, "record batch magic {magic} is not supported (only 2)")
            }
            BatchError::CrcMismatch { stored, computed } => write!(
                f,
                "record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            BatchError::UnsupportedCompression { codec } => {
                write!(f, "record batch compression codec {codec} is not supported")
            }
            BatchError::Decompression { codec, reason } => write!(
                f,
                "record batch compressed with {codec} does not decompress: {reason}"
            ),
            BatchError::DecompressedTooLarge { codec, max } => write!(
                f,
                "record batch compressed with {codec} decompresses to more than {max} bytes"
            ),
            BatchError::UnsupportedAttributes { attributes } => write!(
                f,
                "record batch attributes {attributes:#06x}: transactional and control batches are not supported"
            ),
            BatchError::NoRecords => write!(f, "record batch holds no records"),
            BatchError::RecordCountMismatch { declared, detail } => {
                write!(f, "record batch declares {declared} records but {detail}")
            }
            BatchError::LastOffsetDeltaMismatch { declared, expected } => write!(
                f,
                "record batch last offset delta is {declared}, expected {expected}"
            ),
            BatchError::BadRecord { index, reason } => {
                write!(f, "record {index} of the batch is malformed: {reason}")
            }
        }
    }
}

impl std::error::Error for BatchError {}

#[inline]
pub(crate) fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}
#[inline]
pub(crate) fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
#[inline]
pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
#[inline]
pub(crate) fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// The first two header fields, readable from 12 bytes: enough to step over
/// a batch without validating it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Framing {
    pub base_offset: i64,
    /// Total bytes of the batch, overhead included.
    pub total_bytes: u64,
}

/// Reads base offset and total size from the first 12 bytes of `buf`, or
/// `None` if fewer are present. The length is not checked for sanity here.
pub fn read_framing(buf: &[u8]) -> Option<Framing> {
    if buf.len() < LOG_OVERHEAD_BYTES {
        return None;
    }
    let length = be_i32(buf, LENGTH_AT);
    Some(Framing {
        base_offset: be_i64(buf, BASE_OFFSET_AT),
        // A negative length becomes a huge size that every caller rejects.
        total_bytes: (LOG_OVERHEAD_BYTES as u64).wrapping_add(length as i64 as u64),
    })
}

/// What validation learnt about a batch, so callers need not parse again.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// Total bytes, overhead included: the batch is `buf[..bytes]`.
    pub bytes: usize,
    /// Number of records (at least one for a produced batch; a stored
    /// batch that compaction rewrote may hold fewer than it spans, or none).
    pub records: u32,
    /// Offsets the batch covers: its last offset delta plus one. Equal to
    /// `records` except in a compacted batch, whose records keep their
    /// offset deltas (gaps where records were removed) as Kafka's do.
    pub offset_span: u32,
    /// The header's base timestamp.
    pub base_timestamp: Timestamp,
    /// The largest record timestamp, computed from the records themselves
    /// (or the header's value for log-append-time batches). Indexes use this
    /// rather than trusting the header field.
    pub max_timestamp: Timestamp,
    /// Attribute bit 3: the batch carries a log-append time (its header's
    /// max timestamp, which readers take for every record).
    pub log_append_time: bool,
    /// The largest create time the records carry (base timestamp plus the
    /// largest delta), whatever bit 3 says: what a create-time log stores
    /// as the max timestamp.
    pub create_max_timestamp: Timestamp,
    /// The codec of the records area.
    pub compression: Compression,
}

/// One record, borrowed from the batch bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    header_count: u32,
    headers: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record's headers in order.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            buf: self.headers,
            pos: 0,
            left: self.header_count,
        }
    }

    /// Number of headers.
    pub fn header_count(&self) -> u32 {
        self.header_count
    }
}

/// A record header, borrowed from the batch bytes. Keys are UTF-8 in Kafka;
/// they are checked when the batch is validated.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a str,
    pub value: Option<&'a [u8]>,
}

/// Iterates the headers of a validated record.
pub struct HeaderIter<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let header = parse_header(self.buf, &mut self.pos)
            .expect("headers of a validated record failed to parse");
        Some(header)
    }
}

fn varint_reason(e: VarintError) -> &'static str {
    match e {
        VarintError::Truncated => "a varint runs past the end of the record",
        VarintError::Overlong => "a varint is longer than its type allows",
    }
}

/// Reads a length-prefixed byte string (`-1` = null) at `*pos`.
fn read_nullable_bytes<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    what: &'static str,
) -> Result<Option<&'a [u8]>, &'static str> {
    let len = read_varint(buf, pos).map_err(varint_reason)?;
    if len == -1 {
        return Ok(None);
    }
    if len < -1 {
        return Err(what);
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&end| end <= buf.len())
        .ok_or("a key, value or header runs past the end of the record")?;
    let slice = &buf[*pos..end];
    *pos = end;
    Ok(Some(slice))
}

fn parse_header<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Header<'a>, &'static str> {
    let key =
        read_nullable_bytes(buf, pos, "negative header key length")?.ok_or("header key is null")?;
    let key = std::str::from_utf8(key).map_err(|_| "header key is not UTF-8")?;
    let value = read_nullable_bytes(buf, pos, "negative header value length")?;
    Ok(Header { key, value })
}

/// Parses the record starting at `*pos` in `buf` (the records area of a
/// batch), advancing `*pos` past it.
fn parse_record<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Record<'a>, &'static str> {
    let len = read_varint(buf, pos).map_err(varint_reason)?;
    if len < 0 {
        return Err("negative record length");
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&end| end <= buf.len())
        .ok_or("record length runs past the end of the batch")?;
    let body = &buf[*pos..end];
    let mut p = 0;
    // Record attributes: unused in v2, any value is accepted (as Kafka does).
    if body.is_empty() {
        return Err("record is empty");
    }
    p += 1;
    let timestamp_delta = read_varlong(body, &mut p).map_err(varint_reason)?;
    let offset_delta = read_varint(body, &mut p).map_err(varint_reason)?;
    let key = read_nullable_bytes(body, &mut p, "negative key length")?;
    let value = read_nullable_bytes(body, &mut p, "negative value length")?;
    let header_count = read_varint(body, &mut p).map_err(varint_reason)?;
    if header_count < 0 {
        return Err("negative header count");
    }
    let headers_start = p;
    for _ in 0..header_count {
        parse_header(body, &mut p)?;
    }
    if p != body.len() {
        return Err("record length disagrees with its fields");
    }
    *pos = end;
    Ok(Record {
        offset_delta,
        timestamp_delta,
        key,
        value,
        header_count: header_count as u32,
        headers: &body[headers_start..],
    })
}

/// Validates the batch at the start of `buf` (which may hold more bytes
/// after it) and returns what it learnt. Checks, in order: enough bytes for
/// a header, the length field against the bytes and `max_bytes`, magic,
/// CRC-32C, attributes, then every record: offset deltas run 0, 1, 2, …,
/// the count matches and the records fill the batch exactly. A compressed
/// batch is decompressed into a scratch buffer kept per thread; see
/// [`validate_with`] to pass one instead.
pub fn validate(buf: &[u8], max_bytes: usize) -> Result<BatchInfo, BatchError> {
    with_scratch(|scratch| validate_with(buf, max_bytes, scratch))
}

/// [`validate_stored_with`] with the per-thread scratch buffer of
/// [`validate`].
fn validate_stored(buf: &[u8], max_bytes: usize) -> Result<BatchInfo, BatchError> {
    with_scratch(|scratch| validate_stored_with(buf, max_bytes, scratch))
}

/// Runs `f` with the decompression buffer kept per thread.
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let result = f(&mut scratch);
            if scratch.capacity() > DECOMPRESS_SCRATCH_KEPT_BYTES_MAX {
                *scratch = Vec::new();
            }
            result
        }
        // Validation does not call itself, so the buffer is never in use
        // here; should that change, a fresh buffer is still correct.
        Err(_) => f(&mut Vec::new()),
    })
}

/// [`validate`] with a caller's scratch buffer for decompression, so a loop
/// over many batches reuses one allocation. After success on a compressed
/// batch, `scratch` holds its decompressed records area; for an
/// uncompressed batch it is not touched.
pub fn validate_with(
    buf: &[u8],
    max_bytes: usize,
    scratch: &mut Vec<u8>,
) -> Result<BatchInfo, BatchError> {
    validate_inner(buf, max_bytes, scratch, false)
}

/// [`validate_with`] for a batch read back from a log, which compaction
/// may have rewritten: its count may be below its offset span (zero
/// included), and record offset deltas must increase strictly and stay
/// within the span instead of running 0, 1, 2, ….
pub fn validate_stored_with(
    buf: &[u8],
    max_bytes: usize,
    scratch: &mut Vec<u8>,
) -> Result<BatchInfo, BatchError> {
    validate_inner(buf, max_bytes, scratch, true)
}

fn validate_inner(
    buf: &[u8],
    max_bytes: usize,
    scratch: &mut Vec<u8>,
    compacted: bool,
) -> Result<BatchInfo, BatchError> {
    let batch = check_frame(buf, max_bytes)?;
    let attributes = be_u16(batch, ATTRIBUTES_AT);
    let compression =
        Compression::from_attributes(attributes).ok_or(BatchError::UnsupportedCompression {
            codec: (attributes & ATTR_COMPRESSION_MASK) as u8,
        })?;
    if attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL) != 0 {
        return Err(BatchError::UnsupportedAttributes { attributes });
    }
    let (declared, span) = if compacted {
        check_stored_counts(batch)?
    } else {
        let declared = check_counts(batch)?;
        (declared, declared)
    };
    let records = match compression {
        Compression::None => &batch[HEADER_BYTES..],
        codec => {
            decompress(
                codec,
                &batch[HEADER_BYTES..],
                scratch,
                DECOMPRESSED_BATCH_BYTES_MAX,
            )
            .map_err(|e| decompress_error(codec, e))?;
            scratch.as_slice()
        }
    };
    let max_delta = check_records(records, declared, compacted.then_some(span))?;
    let base_timestamp = be_i64(batch, BASE_TIMESTAMP_AT);
    // An empty (compacted) batch keeps the header's max timestamp.
    let create_max = if declared == 0 {
        be_i64(batch, MAX_TIMESTAMP_AT)
    } else {
        base_timestamp.saturating_add(max_delta)
    };
    let log_append_time = attributes & ATTR_LOG_APPEND_TIME != 0;
    let max_timestamp = if log_append_time {
        be_i64(batch, MAX_TIMESTAMP_AT)
    } else {
        create_max
    };
    Ok(BatchInfo {
        bytes: batch.len(),
        records: declared as u32,
        offset_span: span as u32,
        base_timestamp: Timestamp(base_timestamp),
        max_timestamp: Timestamp(max_timestamp),
        log_append_time,
        create_max_timestamp: Timestamp(create_max),
        compression,
    })
}

/// Checks size, length field, magic and CRC; returns the batch's bytes.
fn check_frame(buf: &[u8], max_bytes: usize) -> Result<&[u8], BatchError> {
    let Some(framing) = read_framing(buf).filter(|_| buf.len() >= HEADER_BYTES) else {
        return Err(BatchError::TooShort {
            available: buf.len(),
        });
    };
    let total = framing.total_bytes;
    if total < HEADER_BYTES as u64 || total > buf.len() as u64 {
        if total > max_bytes as u64 && total <= i32::MAX as u64 + LOG_OVERHEAD_BYTES as u64 {
            return Err(BatchError::TooLarge {
                bytes: total as usize,
                max: max_bytes,
            });
        }
        return Err(BatchError::LengthMismatch {
            declared: total,
            available: buf.len(),
        });
    }
    let total = total as usize;
    if total > max_bytes {
        return Err(BatchError::TooLarge {
            bytes: total,
            max: max_bytes,
        });
    }
    let batch = &buf[..total];
    let magic = batch[MAGIC_AT];
    if magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic { magic });
    }
    let stored = be_u32(batch, CRC_AT);
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(batch)
}

/// Checks the header's record count and last offset delta; returns the count.
fn check_counts(batch: &[u8]) -> Result<i32, BatchError> {
    let declared = be_i32(batch, RECORDS_COUNT_AT);
    if declared == 0 {
        return Err(BatchError::NoRecords);
    }
    if declared < 0 {
        return Err(BatchError::RecordCountMismatch {
            declared,
            detail: "a count cannot be negative",
        });
    }
    let last_offset_delta = be_i32(batch, LAST_OFFSET_DELTA_AT);
    if last_offset_delta != declared - 1 {
        return Err(BatchError::LastOffsetDeltaMismatch {
            declared: last_offset_delta,
            expected: declared - 1,
        });
    }
    Ok(declared)
}

/// The header's record count and offset span of a stored batch: a count
/// from zero up to the span (last offset delta + 1, at least 1).
fn check_stored_counts(batch: &[u8]) -> Result<(i32, i32), BatchError> {
    let declared = be_i32(batch, RECORDS_COUNT_AT);
    let last_offset_delta = be_i32(batch, LAST_OFFSET_DELTA_AT);
    if last_offset_delta < 0 || last_offset_delta == i32::MAX {
        return Err(BatchError::LastOffsetDeltaMismatch {
            declared: last_offset_delta,
            expected: declared.saturating_sub(1),
        });
    }
    let span = last_offset_delta + 1;
    if declared < 0 || declared > span {
        return Err(BatchError::RecordCountMismatch {
            declared,
            detail: "the count must be between 0 and the offsets the batch spans",
        });
    }
    Ok((declared, span))
}

fn decompress_error(codec: Compression, error: DecompressError) -> BatchError {
    match error {
        DecompressError::TooLarge { max } => BatchError::DecompressedTooLarge { codec, max },
        DecompressError::Corrupt { reason } => BatchError::Decompression { codec, reason },
    }
}

/// Parses every record of a (decompressed) records area: exactly `declared`
/// records, offset deltas 0, 1, 2, …, no bytes left over. Returns the
/// largest timestamp delta.
///
/// With `span` (a stored batch, possibly compacted), offset deltas need
/// only increase strictly and stay below `span`.
fn check_records(records: &[u8], declared: i32, span: Option<i32>) -> Result<i64, BatchError> {
    let mut max_delta = i64::MIN;
    let mut pos = 0;
    let mut previous = -1i32;
    for index in 0..declared {
        if pos == records.len() {
            return Err(BatchError::RecordCountMismatch {
                declared,
                detail: "the bytes end before the last record",
            });
        }
        let record = parse_record(records, &mut pos).map_err(|reason| BatchError::BadRecord {
            index: index as u32,
            reason,
        })?;
        match span {
            None if record.offset_delta != index => {
                return Err(BatchError::BadRecord {
                    index: index as u32,
                    reason: "offset deltas must run 0, 1, 2, … within a batch",
                });
            }
            Some(span) if record.offset_delta <= previous || record.offset_delta >= span => {
                return Err(BatchError::BadRecord {
                    index: index as u32,
                    reason: "offset deltas must increase within the batch's offset span",
                });
            }
            _ => {}
        }
        previous = record.offset_delta;
        max_delta = max_delta.max(record.timestamp_delta);
    }
    if pos != records.len() {
        return Err(BatchError::RecordCountMismatch {
            declared,
            detail: "bytes remain after the last record",
        });
    }
    Ok(max_delta)
}

/// What [`verify_stored`] reads from a stored batch's header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StoredInfo {
    /// Total bytes, overhead included.
    pub bytes: usize,
    /// Offsets the batch spans (its last offset delta + 1): the record
    /// count, except in a batch compaction rewrote.
    pub records: u32,
    /// The header's max timestamp (made exact when the batch was appended).
    pub max_timestamp: Timestamp,
}

/// Checks a batch read back from storage: length, magic and CRC-32C, and the
/// header's record count. The records themselves were validated when the
/// batch was appended and the CRC covers them, so they are not walked again.
pub fn verify_stored(buf: &[u8], max_bytes: usize) -> Result<StoredInfo, BatchError> {
    if buf.len() < HEADER_BYTES {
        return Err(BatchError::TooShort {
            available: buf.len(),
        });
    }
    let total = read_framing(buf).expect("length checked above").total_bytes;
    if total < HEADER_BYTES as u64 || total > max_bytes as u64 || total > buf.len() as u64 {
        return Err(BatchError::LengthMismatch {
            declared: total,
            available: buf.len(),
        });
    }
    let batch = &buf[..total as usize];
    let magic = batch[MAGIC_AT];
    if magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic { magic });
    }
    let stored = be_u32(batch, CRC_AT);
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    let (_, span) = check_stored_counts(batch)?;
    Ok(StoredInfo {
        bytes: total as usize,
        records: span as u32,
        max_timestamp: Timestamp(be_i64(batch, MAX_TIMESTAMP_AT)),
    })
}

/// Makes the header's max timestamp equal `max` (the value validation
/// computed from the records), recomputing the CRC if it changes. Clients
/// that follow the format already write the exact value; this keeps stored
/// headers trustworthy for indexes when one does not.
pub fn set_max_timestamp(batch: &mut [u8], max: Timestamp) {
    if be_i64(batch, MAX_TIMESTAMP_AT) == max.0 {
        return;
    }
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max.0.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The idempotent-producer fields of a batch header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ProducerFields {
    /// -1 for a producer that is not idempotent.
    pub producer_id: i64,
    pub epoch: i16,
    /// The first record's sequence number (-1 when not idempotent).
    pub base_sequence: i32,
    /// Records in the batch, from the header's last offset delta.
    pub records: u32,
    /// The header's max timestamp (exact for stored batches: appends set
    /// it from the records).
    pub max_timestamp: Timestamp,
}

/// Reads the producer fields of a batch (at least a header's bytes: the
/// caller validated it).
pub fn producer_fields(batch: &[u8]) -> ProducerFields {
    ProducerFields {
        producer_id: be_i64(batch, PRODUCER_ID_AT),
        epoch: be_u16(batch, PRODUCER_EPOCH_AT) as i16,
        base_sequence: be_i32(batch, BASE_SEQUENCE_AT),
        records: (be_i32(batch, LAST_OFFSET_DELTA_AT).max(0) as u32).saturating_add(1),
        max_timestamp: Timestamp(be_i64(batch, MAX_TIMESTAMP_AT)),
    }
}

/// Makes the header say `log_append_time` in attribute bit 3 and `max` as
/// its max timestamp, recomputing the CRC if either changes (both are
/// covered by it). A log-append-time log stamps the append time this way,
/// as Kafka does: the records keep their own deltas, and readers take the
/// max timestamp for every record. A create-time log clears the bit a
/// producer may have set and stores the records' own max.
pub fn set_timestamps(batch: &mut [u8], log_append_time: bool, max: Timestamp) {
    let attributes = be_u16(batch, ATTRIBUTES_AT);
    let wanted = if log_append_time {
        attributes | ATTR_LOG_APPEND_TIME
    } else {
        attributes & !ATTR_LOG_APPEND_TIME
    };
    if wanted == attributes && be_i64(batch, MAX_TIMESTAMP_AT) == max.0 {
        return;
    }
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&wanted.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max.0.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Writes `base` into the batch's base-offset field. The CRC does not cover
/// it, so the batch stays valid.
pub fn stamp_base_offset(batch: &mut [u8], base: Offset) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&(base.0 as i64).to_be_bytes());
}

/// Writes `epoch` into the batch's partition-leader-epoch field (bytes
/// 12..16). The CRC does not cover it, so the batch stays valid. A leader
/// stamps its epoch into every batch it appends; followers keep it.
pub fn stamp_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// The partition leader epoch in a batch's header (at least the first 16
/// bytes of a batch): what the leader stamped, or what the client sent
/// (-1) in a batch no leader epoch was stamped into.
pub fn leader_epoch(batch: &[u8]) -> i32 {
    be_i32(batch, LEADER_EPOCH_AT)
}

/// A validated record batch over shared bytes: reading fields and records
/// never copies. A compressed batch's records are decompressed once, when
/// it is parsed (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
    info: BatchInfo,
    /// The records area: a slice of `bytes`, or the decompressed records.
    records: Bytes,
}

impl RecordBatch {
    /// Validates `bytes` as exactly one batch, decompressing its records if
    /// it is compressed.
    pub fn parse(bytes: Bytes, max_bytes: usize) -> Result<RecordBatch, BatchError> {
        // Stays unallocated for an uncompressed batch; for a compressed one
        // it becomes the batch's records area without a copy.
        let mut decompressed = Vec::new();
        let info = validate_stored_with(&bytes, max_bytes, &mut decompressed)?;
        if info.bytes != bytes.len() {
            return Err(BatchError::LengthMismatch {
                declared: info.bytes as u64,
                available: bytes.len(),
            });
        }
        let records = match info.compression {
            Compression::None => bytes.slice(HEADER_BYTES..),
            _ => Bytes::from(decompressed),
        };
        Ok(RecordBatch {
            bytes,
            info,
            records,
        })
    }

    /// The whole batch as it travels and is stored.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    pub fn info(&self) -> &BatchInfo {
        &self.info
    }

    pub fn base_offset(&self) -> Offset {
        Offset(be_i64(&self.bytes, BASE_OFFSET_AT) as u64)
    }

    /// The last offset the batch spans (its last record's, unless
    /// compaction removed that record).
    pub fn last_offset(&self) -> Offset {
        self.base_offset().plus(self.info.offset_span as u64 - 1)
    }

    /// Offsets the batch spans (see [`BatchInfo::offset_span`]).
    pub fn offset_span(&self) -> u32 {
        self.info.offset_span
    }

    /// The records with the exact bytes each occupies in the
    /// (uncompressed) records area, for rewriting a batch without them.
    pub fn raw_records(&self) -> impl Iterator<Item = (Record<'_>, &[u8])> + '_ {
        let buf: &[u8] = &self.records;
        let mut pos = 0usize;
        let mut left = self.info.records;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let start = pos;
            let record = parse_record(buf, &mut pos).expect("a validated batch failed to parse");
            Some((record, &buf[start..pos]))
        })
    }

    pub fn record_count(&self) -> u32 {
        self.info.records
    }

    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(&self.bytes, LEADER_EPOCH_AT)
    }

    pub fn crc(&self) -> u32 {
        be_u32(&self.bytes, CRC_AT)
    }

    pub fn attributes(&self) -> u16 {
        be_u16(&self.bytes, ATTRIBUTES_AT)
    }

    /// The codec of the records area as it travels and is stored.
    pub fn compression(&self) -> Compression {
        self.info.compression
    }

    /// The records area, uncompressed: a zero-copy slice of the batch, or
    /// for a compressed batch the bytes decompressed when it was parsed.
    pub fn records_area(&self) -> &Bytes {
        &self.records
    }

    pub fn base_timestamp(&self) -> Timestamp {
        self.info.base_timestamp
    }

    /// The largest record timestamp: computed from the records for a
    /// create-time batch, the header's stamped time for a log-append-time
    /// one.
    pub fn max_timestamp(&self) -> Timestamp {
        self.info.max_timestamp
    }

    /// Which time the batch's records carry (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.info.log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// A record's timestamp as Kafka readers see it: its own create time,
    /// or for a log-append-time batch the batch's append time.
    pub fn record_timestamp(&self, record: &Record<'_>) -> Timestamp {
        if self.info.log_append_time {
            self.info.max_timestamp
        } else {
            Timestamp(
                self.info
                    .base_timestamp
                    .0
                    .saturating_add(record.timestamp_delta),
            )
        }
    }

    pub fn producer_id(&self) -> i64 {
        be_i64(&self.bytes, PRODUCER_ID_AT)
    }

    pub fn producer_epoch(&self) -> i16 {
        be_u16(&self.bytes, PRODUCER_EPOCH_AT) as i16
    }

    pub fn base_sequence(&self) -> i32 {
        be_i32(&self.bytes, BASE_SEQUENCE_AT)
    }

    /// The records in offset order, compressed batches included.
    pub fn records(&self) -> RecordIter<'_> {
        RecordIter {
            buf: &self.records,
            pos: 0,
            left: self.info.records,
        }
    }

    /// A slice of a record's key, value or header as shared `Bytes` (no copy).
    ///
    /// Panics if `part` does not point into this batch's records area (it
    /// must come from a record of [`RecordBatch::records`]).
    pub fn slice_of(&self, part: &[u8]) -> Bytes {
        self.records.slice_ref(part)
    }
}

/// Iterates the records of a validated batch.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u32,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let record =
            parse_record(self.buf, &mut self.pos).expect("a validated batch failed to parse");
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// Walks a buffer of concatenated batches, validating each with
/// [`validate`] (compressed ones are decompressed into its per-thread
/// scratch buffer).
pub struct BatchWalk<'a> {
    buf: &'a [u8],
    pos: usize,
    max_bytes: usize,
    /// Validate as batches read back from a log ([`validate_stored_with`]).
    stored: bool,
}

impl<'a> BatchWalk<'a> {
    pub fn new(buf: &'a [u8], max_bytes: usize) -> BatchWalk<'a> {
        BatchWalk {
            buf,
            pos: 0,
            max_bytes,
            stored: false,
        }
    }

    /// A walk over batches copied from another log (a follower's fetch
    /// from its leader): each is validated like [`BatchWalk::new`] does,
    /// except that a batch compaction rewrote (fewer records than offsets,
    /// none at all) is accepted, as [`validate_stored_with`] does.
    pub fn stored(buf: &'a [u8], max_bytes: usize) -> BatchWalk<'a> {
        BatchWalk {
            stored: true,
            ..BatchWalk::new(buf, max_bytes)
        }
    }
}

impl Iterator for BatchWalk<'_> {
    /// `(position of the batch in the buffer, what validation learnt)`.
    type Item = Result<(usize, BatchInfo), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let at = self.pos;
        let result = if self.stored {
            validate_stored(&self.buf[at..], self.max_bytes)
        } else {
            validate(&self.buf[at..], self.max_bytes)
        };
        match result {
            Ok(info) => {
                self.pos += info.bytes;
                Some(Ok((at, info)))
            }
            Err(e) => {
                // Stop after the first error: what follows cannot be framed.
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}
