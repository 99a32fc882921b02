//! One partition's log: the public face of the storage engine.
//!
//! A [`PartitionLog`] owns a directory of segments. It assigns offsets,
//! stamps them into batches, keeps recent batches in a tail cache for
//! tailing readers, rolls segments by size and age, applies retention, and
//! runs one background *flusher* task that writes data out and makes it
//! durable according to the log's [`FsyncPolicy`].
//!
//! Invariants:
//! * Offsets are dense across batches: each batch starts at the offset
//!   after the last one its predecessor spans, and segment `k+1` starts
//!   where segment `k`'s last batch ends; the log's end offset is the
//!   active segment's. Compaction (`PartitionLog::clean`, see
//!   `log/cleaner.rs`) removes records inside batches and turns runs of
//!   emptied batches into one empty batch spanning their offsets, so gaps
//!   exist only inside batches.
//! * Appends are serialized by the append lock (FIFO), so offsets follow
//!   arrival order; the lock is held while bytes are copied into write
//!   chunks, never while waiting for durability.
//! * Every batch whose bytes are not yet in the file is in the tail cache;
//!   everything below the cache is in the file. Reads take the file for the
//!   older part and the cache for the rest.
//! * Readers never see past the high watermark: under `always` that is the
//!   durable end (a consumer never reads what a crash could take back);
//!   otherwise the end offset.
//! * After an I/O error the log is *failed*: every call returns
//!   [`StorageError::Failed`] until the log is reopened and recovered.
//! * A full disk (`ENOSPC`, `EDQUOT`) fails the log only until space
//!   returns: the appends and durability waits in flight fail with
//!   [`StorageError::DiskFull`], and the next append (or the flusher, every
//!   [`DISK_FULL_RETRY_MS`]) recovers the tail in place
//!   (`Inner::recover`): it keeps everything up to the high watermark —
//!   every acknowledged record and every record a reader may have seen —
//!   and cuts the rest, rewrites from the tail cache what the file lost,
//!   finishes seals the full disk interrupted, and takes appends again. No
//!   reopen, no hole, no torn batch.
//! * The configuration may change while the log is open
//!   ([`PartitionLog::set_config`]); every reader of it takes a copy from a
//!   `Cell`, so a change applies from the next decision on (the next roll,
//!   flusher pass, append or retention check) and no borrow is held across
//!   an `.await`. The high watermark never moves backwards, even when the
//!   policy becomes `always`.
//! * A log-append-time log stamps each appended batch with the append's
//!   time (attribute bit 3 and the max timestamp, CRC recomputed); the time
//!   index then holds stamped times, so lookups by time find them.
//! * Replication (Kafka's ISR model with leader epochs): a leader's appends
//!   stamp the leader epoch set by [`PartitionLog::set_leader_epoch`]
//!   (outside the CRC); a follower appends the leader's batches unchanged
//!   ([`PartitionLog::start_append_replica`]) in the same append order, and
//!   cuts a divergent tail with [`PartitionLog::truncate_to`] — the one
//!   operation that moves the end offset (and the high watermark) back.
//!   The leader-epoch cache (`log/epochs.rs`) records where each epoch
//!   starts; it is saved before records of a new epoch are written and
//!   after a truncation's cut, and open drops the entries at or past the
//!   recovered end. Client reads are capped by the replicated high
//!   watermark ([`PartitionLog::set_visible_end`]); the log's own work
//!   (recovery, compaction, producer state) and
//!   [`PartitionLog::read_replica`] use the local one.
//!
//! Owned by one glommio executor, `!Send`. No `RefCell` borrow is held
//! across an `.await`.

mod cleaner;
mod epochs;
#[cfg(test)]
mod replication_tests;

pub use cleaner::{CleanOptions, CleanOutcome};
use epochs::EpochCache;

use super::config::{FsyncPolicy, LogConfig, TimestampType};
use super::crash;
use super::error::{Result, StorageError};
use super::io::Disk;
use super::producers::{self, BatchSeq, ProducerError, Producers, Verdict};
use super::readahead::{ReadStream, StreamSet};
use super::segment::{
    SealedOpen, Segment, SegmentSettings, parse_log_file_name, read_whole, segment_paths,
    write_whole,
};
use super::snapshot;
use crate::constants::{BATCH_BYTES_MAX, DISK_FULL_RETRY_MS, READ_BYTES_MAX, WRITE_BEHIND_MS};
use crate::constants::{PRODUCER_EXPIRY_MS, PRODUCER_SNAPSHOTS_KEPT};
use crate::constants::{READ_AHEAD_BYTES, READ_STREAMS_PER_LOG};
use crate::record::{
    BatchInfo, BatchWalk, RecordBatch, leader_epoch, producer_fields, read_framing, set_timestamps,
    stamp_base_offset, stamp_leader_epoch,
};
use crate::types::{Offset, Timestamp};
use bytes::{Bytes, BytesMut};
use event_listener::Event;
use glommio::sync::Semaphore;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// What a completed append assigned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// The log start offset when the append completed.
    pub log_start_offset: Offset,
    /// The time stamped into the batches, for a log-append-time log
    /// (`None` under create time: the batches keep the producer's).
    pub log_append_time: Option<Timestamp>,
}

/// Whole batches returned by [`PartitionLog::read`].
#[derive(Clone, Debug, Default)]
pub struct ReadBatches {
    /// Runs of whole, validated batches in offset order. The first batch
    /// holds the requested offset (it may start before it).
    pub chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    pub bytes: usize,
    /// The offset to read next.
    pub next_offset: Offset,
    /// Readers may not read at or beyond this offset yet.
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
}

impl ReadBatches {
    fn push(&mut self, bytes: Bytes) {
        self.bytes += bytes.len();
        self.chunks.push(bytes);
    }

    /// Iterates every batch in the result (the chunks hold whole batches).
    pub fn batches(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.chunks.iter().flat_map(|chunk| {
            let mut at = 0usize;
            std::iter::from_fn(move || {
                let framing = read_framing(&chunk[at..])?;
                let end = at + framing.total_bytes as usize;
                let batch = chunk.slice(at..end);
                at = end;
                Some(batch)
            })
        })
    }
}

/// What [`PartitionLog::enforce_retention`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
}

/// Counters of one log.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appends: u64,
    pub batches: u64,
    pub bytes_appended: u64,
    pub fsyncs: u64,
    pub segments_rolled: u64,
    /// Bytes of batches reads returned from segment files (fetches; the
    /// cleaner's and lookups' own reads are not counted).
    pub disk_read_bytes: u64,
    /// Bytes of batches fetches returned from the tail cache (memory).
    pub cache_read_bytes: u64,
}

/// A segment's offset-index entries `(relative offset, position)` and
/// time-index entries `(timestamp, relative offset)`.
pub type SegmentIndexes = (Vec<(u32, u32)>, Vec<(Timestamp, u32)>);

/// Where one segment stands (for describe output and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: Offset,
    pub next_offset: Offset,
    pub bytes: u64,
    pub max_timestamp: Timestamp,
    /// The segment that takes appends (the last one).
    pub active: bool,
    /// Rolled, and still being sealed (synced, trimmed, its producer
    /// snapshot written) in the background.
    pub sealing: bool,
    pub path: PathBuf,
}

struct CachedBatch {
    base: Offset,
    next: Offset,
    segment: Offset,
    end_pos: u64,
    bytes: Bytes,
}

/// Recent batches, oldest first, contiguous in offsets up to the log end.
struct TailCache {
    entries: VecDeque<CachedBatch>,
    bytes: usize,
    max_bytes: usize,
}

impl TailCache {
    fn first_offset(&self) -> Option<Offset> {
        self.entries.front().map(|e| e.base)
    }

    /// Drops the oldest batches beyond the byte budget — only those already
    /// in the file.
    fn evict(&mut self, active_segment: Offset, active_written: u64) {
        while self.bytes > self.max_bytes {
            let Some(front) = self.entries.front() else {
                break;
            };
            let in_file = front.segment < active_segment || front.end_pos <= active_written;
            if !in_file {
                break;
            }
            self.bytes -= front.bytes.len();
            self.entries.pop_front();
        }
    }

    /// Where the oldest cached batch starts: its segment and file position.
    fn front_position(&self) -> Option<(Offset, u64)> {
        self.entries
            .front()
            .map(|e| (e.segment, e.end_pos - e.bytes.len() as u64))
    }

    fn drop_below(&mut self, start: Offset) {
        while self.entries.front().is_some_and(|e| e.base < start) {
            let e = self.entries.pop_front().unwrap();
            self.bytes -= e.bytes.len();
        }
    }

    /// Appends cached batches from the one holding `from` to `out`, below
    /// `hw`, within `max_bytes` (the first batch always). Returns the offset
    /// after the last batch taken.
    fn collect(&self, from: Offset, hw: Offset, max_bytes: usize, out: &mut ReadBatches) -> Offset {
        let mut next = from;
        let first = self.entries.partition_point(|e| e.next <= from);
        for e in self.entries.range(first..) {
            if e.base >= hw || (!out.chunks.is_empty() && out.bytes + e.bytes.len() > max_bytes) {
                break;
            }
            out.push(e.bytes.clone());
            next = e.next;
        }
        next
    }
}

struct Inner {
    dir: PathBuf,
    disk: Disk,
    /// Read whole with `get()`; replaced by `set_config`.
    config: Cell<LogConfig>,
    settings: SegmentSettings,
    segments: RefCell<Vec<Rc<Segment>>>,
    append_lock: Semaphore,
    /// The order appends take the append lock in: the order they were
    /// queued (`start_append`). glommio's semaphore lets a new acquirer
    /// take units freed for a waiter that has been woken but not yet run,
    /// so the lock alone would let a later append overtake an earlier one
    /// that waited behind a roll.
    append_order: crate::order::ProduceOrder,
    next_offset: Cell<Offset>,
    /// Everything below is on stable media.
    durable: Cell<Offset>,
    /// Everything below was synced in its own segment file (segments still
    /// being sealed aside).
    synced: Cell<Offset>,
    /// Segments sealing in the background: (base, next base).
    pending_seals: RefCell<Vec<(Offset, Offset)>>,
    /// Everything below was handed to the flusher's last pass.
    flushed: Cell<Offset>,
    /// Readers may have seen everything below this before the policy
    /// became `always`; under `always` the high watermark stays at or above
    /// it, so it never moves backwards.
    seen_before_always: Cell<Offset>,
    last_sync: Cell<Instant>,
    cache: RefCell<TailCache>,
    failed: RefCell<Option<String>>,
    /// The failure is a full disk: recoverable in place (see the module
    /// docs).
    disk_full: Cell<bool>,
    /// Moves at every failure, every recovery and every truncation: a
    /// durability wait that sees it move fails (its records may have been
    /// cut and their offsets reused), and a flusher pass that sees it move
    /// drops its error.
    epoch: Cell<u64>,
    /// The last cuts of the tail (recoveries from a full disk and
    /// truncations). A durability wait fails if one cut below its records.
    cuts: RefCell<VecDeque<Cut>>,
    /// When the last recovery from a full disk was tried.
    last_recovery_try: Cell<Option<Instant>>,
    /// Rolled segments whose background seal a full disk failed; recovery
    /// finishes them (they stay in `pending_seals` until then).
    unsealed: RefCell<Vec<Rc<Segment>>>,
    closed: Cell<bool>,
    /// Wakes the flusher when data arrives.
    dirty: Event,
    /// Cuts the flusher's wait short: the configuration changed, or someone
    /// waits in `make_durable`.
    wake_flusher: Event,
    /// Wakes appenders waiting for durability.
    progress: Event,
    /// Wakes readers waiting for the high watermark to move.
    data: Event,
    /// Someone waits in `make_durable`: the flusher syncs now, whatever
    /// the policy.
    sync_wanted: Cell<bool>,
    stats: Cell<LogStats>,
    /// Readers followed for read-ahead (see `readahead`); a read takes its
    /// stream out while it runs.
    streams: Rc<StreamSet>,
    /// Idempotent producers' sequences (see `producers`).
    producers: RefCell<Producers>,
    /// Held by retention and by a compaction pass: each replaces or
    /// removes sealed segments, one at a time.
    maintenance: Semaphore,
    /// Compaction passes cleaned everything below this with a map that
    /// covered it (from the cleaner's checkpoint at open).
    cleaned_to: Cell<Offset>,
    /// The offset of each idempotent producer's last batch below
    /// `cleaned_to` (compaction keeps that batch, emptied if need be);
    /// `None` once too many producers were seen: every such batch is kept.
    producer_last: RefCell<Option<std::collections::HashMap<i64, Offset>>>,
    /// When a tombstone kept by the last pass may be removed (ms).
    tombstone_due: Cell<Option<i64>>,
    /// The leader-epoch cache (see `log/epochs.rs`); its file is rewritten
    /// whole with the append lock held, so it is never borrowed across an
    /// `.await` (changes are made on a copy, saved, then swapped in).
    epochs: RefCell<EpochCache>,
    /// The epoch leader appends stamp into their batches
    /// ([`PartitionLog::set_leader_epoch`]); `None`: batches keep what the
    /// client sent. Read and changed with the append lock held.
    stamp_epoch: Cell<Option<i32>>,
    /// The replicated high watermark ([`PartitionLog::set_visible_end`]):
    /// client reads see nothing at or past it. `None`: no cap.
    visible_end: Cell<Option<Offset>>,
}

/// One cut of the log's tail, remembered for durability waits: the
/// `Inner::epoch` after it, the end it kept, and whether it was a
/// truncation ([`PartitionLog::truncate_to`]) rather than a recovery from
/// a full disk.
#[derive(Copy, Clone, Debug)]
struct Cut {
    epoch: u64,
    keep: Offset,
    truncation: bool,
}

/// Who an append comes from (see [`Inner::append_locked`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum AppendKind {
    /// A client's produce on the leader: offsets assigned, timestamps and
    /// the leader epoch stamped, idempotent producers checked.
    Leader,
    /// Batches copied from the leader by a follower: offsets, timestamps
    /// and epochs kept as they are; they must continue the log exactly.
    Replica,
}

/// A partition's append-only log (see the module docs).
pub struct PartitionLog {
    inner: Rc<Inner>,
}

impl Inner {
    fn active(&self) -> Rc<Segment> {
        self.segments
            .borrow()
            .last()
            .expect("a log always has an active segment")
            .clone()
    }

    fn check(&self) -> Result<()> {
        if self.closed.get() {
            return Err(StorageError::Closed);
        }
        if let Some(reason) = &*self.failed.borrow() {
            return Err(self.failure_error(reason.clone()));
        }
        Ok(())
    }

    /// Like [`Inner::check`], but a full disk passes: the caller recovers
    /// from it (or reports it) later.
    fn check_permanent(&self) -> Result<()> {
        match self.check() {
            Err(StorageError::DiskFull { .. }) => Ok(()),
            other => other,
        }
    }

    fn failure_error(&self, reason: String) -> StorageError {
        if self.disk_full.get() {
            StorageError::DiskFull { reason }
        } else {
            StorageError::Failed { reason }
        }
    }

    /// Marks the log failed and wakes everyone waiting on it. A full disk
    /// is recoverable in place; any other error, even during a full-disk
    /// episode, needs a reopen.
    fn fail(&self, error: StorageError) -> StorageError {
        let full = error.is_disk_full();
        let reason = match &error {
            StorageError::Failed { reason } | StorageError::DiskFull { reason } => reason.clone(),
            other => other.to_string(),
        };
        let reason = {
            let mut failed = self.failed.borrow_mut();
            if failed.is_none() {
                if full {
                    tracing::error!(dir = %self.dir.display(), %reason, "partition log is out of disk space; appends fail until space is freed, then it recovers its tail and takes appends again");
                } else {
                    tracing::error!(dir = %self.dir.display(), %reason, "partition log failed; it accepts nothing until reopened");
                }
                *failed = Some(reason);
                self.disk_full.set(full);
                self.epoch.set(self.epoch.get() + 1);
            } else if !full && self.disk_full.get() {
                tracing::error!(dir = %self.dir.display(), %reason, "partition log failed while out of disk space; it accepts nothing until reopened");
                *failed = Some(reason);
                self.disk_full.set(false);
            }
            failed.clone().expect("set above")
        };
        self.progress.notify(usize::MAX);
        self.dirty.notify(usize::MAX);
        self.failure_error(reason)
    }

    /// Takes the append lock and recovers from a full disk (see
    /// [`Inner::recover`]); at once `Ok` if the log is not failed.
    async fn recover_now(&self, throttled: bool) -> Result<()> {
        if self.failed.borrow().is_none() {
            return Ok(());
        }
        let _lock = self
            .append_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        self.recover(throttled).await
    }

    /// Recovers from a full disk in place, with the append lock held:
    /// `Ok` once the log takes appends again, else the error (still
    /// [`StorageError::DiskFull`] while there is no space). `throttled`:
    /// at most one try per [`DISK_FULL_RETRY_MS`].
    async fn recover(&self, throttled: bool) -> Result<()> {
        if self.closed.get() {
            return Err(StorageError::Closed);
        }
        let Some(reason) = self.failed.borrow().clone() else {
            return Ok(());
        };
        if !self.disk_full.get() {
            return Err(StorageError::Failed { reason });
        }
        if throttled
            && self
                .last_recovery_try
                .get()
                .is_some_and(|t| t.elapsed() < Duration::from_millis(DISK_FULL_RETRY_MS))
        {
            return Err(StorageError::DiskFull { reason });
        }
        self.last_recovery_try.set(Some(Instant::now()));
        match self.recover_tail().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The recovery itself (see the module docs):
    /// 1. Rolled segments whose seal the full disk failed are sealed (their
    ///    data is all in their files: a roll writes it out first).
    /// 2. The active segment's writes are let finish. The log keeps every
    ///    record below the high watermark (never less than the active
    ///    segment's base): all that was acknowledged and all that readers
    ///    may have seen. Under `always` that is the durable end (plus what
    ///    readers saw before the policy became `always`); otherwise every
    ///    appended record, since each was acknowledged from memory.
    /// 3. The file is cut at the first batch not wholly written (or at the
    ///    kept end, if that comes first) and synced; the segment reopens
    ///    there with its indexes (as after a clean close), and the kept
    ///    batches the file lost are appended again from the tail cache —
    ///    the same bytes at the same positions and offsets.
    /// 4. What is not kept leaves the tail cache and the producer state;
    ///    the next appends take its offsets.
    async fn recover_tail(&self) -> Result<()> {
        let started = Instant::now();
        let unsealed: Vec<Rc<Segment>> = self.unsealed.borrow().clone();
        for segment in unsealed {
            segment.reseal(&self.disk).await?;
            self.unsealed
                .borrow_mut()
                .retain(|s| s.base() != segment.base());
            self.pending_seals
                .borrow_mut()
                .retain(|&(base, _)| base != segment.base());
            tracing::info!(dir = %self.dir.display(), sealed = %segment.log_path().display(), "finished sealing a segment whose seal the full disk interrupted");
            self.advance_durable(segment.next_offset());
        }
        let active = self.active();
        let end = self.next_offset.get();
        // The local high watermark: what was acknowledged or read, whatever
        // a replicated cap says (see `visible_end`).
        let keep = self.high_watermark().max(active.base()).min(end);
        let rewritten = self.cut_active(keep).await?;
        *self.failed.borrow_mut() = None;
        self.disk_full.set(false);
        self.record_cut(keep, false);
        self.last_recovery_try.set(None);
        tracing::warn!(
            dir = %self.dir.display(),
            kept_end = %keep,
            records_cut = end.distance_from(keep),
            bytes_rewritten = rewritten,
            millis = started.elapsed().as_millis() as u64,
            "partition log recovered from a full disk and takes appends again (records not acknowledged were cut)"
        );
        self.dirty.notify(usize::MAX);
        self.progress.notify(usize::MAX);
        self.data.notify(usize::MAX);
        Ok(())
    }

    /// Cuts the active segment's records at and above `keep` (a batch
    /// boundary in it, at or above its base), with the append lock held:
    /// the segment's writes are let finish; the file is cut at the first
    /// batch not wholly written (or at `keep`, if that comes first) and
    /// synced; the segment reopens there with its indexes (as after a clean
    /// close); the batches below `keep` the file lost are appended again
    /// from the tail cache (the same bytes at the same positions and
    /// offsets); what is cut leaves the tail cache and the producer state,
    /// and the next append takes offset `keep`. The caller records the cut
    /// ([`Inner::record_cut`]). Returns the bytes rewritten.
    async fn cut_active(&self, keep: Offset) -> Result<usize> {
        let active = self.active();
        active.settle().await;
        let end = self.next_offset.get();
        let written = active.written();
        let (keep_pos, first_unwritten, rewrite) = {
            let cache = self.cache.borrow();
            let ours = || cache.entries.iter().filter(|e| e.segment == active.base());
            let keep_pos = if keep == active.base() {
                Some(0)
            } else {
                ours().find(|e| e.next == keep).map(|e| e.end_pos)
            };
            let first = ours()
                .find(|e| e.end_pos > written)
                .map(|e| (e.base, e.end_pos - e.bytes.len() as u64));
            let rewrite: Vec<(Offset, Offset, Bytes)> = match first {
                Some((from, _)) if from < keep => ours()
                    .filter(|e| e.base >= from && e.next <= keep)
                    .map(|e| (e.base, e.next, e.bytes.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            (keep_pos, first, rewrite)
        };
        let (restart, restart_offset) = match first_unwritten {
            Some((from, pos)) if from < keep => (pos, from),
            _ => match keep_pos {
                Some(pos) => (pos, keep),
                None => (active.position_of(keep).await?, keep),
            },
        };
        let segment = active
            .reopen_at(&self.disk, &self.dir, restart, self.settings)
            .await?;
        if segment.next_offset() != restart_offset {
            return Err(StorageError::Corrupt {
                file: active.log_path().to_path_buf(),
                position: restart,
                reason: format!(
                    "cutting the tail found offset {} at position {restart}, where {restart_offset} was expected",
                    segment.next_offset()
                ),
            });
        }
        let segment = Rc::new(segment);
        *self
            .segments
            .borrow_mut()
            .last_mut()
            .expect("a log always has an active segment") = segment.clone();
        {
            let mut cache = self.cache.borrow_mut();
            while cache.entries.back().is_some_and(|e| e.base >= keep) {
                let e = cache.entries.pop_back().expect("checked");
                cache.bytes -= e.bytes.len();
            }
        }
        self.next_offset.set(keep);
        if keep < end {
            self.producers.borrow_mut().truncate_from(keep);
        }
        self.flushed.set(self.flushed.get().min(restart_offset));
        self.synced.set(self.synced.get().min(keep));
        self.durable.set(self.durable.get().min(keep));
        self.seen_before_always
            .set(self.seen_before_always.get().min(keep));
        let mut rewritten = 0usize;
        for (base, next, bytes) in &rewrite {
            let max_timestamp = producer_fields(bytes).max_timestamp;
            segment
                .append_batch(
                    bytes,
                    *base,
                    max_timestamp,
                    next.distance_from(*base) as u32,
                )
                .await?;
            rewritten += bytes.len();
        }
        Ok(rewritten)
    }

    /// Records a cut of the tail at `keep`: moves the epoch (stale flusher
    /// passes drop their results) and remembers the cut for durability
    /// waits.
    fn record_cut(&self, keep: Offset, truncation: bool) {
        self.epoch.set(self.epoch.get() + 1);
        let mut cuts = self.cuts.borrow_mut();
        if cuts.len() == CUTS_KEPT {
            cuts.pop_front();
        }
        cuts.push_back(Cut {
            epoch: self.epoch.get(),
            keep,
            truncation,
        });
    }

    /// Whether the records below `offset`, appended at `epoch`, were cut
    /// since: `None` if still in the log, else the cut that took them.
    fn cut_since(&self, epoch: u64, offset: Offset) -> Option<Cut> {
        let cuts = self.cuts.borrow();
        let lost = cuts
            .iter()
            .find(|c| c.epoch > epoch && c.keep < offset)
            .copied();
        if lost.is_none()
            && cuts.len() == CUTS_KEPT
            && cuts.front().is_some_and(|c| c.epoch > epoch + 1)
        {
            // Older cuts are forgotten: assume the worst.
            return cuts.front().copied().map(|c| Cut {
                truncation: false,
                ..c
            });
        }
        lost
    }

    fn high_watermark(&self) -> Offset {
        match self.config.get().fsync {
            FsyncPolicy::Always => self.durable.get().max(self.seen_before_always.get()),
            _ => self.next_offset.get(),
        }
    }

    /// What client reads see: the high watermark, capped by the
    /// replicated one ([`PartitionLog::set_visible_end`]).
    fn visible_high_watermark(&self) -> Offset {
        let hw = self.high_watermark();
        self.visible_end.get().map_or(hw, |cap| hw.min(cap))
    }

    fn bump_stats(&self, f: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    /// Records that everything below `to` was synced in its own file, and
    /// moves the durable offset as far as that allows: never past the base
    /// of a segment whose seal (and fdatasync) is still running.
    fn advance_durable(&self, to: Offset) {
        self.synced.set(self.synced.get().max(to));
        let cap = self
            .pending_seals
            .borrow()
            .iter()
            .map(|&(base, _)| base)
            .min();
        let durable = cap.map_or(self.synced.get(), |c| self.synced.get().min(c));
        if durable > self.durable.get() {
            self.durable.set(durable);
            self.progress.notify(usize::MAX);
            if self.config.get().fsync == FsyncPolicy::Always {
                self.data.notify(usize::MAX);
            }
        }
    }

    /// One flusher pass: hand the partial chunk to a write, wait for it,
    /// sync if the policy asks. (The active segment's indexes stay in
    /// memory until it is sealed or the log closes.)
    async fn flush_pass(&self, sync: bool) -> Result<()> {
        let epoch = self.epoch.get();
        let result = self.flush_pass_inner(sync, epoch).await;
        if let Err(e) = result {
            // A recovery since the pass started replaced the segment it
            // wrote to: its error is stale, and the recovery rewrites the
            // data.
            if self.epoch.get() != epoch || self.closed.get() {
                return Err(e);
            }
            return Err(self.fail(e));
        }
        Ok(())
    }

    async fn flush_pass_inner(&self, sync: bool, epoch: u64) -> Result<()> {
        let sync = self.sync_wanted.replace(false) || sync;
        let (target, segment, end) = {
            let _lock = self
                .append_lock
                .acquire_permit(1)
                .await
                .map_err(|_| StorageError::Closed)?;
            self.check()?;
            let segment = self.active();
            let end = segment.flush_log()?;
            (self.next_offset.get(), segment, end)
        };
        segment.wait_written(end).await?;
        let stale = || StorageError::DiskFull {
            reason: "the log recovered from a full disk during a flush".into(),
        };
        if sync {
            segment.sync_log().await?;
            if self.epoch.get() != epoch {
                // The tail was cut meanwhile: `target` may be gone.
                return Err(stale());
            }
            self.last_sync.set(Instant::now());
            self.bump_stats(|s| s.fsyncs += 1);
            self.advance_durable(target);
        }
        if self.epoch.get() != epoch {
            return Err(stale());
        }
        self.flushed.set(self.flushed.get().max(target));
        Ok(())
    }

    /// Seals the active segment and starts a new one if `incoming` more
    /// bytes would overflow it, it is too old, or its relative offsets
    /// would overflow. Called with the append lock held.
    async fn maybe_roll(self: &Rc<Self>, incoming: u64, records: u32) -> Result<()> {
        let active = self.active();
        let size = active.size();
        if size == 0 {
            return Ok(());
        }
        let next = self.next_offset.get();
        let config = self.config.get();
        let reason = if size + incoming > config.segment_bytes {
            "size"
        } else if active.age() >= Duration::from_millis(config.segment_ms) {
            "age"
        } else if next.distance_from(active.base()) + records as u64 > u32::MAX as u64 {
            "offset range"
        } else {
            return Ok(());
        };
        // The old segment's data reaches its file before the new segment
        // takes appends, so no crash can leave a gap in the offsets. The
        // slow part of sealing (index entries, trims, fdatasync: about a
        // second after a GiB of writes) runs in the background, and until it
        // finishes nothing at or past the old segment counts as durable.
        // Bounded per executor: a roll holds the old log open until its
        // seal ends (see `Disk::roll_permit`).
        let permit = self
            .disk
            .roll_permit()
            .await
            .map_err(|e| StorageError::io("rolling", &self.dir, e))?;
        active.write_out_log().await?;
        crash::point("roll.after_write_out");
        let segment = Segment::create(&self.disk, &self.dir, next, self.settings).await?;
        self.segments.borrow_mut().push(Rc::new(segment));
        crash::point("roll.after_create");
        // The producer state as of the roll: written once the old segment is
        // sealed, so a snapshot never describes data that is not durable.
        let producers = self.producer_snapshot();
        self.pending_seals.borrow_mut().push((active.base(), next));
        self.bump_stats(|s| s.segments_rolled += 1);
        let inner = self.clone();
        glommio::spawn_local(async move {
            let started = Instant::now();
            let result = active.seal().await;
            if result.is_ok() {
                crash::point("seal.done");
                inner.save_producers(next, producers).await;
            }
            if let Err(e) = &result
                && e.is_disk_full()
            {
                // Finished by the recovery once space returns; until then
                // nothing at or past the segment counts as durable.
                inner.unsealed.borrow_mut().push(active.clone());
                inner.fail(result.unwrap_err());
                return;
            }
            inner
                .pending_seals
                .borrow_mut()
                .retain(|&(base, _)| base != active.base());
            match result {
                Ok(()) => {
                    inner.bump_stats(|s| s.fsyncs += 1);
                    tracing::info!(
                        dir = %inner.dir.display(),
                        sealed = %active.log_path().display(),
                        bytes = size,
                        new_base = %next,
                        reason,
                        seal_ms = started.elapsed().as_millis() as u64,
                        "rolled segment"
                    );
                    inner.advance_durable(next);
                }
                Err(e) => {
                    inner.fail(e);
                }
            }
            drop(permit);
            inner.progress.notify(usize::MAX);
        })
        .detach();
        Ok(())
    }
}

/// Stamps offsets from `base`, the timestamps `timestamp_type` asks for
/// and the leader epoch (if one is set) into validated batches, and records
/// in `found` the max timestamp each now carries (what the time index
/// gets). Returns the stamped append time under log-append time.
fn stamp_batches(
    batches: &mut BytesMut,
    found: &mut [(usize, BatchInfo)],
    base: Offset,
    timestamp_type: TimestampType,
    leader_epoch: Option<i32>,
) -> Option<Timestamp> {
    let append_time = (timestamp_type == TimestampType::LogAppendTime).then(Timestamp::now);
    let mut offset = base;
    for (at, info) in found.iter_mut() {
        let batch = &mut batches[*at..*at + info.bytes];
        stamp_base_offset(batch, offset);
        if let Some(epoch) = leader_epoch {
            stamp_leader_epoch(batch, epoch);
        }
        info.max_timestamp = append_time.unwrap_or(info.create_max_timestamp);
        info.log_append_time = append_time.is_some();
        set_timestamps(batch, info.log_append_time, info.max_timestamp);
        offset = offset.plus(info.records as u64);
    }
    append_time
}

/// Recoveries from a full disk remembered for durability waits.
const CUTS_KEPT: usize = 16;

/// What [`Inner::append_locked`] assigned: the first offset, the offset
/// after the last record, the stamped append time if any, and the log's
/// epoch then (see `Inner::epoch`).
type Assigned = (Offset, Offset, Option<Timestamp>, u64);

impl Inner {
    fn start_offset(&self) -> Offset {
        self.segments.borrow()[0].base()
    }

    /// Waits until everything below `offset` is durable. Fails if the log
    /// failed (or failed and recovered: the epoch moved) meanwhile — the
    /// records may have been cut and their offsets given to others.
    async fn wait_durable(&self, offset: Offset, epoch: u64) -> Result<()> {
        let inner = self;
        let moved = || -> Result<()> {
            match inner.cut_since(epoch, offset) {
                None => Ok(()),
                Some(cut) if cut.truncation => Err(StorageError::Truncated {
                    offset,
                    cut_to: cut.keep,
                }),
                Some(_) => Err(StorageError::DiskFull {
                    reason: format!(
                        "the log ran out of space while offset {offset} waited to become durable; the records were cut and not acknowledged"
                    ),
                }),
            }
        };
        loop {
            moved()?;
            if inner.durable.get() >= offset {
                return Ok(());
            }
            inner.check()?;
            let listener = inner.progress.listen();
            moved()?;
            if inner.durable.get() >= offset {
                return Ok(());
            }
            inner.check()?;
            listener.await;
        }
    }

    /// Takes the append lock in `turn` (behind every append queued
    /// before), recovering from a full disk first if need be.
    async fn lock_in_turn(&self, turn: crate::order::Turn) -> Result<glommio::sync::Permit<'_>> {
        // Earlier appends first; then the lock (with no later append
        // competing for it, since their turns have not come).
        turn.come().await;
        let permit = self
            .append_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        turn.end();
        if let Err(StorageError::DiskFull { .. }) = self.check() {
            self.recover(true).await?;
        }
        self.check()?;
        Ok(permit)
    }

    /// Copies validated batches into the active segment (rolling as
    /// needed). A leader append is assigned offsets from the log end and
    /// stamped (offsets, timestamps, the leader epoch), after its
    /// idempotent producers are checked; a replica append keeps its bytes
    /// and must start at the log end, and its new leader epochs enter the
    /// epoch cache (saved before the data is written: see `log/epochs.rs`).
    /// Must run to completion (see `PartitionLog::append`).
    async fn append_locked(
        inner: Rc<Inner>,
        turn: crate::order::Turn,
        mut batches: BytesMut,
        mut found: Vec<(usize, BatchInfo)>,
        kind: AppendKind,
    ) -> Result<Assigned> {
        let permit = inner.lock_in_turn(turn).await?;
        let epoch = inner.epoch.get();
        let base = inner.next_offset.get();
        let append_time = match kind {
            AppendKind::Leader => {
                if let Some(original) = inner.check_producers(&batches, &found)? {
                    // A retry of batches already in the log: their offsets,
                    // again. The append time it was stamped with is not
                    // kept: none is reported (Kafka clients then read the
                    // batches' own times).
                    return Ok((original.base, original.last.plus(1), None, epoch));
                }
                let timestamp_type = inner.config.get().timestamp_type;
                let leader_epoch = inner.stamp_epoch.get();
                stamp_batches(&mut batches, &mut found, base, timestamp_type, leader_epoch)
            }
            AppendKind::Replica => {
                let got = read_framing(&batches).map_or(-1, |f| f.base_offset);
                if got != base.0 as i64 {
                    return Err(StorageError::ReplicaOffsetMismatch {
                        expected: base,
                        got: Offset(got as u64),
                    });
                }
                inner.assign_replica_epochs(&batches, &found).await?;
                None
            }
        };
        let data = batches.freeze();
        let mut offset = base;
        for &(at, info) in &found {
            // Offsets the batch spans: its record count, except in a
            // compacted batch a replica copied.
            let span = info.offset_span;
            inner
                .maybe_roll(info.bytes as u64, span)
                .await
                .map_err(|e| inner.fail(e))?;
            let active = inner.active();
            let end_pos = active.size() + info.bytes as u64;
            let bytes = data.slice(at..at + info.bytes);
            active
                .append_batch(&bytes, offset, info.max_timestamp, span)
                .await
                .map_err(|e| inner.fail(e))?;
            let next = offset.plus(span as u64);
            {
                let mut cache = inner.cache.borrow_mut();
                cache.bytes += bytes.len();
                cache.entries.push_back(CachedBatch {
                    base: offset,
                    next,
                    segment: active.base(),
                    end_pos,
                    bytes,
                });
            }
            inner.next_offset.set(next);
            inner.record_producer(&data[at..], offset, span);
            offset = next;
        }
        if inner.config.get().fsync != FsyncPolicy::Always {
            inner.data.notify(usize::MAX);
        }
        {
            let active = inner.active();
            inner
                .cache
                .borrow_mut()
                .evict(active.base(), active.written());
        }
        inner.bump_stats(|s| {
            s.appends += 1;
            s.batches += found.len() as u64;
            s.bytes_appended += data.len() as u64;
        });
        drop(permit);
        inner.dirty.notify(1);
        Ok((base, offset, append_time, epoch))
    }
}

impl Inner {
    /// [`PartitionLog::truncate_to`] for a cut at or above the active
    /// segment's base, with the append lock held: the cut moves down to
    /// the start of the batch holding `offset`, and the active segment is
    /// cut there ([`Inner::cut_active`]). Returns the kept end.
    async fn truncate_active(&self, offset: Offset) -> Result<Offset> {
        let active = self.active();
        let cached = self
            .cache
            .borrow()
            .entries
            .iter()
            .find(|e| e.segment == active.base() && e.base <= offset && offset < e.next)
            .map(|e| e.base);
        let keep = match cached {
            Some(base) => base,
            None => active.batch_start_at_or_below(offset).await?.0,
        };
        self.cut_active(keep).await?;
        Ok(keep)
    }

    /// [`PartitionLog::truncate_to`] for a cut below the active segment's
    /// base, with the maintenance and append locks held. Segments still
    /// sealing in the background finish first (nothing is deleted or
    /// reopened under a seal). Then the segments after the one holding
    /// `offset` are deleted, the newest first (a crash leaves the log
    /// ending at a segment boundary above the cut: the open path takes
    /// the last segment left as the active one), and the segment holding
    /// `offset` is cut at the start of that batch and reopened as the
    /// active segment ([`Segment::reopen_at`], the path of a recovery).
    /// Returns the kept end.
    async fn truncate_deep(&self, offset: Offset) -> Result<Offset> {
        loop {
            let listener = self.progress.listen();
            if self.pending_seals.borrow().is_empty() {
                break;
            }
            self.check()?;
            listener.await;
        }
        self.check()?;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        let i = segments
            .partition_point(|s| s.base() <= offset)
            .checked_sub(1)
            .expect("the caller checked the offset against the log start");
        let holder = segments[i].clone();
        let (keep, pos) = holder.batch_start_at_or_below(offset).await?;
        let later = &segments[i + 1..];
        for segment in later.iter().rev() {
            segment.settle().await;
            segment.delete(&self.disk).await?;
        }
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(|e| StorageError::io("syncing directory", &self.dir, e))?;
        let reopened = holder
            .reopen_at(&self.disk, &self.dir, pos, self.settings)
            .await?;
        if reopened.next_offset() != keep {
            return Err(StorageError::Corrupt {
                file: holder.log_path().to_path_buf(),
                position: pos,
                reason: format!(
                    "truncating found offset {} at position {pos}, where {keep} was expected",
                    reopened.next_offset()
                ),
            });
        }
        let reopened = Rc::new(reopened);
        {
            let mut segments = self.segments.borrow_mut();
            segments.truncate(i);
            segments.push(reopened.clone());
        }
        for stream in self.streams.borrow_mut().iter_mut() {
            for segment in later.iter().chain(std::iter::once(&holder)) {
                stream.drop_segment(segment.key());
            }
        }
        {
            let mut cache = self.cache.borrow_mut();
            while cache.entries.back().is_some_and(|e| e.base >= keep) {
                let e = cache.entries.pop_back().expect("checked");
                cache.bytes -= e.bytes.len();
            }
        }
        self.next_offset.set(keep);
        self.producers.borrow_mut().truncate_from(keep);
        // Everything kept is synced: the segments below were sealed, and
        // the cut segment was synced at the cut.
        self.synced.set(keep);
        self.durable.set(keep);
        self.flushed.set(keep);
        self.seen_before_always
            .set(self.seen_before_always.get().min(keep));
        if self.cleaned_to.get() > reopened.base() {
            // The cleaner covered records that are gone, and new ones will
            // take their offsets: it starts over from the new active
            // segment's base, and keeps every emptied idempotent batch.
            self.cleaned_to.set(reopened.base());
            *self.producer_last.borrow_mut() = None;
            cleaner::forget_checkpoint(&self.disk, &self.dir).await?;
        }
        snapshot::prune(
            &self.disk,
            &self.dir,
            PRODUCER_SNAPSHOTS_KEPT,
            self.start_offset(),
            keep,
        )
        .await?;
        Ok(keep)
    }

    /// Adds to the epoch cache each leader epoch of replicated batches
    /// that is newer than every cached one, starting at its first batch's
    /// base, and saves the cache — before the batches are written, so no
    /// crash leaves records of an epoch the cache lacks. With the append
    /// lock held. Nothing is allocated unless an epoch is new.
    async fn assign_replica_epochs(
        &self,
        batches: &[u8],
        found: &[(usize, BatchInfo)],
    ) -> Result<()> {
        let mut latest = self.epochs.borrow().latest();
        let mut new: Vec<(i32, Offset)> = Vec::new();
        for &(at, _) in found {
            let epoch = leader_epoch(&batches[at..]);
            if epoch >= 0 && latest.is_none_or(|l| epoch > l) {
                let base = read_framing(&batches[at..]).map_or(0, |f| f.base_offset as u64);
                new.push((epoch, Offset(base)));
                latest = Some(epoch);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let mut cache = self.epochs.borrow().clone();
        for (epoch, start) in new {
            cache.assign(epoch, start);
        }
        self.save_epochs(cache).await
    }

    /// Saves `cache` as the log's epoch cache and takes it into use once
    /// it is durable. On error the cache in use is unchanged (and so is
    /// the log: nothing else was written).
    async fn save_epochs(&self, cache: EpochCache) -> Result<()> {
        epochs::save(&self.disk, &self.dir, &cache).await?;
        tracing::info!(dir = %self.dir.display(), epochs = ?cache.entries(), "leader-epoch cache changed");
        *self.epochs.borrow_mut() = cache;
        Ok(())
    }

    /// The body of [`PartitionLog::set_leader_epoch`], in the append
    /// order.
    async fn set_leader_epoch_locked(
        inner: Rc<Inner>,
        turn: crate::order::Turn,
        epoch: i32,
    ) -> Result<()> {
        let _permit = inner.lock_in_turn(turn).await?;
        let (latest, new) = {
            let cache = inner.epochs.borrow();
            (cache.latest(), cache.is_new(epoch))
        };
        if epoch < 0 || latest.is_some_and(|l| epoch < l) {
            return Err(StorageError::InvalidLeaderEpoch { epoch, latest });
        }
        if new {
            let mut cache = inner.epochs.borrow().clone();
            cache.assign(epoch, inner.next_offset.get());
            inner.save_epochs(cache).await?;
        }
        inner.stamp_epoch.set(Some(epoch));
        Ok(())
    }

    /// Checks every idempotent batch of an append against its producer's
    /// sequence (and against earlier batches of the same producer in this
    /// append). `Some`: every batch is a retry of batches already appended,
    /// whose offsets these are; nothing is to be written. A mix of retried
    /// and new batches, a gap or a fenced epoch is an error and nothing is
    /// stored.
    fn check_producers(
        &self,
        batches: &[u8],
        found: &[(usize, BatchInfo)],
    ) -> Result<Option<BatchSeq>> {
        let state = self.producers.borrow();
        let mut staged: Vec<(i64, i16, i32)> = Vec::new();
        let (mut duplicates, mut new) = (Vec::new(), 0usize);
        for &(at, info) in found {
            let f = producer_fields(&batches[at..]);
            if f.producer_id < 0 {
                new += 1;
                continue;
            }
            let last = producers::last_seq(f.base_sequence, info.records);
            let verdict = match staged.iter().find(|s| s.0 == f.producer_id) {
                Some(&(_, epoch, prev))
                    if epoch == f.epoch && producers::follows(prev, f.base_sequence) =>
                {
                    Verdict::New
                }
                Some(&(_, _, prev)) => {
                    return Err(StorageError::Producer(ProducerError::OutOfOrder {
                        producer_id: f.producer_id,
                        expected: producers::next_seq(prev),
                        found: f.base_sequence,
                    }));
                }
                None => state
                    .check(f.producer_id, f.epoch, f.base_sequence, last)
                    .map_err(StorageError::Producer)?,
            };
            match verdict {
                Verdict::New => {
                    new += 1;
                    staged.retain(|s| s.0 != f.producer_id);
                    staged.push((f.producer_id, f.epoch, last));
                }
                Verdict::Duplicate(original) => duplicates.push(original),
            }
        }
        match (duplicates.first(), duplicates.last(), new) {
            (None, _, _) => Ok(None),
            (Some(first), Some(last), 0) => Ok(Some(BatchSeq {
                last: last.last,
                last_seq: last.last_seq,
                ..*first
            })),
            _ => Err(StorageError::Producer(ProducerError::Invalid {
                producer_id: producer_fields(&batches[found[0].0..]).producer_id,
                reason: "an append mixes batches already written with new ones",
            })),
        }
    }

    /// Remembers an appended batch's sequence numbers and offsets, if its
    /// producer is idempotent.
    fn record_producer(&self, batch: &[u8], base: Offset, records: u32) {
        let f = producer_fields(batch);
        if f.producer_id < 0 {
            return;
        }
        let seq = BatchSeq {
            first_seq: f.base_sequence,
            last_seq: producers::last_seq(f.base_sequence, records),
            base,
            last: base.plus(records as u64 - 1),
        };
        self.producers
            .borrow_mut()
            .record(f.producer_id, f.epoch, seq, Timestamp::now());
    }

    /// The producer state as a snapshot of everything below the log's end,
    /// with idle producers dropped first.
    fn producer_snapshot(&self) -> Vec<u8> {
        let mut state = self.producers.borrow_mut();
        state.expire(Timestamp::now(), PRODUCER_EXPIRY_MS);
        state.encode(self.next_offset.get())
    }

    /// Writes a producer snapshot and prunes old ones. A failure is logged,
    /// not fatal: the state can always be rebuilt from the log.
    async fn save_producers(&self, offset: Offset, bytes: Vec<u8>) {
        let saved = async {
            snapshot::write(&self.disk, &self.dir, offset, &bytes).await?;
            let start = self.segments.borrow()[0].base();
            snapshot::prune(
                &self.disk,
                &self.dir,
                PRODUCER_SNAPSHOTS_KEPT,
                start,
                self.next_offset.get(),
            )
            .await
        }
        .await;
        if let Err(e) = saved {
            tracing::warn!(dir = %self.dir.display(), error = %e, "writing a producer snapshot failed; the state will be rebuilt from the log");
        }
    }
}

/// The background task that writes data out and syncs it per policy.
async fn flusher(weak: Weak<Inner>) {
    loop {
        let full = match weak.upgrade() {
            Some(inner) if inner.closed.get() => return,
            Some(inner) if inner.failed.borrow().is_some() => {
                if !inner.disk_full.get() {
                    return;
                }
                true
            }
            Some(_) => false,
            None => return,
        };
        if full {
            // Out of space: try to recover every so often, so records
            // acknowledged from memory reach the file once space returns
            // even when no append comes to trigger it.
            glommio::timer::sleep(Duration::from_millis(DISK_FULL_RETRY_MS)).await;
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.get() {
                return;
            }
            let _ = inner.recover_now(true).await;
            continue;
        }
        let listener = {
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.get() {
                return;
            }
            if inner.failed.borrow().is_some() {
                // Not closed and failed: the top of the loop waits.
                continue;
            }
            let listener = inner.dirty.listen();
            if inner.next_offset.get() > inner.flushed.get() || inner.sync_wanted.get() {
                None
            } else {
                Some(listener)
            }
        };
        if let Some(listener) = listener {
            listener.await;
        }
        // Listening before the policy is read: a change (or a durability
        // wait) after this point cuts the wait below short.
        let (policy, last_sync, sync_wanted, woken) = match weak.upgrade() {
            Some(inner) if !inner.closed.get() => (
                inner.config.get().fsync,
                inner.last_sync.get(),
                inner.sync_wanted.get(),
                inner.wake_flusher.listen(),
            ),
            _ => return,
        };
        // Wait without holding the log alive.
        let delay = match policy {
            _ if sync_wanted => Duration::ZERO,
            FsyncPolicy::Always => Duration::ZERO,
            FsyncPolicy::Interval(every) => every.saturating_sub(last_sync.elapsed()),
            FsyncPolicy::Never => Duration::from_millis(WRITE_BEHIND_MS),
        };
        if !delay.is_zero() {
            let nap = std::pin::pin!(glommio::timer::sleep(delay));
            if let futures::future::Either::Right(_) = futures::future::select(nap, woken).await {
                // Decide again under the policy now in force.
                continue;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.get() {
            return;
        }
        let sync = policy != FsyncPolicy::Never;
        // A failure is recorded by the pass; the loop's top handles it.
        let _ = inner.flush_pass(sync).await;
    }
}

impl PartitionLog {
    /// Opens the log in `dir` (creating it), recovering after a crash.
    ///
    /// On return every segment but the last ends exactly where the next one
    /// begins, in offsets and in bytes (see [`Segment::open_sealed`]: a seal
    /// a crash interrupted is finished, a segment that lost unsynced records
    /// ends the log and the segments after it are renamed aside); the last
    /// segment is validated — from its last index entry after a clean close,
    /// from its first byte otherwise — and a torn or corrupt tail is cut and
    /// logged. Files left half-deleted by retention are removed.
    pub async fn open(
        disk: &Disk,
        dir: impl Into<PathBuf>,
        config: LogConfig,
    ) -> Result<PartitionLog> {
        config.validate().map_err(StorageError::Config)?;
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io("creating", &dir, e))?;
        cleaner::recover_interrupted_clean(disk, &dir).await?;
        let bases = list_segments(disk, &dir).await?;
        let settings = SegmentSettings {
            index_interval_bytes: config.index_interval_bytes,
            // Stored batches are read with the absolute limit (see LogConfig).
            batch_bytes_max: BATCH_BYTES_MAX,
            write_chunk_bytes: config.write_chunk_bytes,
        };
        let closed = take_close_marker(disk, &dir).await?;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let Some(&next) = bases.get(i + 1) else {
                let closed_at = closed.filter(|m| m.segment == base).map(|m| m.bytes);
                let active = Segment::recover_active(disk, &dir, base, settings, closed_at).await?;
                segments.push(Rc::new(active));
                break;
            };
            match Segment::open_sealed(disk, &dir, base, next, settings).await? {
                SealedOpen::Ready(segment) => segments.push(Rc::from(segment)),
                SealedOpen::EndsShort {
                    found_end,
                    position,
                    reason,
                } => {
                    let kept = set_aside(disk, &dir, &bases[i + 1..]).await?;
                    tracing::error!(
                        dir = %dir.display(),
                        segment = %base,
                        position,
                        %reason,
                        log_ends_at = %found_end,
                        set_aside = %kept,
                        "a segment whose seal a crash interrupted lost records that never reached stable media; the log now ends there, and the segments after it were renamed aside (not deleted)"
                    );
                    let active = Segment::recover_active(disk, &dir, base, settings, None).await?;
                    segments.push(Rc::new(active));
                    break;
                }
            }
        }
        if segments.is_empty() {
            segments.push(Rc::new(
                Segment::create(disk, &dir, Offset::ZERO, settings).await?,
            ));
        }
        for pair in segments.windows(2) {
            assert_eq!(
                pair[0].next_offset(),
                pair[1].base(),
                "recovery must leave every segment ending where the next begins ({})",
                pair[0].log_path().display()
            );
        }
        let active = segments.last().unwrap().clone();
        let checkpoint = cleaner::load_checkpoint(disk, &dir, active.base()).await?;
        // What recovery kept is what the file holds; make sure it is also on
        // stable media before calling it durable.
        active.sync_log().await?;
        let end = active.next_offset();
        let epochs = epochs::load(disk, &dir, end).await?;
        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            start = %segments[0].base(),
            end = %end,
            "opened partition log"
        );
        let inner = Rc::new(Inner {
            cache: RefCell::new(TailCache {
                entries: VecDeque::new(),
                bytes: 0,
                max_bytes: config.tail_cache_bytes,
            }),
            dir,
            disk: disk.clone(),
            config: Cell::new(config),
            settings,
            segments: RefCell::new(segments),
            append_lock: Semaphore::new(1),
            append_order: crate::order::ProduceOrder::default(),
            next_offset: Cell::new(end),
            durable: Cell::new(end),
            synced: Cell::new(end),
            pending_seals: RefCell::new(Vec::new()),
            flushed: Cell::new(end),
            seen_before_always: Cell::new(end),
            last_sync: Cell::new(Instant::now()),
            failed: RefCell::new(None),
            disk_full: Cell::new(false),
            epoch: Cell::new(0),
            cuts: RefCell::new(VecDeque::new()),
            last_recovery_try: Cell::new(None),
            unsealed: RefCell::new(Vec::new()),
            closed: Cell::new(false),
            dirty: Event::new(),
            wake_flusher: Event::new(),
            progress: Event::new(),
            data: Event::new(),
            sync_wanted: Cell::new(false),
            stats: Cell::new(LogStats::default()),
            streams: Rc::new(RefCell::new(Vec::new())),
            producers: RefCell::new(Producers::default()),
            maintenance: Semaphore::new(1),
            cleaned_to: Cell::new(checkpoint.cleaned_to),
            producer_last: RefCell::new(Some(Default::default())),
            tombstone_due: Cell::new(checkpoint.tombstone_due),
            epochs: RefCell::new(epochs),
            stamp_epoch: Cell::new(None),
            visible_end: Cell::new(None),
        });
        let log = PartitionLog { inner };
        log.rebuild_producers().await?;
        log.inner.disk.read_ahead().register(&log.inner.streams);
        glommio::spawn_local(flusher(Rc::downgrade(&log.inner))).detach();
        Ok(log)
    }

    /// Loads the newest producer snapshot at or below the log's end and
    /// replays the idempotent batches after it (from the log start when
    /// there is none: the first start after an upgrade reads the whole log
    /// once).
    async fn rebuild_producers(&self) -> Result<()> {
        let inner = &self.inner;
        let (start, end) = (self.start_offset(), inner.next_offset.get());
        let loaded = snapshot::load_newest(&inner.disk, &inner.dir, end).await?;
        let from_snapshot = loaded.as_ref().map(|(o, _)| *o);
        let (mut pos, mut state) = loaded.unwrap_or((start, Producers::default()));
        pos = pos.max(start);
        let (started, mut replayed) = (Instant::now(), 0u64);
        while pos < end {
            let read = self.read_uncounted(pos, 1 << 20).await?;
            if read.chunks.is_empty() {
                break;
            }
            for bytes in read.batches() {
                // Stored batches were validated when appended and their
                // headers are exact; only the header is read here.
                let Some(framing) = read_framing(&bytes) else {
                    continue;
                };
                let base = framing.base_offset as u64;
                let f = producer_fields(&bytes);
                if f.producer_id < 0 || base + f.records as u64 <= pos.0 {
                    continue;
                }
                let seq = BatchSeq {
                    first_seq: f.base_sequence,
                    last_seq: producers::last_seq(f.base_sequence, f.records),
                    base: Offset(base),
                    last: Offset(base + f.records as u64 - 1),
                };
                state.record(f.producer_id, f.epoch, seq, f.max_timestamp);
                replayed += 1;
            }
            pos = read.next_offset;
        }
        if replayed > 0 || !state.is_empty() {
            tracing::info!(
                dir = %inner.dir.display(),
                producers = state.len(),
                snapshot = ?from_snapshot.map(|o| o.0),
                batches_replayed = replayed,
                millis = started.elapsed().as_millis() as u64,
                "rebuilt idempotent producer state"
            );
        }
        *inner.producers.borrow_mut() = state;
        Ok(())
    }

    /// Appends one or more concatenated v2 batches and returns the offsets
    /// assigned. Every batch is validated first; if any is invalid the whole
    /// append is rejected and nothing is stored. Offsets are stamped into the
    /// batches in place (the CRC does not cover them).
    ///
    /// What completion guarantees, by the log's [`FsyncPolicy`]:
    /// * `always`: the records are on stable media (an `fdatasync` that
    ///   started after they were written has completed) and visible to
    ///   readers. Concurrent appends share one `fdatasync` (group commit).
    /// * `interval:MS`: the records are in the log's memory and visible to
    ///   readers; they are written and synced within about MS milliseconds.
    ///   A crash of the machine may lose the last MS of acknowledged data.
    /// * `never`: the records are in the log's memory and visible to
    ///   readers; they reach the file within [`WRITE_BEHIND_MS`] (or as soon
    ///   as a write chunk fills) and are synced only when their segment is
    ///   sealed or the log closed. A process crash may lose up to
    ///   [`WRITE_BEHIND_MS`] of acknowledged data; a machine crash more.
    ///
    /// Appends may run concurrently; they are ordered by arrival. An I/O
    /// error fails the log (see the module docs). Dropping the returned
    /// future after validation does not cancel the append: it completes in
    /// the background, only the wait for durability is abandoned.
    pub async fn append(&self, batches: BytesMut) -> Result<AppendInfo> {
        self.start_append(batches).await
    }

    /// [`PartitionLog::append`], started now: the batches are validated
    /// and queued for offsets before this returns, so appends started one
    /// after another are ordered so in the log whatever order their
    /// futures are awaited in. The future reports the outcome (and under
    /// `fsync always`, waits for durability); dropping it does not cancel
    /// the append.
    pub fn start_append(
        &self,
        batches: BytesMut,
    ) -> impl std::future::Future<Output = Result<AppendInfo>> + use<> {
        self.start_append_as(batches, AppendKind::Leader)
    }

    /// A follower's append of batches copied from its leader (a fetch
    /// response), started now like [`PartitionLog::start_append`] and
    /// ordered with every other append, and with the same durability
    /// under each fsync policy. Each batch is validated as a leader append
    /// validates it, except that a batch compaction rewrote on the leader
    /// is accepted ([`BatchWalk::stored`]). Nothing is stamped: offsets,
    /// timestamps and leader epochs stay as the leader wrote them. The
    /// first batch must start at the log's end offset and each next one
    /// where the one before ends, else
    /// [`StorageError::ReplicaOffsetMismatch`] and nothing is stored.
    /// Idempotent producers' state is updated as for a leader append, but
    /// nothing is refused for its sequence (the leader checked it). A
    /// batch whose leader epoch (≥ 0) is newer than the epoch cache's
    /// latest starts a new cache entry at its base offset; the cache is
    /// saved before the batches are written (see `log/epochs.rs` for the
    /// crash ordering).
    pub fn start_append_replica(
        &self,
        batches: BytesMut,
    ) -> impl std::future::Future<Output = Result<AppendInfo>> + use<> {
        self.start_append_as(batches, AppendKind::Replica)
    }

    fn start_append_as(
        &self,
        batches: BytesMut,
        kind: AppendKind,
    ) -> impl std::future::Future<Output = Result<AppendInfo>> + use<> {
        let inner = self.inner.clone();
        let started = self.queue_append(batches, kind);
        async move {
            let (base, offset, log_append_time, epoch) =
                started?.await.ok_or(StorageError::Closed)??;
            if inner.config.get().fsync == FsyncPolicy::Always {
                inner.wait_durable(offset, epoch).await?;
            }
            Ok(AppendInfo {
                base_offset: base,
                last_offset: Offset(offset.0 - 1),
                log_start_offset: inner.start_offset(),
                log_append_time,
            })
        }
    }

    /// Validates `batches` and starts the task that assigns their offsets
    /// and writes them (behind every append started before).
    fn queue_append(
        &self,
        batches: BytesMut,
        kind: AppendKind,
    ) -> Result<glommio::task::JoinHandle<Result<Assigned>>> {
        let inner = &self.inner;
        inner.check_permanent()?;
        if batches.is_empty() {
            return Err(StorageError::EmptyAppend);
        }
        let mut found: Vec<(usize, BatchInfo)> = Vec::new();
        let max_bytes = inner.config.get().append_batch_bytes_max();
        let walk = match kind {
            AppendKind::Leader => BatchWalk::new(&batches, max_bytes),
            AppendKind::Replica => BatchWalk::stored(&batches, max_bytes),
        };
        // For a replica append: where the next batch must start.
        let mut expected: Option<Offset> = None;
        for (index, result) in walk.enumerate() {
            match result {
                Ok(batch) => {
                    if kind == AppendKind::Replica {
                        let base =
                            read_framing(&batches[batch.0..]).map_or(0, |f| f.base_offset as u64);
                        if let Some(expected) = expected.filter(|&e| e != Offset(base)) {
                            return Err(StorageError::ReplicaOffsetMismatch {
                                expected,
                                got: Offset(base),
                            });
                        }
                        expected = Some(Offset(base).plus(batch.1.offset_span as u64));
                    }
                    found.push(batch)
                }
                Err(error) => return Err(StorageError::InvalidBatch { index, error }),
            }
        }
        // The locked part runs as its own task: if the caller stops waiting
        // (a timeout, a closed connection), the append still completes or
        // fails as a whole. Cut short halfway, a segment would count bytes
        // that never reached its write chunk. Each takes a turn now, so
        // appends keep the order they were queued in (see `append_order`).
        let turn = inner.append_order.turn();
        Ok(glommio::spawn_local(Inner::append_locked(
            self.inner.clone(),
            turn,
            batches,
            found,
            kind,
        ))
        .detach())
    }

    /// Waits until every record below `offset` is on stable media, asking
    /// the flusher for an `fdatasync` now if the policy would not do one
    /// soon. Concurrent callers share one sync. Used for `acks=all`.
    pub async fn make_durable(&self, offset: Offset) -> Result<()> {
        if self.inner.durable.get() >= offset {
            return Ok(());
        }
        let epoch = self.inner.epoch.get();
        self.inner.check()?;
        self.inner.sync_wanted.set(true);
        self.inner.dirty.notify(1);
        self.inner.wake_flusher.notify(1);
        self.wait_durable(offset, epoch).await
    }

    /// A listener that fires when the high watermark may have moved (new
    /// data for readers). Check the condition after creating it, then await.
    pub fn listen_for_data(&self) -> event_listener::EventListener {
        self.inner.data.listen()
    }

    async fn wait_durable(&self, offset: Offset, epoch: u64) -> Result<()> {
        self.inner.wait_durable(offset, epoch).await
    }

    /// Reads whole batches from the one holding `from`: up to `max_bytes`,
    /// but always at least one batch if any is readable, so a consumer never
    /// stalls on a large batch. Reading at the high watermark returns
    /// nothing; below the start or past the high watermark is
    /// [`StorageError::OffsetOutOfRange`] carrying the valid range.
    /// Batches read from disk are validated; a bad one is
    /// [`StorageError::Corrupt`] naming file and position.
    pub async fn read(&self, from: Offset, max_bytes: usize) -> Result<ReadBatches> {
        let read = self.read_counted(from, max_bytes, true).await?;
        let (disk, cache) = read;
        self.inner.bump_stats(|s| {
            s.disk_read_bytes += disk.1 as u64;
            s.cache_read_bytes += cache as u64;
        });
        self.inner
            .disk
            .read_ahead()
            .count_read(disk.1 as u64, cache as u64);
        Ok(disk.0)
    }

    /// [`PartitionLog::read`] without counting it in the log's read stats
    /// (the broker's own reads: compaction, lookups, recovery).
    /// Reads up to the local high watermark, whatever the replicated one
    /// ([`PartitionLog::set_visible_end`]).
    async fn read_uncounted(&self, from: Offset, max_bytes: usize) -> Result<ReadBatches> {
        Ok(self.read_counted(from, max_bytes, false).await?.0.0)
    }

    /// What a leader ships to its followers: [`PartitionLog::read`] up to
    /// the local high watermark, ignoring the replicated one
    /// ([`PartitionLog::set_visible_end`]); the result's `high_watermark`
    /// is the local one. Counted in the log's read stats like a fetch.
    pub async fn read_replica(&self, from: Offset, max_bytes: usize) -> Result<ReadBatches> {
        let ((read, disk), cache) = self.read_counted(from, max_bytes, false).await?;
        self.inner.bump_stats(|s| {
            s.disk_read_bytes += disk as u64;
            s.cache_read_bytes += cache as u64;
        });
        self.inner
            .disk
            .read_ahead()
            .count_read(disk as u64, cache as u64);
        Ok(read)
    }

    /// Takes the read stream that continues at `from`, or the least
    /// recently used one (or a new one) for a reader that starts there.
    fn take_stream(&self, from: Offset) -> ReadStream {
        let mut streams = self.inner.streams.borrow_mut();
        if let Some(i) = streams.iter().position(|s| s.continues(from)) {
            return streams.swap_remove(i);
        }
        if streams.len() >= READ_STREAMS_PER_LOG {
            let oldest = (0..streams.len())
                .min_by_key(|&i| streams[i].last_used())
                .expect("not empty");
            let mut stream = streams.swap_remove(oldest);
            stream.restart();
            return stream;
        }
        ReadStream::default()
    }

    fn put_stream(&self, stream: ReadStream) {
        let mut streams = self.inner.streams.borrow_mut();
        streams.push(stream);
        if streams.len() > READ_STREAMS_PER_LOG {
            // Another reader put one back meanwhile: keep the newest.
            let oldest = (0..streams.len())
                .min_by_key(|&i| streams[i].last_used())
                .expect("not empty");
            streams.swap_remove(oldest);
        }
    }

    /// The read, with the bytes it took from segment files and from the
    /// tail cache: `((batches, disk bytes), cache bytes)`. `visible`: up
    /// to the high watermark client reads see (capped by the replicated
    /// one); else up to the local one.
    async fn read_counted(
        &self,
        from: Offset,
        max_bytes: usize,
        visible: bool,
    ) -> Result<((ReadBatches, usize), usize)> {
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(StorageError::Closed);
        }
        let max_bytes = max_bytes.min(READ_BYTES_MAX);
        let start = self.start_offset();
        let hw = if visible {
            inner.visible_high_watermark()
        } else {
            inner.high_watermark()
        };
        if from < start || from > hw {
            return Err(StorageError::OffsetOutOfRange {
                requested: from,
                start,
                end: hw,
            });
        }
        let mut out = ReadBatches {
            next_offset: from,
            high_watermark: hw,
            log_start_offset: start,
            ..Default::default()
        };
        let mut stream: Option<ReadStream> = None;
        let result = self
            .read_into(from, hw, max_bytes, &mut out, &mut stream)
            .await;
        if let Some(stream) = stream {
            self.put_stream(stream);
        }
        let disk_bytes = result?;
        let cache_bytes = out.bytes - disk_bytes;
        Ok(((out, disk_bytes), cache_bytes))
    }

    /// The body of a read: fills `out` from the segment files and then the
    /// tail cache; returns the bytes it took from the files. `stream` is
    /// the read stream it took (to be put back, whatever the outcome).
    async fn read_into(
        &self,
        from: Offset,
        hw: Offset,
        max_bytes: usize,
        out: &mut ReadBatches,
        stream: &mut Option<ReadStream>,
    ) -> Result<usize> {
        let inner = &self.inner;
        let mut disk_bytes = 0usize;
        let mut pos = from;
        // The segment the last disk read ended in (for the read-ahead into
        // the next one).
        let mut last_segment: Option<Rc<super::segment::Segment>> = None;
        // Each pass takes at least one batch or moves to the next segment.
        let passes_max = inner.segments.borrow().len() + 2;
        for _ in 0..passes_max {
            if pos >= hw || (!out.chunks.is_empty() && out.bytes >= max_bytes) {
                break;
            }
            let budget = if out.chunks.is_empty() {
                max_bytes
            } else {
                max_bytes - out.bytes
            };
            let cache_first = inner.cache.borrow().first_offset();
            if cache_first.is_some_and(|first| pos >= first) {
                pos = inner.cache.borrow().collect(pos, hw, max_bytes, out);
                break;
            }
            let stop = cache_first.map_or(hw, |first| first.min(hw));
            let segment = {
                let segments = inner.segments.borrow();
                let i = segments.partition_point(|s| s.base() <= pos);
                if i == 0 {
                    break;
                }
                segments[i - 1].clone()
            };
            let limit_pos = segment.written();
            let ahead_limit = self.disk_end_in(&segment, limit_pos);
            let reading = stream.get_or_insert_with(|| self.take_stream(pos));
            let read = match segment
                .read(pos, budget, stop, limit_pos, reading, ahead_limit)
                .await
            {
                // Retention deleted the segment while this read waited for
                // its file: the offset is below the log start now.
                Err(_) if segment.is_deleted() => {
                    return Err(StorageError::OffsetOutOfRange {
                        requested: from,
                        start: self.start_offset(),
                        end: hw,
                    });
                }
                other => other?,
            };
            match read {
                Some((bytes, next)) => {
                    disk_bytes += bytes.len();
                    out.push(bytes);
                    pos = next;
                    last_segment = Some(segment);
                }
                None if pos >= segment.next_offset() => {
                    // The rest of this segment is empty: go on with the next.
                    continue;
                }
                None if !segment.is_active() => {
                    // A sealed segment must hold every offset up to the next
                    // segment's base; a reader would otherwise stall here.
                    return Err(StorageError::Corrupt {
                        file: segment.log_path().to_path_buf(),
                        position: segment.size(),
                        reason: format!(
                            "the segment holds no batch for offset {pos}, though the next segment starts at {}",
                            segment.next_offset()
                        ),
                    });
                }
                None => break,
            }
        }
        out.next_offset = pos;
        if let (Some(segment), Some(reading)) = (last_segment, stream.as_mut()) {
            self.read_ahead_past(&segment, reading).await;
        }
        Ok(disk_bytes)
    }

    /// The file position below which `segment` serves reads from its file:
    /// `written`, or where the tail cache starts if that is in it.
    fn disk_end_in(&self, segment: &super::segment::Segment, written: u64) -> u64 {
        match self.inner.cache.borrow().front_position() {
            Some((base, pos)) if base == segment.base() => pos.min(written),
            Some((base, _)) if base < segment.base() => 0,
            _ => written,
        }
    }

    /// When a forward reader's read-ahead reached the end of the sealed
    /// `segment`, carries it on into the next segment, so crossing a
    /// segment boundary does not stall the reader. Best effort: a failure
    /// here surfaces on the read that needs the bytes.
    async fn read_ahead_past(&self, segment: &super::segment::Segment, stream: &mut ReadStream) {
        let Some(end) = stream.sequential_end(segment.key()) else {
            return;
        };
        if segment.is_active() {
            return;
        }
        let held = stream.ahead_of(segment.key(), end);
        if end + held < segment.size() || held >= READ_AHEAD_BYTES as u64 {
            return;
        }
        let next = {
            let segments = self.inner.segments.borrow();
            let i = segments.partition_point(|s| s.base() <= segment.base());
            match segments.get(i) {
                Some(next) if next.base() == segment.next_offset() => next.clone(),
                _ => return,
            }
        };
        let limit = self.disk_end_in(&next, next.written());
        let _ = next
            .read_ahead_from_start(stream, READ_AHEAD_BYTES as u64 - held, limit)
            .await;
    }

    /// The offset and timestamp of the first record whose timestamp is at
    /// or after `target`, or `None` if every readable record is older
    /// (readable: below [`PartitionLog::high_watermark`]).
    pub async fn offset_for_timestamp(
        &self,
        target: Timestamp,
    ) -> Result<Option<(Offset, Timestamp)>> {
        let start = {
            let segments = self.inner.segments.borrow();
            let Some(segment) = segments.iter().find(|s| s.max_timestamp() >= target) else {
                return Ok(None);
            };
            segment.base().plus(segment.time_lookup(target) as u64)
        };
        let mut pos = start.max(self.start_offset());
        // Each read moves `pos` forward by at least one batch.
        loop {
            if pos >= self.inner.visible_high_watermark() {
                return Ok(None);
            }
            let read = self.read_counted(pos, 256 << 10, true).await?.0.0;
            if read.chunks.is_empty() {
                return Ok(None);
            }
            for batch in read.batches() {
                let batch = RecordBatch::parse(batch, BATCH_BYTES_MAX).map_err(|e| {
                    StorageError::Corrupt {
                        file: self.inner.dir.clone(),
                        position: 0,
                        reason: format!("batch failed validation after a read: {e}"),
                    }
                })?;
                if batch.max_timestamp() < target {
                    continue;
                }
                for record in batch.records() {
                    let offset = batch.base_offset().plus(record.offset_delta as u64);
                    let ts = batch.record_timestamp(&record);
                    if offset >= pos && ts >= target {
                        return Ok(Some((offset, ts)));
                    }
                }
            }
            pos = read.next_offset;
        }
    }

    /// The offset and timestamp of the readable record with the largest
    /// timestamp (the first one, if several share it), or `None` if the log
    /// holds no readable record (Kafka's `MAX_TIMESTAMP` list-offsets spec).
    pub async fn offset_of_max_timestamp(&self) -> Result<Option<(Offset, Timestamp)>> {
        let hw = self.inner.visible_high_watermark();
        // Segments wholly below the high watermark give their largest
        // timestamp from memory. The one it cuts (records not yet durable,
        // or not yet replicated) gives it up to its last time-index entry
        // at or below the high watermark, and the batches from there are
        // read.
        let (mut max, scan_from) = {
            let segments = self.inner.segments.borrow();
            let mut max = Timestamp::NONE;
            let mut scan_from = None;
            for s in segments.iter() {
                if s.next_offset() <= hw {
                    max = max.max(s.max_timestamp());
                } else if s.base() < hw {
                    let entries = s.time_index_entries();
                    match entries
                        .iter()
                        .rev()
                        .find(|&&(_, rel)| s.base().plus(rel as u64) <= hw)
                    {
                        Some(&(t, rel)) => {
                            max = max.max(t);
                            scan_from = Some(s.base().plus(rel as u64));
                        }
                        None => scan_from = Some(s.base()),
                    }
                }
            }
            (max, scan_from)
        };
        if let Some(mut pos) = scan_from {
            pos = pos.max(self.start_offset());
            while pos < hw {
                let read = self.read_counted(pos, 256 << 10, true).await?.0.0;
                if read.chunks.is_empty() {
                    break;
                }
                for batch in read.batches() {
                    // Exact in stored headers: appends set it.
                    max = max.max(producer_fields(&batch).max_timestamp);
                }
                pos = read.next_offset;
            }
        }
        if max == Timestamp::NONE {
            return Ok(None);
        }
        self.offset_for_timestamp(max).await
    }

    /// Deletes whole sealed segments, oldest first, while the oldest is past
    /// `retention_ms` (its newest record is older than `now - retention_ms`)
    /// or the log without it is still at least `retention_bytes`. The active
    /// segment is never deleted. Advances the log start offset.
    pub async fn enforce_retention(&self, now: Timestamp) -> Result<RetentionOutcome> {
        let inner = &self.inner;
        // Runs on a full disk too: deleting segments is what frees space.
        inner.check_permanent()?;
        let _permit = inner
            .maintenance
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        inner.check_permanent()?;
        let victims: Vec<(Rc<Segment>, &'static str)> = {
            let mut segments = inner.segments.borrow_mut();
            let mut remaining: u64 = segments.iter().map(|s| s.size()).sum();
            let mut victims = Vec::new();
            let config = inner.config.get();
            let deletable = if config.cleanup_delete {
                segments.len() - 1
            } else {
                0
            };
            for segment in &segments[..deletable] {
                if segment.is_active() {
                    // Still sealing in the background: not deletable yet.
                    break;
                }
                let by_time = config
                    .retention_ms
                    .is_some_and(|ms| segment.max_timestamp().0 < now.0.saturating_sub(ms as i64));
                let by_size = config
                    .retention_bytes
                    .is_some_and(|max| remaining - segment.size() >= max);
                let reason = match (by_time, by_size) {
                    (true, _) => "retention.ms",
                    (false, true) => "retention.bytes",
                    (false, false) => break,
                };
                remaining -= segment.size();
                victims.push((segment.clone(), reason));
            }
            segments.drain(..victims.len());
            victims
        };
        let start = self.start_offset();
        inner.cache.borrow_mut().drop_below(start);
        for stream in inner.streams.borrow_mut().iter_mut() {
            for (segment, _) in &victims {
                stream.drop_segment(segment.key());
            }
        }
        let mut outcome = RetentionOutcome {
            log_start_offset: start,
            ..Default::default()
        };
        if !victims.is_empty() {
            snapshot::prune(
                &inner.disk,
                &inner.dir,
                PRODUCER_SNAPSHOTS_KEPT,
                start,
                inner.next_offset.get(),
            )
            .await
            .map_err(|e| inner.fail(e))?;
        }
        for (segment, reason) in victims {
            segment
                .delete(&inner.disk)
                .await
                .map_err(|e| inner.fail(e))?;
            tracing::info!(
                file = %segment.log_path().display(),
                bytes = segment.size(),
                reason,
                new_start = %start,
                "deleted segment by retention"
            );
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += segment.size();
        }
        Ok(outcome)
    }

    /// Writes everything out and syncs it now, whatever the policy.
    pub async fn flush(&self) -> Result<()> {
        self.inner.check_permanent()?;
        self.inner.recover_now(false).await?;
        self.inner.flush_pass(true).await
    }

    /// Stops the flusher, writes everything out, syncs it and trims the
    /// active segment's files, so the next open finds a clean tail.
    pub async fn close(self) -> Result<()> {
        let inner = &self.inner;
        let _lock = inner
            .append_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        if let Err(StorageError::DiskFull { .. }) = inner.check() {
            // Acknowledged records may still be only in memory: write them
            // out if the space is back.
            inner.recover(false).await?;
        }
        inner.check()?;
        inner.closed.set(true);
        inner.dirty.notify(usize::MAX);
        // Segments still sealing in the background finish first (each one
        // ends by advancing the durable offset, which wakes `progress`).
        let failed = || {
            inner
                .failed
                .borrow()
                .clone()
                .map(|reason| StorageError::Failed { reason })
        };
        loop {
            let listener = inner.progress.listen();
            if inner.pending_seals.borrow().is_empty() {
                break;
            }
            if let Some(e) = failed() {
                return Err(e);
            }
            listener.await;
        }
        if let Some(e) = failed() {
            return Err(e);
        }
        let active = inner.active();
        let mut result = active.finish_writing(false).await;
        if result.is_ok() {
            inner.advance_durable(inner.next_offset.get());
            crash::point("close.after_sync");
            let end = inner.next_offset.get();
            inner.save_producers(end, inner.producer_snapshot()).await;
            let marker = CloseMarker {
                segment: active.base(),
                bytes: active.size(),
            };
            result = write_whole(
                &inner.disk,
                &inner.dir.join(CLOSE_MARKER_NAME),
                &marker.encode(),
            )
            .await;
            crash::point("close.after_marker");
        }
        inner.progress.notify(usize::MAX);
        result
    }

    /// The first offset still stored.
    pub fn start_offset(&self) -> Offset {
        self.inner.start_offset()
    }

    /// The offset the next appended record will get.
    pub fn end_offset(&self) -> Offset {
        self.inner.next_offset.get()
    }

    /// Readers see offsets below this (see the module docs), capped by
    /// the replicated high watermark if one is set
    /// ([`PartitionLog::set_visible_end`]).
    pub fn high_watermark(&self) -> Offset {
        self.inner.visible_high_watermark()
    }

    /// The high watermark of this log alone, ignoring the replicated one:
    /// what [`PartitionLog::read_replica`] reads up to.
    pub fn local_high_watermark(&self) -> Offset {
        self.inner.high_watermark()
    }

    /// Caps what client reads see at `hw`, the partition's replicated high
    /// watermark: [`PartitionLog::read`], [`PartitionLog::offset_for_timestamp`],
    /// [`PartitionLog::offset_of_max_timestamp`] and
    /// [`PartitionLog::high_watermark`] use the smaller of it and the local
    /// high watermark. Never set, nothing is capped. The replication layer
    /// moves it forward as followers catch up; it may set it lower (a new
    /// leader whose high watermark lags the old one's, for a moment), and
    /// the log takes the value as given. Internal work (recovery from a
    /// full disk, compaction, producer state) uses the local high
    /// watermark. Wakes readers waiting for data.
    pub fn set_visible_end(&self, hw: Offset) {
        self.inner.visible_end.set(Some(hw));
        self.inner.data.notify(usize::MAX);
    }

    /// The replicated high watermark set by
    /// [`PartitionLog::set_visible_end`], if any.
    pub fn visible_end(&self) -> Option<Offset> {
        self.inner.visible_end.get()
    }

    /// Makes leader appends ([`PartitionLog::start_append`],
    /// [`PartitionLog::append`]) stamp `epoch` into every batch's
    /// partition-leader-epoch field (outside the CRC). Until it is called
    /// the batches keep what the client sent (-1). If `epoch` is newer than
    /// the epoch cache's latest, `(epoch, end offset)` enters the cache and
    /// the cache is saved before any batch stamped with it is written.
    ///
    /// Started now, like [`PartitionLog::start_append`]: it takes its
    /// place in the append order when called, so appends queued before it
    /// are stamped with the previous epoch and appends queued after with
    /// this one, and the cache entry starts at the first offset stamped
    /// with `epoch`. The future resolves once the cache is durable;
    /// dropping it does not cancel the change. Errors:
    /// [`StorageError::InvalidLeaderEpoch`] for an epoch below 0 or below
    /// the cache's latest (the same epoch again only resumes stamping).
    /// A follower that becomes leader calls this before its first leader
    /// append; replica appends never stamp. The stamping epoch is not
    /// persisted (the cache is): after a reopen, or a truncation, appends
    /// keep the client's value until this is called again.
    pub fn set_leader_epoch(
        &self,
        epoch: i32,
    ) -> impl std::future::Future<Output = Result<()>> + use<> {
        let turn = self.inner.append_order.turn();
        let task = glommio::spawn_local(Inner::set_leader_epoch_locked(
            self.inner.clone(),
            turn,
            epoch,
        ))
        .detach();
        async move { task.await.ok_or(StorageError::Closed)? }
    }

    /// The newest epoch of the leader-epoch cache, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.inner.epochs.borrow().latest()
    }

    /// The leader-epoch cache: `(epoch, start offset)`, strictly
    /// increasing in both (for tests and describe output).
    pub fn epoch_entries(&self) -> Vec<(i32, Offset)> {
        self.inner.epochs.borrow().entries().to_vec()
    }

    /// OffsetForLeaderEpoch (KIP-101/KIP-279): the largest cached epoch at
    /// or below `epoch`, and where that epoch ends in this log — the start
    /// offset of the next cached epoch, or the log end offset if there is
    /// none (`epoch` is the latest or newer). `None` (Kafka's
    /// `UNDEFINED_EPOCH`/`UNDEFINED_EPOCH_OFFSET`) if every cached epoch is
    /// newer than `epoch`, or the cache and the log are both empty. An
    /// empty cache over records (a log written before epochs were
    /// recorded) answers as if it held `(0, log start)`: the whole log is
    /// epoch 0.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, Offset)> {
        self.inner
            .epochs
            .borrow()
            .end_offset_for(epoch, self.start_offset(), self.end_offset())
    }

    /// Cuts every record at or above `offset`: a follower dropping the
    /// tail where its log diverges from its leader's. At or past the end
    /// offset only epoch-cache entries starting at or past `offset` (epochs
    /// led without a record) are dropped; [`StorageError::TruncateBelowStart`]
    /// below the log start (`offset` equal to it empties the log, which
    /// then starts and ends there). Kafka cuts at batch boundaries too:
    /// if `offset` falls inside a batch, the cut is at that batch's base.
    ///
    /// Appends queued before this call is first polled complete first
    /// (and are cut if at or above `offset`); it takes the append lock in
    /// the append order, so later appends continue at the cut. Afterwards
    /// the log is as if the cut records were never appended: the segment
    /// holding the cut is cut and synced with its indexes; later segments
    /// (a cut below the active segment) are deleted with their producer
    /// snapshots, and the cut segment becomes the active one (this takes
    /// the maintenance lock too, so it waits for a compaction pass or
    /// retention); the tail cache, producer state, durable and flushed
    /// offsets and the next offset follow; epoch-cache entries starting at
    /// or past the cut are dropped and the cache saved (after the data:
    /// see `log/epochs.rs`); durability waits for cut records fail with
    /// [`StorageError::Truncated`]; readers are woken. The high watermark
    /// moves back if it was past the cut — the one exception to its never
    /// moving backwards, since a follower's records past the replicated
    /// high watermark were never committed.
    ///
    /// Leader stamping ([`PartitionLog::set_leader_epoch`]) stops: a log
    /// that truncates is a follower, until it is made leader again.
    ///
    /// An I/O error on the way fails the log (until it is reopened). A
    /// crash or an error at any step leaves files the open path recovers:
    /// the log then ends at a segment or batch boundary at or above the
    /// cut (later segments are deleted newest first, and the segment
    /// holding the cut is cut last), or below it only where records were
    /// not yet durable anyway; the replication protocol then cuts again.
    pub async fn truncate_to(&self, offset: Offset) -> Result<()> {
        let inner = &self.inner;
        inner.check_permanent()?;
        let mut maintenance = None;
        let (keep, end) = loop {
            if maintenance.is_none() && offset < inner.active().base() {
                maintenance = Some(
                    inner
                        .maintenance
                        .acquire_permit(1)
                        .await
                        .map_err(|_| StorageError::Closed)?,
                );
            }
            let permit = inner.lock_in_turn(inner.append_order.turn()).await?;
            let end = inner.next_offset.get();
            if offset >= end {
                // No record to cut, but an epoch this log led without
                // writing anything (its entry starts at the end) goes, or
                // the follower would name it again and diverge forever.
                let mut cache = inner.epochs.borrow().clone();
                if cache.truncate_from(offset) {
                    inner.stamp_epoch.set(None);
                    inner.save_epochs(cache).await?;
                }
                drop(permit);
                return Ok(());
            }
            let start = inner.start_offset();
            if offset < start {
                return Err(StorageError::TruncateBelowStart {
                    requested: offset,
                    start,
                });
            }
            let deep = offset < inner.active().base();
            if deep && maintenance.is_none() {
                // A roll while this waited put the cut below the active
                // segment: the maintenance lock comes first.
                drop(permit);
                continue;
            }
            // Before anything is cut: a flusher pass already under way
            // drops its result rather than call the old end durable, and a
            // durability wait that starts meanwhile sees the cut recorded
            // below (whose epoch is newer again).
            inner.epoch.set(inner.epoch.get() + 1);
            let cut = if deep {
                inner.truncate_deep(offset).await
            } else {
                inner.truncate_active(offset).await
            };
            let keep = cut.map_err(|e| {
                inner.fail(StorageError::Failed {
                    reason: format!("truncating the log to offset {offset}: {e}"),
                })
            })?;
            inner.record_cut(keep, true);
            // A log that truncates is a follower: no stamping until it is
            // made leader again (its epoch may just have been cut).
            inner.stamp_epoch.set(None);
            let mut cache = inner.epochs.borrow().clone();
            if cache.truncate_from(keep) {
                inner.save_epochs(cache).await.map_err(|e| {
                    inner.fail(StorageError::Failed {
                        reason: format!(
                            "saving the leader-epoch cache after a truncation to {keep}: {e}"
                        ),
                    })
                })?;
            }
            drop(permit);
            break (keep, end);
        };
        tracing::warn!(
            dir = %inner.dir.display(),
            requested = %offset,
            kept_end = %keep,
            records_cut = end.distance_from(keep),
            segments = inner.segments.borrow().len(),
            "truncated the partition log"
        );
        inner.dirty.notify(usize::MAX);
        inner.progress.notify(usize::MAX);
        inner.data.notify(usize::MAX);
        Ok(())
    }

    /// Everything below is on stable media.
    pub fn durable_offset(&self) -> Offset {
        self.inner.durable.get()
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner.segments.borrow().iter().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.inner.segments.borrow().len()
    }

    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner
            .segments
            .borrow()
            .iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                base_offset: s.base(),
                next_offset: s.next_offset(),
                bytes: s.size(),
                max_timestamp: s.max_timestamp(),
                active: i + 1 == self.inner.segments.borrow().len(),
                sealing: i + 1 < self.inner.segments.borrow().len()
                    && (s.is_active()
                        || self
                            .inner
                            .pending_seals
                            .borrow()
                            .iter()
                            .any(|&(base, _)| base == s.base())),
                path: s.log_path().to_path_buf(),
            })
            .collect()
    }

    /// The sparse index entries of the segment starting at `base` (tests).
    pub fn index_entries(&self, base: Offset) -> Option<SegmentIndexes> {
        let segments = self.inner.segments.borrow();
        let segment = segments.iter().find(|s| s.base() == base)?;
        Some((segment.index_entries(), segment.time_index_entries()))
    }

    pub fn stats(&self) -> LogStats {
        self.inner.stats.get()
    }

    /// The configuration in force (a copy: it may change).
    pub fn config(&self) -> LogConfig {
        self.inner.config.get()
    }

    /// Changes the configuration of the open log. Retention, segment size
    /// and age, the largest batch, the fsync policy and the timestamp type
    /// apply from the next decision that reads them (the next append, roll,
    /// flusher pass or retention check); appends already assigned keep what
    /// they were stamped with. The layout settings (index interval, write
    /// chunk and tail cache sizes) are fixed while the log is open: a
    /// change to them is refused, as is an invalid configuration, and the
    /// log keeps its old one.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        let inner = &self.inner;
        config.validate().map_err(StorageError::Config)?;
        let old = inner.config.get();
        if !old.same_layout(&config) {
            return Err(StorageError::Config(
                "the index interval, write chunk and tail cache sizes cannot change while a log is open".into(),
            ));
        }
        if old == config {
            return Ok(());
        }
        if config.fsync == FsyncPolicy::Always && old.fsync != FsyncPolicy::Always {
            // Readers may already have seen records not yet durable; the
            // high watermark must not move back below them.
            inner.seen_before_always.set(inner.next_offset.get());
        }
        inner.config.set(config);
        tracing::info!(
            dir = %inner.dir.display(),
            fsync = %config.fsync,
            segment_bytes = config.segment_bytes,
            segment_ms = config.segment_ms,
            retention_ms = ?config.retention_ms,
            retention_bytes = ?config.retention_bytes,
            batch_bytes_max = config.batch_bytes_max,
            timestamp_type = %config.timestamp_type,
            cleanup_delete = config.cleanup_delete,
            compact = config.compact,
            delete_retention_ms = config.delete_retention_ms,
            "log configuration changed"
        );
        // The flusher re-reads the policy; readers re-read the high
        // watermark (it moves up when the policy leaves `always`).
        inner.wake_flusher.notify(usize::MAX);
        inner.dirty.notify(1);
        inner.data.notify(usize::MAX);
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Whether an earlier I/O error failed the log.
    pub fn failure(&self) -> Option<String> {
        self.inner.failed.borrow().clone()
    }

    /// Whether the failure is a full disk, which the log recovers from by
    /// itself once space is freed.
    pub fn is_disk_full(&self) -> bool {
        self.inner.failed.borrow().is_some() && self.inner.disk_full.get()
    }
}

/// Lists the segment base offsets in `dir`, removing index files whose log
/// is gone (left by a crash during retention) and temporary files.
async fn list_segments(disk: &Disk, dir: &Path) -> Result<Vec<Offset>> {
    let mut bases = Vec::new();
    let mut others = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match parse_log_file_name(name) {
            Some(base) => bases.push(base),
            None => others.push(name.to_string()),
        }
    }
    bases.sort();
    for name in others {
        let stem = name
            .strip_suffix(".timeindex")
            .or_else(|| name.strip_suffix(".index"));
        let orphan = match stem {
            Some(stem) => parse_log_file_name(&format!("{stem}.log"))
                .is_some_and(|base| bases.binary_search(&base).is_err()),
            None => name.ends_with(".tmp"),
        };
        if orphan {
            let path = dir.join(&name);
            tracing::warn!(file = %path.display(), "removing a file left without its segment");
            disk.remove(&path)
                .await
                .map_err(|e| StorageError::io("removing", &path, e))?;
        }
    }
    Ok(bases)
}

/// Name of the file a clean [`PartitionLog::close`] leaves in the log's
/// directory. Its presence, naming the active segment at its exact size,
/// tells the next open that the segment's indexes were trimmed and synced
/// with it, so recovery may start at the last index entry instead of
/// validating the whole segment. Every open removes it first.
const CLOSE_MARKER_NAME: &str = ".clean-close";

/// What the close marker records.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct CloseMarker {
    /// Base offset of the active segment at close.
    segment: Offset,
    /// Its exact size in bytes.
    bytes: u64,
}

impl CloseMarker {
    fn encode(&self) -> Vec<u8> {
        format!(
            "corelog clean close v1 segment={} bytes={}\n",
            self.segment, self.bytes
        )
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<CloseMarker> {
        let text = std::str::from_utf8(bytes).ok()?;
        let rest = text.strip_prefix("corelog clean close v1 ")?.trim_end();
        let (segment, bytes) = rest.split_once(' ')?;
        Some(CloseMarker {
            segment: Offset(segment.strip_prefix("segment=")?.parse().ok()?),
            bytes: bytes.strip_prefix("bytes=")?.parse().ok()?,
        })
    }
}

/// Reads and removes the close marker (see [`CLOSE_MARKER_NAME`]). The
/// removal is made durable before anything else changes, so a marker can
/// never vouch for a segment written after it.
async fn take_close_marker(disk: &Disk, dir: &Path) -> Result<Option<CloseMarker>> {
    let path = dir.join(CLOSE_MARKER_NAME);
    let Some(bytes) = read_whole(disk, &path).await? else {
        return Ok(None);
    };
    let marker = CloseMarker::decode(&bytes);
    if marker.is_none() {
        tracing::warn!(file = %path.display(), "ignoring an unreadable close marker; the active segment is validated whole");
    }
    disk.remove(&path)
        .await
        .map_err(|e| StorageError::io("removing", &path, e))?;
    disk.sync_dir(dir)
        .await
        .map_err(|e| StorageError::io("syncing directory", dir, e))?;
    crash::point("recover.after_marker_removed");
    Ok(marker)
}

/// Renames the files of the segments at `bases` aside (suffix
/// `.discarded-<unix ms>`), so the log no longer sees them but an operator
/// still can. Returns a description of what was moved.
async fn set_aside(disk: &Disk, dir: &Path, bases: &[Offset]) -> Result<String> {
    let suffix = format!("discarded-{}", Timestamp::now().0);
    let mut moved = Vec::new();
    for &base in bases {
        let (log, index, time) = segment_paths(dir, base);
        for path in [log, index, time] {
            let mut to = path.clone().into_os_string();
            to.push(".");
            to.push(&suffix);
            match disk.rename(&path, Path::new(&to)).await {
                Ok(()) => moved.push(PathBuf::from(to)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("renaming aside", &path, e)),
            }
        }
    }
    disk.sync_dir(dir)
        .await
        .map_err(|e| StorageError::io("syncing directory", dir, e))?;
    Ok(moved
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", "))
}
