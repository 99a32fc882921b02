//! The broker's file-descriptor budget.
//!
//! Every connection, partition and open segment file costs descriptors, and
//! the process has `RLIMIT_NOFILE` of them (`corelog serve` raises the soft
//! limit to the hard one first). Running out is not local: an `EMFILE` hits
//! whichever open comes next — a segment roll, a topic create, an accept —
//! so the limit is split up front, at start:
//!
//! * a fixed reserve for the process ([`FDS_RESERVED_PROCESS`]) and each
//!   shard ([`FDS_RESERVED_PER_SHARD`]: executor rings, listeners, the
//!   short-lived opens of rolls, seals, snapshots and compaction);
//! * connections: `max_connections` × [`FDS_PER_CONNECTION`], with
//!   `max_connections` capped at [`CONNECTION_FDS_SHARE_PERCENT`] of what
//!   the reserve leaves (a larger setting is lowered, with a warning), so
//!   connections can never take what storage needs;
//! * storage, the rest: each shard's open-file cache of sealed segments
//!   (`open_segment_files_per_shard`, by default
//!   [`OPEN_FILES_CACHE_SHARE_PERCENT`] of the storage share), and one
//!   descriptor per partition ([`FDS_PER_PARTITION`]: its active segment's
//!   log). What is left after the caches is how many partitions the broker
//!   may hold; a topic create or partition increase beyond it is refused
//!   before anything is registered.

use crate::constants::{
    ADMIN_CONNECTIONS_PER_SHARD, CONNECTION_FDS_SHARE_PERCENT, FDS_PER_CONNECTION,
    FDS_PER_PARTITION, FDS_RESERVED_PER_SHARD, FDS_RESERVED_PROCESS,
    OPEN_FILES_CACHE_SHARE_PERCENT, OPEN_SEGMENT_FILES_PER_SHARD_MAX,
    OPEN_SEGMENT_FILES_PER_SHARD_MIN, REFUSALS_ANSWERED_MAX,
};
use crate::error::{BrokerError, ErrorKind};

/// How a broker splits its open-file limit (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// The open-file limit (soft `RLIMIT_NOFILE`).
    pub limit: usize,
    /// Descriptors reserved for the process and its shards.
    pub reserved: usize,
    /// Connections each shard accepts at once.
    pub connections_per_shard: usize,
    /// Connections the broker accepts at once (every shard's).
    pub max_connections: usize,
    /// Whether `max_connections` was lowered to fit the budget.
    pub connections_capped: bool,
    /// Open sealed-segment files each shard's cache keeps at most.
    pub open_files_per_shard: usize,
    /// Partitions the broker may hold.
    pub partitions_max: usize,
}

impl FdBudget {
    /// Splits `limit` for `shards` shards, `max_connections` connections and
    /// (if set) `open_files_per_shard` cached segment files per shard.
    pub fn new(
        limit: usize,
        shards: usize,
        max_connections: usize,
        open_files_per_shard: Option<usize>,
    ) -> Result<FdBudget, String> {
        let shards = shards.max(1);
        // Per shard also: the connections it admits beyond the limit for
        // metadata, stats and admin requests, and the refused ones it is
        // answering (one descriptor each: they are never split).
        let per_shard_reserve = FDS_RESERVED_PER_SHARD
            + ADMIN_CONNECTIONS_PER_SHARD as usize * FDS_PER_CONNECTION
            + REFUSALS_ANSWERED_MAX as usize;
        let reserved = FDS_RESERVED_PROCESS + per_shard_reserve * shards;
        // At least a connection and a few partitions and cached files per
        // shard, or the broker cannot do anything useful.
        let least = reserved
            + shards
                * (FDS_PER_CONNECTION + OPEN_SEGMENT_FILES_PER_SHARD_MIN + 8 * FDS_PER_PARTITION);
        if limit < least {
            return Err(format!(
                "the open-file limit is {limit}, too low for {shards} shards: at least {least} are needed ({reserved} reserved for the process and its shards); raise it (ulimit -n, LimitNOFILE) or run fewer cores"
            ));
        }
        let available = limit - reserved;
        let cap = (available * CONNECTION_FDS_SHARE_PERCENT / 100 / FDS_PER_CONNECTION).max(shards);
        let wanted = max_connections.max(1);
        // Exact: the shares of the shards add up to it (a shard at its
        // share hands connections to one with room).
        let connections = wanted.min(cap);
        let per_shard = connections.div_ceil(shards);
        let storage = available - connections * FDS_PER_CONNECTION;
        let cache = match open_files_per_shard {
            Some(n) => {
                let n = n.max(1);
                if n * shards > storage / 2 {
                    return Err(format!(
                        "{n} open segment files per shard ({} for {shards} shards) is more than half of the {storage} descriptors left for storage (open-file limit {limit}); lower it or raise the limit",
                        n * shards
                    ));
                }
                n
            }
            None => (storage * OPEN_FILES_CACHE_SHARE_PERCENT / 100 / shards).clamp(
                OPEN_SEGMENT_FILES_PER_SHARD_MIN,
                OPEN_SEGMENT_FILES_PER_SHARD_MAX,
            ),
        };
        Ok(FdBudget {
            limit,
            reserved,
            connections_per_shard: per_shard,
            max_connections: connections,
            connections_capped: connections < wanted,
            open_files_per_shard: cache,
            partitions_max: (storage - cache * shards) / FDS_PER_PARTITION,
        })
    }

    /// Descriptors the connections may hold.
    pub fn connection_fds(&self) -> usize {
        self.max_connections * FDS_PER_CONNECTION
    }

    /// Descriptors the shards' open-file caches may hold.
    pub fn cache_fds(&self, shards: usize) -> usize {
        self.open_files_per_shard * shards
    }

    /// Refuses to add `added` partitions to the `current` ones the broker
    /// holds if that would exceed [`FdBudget::partitions_max`].
    pub fn check_partitions(
        &self,
        shards: usize,
        current: usize,
        added: usize,
        what: &str,
    ) -> Result<(), BrokerError> {
        if current + added <= self.partitions_max {
            return Ok(());
        }
        Err(BrokerError::new(
            ErrorKind::InvalidPartitionCount,
            format!(
                "{what} needs {added} more partitions, but the broker holds {current} and its file-descriptor budget allows {} (open-file limit {}: {} reserved, {} for {} connections, {} for the open segment files of {shards} shards, {FDS_PER_PARTITION} per partition); raise the open-file limit (ulimit -n, LimitNOFILE) or lower max_connections",
                self.partitions_max,
                self.limit,
                self.reserved,
                self.connection_fds(),
                self.max_connections,
                self.cache_fds(shards),
            ),
        ))
    }
}

/// The process's open-file limit (soft `RLIMIT_NOFILE`); `None` if it
/// cannot be read or is unlimited.
pub fn open_file_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid pointer to a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    usize::try_from(limit.rlim_cur).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_partitions_and_two_thousand_connections_fit_twenty_thousand() {
        for shards in [1, 2, 4, 8] {
            let b = FdBudget::new(20_000, shards, 10_000, None).unwrap();
            assert!(b.connections_capped, "{b:?}");
            assert!(b.max_connections >= 2_000, "{b:?}");
            // The largest topic plus the offsets topic.
            assert!(b.partitions_max >= 10_050, "{b:?}");
            let total = b.reserved
                + b.connection_fds()
                + b.cache_fds(shards)
                + b.partitions_max * FDS_PER_PARTITION;
            assert!(total <= 20_000, "{b:?}: {total}");
        }
    }

    #[test]
    fn connections_never_take_the_storage_share() {
        let b = FdBudget::new(1024, 2, 1_000_000, None).unwrap();
        assert!(b.connections_capped);
        assert!(b.connection_fds() <= (1024 - b.reserved) / 4, "{b:?}");
        let small = FdBudget::new(1024, 2, 20, None).unwrap();
        assert!(!small.connections_capped);
        assert_eq!(small.max_connections, 20);
        assert_eq!(small.connections_per_shard, 10);
        assert!(small.partitions_max >= 600, "{small:?}");
    }

    #[test]
    fn a_limit_too_low_or_a_cache_too_large_is_a_clear_error() {
        let e = FdBudget::new(100, 4, 10, None).unwrap_err();
        assert!(e.contains("open-file limit is 100"), "{e}");
        let e = FdBudget::new(1024, 1, 10, Some(600)).unwrap_err();
        assert!(e.contains("more than half"), "{e}");
        let b = FdBudget::new(1024, 1, 10, Some(100)).unwrap();
        assert_eq!(b.open_files_per_shard, 100);
    }

    #[test]
    fn a_create_beyond_the_budget_names_the_numbers() {
        let b = FdBudget::new(1024, 2, 20, None).unwrap();
        assert!(b.check_partitions(2, 0, b.partitions_max, "x").is_ok());
        let e = b
            .check_partitions(2, 10, b.partitions_max, "topic \"t\"")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidPartitionCount);
        assert!(
            e.message.contains("open-file limit 1024")
                && e.message.contains(&b.partitions_max.to_string()),
            "{}",
            e.message
        );
    }
}
