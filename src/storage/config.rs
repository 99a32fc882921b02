//! Per-log configuration: durability policy, segment rolling, retention,
//! the largest batch an append takes and which timestamps batches carry.
//!
//! A log's configuration can change while it is open
//! ([`PartitionLog::set_config`](super::PartitionLog::set_config)), except
//! for the layout settings fixed when its segments were opened
//! ([`LogConfig::same_layout`]).

use crate::constants::{
    BATCH_BYTES_MAX, INDEX_INTERVAL_BYTES, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN, SEGMENT_MS_DEFAULT, TAIL_CACHE_BYTES_DEFAULT, WRITE_CHUNK_BYTES_DEFAULT,
    WRITE_CHUNK_BYTES_MAX, WRITE_CHUNK_BYTES_MIN,
};

pub use crate::types::{FsyncPolicy, TimestampType};

/// Kafka's default `delete.retention.ms`: one day.
pub const DELETE_RETENTION_MS_DEFAULT: u64 = 86_400_000;

/// Configuration of one partition log. `Copy`, so a log keeps it in a
/// `Cell` and reads it whole without a borrow.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub fsync: FsyncPolicy,
    /// Roll the active segment before it would exceed this size.
    pub segment_bytes: u64,
    /// Roll the active segment once it is this old (milliseconds).
    pub segment_ms: u64,
    /// Delete sealed segments whose newest record is older than this.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// Bytes of log between sparse index entries.
    pub index_interval_bytes: u64,
    /// Size of one direct-I/O write on the append path.
    pub write_chunk_bytes: usize,
    /// Bytes of recent batches kept in memory for tailing readers.
    pub tail_cache_bytes: usize,
    /// Largest batch an append accepts (capped at `segment_bytes`: a batch
    /// must fit in a segment). Stored data is always read with the absolute
    /// limit, so lowering this never makes old batches unreadable.
    pub batch_bytes_max: usize,
    /// Which time appended batches carry: the producer's (kept as sent) or
    /// the append's (stamped by the log).
    pub timestamp_type: TimestampType,
    /// Retention deletes old segments (`cleanup.policy` has `delete`).
    pub cleanup_delete: bool,
    /// The cleaner compacts sealed segments (`cleanup.policy` has
    /// `compact`): see `PartitionLog::clean`.
    pub compact: bool,
    /// How long a compacted log keeps a tombstone (a keyed record with no
    /// value) after its segment's newest record (Kafka's
    /// `delete.retention.ms`).
    pub delete_retention_ms: u64,
    /// The cleaner leaves a sealed segment (and every later one) alone
    /// while its newest record is younger than this (Kafka's
    /// `min.compaction.lag.ms`): consumers get that long to read every
    /// record as appended.
    pub min_compaction_lag_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            fsync: FsyncPolicy::Never,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            retention_ms: None,
            retention_bytes: None,
            index_interval_bytes: INDEX_INTERVAL_BYTES,
            write_chunk_bytes: WRITE_CHUNK_BYTES_DEFAULT,
            tail_cache_bytes: TAIL_CACHE_BYTES_DEFAULT,
            batch_bytes_max: BATCH_BYTES_MAX,
            timestamp_type: TimestampType::CreateTime,
            cleanup_delete: true,
            compact: false,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_compaction_lag_ms: 0,
        }
    }
}

impl LogConfig {
    /// The largest batch an append accepts under this configuration.
    pub fn append_batch_bytes_max(&self) -> usize {
        self.batch_bytes_max.min(self.segment_bytes as usize)
    }

    /// Whether `other` lays out segments, indexes and write chunks as this
    /// configuration does: those settings are fixed while a log is open.
    pub fn same_layout(&self, other: &LogConfig) -> bool {
        self.index_interval_bytes == other.index_interval_bytes
            && self.write_chunk_bytes == other.write_chunk_bytes
            && self.tail_cache_bytes == other.tail_cache_bytes
    }

    /// Checks every bound and explains the first one broken.
    pub fn validate(&self) -> Result<(), String> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(format!(
                "segment bytes {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                self.segment_bytes
            ));
        }
        if self.segment_ms == 0 {
            return Err("segment ms must be at least 1".into());
        }
        if !(WRITE_CHUNK_BYTES_MIN..=WRITE_CHUNK_BYTES_MAX).contains(&self.write_chunk_bytes)
            || !self.write_chunk_bytes.is_multiple_of(WRITE_CHUNK_BYTES_MIN)
        {
            return Err(format!(
                "write chunk bytes {} must be a multiple of {WRITE_CHUNK_BYTES_MIN} within {WRITE_CHUNK_BYTES_MIN}..={WRITE_CHUNK_BYTES_MAX}",
                self.write_chunk_bytes
            ));
        }
        if self.index_interval_bytes == 0 || self.index_interval_bytes > self.segment_bytes {
            return Err(format!(
                "index interval bytes {} must be between 1 and segment bytes",
                self.index_interval_bytes
            ));
        }
        if self.batch_bytes_max == 0 || self.batch_bytes_max > BATCH_BYTES_MAX {
            return Err(format!(
                "batch bytes max {} must be between 1 and {BATCH_BYTES_MAX}",
                self.batch_bytes_max
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policies_parse_and_print_the_same() {
        for text in ["always", "never", "interval:250"] {
            let policy: FsyncPolicy = text.parse().unwrap();
            assert_eq!(policy.to_string(), text);
        }
        assert!("interval:0".parse::<FsyncPolicy>().is_err());
        assert!(
            "sometimes"
                .parse::<FsyncPolicy>()
                .unwrap_err()
                .contains("always, interval:MS, never")
        );
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_explain_themselves() {
        LogConfig::default().validate().unwrap();
        let small = LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        };
        assert!(small.validate().unwrap_err().contains("segment bytes 10"));
        let odd = LogConfig {
            write_chunk_bytes: 5000,
            ..LogConfig::default()
        };
        assert!(
            odd.validate()
                .unwrap_err()
                .contains("write chunk bytes 5000")
        );
    }
}
