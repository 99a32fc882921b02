//! Idempotent producers' state in one partition: for each producer id, its
//! epoch and the sequence numbers and offsets of its last
//! [`PRODUCER_BATCHES_KEPT`] batches, so a retried batch is answered with
//! its original offsets instead of being written twice, a gap in the
//! sequence is refused, and an older epoch is fenced.
//!
//! The rules are Kafka's (for producers without transactions):
//! * a producer this partition has no state for may start at any sequence
//!   (its state may have expired, or it may write here for the first time);
//! * with the same epoch, a batch whose first and last sequence equal one of
//!   the kept batches' is a duplicate; otherwise its first sequence must
//!   follow the last batch's last (wrapping from `i32::MAX` to 0) — else
//!   `OutOfOrder`;
//! * a higher epoch starts over at sequence 0 (else `OutOfOrder`); a lower
//!   epoch is `Fenced`.
//!
//! The state is derived from the log: every batch a producer wrote is in
//! it. To not depend on the batches still being there (retention, or a long
//! log to scan), the log writes the state to a snapshot file at each segment
//! roll and at close (`<offset, 20 digits>.snapshot`: the state of every
//! batch below that offset, checksummed), and at open rebuilds from the
//! newest valid snapshot plus the batches after it. Memory is bounded:
//! producers idle longer than the expiry, or beyond
//! [`PRODUCERS_PER_PARTITION_MAX`] (least recently seen first), are dropped.
//!
//! Owned by the partition's log, on its executor; no I/O here.

use crate::constants::{PRODUCER_BATCHES_KEPT, PRODUCERS_PER_PARTITION_MAX};
use crate::types::{Offset, Timestamp};
use std::collections::{HashMap, VecDeque};
use std::fmt;

/// Sequence numbers and offsets of one appended batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BatchSeq {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base: Offset,
    pub last: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchSeq>,
    /// When the producer last appended here (ms since the epoch).
    last_seen: i64,
}

/// What a batch is, for its producer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    New,
    /// Already appended: answer with these offsets, append nothing.
    Duplicate(BatchSeq),
}

/// Why a producer's batch is refused (nothing of the append is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProducerError {
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        found: i32,
    },
    Fenced {
        producer_id: i64,
        current: i16,
        found: i16,
    },
    /// An idempotent batch without a sequence number, or a mix of retried
    /// and new batches in one append.
    Invalid {
        producer_id: i64,
        reason: &'static str,
    },
}

impl fmt::Display for ProducerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProducerError::OutOfOrder {
                producer_id,
                expected,
                found,
            } => write!(
                f,
                "producer {producer_id}: sequence {found} out of order, expected {expected}"
            ),
            ProducerError::Fenced {
                producer_id,
                current,
                found,
            } => write!(
                f,
                "producer {producer_id}: epoch {found} is fenced by epoch {current}"
            ),
            ProducerError::Invalid {
                producer_id,
                reason,
            } => write!(f, "producer {producer_id}: {reason}"),
        }
    }
}

/// The sequence after `seq` (Kafka wraps at `i32::MAX`).
pub fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// Whether a batch starting at `first` directly follows one that ended at
/// `prev_last`.
pub fn follows(prev_last: i32, first: i32) -> bool {
    next_seq(prev_last) == first
}

/// The last sequence of a batch of `records` starting at `first`.
pub fn last_seq(first: i32, records: u32) -> i32 {
    let last = first as i64 + records as i64 - 1;
    if last > i32::MAX as i64 {
        (last - i32::MAX as i64 - 1) as i32
    } else {
        last as i32
    }
}

/// Every producer's state in one partition (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Producers {
    entries: HashMap<i64, Entry>,
}

impl Producers {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Classifies a batch of `producer_id` (≥ 0) at `epoch` holding
    /// sequences `first_seq..=last_seq`.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<Verdict, ProducerError> {
        if first_seq < 0 {
            return Err(ProducerError::Invalid {
                producer_id,
                reason: "an idempotent batch needs a base sequence of 0 or more",
            });
        }
        let Some(entry) = self.entries.get(&producer_id) else {
            return Ok(Verdict::New);
        };
        if epoch < entry.epoch {
            return Err(ProducerError::Fenced {
                producer_id,
                current: entry.epoch,
                found: epoch,
            });
        }
        if epoch > entry.epoch {
            return match first_seq {
                0 => Ok(Verdict::New),
                found => Err(ProducerError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    found,
                }),
            };
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(Verdict::Duplicate(*b));
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if entry.batches.is_empty() || first_seq == expected {
            Ok(Verdict::New)
        } else {
            Err(ProducerError::OutOfOrder {
                producer_id,
                expected,
                found: first_seq,
            })
        }
    }

    /// Records an appended batch (which [`Producers::check`] called new).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchSeq, now: Timestamp) {
        let entry = self.entries.entry(producer_id).or_insert_with(|| Entry {
            epoch,
            batches: VecDeque::with_capacity(PRODUCER_BATCHES_KEPT),
            last_seen: now.0,
        });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == PRODUCER_BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        entry.last_seen = entry.last_seen.max(now.0);
        if self.entries.len() > PRODUCERS_PER_PARTITION_MAX {
            self.evict_least_recent(self.entries.len() - PRODUCERS_PER_PARTITION_MAX);
        }
    }

    /// Forgets the batches at or after `offset` (the log's tail was cut
    /// there): a producer's retry of one is then new, not a duplicate of
    /// records that are gone. A producer left with no batch keeps its
    /// epoch, so fencing still holds.
    pub fn truncate_from(&mut self, offset: Offset) {
        for entry in self.entries.values_mut() {
            entry.batches.retain(|b| b.base < offset);
        }
    }

    /// Drops producers idle for longer than `idle_ms` before `now`.
    pub fn expire(&mut self, now: Timestamp, idle_ms: u64) {
        let cutoff = now.0.saturating_sub(idle_ms.min(i64::MAX as u64) as i64);
        self.entries.retain(|_, e| e.last_seen >= cutoff);
    }

    fn evict_least_recent(&mut self, n: usize) {
        let mut by_age: Vec<(i64, i64)> = self
            .entries
            .iter()
            .map(|(&id, e)| (e.last_seen, id))
            .collect();
        by_age.sort_unstable();
        for (_, id) in by_age.into_iter().take(n) {
            self.entries.remove(&id);
        }
    }

    /// The state as a snapshot file's bytes, for the batches below `offset`.
    pub fn encode(&self, offset: Offset) -> Vec<u8> {
        let mut out = Vec::with_capacity(22 + self.entries.len() * 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&offset.0.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.entries.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.entries[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_seen.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base.0.to_be_bytes());
                out.extend_from_slice(&b.last.0.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot file's bytes: the offset it describes and the state.
    pub fn decode(bytes: &[u8]) -> Result<(Offset, Producers), String> {
        let body_len = bytes
            .len()
            .checked_sub(4)
            .ok_or("shorter than a checksum")?;
        let (body, crc) = bytes.split_at(body_len);
        let stored = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
        if crc32c::crc32c(body) != stored {
            return Err("checksum mismatch".into());
        }
        let mut r = Reader { buf: body, at: 0 };
        if r.take(4)? != SNAPSHOT_MAGIC {
            return Err("not a producer snapshot".into());
        }
        let version = u16::from_be_bytes(r.array()?);
        if version != SNAPSHOT_VERSION {
            return Err(format!("snapshot version {version} is not supported"));
        }
        let offset = Offset(u64::from_be_bytes(r.array()?));
        let count = u32::from_be_bytes(r.array()?) as usize;
        let mut entries = HashMap::with_capacity(count.min(PRODUCERS_PER_PARTITION_MAX));
        for _ in 0..count {
            let id = i64::from_be_bytes(r.array()?);
            let epoch = i16::from_be_bytes(r.array()?);
            let last_seen = i64::from_be_bytes(r.array()?);
            let n = r.take(1)?[0] as usize;
            if n > PRODUCER_BATCHES_KEPT {
                return Err(format!("producer {id} keeps {n} batches"));
            }
            let mut batches = VecDeque::with_capacity(PRODUCER_BATCHES_KEPT);
            for _ in 0..n {
                batches.push_back(BatchSeq {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    base: Offset(u64::from_be_bytes(r.array()?)),
                    last: Offset(u64::from_be_bytes(r.array()?)),
                });
            }
            entries.insert(
                id,
                Entry {
                    epoch,
                    batches,
                    last_seen,
                },
            );
        }
        if r.at != body.len() {
            return Err("bytes after the last producer".into());
        }
        Ok((offset, Producers { entries }))
    }
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"CLPS";
const SNAPSHOT_VERSION: u16 = 1;

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("length taken"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(first: i32, n: u32, base: u64) -> BatchSeq {
        BatchSeq {
            first_seq: first,
            last_seq: last_seq(first, n),
            base: Offset(base),
            last: Offset(base + n as u64 - 1),
        }
    }

    #[test]
    fn a_retried_batch_is_a_duplicate_and_a_gap_is_out_of_order() {
        let mut p = Producers::default();
        let now = Timestamp(1000);
        assert_eq!(p.check(7, 0, 0, 4), Ok(Verdict::New));
        p.record(7, 0, seq(0, 5, 100), now);
        assert_eq!(p.check(7, 0, 5, 9), Ok(Verdict::New));
        p.record(7, 0, seq(5, 5, 105), now);
        // The first batch again: its original offsets, nothing appended.
        assert_eq!(p.check(7, 0, 0, 4), Ok(Verdict::Duplicate(seq(0, 5, 100))));
        assert_eq!(
            p.check(7, 0, 11, 12),
            Err(ProducerError::OutOfOrder {
                producer_id: 7,
                expected: 10,
                found: 11
            })
        );
        // Another producer is independent.
        assert_eq!(p.check(8, 0, 42, 42), Ok(Verdict::New));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut p = Producers::default();
        for i in 0..8u64 {
            p.record(1, 0, seq(i as i32, 1, i), Timestamp(0));
        }
        assert_eq!(p.check(1, 0, 7, 7), Ok(Verdict::Duplicate(seq(7, 1, 7))));
        assert_eq!(p.check(1, 0, 3, 3), Ok(Verdict::Duplicate(seq(3, 1, 3))));
        assert!(matches!(
            p.check(1, 0, 2, 2),
            Err(ProducerError::OutOfOrder { expected: 8, .. })
        ));
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_newer_one_starts_at_zero() {
        let mut p = Producers::default();
        p.record(3, 2, seq(0, 3, 0), Timestamp(0));
        assert!(matches!(
            p.check(3, 1, 3, 3),
            Err(ProducerError::Fenced {
                current: 2,
                found: 1,
                ..
            })
        ));
        assert!(matches!(
            p.check(3, 3, 3, 3),
            Err(ProducerError::OutOfOrder { expected: 0, .. })
        ));
        assert_eq!(p.check(3, 3, 0, 0), Ok(Verdict::New));
        p.record(3, 3, seq(0, 1, 10), Timestamp(0));
        assert_eq!(p.check(3, 3, 1, 1), Ok(Verdict::New));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut p = Producers::default();
        let first = i32::MAX - 1;
        let b = BatchSeq {
            first_seq: first,
            last_seq: last_seq(first, 3),
            base: Offset(0),
            last: Offset(2),
        };
        assert_eq!(b.last_seq, 0);
        p.record(1, 0, b, Timestamp(0));
        assert_eq!(p.check(1, 0, 1, 1), Ok(Verdict::New));
    }

    #[test]
    fn idle_producers_expire_and_the_count_is_bounded() {
        let mut p = Producers::default();
        p.record(1, 0, seq(0, 1, 0), Timestamp(1_000));
        p.record(2, 0, seq(0, 1, 1), Timestamp(9_000));
        p.expire(Timestamp(10_000), 5_000);
        assert_eq!(p.len(), 1);
        assert_eq!(p.check(1, 0, 9, 9), Ok(Verdict::New), "1 is unknown again");
        for id in 0..(PRODUCERS_PER_PARTITION_MAX as i64 + 10) {
            p.record(100 + id, 0, seq(0, 1, 0), Timestamp(id));
        }
        assert_eq!(p.len(), PRODUCERS_PER_PARTITION_MAX);
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let mut p = Producers::default();
        for id in 0..50i64 {
            for i in 0..(id % 7) {
                p.record(
                    id,
                    (id % 3) as i16,
                    seq(i as i32 * 2, 2, id as u64 * 100 + i as u64 * 2),
                    Timestamp(id),
                );
            }
        }
        let bytes = p.encode(Offset(12345));
        assert_eq!(Producers::decode(&bytes), Ok((Offset(12345), p.clone())));
        for at in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            assert!(Producers::decode(&bad).is_err(), "flipped byte {at}");
        }
        for len in [0, 3, 10, bytes.len() - 1] {
            assert!(
                Producers::decode(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
    }
}
