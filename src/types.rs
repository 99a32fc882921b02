//! Newtypes for the numbers that must never be confused with one another.
//!
//! An offset, a file position and a timestamp are all 64-bit integers; mixing
//! them up is the classic log-storage bug (an index lookup fed a position, a
//! retention check fed an offset). Each gets its own type here, and the
//! conversions are explicit.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

/// When an append's data is made durable with `fdatasync`. What a completed
/// append guarantees under each is spelled out on
/// [`PartitionLog::append`](crate::storage::PartitionLog::append).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every append waits for an `fdatasync` that covers it; appends that
    /// arrive while one is running share the next (group commit).
    Always,
    /// A background `fdatasync` at most this long after data was appended.
    Interval(Duration),
    /// The broker never calls `fdatasync` except when a segment is sealed
    /// or the log is closed; the device and the OS decide.
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => write!(f, "always"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            FsyncPolicy::Never => write!(f, "never"),
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => {
                let ms = s.strip_prefix("interval:").ok_or_else(|| {
                    format!("fsync policy {s:?} is not one of always, interval:MS, never")
                })?;
                let ms: u64 = ms.parse().map_err(|_| {
                    format!("fsync interval {ms:?} is not a whole number of milliseconds")
                })?;
                if ms == 0 {
                    return Err("fsync interval must be at least 1 ms (use always for 0)".into());
                }
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

/// Which time a topic's records carry (Kafka's `message.timestamp.type`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// The time the producer gave each record.
    #[default]
    CreateTime,
    /// The time the broker appended the batch: it stamps it into the
    /// batch's max timestamp and sets attribute bit 3, and readers take it
    /// for every record of the batch.
    LogAppendTime,
}

impl fmt::Display for TimestampType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        })
    }
}

impl FromStr for TimestampType {
    type Err = String;

    /// Kafka's names, exactly as Kafka spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            _ => Err(format!(
                "timestamp type {s:?} is not one of CreateTime, LogAppendTime"
            )),
        }
    }
}

/// What a producer waits for before its append is answered.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Acks {
    /// No answer at all (Kafka's `acks=0`): fire and forget.
    None,
    /// The owning log took the records (`acks=1`): durable as the topic's
    /// fsync policy promises.
    #[default]
    Leader,
    /// The records are on stable media (`acks=all`, `-1`), whatever the
    /// topic's fsync policy; with replication, on every in-sync replica.
    All,
}

impl Acks {
    /// From the wire value Kafka and the native protocol share: 0, 1, -1.
    pub fn from_wire(value: i16) -> Option<Acks> {
        match value {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }

    pub fn to_wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = String;

    fn from_str(s: &str) -> Result<Acks, String> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("acks {other:?} is not one of 0, 1, all")),
        }
    }
}

/// Which offset a list-offsets question asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The high watermark: the offset the next readable record will get.
    Latest,
    /// The first record whose timestamp is at or after this one.
    Timestamp(Timestamp),
    /// The record with the largest timestamp (the first such, if several).
    MaxTimestamp,
}
