//! Newtypes for the numbers that must never be confused with one another.
//!
//! An offset, a file position and a timestamp are all 64-bit integers; mixing
//! them up is the classic log-storage bug (an index lookup fed a position, a
//! retention check fed an offset). Each gets its own type here, and the
//! conversions are explicit.

use std::fmt;

/// The position of a record in a partition: 0 for the first record ever
/// appended, then one more for each record. Offsets are never reused, even
/// after retention deletes the records that carried them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The offset `n` records after this one.
    #[must_use]
    pub fn plus(self, n: u64) -> Offset {
        Offset(self.0 + n)
    }

    /// The number of offsets from `earlier` to `self`.
    ///
    /// Panics if `earlier` is after `self`: callers compare first, so a
    /// negative distance is a bug, not an input.
    #[must_use]
    pub fn distance_from(self, earlier: Offset) -> u64 {
        assert!(
            earlier <= self,
            "offset {self} is before {earlier}: distance would be negative"
        );
        self.0 - earlier.0
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Milliseconds since the Unix epoch, as carried in record batches.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Kafka's "no timestamp" marker.
    pub const NONE: Timestamp = Timestamp(-1);

    /// The wall clock now.
    pub fn now() -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since_epoch.as_millis() as i64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A partition's number within its topic.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One shard = one pinned executor = one core.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A topic's broker-assigned number: never reused, even after the topic is
/// deleted, so a stale reference can never reach a new topic of the same name.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(pub u32);

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
