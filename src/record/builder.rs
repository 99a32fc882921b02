//! Builds v2 record batches, byte for byte as Kafka's own clients do.
//!
//! Each record is encoded straight into the batch buffer: its length prefix is
//! computed from the field sizes first, so no record is ever staged in a
//! temporary buffer. A builder is reusable; `finish` hands out the batch and
//! keeps whatever capacity is left for the next one.
//!
//! A compressed batch (`finish_compressed`) is laid out as Kafka's clients
//! lay it out: header fields computed from the uncompressed records, the
//! records area replaced by the compressed bytes, the codec in the
//! attributes, and length and CRC-32C over the final bytes. The records are
//! compressed into a buffer the builder keeps, then copied once behind the
//! header, so the batch buffer's allocation is reused as for `finish`.

use super::batch::{
    ATTRIBUTES_AT, BASE_OFFSET_AT, BASE_SEQUENCE_AT, BASE_TIMESTAMP_AT, CRC_AT, HEADER_BYTES,
    Header, LAST_OFFSET_DELTA_AT, LEADER_EPOCH_AT, LENGTH_AT, LOG_OVERHEAD_BYTES, MAGIC_AT,
    MAGIC_V2, MAX_TIMESTAMP_AT, PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORDS_COUNT_AT,
};
use super::compression::{Compression, compress};
use super::varint::{put_varint, put_varlong, size_of_varint, size_of_varlong};
use crate::types::Timestamp;
use bytes::{BufMut, Bytes, BytesMut};
use std::io;

/// Accumulates records into one batch.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: BytesMut,
    records: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// Where `finish_compressed` compresses the records; kept for reuse.
    compressed: Vec<u8>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder::with_capacity(16 << 10)
    }
}

fn nullable_size(part: Option<&[u8]>) -> usize {
    match part {
        None => size_of_varint(-1),
        Some(bytes) => size_of_varint(len_i32(bytes.len())) + bytes.len(),
    }
}

fn put_nullable(buf: &mut BytesMut, part: Option<&[u8]>) {
    match part {
        None => put_varint(buf, -1),
        Some(bytes) => {
            put_varint(buf, len_i32(bytes.len()));
            buf.put_slice(bytes);
        }
    }
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).expect("a record field longer than i32::MAX bytes cannot be encoded")
}

impl BatchBuilder {
    /// A builder for a batch without idempotence fields (producer id,
    /// epoch and base sequence all -1, as non-idempotent Kafka clients send).
    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        let mut builder = BatchBuilder {
            buf: BytesMut::with_capacity(bytes.max(HEADER_BYTES)),
            records: 0,
            base_timestamp: None,
            max_timestamp: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compressed: Vec::new(),
        };
        builder.reset();
        builder
    }

    /// A builder that writes into `buf` (cleared first), so a caller can
    /// recycle the allocation of a batch it has finished with.
    pub fn from_buffer(mut buf: BytesMut) -> BatchBuilder {
        buf.clear();
        let mut builder = BatchBuilder {
            buf,
            records: 0,
            base_timestamp: None,
            max_timestamp: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compressed: Vec::new(),
        };
        builder.reset();
        builder
    }

    /// Bytes the builder can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Sets the idempotent-producer fields carried in the header.
    pub fn set_producer(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf.put_bytes(0, HEADER_BYTES);
        self.records = 0;
        self.base_timestamp = None;
        self.max_timestamp = -1;
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn record_count(&self) -> u32 {
        self.records as u32
    }

    /// Bytes the batch would have if finished now uncompressed.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Bytes `push` would add for this record: lets a producer check a batch
    /// size limit before adding.
    pub fn record_size(
        &self,
        timestamp: Timestamp,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> usize {
        let body = self.body_size(timestamp, key, value, headers);
        size_of_varint(len_i32(body)) + body
    }

    fn body_size(
        &self,
        timestamp: Timestamp,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> usize {
        let timestamp_delta = timestamp.0 - self.base_timestamp.unwrap_or(timestamp.0);
        let mut size = 1 // attributes
            + size_of_varlong(timestamp_delta)
            + size_of_varint(self.records)
            + nullable_size(key)
            + nullable_size(value)
            + size_of_varint(len_i32(headers.len()));
        for header in headers {
            size += nullable_size(Some(header.key.as_bytes())) + nullable_size(header.value);
        }
        size
    }

    /// Appends one record. The first record's timestamp becomes the batch's
    /// base timestamp; later ones are stored as deltas from it.
    pub fn push(
        &mut self,
        timestamp: Timestamp,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) {
        assert!(
            self.records < i32::MAX,
            "a batch holds at most i32::MAX records"
        );
        let body = self.body_size(timestamp, key, value, headers);
        let base = *self.base_timestamp.get_or_insert(timestamp.0);
        self.max_timestamp = self.max_timestamp.max(timestamp.0);
        let buf = &mut self.buf;
        buf.reserve(size_of_varint(len_i32(body)) + body);
        put_varint(buf, len_i32(body));
        buf.put_u8(0); // record attributes: unused in v2
        put_varlong(buf, timestamp.0 - base);
        put_varint(buf, self.records);
        put_nullable(buf, key);
        put_nullable(buf, value);
        put_varint(buf, len_i32(headers.len()));
        for header in headers {
            put_nullable(buf, Some(header.key.as_bytes()));
            put_nullable(buf, header.value);
        }
        self.records += 1;
    }

    /// Finishes the batch (base offset 0, CRC computed) and resets the
    /// builder for the next one. Panics if no record was pushed: an empty
    /// batch is invalid and a caller that asks for one has a bug.
    pub fn finish(&mut self) -> Bytes {
        assert!(
            self.records > 0,
            "finish() called on an empty batch builder"
        );
        self.seal(Compression::None)
    }

    /// Like [`finish`](Self::finish), with the records area compressed by
    /// `codec` (`Compression::None` is `finish`). Panics if no record was
    /// pushed. On error (a codec library failing to set itself up) the
    /// builder is unchanged, so the caller may still `finish` uncompressed.
    pub fn finish_compressed(&mut self, codec: Compression) -> io::Result<Bytes> {
        assert!(
            self.records > 0,
            "finish_compressed() called on an empty batch builder"
        );
        if codec == Compression::None {
            return Ok(self.seal(codec));
        }
        compress(codec, &self.buf[HEADER_BYTES..], &mut self.compressed)?;
        self.buf.truncate(HEADER_BYTES);
        self.buf.extend_from_slice(&self.compressed);
        Ok(self.seal(codec))
    }

    /// Writes the header over the records area now in `buf`, computes the
    /// CRC, hands out the batch and resets the builder.
    fn seal(&mut self, codec: Compression) -> Bytes {
        let total = self.buf.len();
        let length = i32::try_from(total - LOG_OVERHEAD_BYTES).expect("batch exceeds i32::MAX");
        let attributes = u16::from(codec.id());
        let b = &mut self.buf[..];
        b[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&0i64.to_be_bytes());
        b[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        b[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&0i32.to_be_bytes());
        b[MAGIC_AT] = MAGIC_V2;
        b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&(self.records - 1).to_be_bytes());
        let base_ts = self.base_timestamp.unwrap_or(0);
        b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&base_ts.to_be_bytes());
        b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&self.producer_id.to_be_bytes());
        b[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2]
            .copy_from_slice(&self.producer_epoch.to_be_bytes());
        b[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4]
            .copy_from_slice(&self.base_sequence.to_be_bytes());
        b[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&self.records.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        let batch = self.buf.split().freeze();
        self.reset();
        batch
    }
}

/// Rewrites `original` keeping only `kept`: raw records (as
/// [`RecordBatch::raw_records`](super::RecordBatch::raw_records) yields
/// them) of that batch, in order. What log compaction writes, as Kafka
/// does: the header keeps its base offset, last offset delta, timestamps,
/// attributes (codec, timestamp type) and producer fields, and the records
/// keep their offset and timestamp deltas, so every kept record keeps its
/// offset and time; only the count, length and CRC change. A compressed
/// batch is compressed again with its own codec. `kept` may be empty: the
/// batch then spans its offsets with no record (Kafka keeps such a batch for
/// an idempotent producer's last sequence).
pub fn rewrite_batch(original: &super::RecordBatch, kept: &[&[u8]]) -> io::Result<Bytes> {
    let header = &original.as_bytes()[..HEADER_BYTES];
    let mut area: Vec<u8> = Vec::with_capacity(kept.iter().map(|r| r.len()).sum());
    for record in kept {
        area.extend_from_slice(record);
    }
    let codec = original.compression();
    let mut out = BytesMut::with_capacity(HEADER_BYTES + area.len());
    out.extend_from_slice(header);
    if codec == Compression::None || kept.is_empty() {
        out.extend_from_slice(&area);
    } else {
        let mut compressed = Vec::new();
        compress(codec, &area, &mut compressed)?;
        out.extend_from_slice(&compressed);
    }
    let mut attributes = u16::from_be_bytes([header[ATTRIBUTES_AT], header[ATTRIBUTES_AT + 1]]);
    if kept.is_empty() {
        // No records area to decompress: say so, as Kafka's empty batches do.
        attributes &= !super::batch::ATTR_COMPRESSION_MASK;
    }
    let count = kept.len() as i32;
    finish_header(&mut out, attributes, count);
    Ok(out.freeze())
}

/// An empty batch (no record, no producer) spanning `span` offsets from
/// `base`, with `max_timestamp` as both timestamps: compaction writes one
/// where it removed every record of a run of batches, so a segment still
/// covers each offset up to the next segment's base.
pub fn filler_batch(base: crate::types::Offset, span: u32, max_timestamp: Timestamp) -> Bytes {
    let mut out = BytesMut::zeroed(HEADER_BYTES);
    let b = &mut out[..];
    b[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&(base.0 as i64).to_be_bytes());
    b[MAGIC_AT] = MAGIC_V2;
    b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&(span.max(1) as i32 - 1).to_be_bytes());
    b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.0.to_be_bytes());
    b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.0.to_be_bytes());
    b[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(-1i64).to_be_bytes());
    b[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&(-1i16).to_be_bytes());
    b[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
    finish_header(&mut out, 0, 0);
    out.freeze()
}

/// Sets attributes, count, length and CRC of a batch whose other header
/// fields and records area are in place.
fn finish_header(out: &mut BytesMut, attributes: u16, count: i32) {
    let length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES).expect("batch exceeds i32::MAX");
    let b = &mut out[..];
    b[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    b[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}
