//! Sparse offset and time indexes of one segment.
//!
//! File formats (Kafka's, big-endian):
//! * `.index`: entries of `(relative offset: u32, position: u32)`: the batch
//!   whose first record has `base + relative offset` starts at `position`.
//!   An entry is added when more than [`INDEX_INTERVAL_BYTES`] of log were
//!   written since the previous one, so a lookup lands at most about that
//!   far before the batch it wants. Position 0 is implicit and never stored,
//!   which makes an all-zero entry unambiguously padding.
//! * `.timeindex`: entries of `(timestamp: i64, relative offset: u32)`:
//!   every record in the batches before `relative offset` has a timestamp
//!   `<= timestamp`. Added beside offset-index entries when the segment's
//!   largest timestamp grew; a final entry when the segment is sealed gives
//!   the whole segment's largest timestamp.
//!
//! Offset-index entries are strictly increasing in both fields; time-index
//! entries in offset, and in timestamp except for the final entry, which may
//! repeat the last timestamp. Index files are written
//! with direct I/O and may end in zero padding; decoding stops at the first
//! entry that is all zeros and reports anything else that breaks the order
//! as damage, which makes the owner rebuild the index from the log.
//!
//! [`INDEX_INTERVAL_BYTES`]: crate::constants::INDEX_INTERVAL_BYTES

use crate::types::Timestamp;

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

/// How decoding an index file went.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// Valid entries, possibly followed by zero padding.
    Clean(Vec<T>),
    /// Valid entries up to a point, then bytes that break the format.
    Damaged { valid: Vec<T>, at_byte: usize },
}

/// In-memory offset index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn from_entries(entries: Vec<(u32, u32)>) -> OffsetIndex {
        OffsetIndex { entries }
    }

    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// Adds an entry; it must lie after the last one in both fields.
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some((o, p)) = self.last() {
            assert!(
                relative_offset > o && position > p,
                "index entry ({relative_offset}, {position}) is not after ({o}, {p})"
            );
        }
        assert!(position > 0, "position 0 is implicit in the offset index");
        self.entries.push((relative_offset, position));
    }

    /// The entry to start scanning from for `relative_offset`: the last one
    /// at or before it, or `(0, 0)` (the segment start).
    pub fn lookup(&self, relative_offset: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if i == 0 { (0, 0) } else { self.entries[i - 1] }
    }

    /// Keeps only entries whose position is below `position`.
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|&(_, p)| (p as u64) < position);
        self.entries.truncate(keep);
    }

    pub fn encode_entry(relative_offset: u32, position: u32) -> [u8; OFFSET_ENTRY_BYTES] {
        let mut out = [0u8; OFFSET_ENTRY_BYTES];
        out[..4].copy_from_slice(&relative_offset.to_be_bytes());
        out[4..].copy_from_slice(&position.to_be_bytes());
        out
    }

    /// Decodes an index file's bytes. Entries must increase in both fields
    /// and point below `segment_bytes`.
    pub fn decode(bytes: &[u8], segment_bytes: u64) -> Decoded<(u32, u32)> {
        let mut entries = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_BYTES);
        for (i, raw) in bytes.chunks(OFFSET_ENTRY_BYTES).enumerate() {
            let at_byte = i * OFFSET_ENTRY_BYTES;
            if raw.iter().all(|&b| b == 0) {
                return finish_padding(entries, bytes, at_byte);
            }
            if raw.len() < OFFSET_ENTRY_BYTES {
                return Decoded::Damaged {
                    valid: entries,
                    at_byte,
                };
            }
            let o = u32::from_be_bytes(raw[..4].try_into().unwrap());
            let p = u32::from_be_bytes(raw[4..].try_into().unwrap());
            let ordered = entries.last().is_none_or(|&(lo, lp)| o > lo && p > lp);
            if !ordered || p == 0 || p as u64 >= segment_bytes {
                return Decoded::Damaged {
                    valid: entries,
                    at_byte,
                };
            }
            entries.push((o, p));
        }
        Decoded::Clean(entries)
    }
}

/// In-memory time index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(Timestamp, u32)>,
}

impl TimeIndex {
    pub fn from_entries(entries: Vec<(Timestamp, u32)>) -> TimeIndex {
        TimeIndex { entries }
    }

    pub fn entries(&self) -> &[(Timestamp, u32)] {
        &self.entries
    }

    pub fn last(&self) -> Option<(Timestamp, u32)> {
        self.entries.last().copied()
    }

    /// Adds `(timestamp, relative offset)` if it moves the index forward in
    /// both fields; returns whether it did.
    pub fn maybe_push(&mut self, timestamp: Timestamp, relative_offset: u32) -> bool {
        match self.last() {
            Some((t, o)) if timestamp <= t || relative_offset <= o => false,
            _ => {
                self.entries.push((timestamp, relative_offset));
                true
            }
        }
    }

    /// Adds the entry that closes a sealed segment: `timestamp` is the
    /// segment's largest and `relative_offset` its record count. Unlike
    /// [`TimeIndex::maybe_push`] it may repeat the last timestamp, so the
    /// last entry always tells a sealed segment's extent.
    pub fn push_final(&mut self, timestamp: Timestamp, relative_offset: u32) {
        match self.last() {
            Some((_, o)) if o == relative_offset => {}
            Some((t, o)) => {
                assert!(
                    timestamp >= t && relative_offset > o,
                    "final time entry ({timestamp}, {relative_offset}) is not after ({t}, {o})"
                );
                self.entries.push((timestamp, relative_offset));
            }
            None => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// Where a search for the first record with timestamp `>= target` can
    /// start: the relative offset of the last entry with a timestamp below
    /// `target` (all records before it are older), or 0.
    pub fn lookup(&self, target: Timestamp) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t < target);
        if i == 0 { 0 } else { self.entries[i - 1].1 }
    }

    /// Keeps only entries whose relative offset is at most `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|&(_, o)| o <= relative_offset);
        self.entries.truncate(keep);
    }

    pub fn encode_entry(timestamp: Timestamp, relative_offset: u32) -> [u8; TIME_ENTRY_BYTES] {
        let mut out = [0u8; TIME_ENTRY_BYTES];
        out[..8].copy_from_slice(&timestamp.0.to_be_bytes());
        out[8..].copy_from_slice(&relative_offset.to_be_bytes());
        out
    }

    /// Decodes a time index file's bytes.
    pub fn decode(bytes: &[u8]) -> Decoded<(Timestamp, u32)> {
        let mut entries = Vec::with_capacity(bytes.len() / TIME_ENTRY_BYTES);
        for (i, raw) in bytes.chunks(TIME_ENTRY_BYTES).enumerate() {
            let at_byte = i * TIME_ENTRY_BYTES;
            if raw.iter().all(|&b| b == 0) {
                return finish_padding(entries, bytes, at_byte);
            }
            if raw.len() < TIME_ENTRY_BYTES {
                return Decoded::Damaged {
                    valid: entries,
                    at_byte,
                };
            }
            let t = Timestamp(i64::from_be_bytes(raw[..8].try_into().unwrap()));
            let o = u32::from_be_bytes(raw[8..].try_into().unwrap());
            // Timestamps may repeat only in a sealed segment's final entry;
            // accepting a repeat anywhere is harmless for lookups.
            let ordered = entries.last().is_none_or(|&(lt, lo)| t >= lt && o > lo);
            if !ordered {
                return Decoded::Damaged {
                    valid: entries,
                    at_byte,
                };
            }
            entries.push((t, o));
        }
        Decoded::Clean(entries)
    }
}

/// Entries end at `at_byte`; the rest must be zeros to count as padding.
fn finish_padding<T>(entries: Vec<T>, bytes: &[u8], at_byte: usize) -> Decoded<T> {
    if bytes[at_byte..].iter().all(|&b| b == 0) {
        Decoded::Clean(entries)
    } else {
        Decoded::Damaged {
            valid: entries,
            at_byte,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_index() -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for (o, p) in [(10, 4200), (20, 8500), (30, 12800)] {
            index.push(o, p);
        }
        index
    }

    #[test]
    fn offset_lookup_at_every_boundary() {
        let index = offset_index();
        assert_eq!(index.lookup(0), (0, 0));
        assert_eq!(index.lookup(9), (0, 0));
        assert_eq!(index.lookup(10), (10, 4200));
        assert_eq!(index.lookup(19), (10, 4200));
        assert_eq!(index.lookup(20), (20, 8500));
        assert_eq!(index.lookup(30), (30, 12800));
        assert_eq!(index.lookup(u32::MAX), (30, 12800));
        assert_eq!(OffsetIndex::default().lookup(5), (0, 0));
    }

    #[test]
    fn offset_index_round_trips_through_bytes_with_padding() {
        let index = offset_index();
        let mut bytes: Vec<u8> = index
            .entries()
            .iter()
            .flat_map(|&(o, p)| OffsetIndex::encode_entry(o, p))
            .collect();
        bytes.resize(4096, 0);
        assert_eq!(
            OffsetIndex::decode(&bytes, 1 << 20),
            Decoded::Clean(index.entries().to_vec())
        );
    }

    #[test]
    fn damaged_offset_index_keeps_the_valid_prefix() {
        let index = offset_index();
        let mut bytes: Vec<u8> = index
            .entries()
            .iter()
            .flat_map(|&(o, p)| OffsetIndex::encode_entry(o, p))
            .collect();
        // An entry that goes backwards, then garbage.
        bytes.extend_from_slice(&OffsetIndex::encode_entry(5, 99999));
        bytes.extend_from_slice(&[0xab; 7]);
        assert_eq!(
            OffsetIndex::decode(&bytes, 1 << 20),
            Decoded::Damaged {
                valid: index.entries().to_vec(),
                at_byte: 24
            }
        );
        // An entry that points past the segment.
        assert!(matches!(
            OffsetIndex::decode(&bytes[..24], 10000),
            Decoded::Damaged { at_byte: 16, .. }
        ));
        // Zeros followed by non-zero bytes are not padding.
        let mut gap = bytes[..24].to_vec();
        gap.extend_from_slice(&[0; 8]);
        gap.extend_from_slice(&OffsetIndex::encode_entry(40, 20000));
        assert!(matches!(
            OffsetIndex::decode(&gap, 1 << 20),
            Decoded::Damaged { at_byte: 24, .. }
        ));
    }

    #[test]
    fn offset_index_truncates_by_position() {
        let mut index = offset_index();
        index.truncate_to_position(8501);
        assert_eq!(index.entries(), &[(10, 4200), (20, 8500)]);
        index.truncate_to_position(8500);
        assert_eq!(index.entries(), &[(10, 4200)]);
    }

    #[test]
    fn time_lookup_starts_after_strictly_older_entries() {
        let mut index = TimeIndex::default();
        assert!(index.maybe_push(Timestamp(100), 10));
        assert!(
            !index.maybe_push(Timestamp(100), 20),
            "equal timestamps add nothing"
        );
        assert!(index.maybe_push(Timestamp(200), 20));
        assert!(index.maybe_push(Timestamp(300), 30));
        assert_eq!(index.lookup(Timestamp(50)), 0);
        assert_eq!(
            index.lookup(Timestamp(100)),
            0,
            "records before 10 may equal 100"
        );
        assert_eq!(index.lookup(Timestamp(101)), 10);
        assert_eq!(index.lookup(Timestamp(300)), 20);
        assert_eq!(index.lookup(Timestamp(301)), 30);
        index.truncate_to_offset(25);
        assert_eq!(index.last(), Some((Timestamp(200), 20)));
    }

    #[test]
    fn time_index_round_trips_through_bytes() {
        let entries = vec![
            (Timestamp(1_700_000_000_000), 3),
            (Timestamp(1_700_000_000_500), 9),
        ];
        let mut bytes: Vec<u8> = entries
            .iter()
            .flat_map(|&(t, o)| TimeIndex::encode_entry(t, o))
            .collect();
        bytes.resize(4096, 0);
        assert_eq!(TimeIndex::decode(&bytes), Decoded::Clean(entries));
    }
}
