//! The leader-epoch cache of a partition log (Kafka's KIP-101/KIP-279):
//! for each leader epoch whose records the log holds, the offset of its
//! first record. A follower compares its cache with the leader's
//! (OffsetForLeaderEpoch, [`PartitionLog::end_offset_for_epoch`]) to find
//! where their logs diverge and cuts its own log there
//! ([`PartitionLog::truncate_to`]).
//!
//! Invariants: entries are strictly increasing in both epoch and start
//! offset, every epoch is ≥ 0, and (after open) every entry's start lies
//! below the log's end offset. Entries below the log start are kept: they
//! still bound the epochs that follow.
//!
//! File: `leader-epoch-checkpoint` in the partition directory, in Kafka's
//! text format — a version line (`0`), the entry count, then one
//! `<epoch> <start offset>` line per entry. Written whole to a temporary
//! file, synced, renamed over the old one and the directory synced, so it
//! is either the old cache or the new one (through the [`Disk`] seam, on
//! the log's executor). A missing file (a log written before replication
//! existed) is an empty cache. An unreadable one fails the open: the cache
//! decides which records a follower keeps, and guessing could keep
//! divergent ones — removing the file opens the log with an empty cache.
//!
//! Crash ordering, relied on by [`load`]: a new entry is written before
//! any record stamped with its epoch (so a crash can leave an entry past
//! the log's end, never records of an epoch the cache lacks), and a
//! truncation cuts the data first and the cache after (so a crash can
//! leave entries past the end). Open drops every entry at or past the
//! recovered end offset, which covers both, and a lost unsynced tail.
//!
//! [`PartitionLog::end_offset_for_epoch`]: super::PartitionLog::end_offset_for_epoch
//! [`PartitionLog::truncate_to`]: super::PartitionLog::truncate_to

use crate::storage::error::{Result, StorageError};
use crate::storage::io::Disk;
use crate::storage::segment::{read_whole, write_whole};
use crate::types::Offset;
use std::path::Path;

/// Name of the cache's file in a partition directory.
pub(super) const FILE_NAME: &str = "leader-epoch-checkpoint";

/// The version line of the file format.
const VERSION: &str = "0";

/// The cache: `(epoch, start offset)`, strictly increasing in both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct EpochCache {
    entries: Vec<(i32, Offset)>,
}

impl EpochCache {
    pub(super) fn entries(&self) -> &[(i32, Offset)] {
        &self.entries
    }

    /// The newest epoch, if any.
    pub(super) fn latest(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Whether `epoch` would start a new entry: it is newer than every
    /// cached one.
    pub(super) fn is_new(&self, epoch: i32) -> bool {
        epoch >= 0 && self.latest().is_none_or(|latest| epoch > latest)
    }

    /// Records that `epoch` (newer than every cached one, see
    /// [`EpochCache::is_new`]) starts at `start`. An entry at or past
    /// `start` is replaced: an epoch that began where this one does holds
    /// no records (a leader elected again before it appended anything).
    pub(super) fn assign(&mut self, epoch: i32, start: Offset) {
        debug_assert!(self.is_new(epoch), "epochs only grow");
        self.entries.retain(|&(_, s)| s < start);
        self.entries.push((epoch, start));
    }

    /// Drops the entries starting at or past `offset` (the log was cut
    /// there); true if any went.
    pub(super) fn truncate_from(&mut self, offset: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, s)| s < offset);
        self.entries.len() != before
    }

    /// OffsetForLeaderEpoch (see `PartitionLog::end_offset_for_epoch`):
    /// the largest cached epoch at or below `epoch` and where it ends —
    /// the start of the next cached epoch, or `log_end` if there is none.
    /// `None` if every cached epoch is newer than `epoch`. An empty cache
    /// over a non-empty log (`log_start < log_end`) answers as if it held
    /// `(0, log_start)`: the log was written before epochs were recorded.
    pub(super) fn end_offset_for(
        &self,
        epoch: i32,
        log_start: Offset,
        log_end: Offset,
    ) -> Option<(i32, Offset)> {
        let implied = [(0, log_start)];
        let entries: &[(i32, Offset)] = if self.entries.is_empty() && log_start < log_end {
            &implied
        } else {
            &self.entries
        };
        let after = entries.partition_point(|&(e, _)| e <= epoch);
        let found = after.checked_sub(1).map(|i| entries[i].0)?;
        let end = entries.get(after).map_or(log_end, |&(_, start)| start);
        Some((found, end))
    }

    fn encode(&self) -> String {
        let mut out = format!("{VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            out.push_str(&format!("{epoch} {}\n", start.0));
        }
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<EpochCache, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
        let mut lines = text.lines();
        match lines.next() {
            Some(VERSION) => {}
            other => return Err(format!("version line {other:?}, expected {VERSION:?}")),
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("no entry count")?;
        let mut cache = EpochCache::default();
        for i in 0..count {
            let line = lines
                .next()
                .ok_or(format!("{count} entries declared, {i} present"))?;
            let parsed = line.split_once(' ').and_then(|(e, s)| {
                Some((e.trim().parse::<i32>().ok()?, s.trim().parse::<u64>().ok()?))
            });
            let Some((epoch, start)) = parsed else {
                return Err(format!("entry {i} ({line:?}) is not `<epoch> <offset>`"));
            };
            let start = Offset(start);
            if !cache.is_new(epoch) || cache.entries.last().is_some_and(|&(_, s)| s >= start) {
                return Err(format!(
                    "entry {i} ({epoch} {start}) does not follow the one before in epoch and offset"
                ));
            }
            cache.entries.push((epoch, start));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("bytes follow the declared entries".into());
        }
        Ok(cache)
    }
}

/// Loads the cache of the log in `dir` whose recovered end is `end`:
/// empty if there is no file, without the entries at or past `end` (see
/// the module docs; the file is rewritten if any were dropped).
pub(super) async fn load(disk: &Disk, dir: &Path, end: Offset) -> Result<EpochCache> {
    let path = dir.join(FILE_NAME);
    let Some(bytes) = read_whole(disk, &path).await? else {
        return Ok(EpochCache::default());
    };
    let mut cache = EpochCache::decode(&bytes).map_err(|reason| StorageError::Corrupt {
        file: path.clone(),
        position: 0,
        reason: format!(
            "the leader-epoch checkpoint is unreadable ({reason}); removing the file opens the log with an empty cache"
        ),
    })?;
    let before = cache.entries.clone();
    if cache.truncate_from(end) {
        tracing::warn!(
            file = %path.display(),
            log_end = %end,
            dropped = ?&before[cache.entries.len()..],
            "dropped leader epochs that start at or past the recovered end of the log"
        );
        save(disk, dir, &cache).await?;
    }
    Ok(cache)
}

/// Writes the cache durably (temporary file, sync, rename, directory
/// sync).
pub(super) async fn save(disk: &Disk, dir: &Path, cache: &EpochCache) -> Result<()> {
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    write_whole(disk, &tmp, cache.encode().as_bytes()).await?;
    disk.rename(&tmp, &path)
        .await
        .map_err(|e| StorageError::io("renaming", &tmp, e))?;
    disk.sync_dir(dir)
        .await
        .map_err(|e| StorageError::io("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, u64)]) -> EpochCache {
        EpochCache {
            entries: entries.iter().map(|&(e, s)| (e, Offset(s))).collect(),
        }
    }

    #[test]
    fn end_offset_for_epoch_follows_offset_for_leader_epoch() {
        let c = cache(&[(1, 0), (3, 50), (6, 80)]);
        let (start, end) = (Offset(0), Offset(100));
        // Every cached epoch is newer: undefined.
        assert_eq!(c.end_offset_for(0, start, end), None);
        assert_eq!(c.end_offset_for(-1, start, end), None);
        // A cached epoch ends where the next begins.
        assert_eq!(c.end_offset_for(1, start, end), Some((1, Offset(50))));
        // An epoch the cache lacks: the largest below it, and its end.
        assert_eq!(c.end_offset_for(2, start, end), Some((1, Offset(50))));
        assert_eq!(c.end_offset_for(5, start, end), Some((3, Offset(80))));
        // The latest, or newer: the log end.
        assert_eq!(c.end_offset_for(6, start, end), Some((6, end)));
        assert_eq!(c.end_offset_for(9, start, end), Some((6, end)));
    }

    #[test]
    fn an_empty_cache_over_records_means_epoch_zero() {
        let c = EpochCache::default();
        assert_eq!(
            c.end_offset_for(4, Offset(10), Offset(30)),
            Some((0, Offset(30)))
        );
        assert_eq!(c.end_offset_for(-1, Offset(10), Offset(30)), None);
        // An empty log: nothing to answer with.
        assert_eq!(c.end_offset_for(4, Offset(30), Offset(30)), None);
    }

    #[test]
    fn assign_replaces_an_epoch_that_holds_no_records_and_truncate_drops() {
        let mut c = cache(&[(1, 0), (2, 40)]);
        assert!(!c.is_new(2) && !c.is_new(-1) && c.is_new(3));
        c.assign(3, Offset(40));
        assert_eq!(c, cache(&[(1, 0), (3, 40)]));
        c.assign(5, Offset(70));
        assert!(!c.truncate_from(Offset(71)));
        assert!(c.truncate_from(Offset(40)));
        assert_eq!(c, cache(&[(1, 0)]));
    }

    #[test]
    fn the_file_format_round_trips_and_damage_is_refused() {
        let c = cache(&[(0, 0), (4, 1234), (9, 99_999_999_999)]);
        let text = c.encode();
        assert_eq!(text, "0\n3\n0 0\n4 1234\n9 99999999999\n");
        assert_eq!(EpochCache::decode(text.as_bytes()), Ok(c));
        assert_eq!(EpochCache::decode(b"0\n0\n"), Ok(EpochCache::default()));
        for bad in [
            &b"1\n0\n"[..],
            b"0\n2\n0 0\n",
            b"0\n2\n3 10\n2 20\n",
            b"0\n2\n1 10\n2 10\n",
            b"0\n1\n1 x\n",
            b"0\n1\n1 10\n2 20\n",
            b"0\n1\n-1 10\n",
        ] {
            assert!(
                EpochCache::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
