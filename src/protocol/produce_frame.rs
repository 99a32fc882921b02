//! A produce request frame written by hand, so record batches go on the
//! wire without being copied into a flatbuffers builder.
//!
//! The frame is an ordinary size-prefixed `RequestEnvelope` holding a
//! `ProduceRequest` — the broker verifies it like any other — but laid out
//! front to back: every table, vtable, string and offset vector first, then
//! each partition's `records` vector last, as its 4-byte length followed by
//! the batch bytes themselves. [`ProduceFrame::parts`] are the slices to
//! write in order; the batches among them are the caller's own `Bytes`.
//!
//! Layout rules followed (flatbuffers binary format): offsets (`uoffset`)
//! point forward from where they are stored; a table starts with an `i32`
//! distance back to its vtable; scalars sit at multiples of their size from
//! the start of the buffer (the size prefix included); vectors start with a
//! 4-aligned `u32` length; strings end with a NUL.

use bytes::Bytes;

/// One partition's batches (already concatenated v2 batches).
pub struct ProducePart<'a> {
    pub partition: u32,
    pub records: &'a Bytes,
}

/// A produce request ready to write.
pub struct ProduceFrame {
    parts: Vec<Bytes>,
    len: usize,
}

impl ProduceFrame {
    /// The slices to write, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// Total bytes, size prefix included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame as one buffer (for tests; copies).
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts.iter().flat_map(|p| p.iter().copied()).collect()
    }
}

/// Writes fields into a growing buffer whose position 0 is the start of the
/// frame, keeping alignment relative to it.
struct Writer {
    buf: Vec<u8>,
    /// Bytes already emitted as earlier parts (the buffer continues them).
    base: usize,
}

impl Writer {
    fn pos(&self) -> usize {
        self.base + self.buf.len()
    }

    fn pad_to(&mut self, align: usize) {
        while !self.pos().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    /// Pads so that `pos() + offset` is a multiple of `align`.
    fn pad_for(&mut self, offset: usize, align: usize) {
        while !(self.pos() + offset).is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn at(&mut self, pos: usize) -> &mut [u8] {
        let i = pos - self.base;
        &mut self.buf[i..]
    }

    /// Stores at `field` the forward offset to `target`.
    fn patch_offset(&mut self, field: usize, target: usize) {
        let off = u32::try_from(target - field).expect("frame below 4 GiB");
        self.at(field)[..4].copy_from_slice(&off.to_le_bytes());
    }

    /// A vtable for a table of `table_size` bytes with the given field
    /// offsets; returns its position.
    fn vtable(&mut self, table_size: u16, fields: &[u16]) -> usize {
        self.pad_to(2);
        let at = self.pos();
        self.u16(4 + 2 * fields.len() as u16);
        self.u16(table_size);
        for &f in fields {
            self.u16(f);
        }
        at
    }

    /// Starts a table (its soffset) at a position where `pos + first_align_at`
    /// is aligned to `align`; returns the table position.
    fn table(&mut self, vtable: usize, first_align_at: usize, align: usize) -> usize {
        self.pad_to(4);
        self.pad_for(first_align_at, align);
        let at = self.pos();
        self.buf
            .extend_from_slice(&((at - vtable) as i32).to_le_bytes());
        at
    }

    fn string(&mut self, s: &str) -> usize {
        self.pad_to(4);
        let at = self.pos();
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        at
    }

    /// A vector of `n` offsets to fill in later; returns its position.
    fn offset_vector(&mut self, n: usize) -> usize {
        self.pad_to(4);
        let at = self.pos();
        self.u32(n as u32);
        self.buf.resize(self.buf.len() + 4 * n, 0);
        at
    }
}

/// Encodes a produce request: `topics` are (name, partitions).
pub fn encode_produce(
    correlation_id: u64,
    acks: i8,
    timeout_ms: u32,
    topics: &[(&str, Vec<ProducePart<'_>>)],
) -> ProduceFrame {
    let mut w = Writer {
        buf: Vec::with_capacity(128 + 64 * topics.len()),
        base: 0,
    };
    w.u32(0); // size prefix, filled in at the end
    w.u32(0); // root offset
    // RequestEnvelope { correlation_id: u64, request_type: u8, request }
    let env_vt = w.vtable(17, &[4, 16, 12]);
    let env = w.table(env_vt, 4, 8);
    w.buf.extend_from_slice(&correlation_id.to_le_bytes());
    let env_request = w.pos();
    w.u32(0);
    w.buf.push(super::wire::Request::ProduceRequest.0);
    w.patch_offset(4, env);
    // ProduceRequest { acks: i8, timeout_ms: u32, topics }
    let req_vt = w.vtable(13, &[12, 4, 8]);
    let req = w.table(req_vt, 0, 4);
    w.patch_offset(env_request, req);
    w.u32(timeout_ms);
    let req_topics = w.pos();
    w.u32(0);
    w.buf.push(acks as u8);
    let topics_vec = w.offset_vector(topics.len());
    w.patch_offset(req_topics, topics_vec);
    // Each ProduceTopicData { topic, partitions }, then its name and its
    // partitions' tables; records vectors come last.
    let topic_vt = w.vtable(12, &[4, 8]);
    let part_vt = w.vtable(12, &[4, 8]);
    let mut records_fields = Vec::new();
    for (t, (name, parts)) in topics.iter().enumerate() {
        let table = w.table(topic_vt, 0, 4);
        w.patch_offset(topics_vec + 4 + 4 * t, table);
        let name_field = w.pos();
        w.u32(0);
        let parts_field = w.pos();
        w.u32(0);
        let s = w.string(name);
        w.patch_offset(name_field, s);
        let parts_vec = w.offset_vector(parts.len());
        w.patch_offset(parts_field, parts_vec);
        for (i, part) in parts.iter().enumerate() {
            let table = w.table(part_vt, 0, 4);
            w.patch_offset(parts_vec + 4 + 4 * i, table);
            w.u32(part.partition);
            records_fields.push((w.pos(), part.records));
            w.u32(0);
        }
    }
    // The records vectors: each length word ends a small buffer, and the
    // batch itself follows as the caller's bytes.
    // Their positions follow from the lengths, so every offset is patched
    // while the header is still one buffer.
    let mut at = w.pos();
    for &(field, records) in &records_fields {
        at = at.next_multiple_of(4);
        w.patch_offset(field, at);
        at += 4 + records.len();
    }
    let mut smalls: Vec<Vec<u8>> = Vec::with_capacity(records_fields.len() + 1);
    let mut batches: Vec<Bytes> = Vec::with_capacity(records_fields.len());
    for (_, records) in records_fields {
        w.pad_to(4);
        w.u32(records.len() as u32);
        let small = std::mem::take(&mut w.buf);
        w.base += small.len() + records.len();
        smalls.push(small);
        batches.push(records.clone());
    }
    let total = w.pos();
    smalls.push(std::mem::take(&mut w.buf));
    // The size prefix counts everything after it.
    smalls[0][..4].copy_from_slice(
        &u32::try_from(total - 4)
            .expect("frame below 4 GiB")
            .to_le_bytes(),
    );
    let mut parts = Vec::with_capacity(smalls.len() + batches.len());
    let mut batches = batches.into_iter();
    for small in smalls {
        parts.push(Bytes::from(small));
        parts.extend(batches.next());
    }
    parts.retain(|p| !p.is_empty());
    ProduceFrame { parts, len: total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_request, wire};

    fn check(topics: &[(&str, Vec<ProducePart<'_>>)]) {
        let frame = encode_produce(0x0102_0304_0506_0708, -1, 12345, topics);
        let bytes = frame.to_vec();
        assert_eq!(bytes.len(), frame.len());
        let env = parse_request(&bytes).expect("the hand-written frame verifies");
        assert_eq!(env.correlation_id(), 0x0102_0304_0506_0708);
        let p = env.request_as_produce_request().expect("a produce request");
        assert_eq!((p.acks(), p.timeout_ms()), (-1, 12345));
        let got: Vec<_> = p.topics().unwrap().iter().collect();
        assert_eq!(got.len(), topics.len());
        for (g, (name, parts)) in got.iter().zip(topics) {
            assert_eq!(g.topic(), Some(*name));
            let gp: Vec<_> = g.partitions().unwrap().iter().collect();
            assert_eq!(gp.len(), parts.len());
            for (a, b) in gp.iter().zip(parts) {
                assert_eq!(a.partition(), b.partition);
                assert_eq!(a.records().unwrap().bytes(), &b.records[..]);
            }
        }
    }

    #[test]
    fn hand_written_frames_verify_and_carry_every_batch_at_every_alignment() {
        let batches: Vec<Bytes> = (0..9)
            .map(|n| Bytes::from((0..n * 7 + 1).map(|i| i as u8).collect::<Vec<u8>>()))
            .collect();
        for name_len in 0..6 {
            let a = "t".repeat(name_len + 1);
            let b = "other-topic";
            let parts = |from: usize, n: usize| {
                (from..from + n)
                    .map(|i| ProducePart {
                        partition: i as u32,
                        records: &batches[i % batches.len()],
                    })
                    .collect::<Vec<_>>()
            };
            check(&[(&a, parts(0, 1))]);
            check(&[(&a, parts(name_len, 3)), (b, parts(2, 2))]);
            check(&[(b, parts(3, 5)), (&a, parts(1, 1)), ("x", parts(4, 2))]);
        }
    }

    #[test]
    fn batches_are_sent_from_the_callers_buffers() {
        let batch = Bytes::from(vec![9u8; 1000]);
        let frame = encode_produce(
            1,
            1,
            100,
            &[(
                "t",
                vec![ProducePart {
                    partition: 0,
                    records: &batch,
                }],
            )],
        );
        assert!(
            frame.parts().iter().any(|p| p.as_ptr() == batch.as_ptr()),
            "the batch must not be copied"
        );
        let bytes = frame.to_vec();
        let env = parse_request(&bytes).unwrap();
        assert_eq!(env.request_type(), wire::Request::ProduceRequest);
    }
}
