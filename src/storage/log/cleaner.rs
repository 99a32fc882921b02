//! Log compaction: the cleaner's pass over a partition log
//! ([`PartitionLog::clean`]).
//!
//! A pass runs on the executor that owns the log, under the log's
//! maintenance lock (retention waits for it), and never touches the active
//! segment or a segment still sealing in the background.
//!
//! 1. **Offset map.** The batches after the log's *cleaned offset* (what
//!    earlier passes of this process covered; the log start after an open)
//!    up to the end of the sealed segments are read and each record's key is
//!    mapped to its latest offset. The map is bounded
//!    ([`CleanOptions::map_bytes_max`], key bytes plus a per-entry
//!    overhead); when the next batch would overflow it, the map ends before
//!    that batch (the *map end*) and the rest waits for the next pass.
//! 2. **Rewrite.** Every sealed segment that starts below the map end is
//!    read and its batches are rewritten keeping a record unless the map
//!    holds a later offset for its key. Records without a key are kept. A
//!    kept tombstone (a key without a value) below the map end is removed
//!    once its segment's newest record is older than `delete.retention.ms`.
//!    A rewritten batch keeps its header (base offset, last offset delta,
//!    timestamps, producer id, epoch and sequence, codec) and its records
//!    keep their offset and timestamp deltas, so every kept record keeps
//!    its offset and time; a compressed batch is compressed again with its
//!    codec. A batch left with no record is dropped, except the last batch
//!    of an idempotent producer, kept empty so that rebuilding the producer
//!    state from the log still finds its last sequence (as Kafka does).
//!    A run of dropped batches becomes one empty *filler* batch spanning
//!    its offsets, so a segment still covers every offset from its base to
//!    the next segment's base: offsets stay where they were, readers skip
//!    the gaps (Kafka clients do), and recovery's continuity checks hold.
//!    A segment in which nothing would be removed is left as it is. With
//!    `min.compaction.lag.ms`, a pass stops before the first sealed segment
//!    whose newest record is younger than that.
//! 3. **Swap**, per segment (crash points `clean.*`):
//!    `<base>.log.cleaned` is written and fsynced; renamed to
//!    `<base>.log.swap` and the directory synced (from here on the new
//!    version wins); the segment's `.index` and `.timeindex` are removed;
//!    `<base>.log.swap` is renamed over `<base>.log` and the directory
//!    synced; the segment is opened again, which rebuilds both indexes, and
//!    replaces the old one in the log's list. Before the first rename the
//!    old segment takes its file from the open-file cache and holds it, so
//!    readers still holding the old segment read the old file (open until
//!    they finish), never the new one at the same path.
//!
//! Recovery at [`PartitionLog::open`] finishes or rolls back a swap: a
//! `.swap` file is renamed over its segment's log after the segment's
//! indexes are removed (they are rebuilt from the log), and a `.cleaned`
//! file is removed. Every state a crash can leave is thus either the old
//! segment or the new one, each readable with the same offsets and the
//! latest value of every key.
//!
//! Checkpoint: after a pass, the cleaned offset and the time the earliest
//! kept tombstone falls due are written to `.cleaner-checkpoint`, so a
//! restart does not read every sealed segment again. Open takes it only if
//! it lies at or below the active segment's base after recovery (sealed
//! segments below it are exactly what the passes left); a missing or
//! unreadable one means the log start, which is always safe.
//!
//! Throttle: the pass counts the bytes it reads and writes and sleeps to
//! stay under [`CleanOptions::bytes_per_sec`], and yields to other tasks
//! between batches, so produce and fetch are not starved.

use super::{Inner, PartitionLog};
use crate::constants::BATCH_BYTES_MAX;
use crate::record::{RecordBatch, filler_batch, rewrite_batch};
use crate::storage::appender::Appender;
use crate::storage::crash;
use crate::storage::error::{Result, StorageError};
use crate::storage::io::Disk;
use crate::storage::segment::{SealedOpen, Segment, segment_paths};
use crate::types::{Offset, Timestamp};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bytes counted per offset-map entry beyond its key (hash table slot,
/// boxed key, offset).
const MAP_ENTRY_OVERHEAD_BYTES: usize = 48;
/// Bytes read per step of a pass.
const READ_STEP_BYTES: usize = 1 << 20;
/// Idempotent producers whose last batch a log remembers for compaction;
/// beyond it every emptied idempotent batch is kept (safe, a little larger).
const PRODUCERS_TRACKED_MAX: usize = 100_000;

/// Limits of one cleaner pass.
#[derive(Copy, Clone, Debug)]
pub struct CleanOptions {
    /// Memory for the key → latest offset map (key bytes plus an overhead
    /// per entry).
    pub map_bytes_max: usize,
    /// Bytes read and written per second (0: no limit).
    pub bytes_per_sec: u64,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            map_bytes_max: 32 << 20,
            bytes_per_sec: 64 << 20,
        }
    }
}

/// What one cleaner pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Sealed segments read and considered.
    pub segments_cleaned: usize,
    /// Segments rewritten (the others had nothing to remove).
    pub segments_rewritten: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_kept: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// Keys in the offset map.
    pub map_keys: usize,
    /// Everything below was cleaned with a map that covered it.
    pub cleaned_to: Offset,
    /// The pass stopped early (shutdown).
    pub stopped: bool,
}

/// Sleeps to keep a pass under its byte rate.
struct Throttle {
    rate: u64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    async fn account(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        if self.rate > 0 {
            let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                glommio::timer::sleep(due - elapsed).await;
            }
        }
        glommio::yield_if_needed().await;
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parse_batch(dir: &Path, bytes: Bytes) -> Result<RecordBatch> {
    RecordBatch::parse(bytes, BATCH_BYTES_MAX).map_err(|e| StorageError::Corrupt {
        file: dir.to_path_buf(),
        position: 0,
        reason: format!("batch failed validation during compaction: {e}"),
    })
}

/// Removes a file, a missing one included.
async fn remove_if_present(disk: &Disk, path: &Path) -> Result<()> {
    match disk.remove(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("removing", path, e)),
    }
}

/// File of the cleaner's checkpoint in a log's directory.
const CHECKPOINT_NAME: &str = ".cleaner-checkpoint";

/// What the checkpoint records.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Checkpoint {
    pub cleaned_to: Offset,
    pub tombstone_due: Option<i64>,
}

impl Checkpoint {
    fn encode(&self) -> String {
        let due = self
            .tombstone_due
            .map_or_else(|| "none".to_string(), |t| t.to_string());
        format!(
            "corelog cleaner v1 cleaned_to={} tombstone_due={due}\n",
            self.cleaned_to.0
        )
    }

    fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        let text = std::str::from_utf8(bytes).ok()?;
        let rest = text.strip_prefix("corelog cleaner v1 ")?.trim_end();
        let (cleaned, due) = rest.split_once(' ')?;
        let cleaned_to = Offset(cleaned.strip_prefix("cleaned_to=")?.parse().ok()?);
        let tombstone_due = match due.strip_prefix("tombstone_due=")? {
            "none" => None,
            t => Some(t.parse().ok()?),
        };
        Some(Checkpoint {
            cleaned_to,
            tombstone_due,
        })
    }
}

/// Removes the checkpoint of the log in `dir` (a truncation cut below
/// what it covers); a missing one means the log start, which is always
/// safe.
pub(super) async fn forget_checkpoint(disk: &Disk, dir: &Path) -> Result<()> {
    remove_if_present(disk, &dir.join(CHECKPOINT_NAME)).await?;
    disk.sync_dir(dir)
        .await
        .map_err(|e| StorageError::io("syncing directory", dir, e))
}

/// The checkpoint of the log in `dir`, if it is readable and does not
/// reach past `active_base` (the active segment's base after recovery).
pub(super) async fn load_checkpoint(
    disk: &Disk,
    dir: &Path,
    active_base: Offset,
) -> Result<Checkpoint> {
    let path = dir.join(CHECKPOINT_NAME);
    let Some(bytes) = crate::storage::segment::read_whole(disk, &path).await? else {
        return Ok(Checkpoint::default());
    };
    match Checkpoint::decode(&bytes) {
        Some(c) if c.cleaned_to <= active_base => Ok(c),
        other => {
            tracing::warn!(file = %path.display(), checkpoint = ?other, active_base = %active_base, "ignoring a cleaner checkpoint that is unreadable or past the recovered log; the next pass reads every sealed segment");
            Ok(Checkpoint::default())
        }
    }
}

/// Finishes or rolls back a swap a crash interrupted (see the module
/// docs). Runs before the segments are listed at open.
pub(super) async fn recover_interrupted_clean(disk: &Disk, dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("listing", dir, e))?;
    let (mut swaps, mut cleaned) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(log) = name.strip_suffix(".swap") {
            swaps.push(log.to_string());
        } else if name.ends_with(".cleaned") {
            cleaned.push(name.to_string());
        }
    }
    if swaps.is_empty() && cleaned.is_empty() {
        return Ok(());
    }
    for name in &cleaned {
        let path = dir.join(name);
        tracing::warn!(file = %path.display(), "removing a cleaned segment a crash left before its swap; the segment stays as it was");
        remove_if_present(disk, &path).await?;
    }
    for log in &swaps {
        let log_path = dir.join(log);
        let Some(stem) = log.strip_suffix(".log") else {
            continue;
        };
        remove_if_present(disk, &dir.join(format!("{stem}.index"))).await?;
        remove_if_present(disk, &dir.join(format!("{stem}.timeindex"))).await?;
        let swap = with_suffix(&log_path, ".swap");
        disk.rename(&swap, &log_path)
            .await
            .map_err(|e| StorageError::io("renaming", &swap, e))?;
        crash::point("recover.after_clean_swap");
        tracing::warn!(file = %log_path.display(), "finished a compaction swap a crash interrupted; the segment's indexes are rebuilt");
    }
    disk.sync_dir(dir)
        .await
        .map_err(|e| StorageError::io("syncing directory", dir, e))
}

/// What rewriting one segment found.
#[derive(Default)]
struct SegmentResult {
    bytes_after: u64,
    kept: u64,
    removed: u64,
    tombstones_removed: u64,
    /// The earliest time a tombstone kept in it may go.
    tombstone_due: Option<i64>,
    changed: bool,
}

/// The cleaned file being written.
struct Output {
    file: Rc<crate::storage::io::DiskFile>,
    appender: Appender,
    bytes: u64,
}

impl Output {
    async fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.appender
            .append(bytes)
            .await
            .map_err(|e| StorageError::io("writing", self.file.path(), e))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

impl PartitionLog {
    /// Runs one compaction pass (see the module docs of `cleaner`) if the
    /// log's policy compacts and there is something to clean: sealed
    /// segments past the cleaned offset, or kept tombstones whose time is
    /// up. `None` when nothing ran. `stop` is asked between batches; when
    /// it says so the pass ends early, leaving every segment whole.
    pub async fn clean(
        &self,
        now: Timestamp,
        options: &CleanOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<CleanOutcome>> {
        let inner = &self.inner;
        inner.check()?;
        let config = inner.config.get();
        if !config.compact {
            return Ok(None);
        }
        let _permit = inner
            .maintenance
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        inner.check()?;
        // Sealed segments whose seal finished (its writers are gone and the
        // durable offset moved past it) and that readers may read whole.
        let sealed: Vec<Rc<Segment>> = {
            let segments = inner.segments.borrow();
            let pending = inner.pending_seals.borrow();
            let hw = inner.high_watermark();
            let young = now.0.saturating_sub(config.min_compaction_lag_ms as i64);
            segments[..segments.len() - 1]
                .iter()
                .take_while(|s| {
                    !s.is_active()
                        && s.next_offset() <= hw
                        && pending.iter().all(|&(base, _)| base != s.base())
                        && (config.min_compaction_lag_ms == 0 || s.max_timestamp().0 <= young)
                })
                .cloned()
                .collect()
        };
        let (Some(first), Some(last)) = (sealed.first(), sealed.last()) else {
            return Ok(None);
        };
        let sealed_end = last.next_offset();
        let previous = inner.cleaned_to.get().max(first.base());
        let tombstones_due = inner.tombstone_due.get().is_some_and(|t| now.0 >= t);
        if previous >= sealed_end && !tombstones_due {
            return Ok(None);
        }
        let started = Instant::now();
        let mut throttle = Throttle {
            rate: options.bytes_per_sec,
            started,
            bytes: 0,
        };
        let mut outcome = CleanOutcome::default();

        // 1. The offset map of the dirty part.
        let mut map: HashMap<Box<[u8]>, u64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut producers_seen: HashMap<i64, Offset> = HashMap::new();
        let mut map_end = previous;
        let mut pos = previous;
        'scan: while pos < sealed_end {
            if stop() {
                outcome.stopped = true;
                return Ok(Some(outcome));
            }
            let read = self.read_uncounted(pos, READ_STEP_BYTES).await?;
            if read.chunks.is_empty() {
                break;
            }
            for bytes in read.batches() {
                let len = bytes.len();
                let batch = parse_batch(&inner.dir, bytes)?;
                if batch.base_offset() >= sealed_end {
                    break 'scan;
                }
                let base = batch.base_offset().0;
                let need: usize = batch
                    .records()
                    .filter_map(|r| r.key)
                    .filter(|k| !map.contains_key(*k))
                    .map(|k| k.len() + MAP_ENTRY_OVERHEAD_BYTES)
                    .sum();
                if map_bytes + need > options.map_bytes_max && map_end > previous {
                    break 'scan;
                }
                map_bytes += need;
                for record in batch.records() {
                    let offset = base + record.offset_delta as u64;
                    if offset < pos.0 {
                        continue;
                    }
                    if let Some(key) = record.key {
                        match map.get_mut(key) {
                            Some(latest) => *latest = offset,
                            None => {
                                map.insert(key.into(), offset);
                            }
                        }
                    }
                }
                if batch.producer_id() >= 0 && producers_seen.len() <= PRODUCERS_TRACKED_MAX {
                    producers_seen.insert(batch.producer_id(), batch.base_offset());
                }
                map_end = batch.last_offset().plus(1);
                throttle.account(len).await;
            }
            pos = read.next_offset;
        }
        outcome.map_keys = map.len();
        {
            let mut tracked = inner.producer_last.borrow_mut();
            // Past the limit (here or in the pass's own map, which stops
            // growing there) every emptied idempotent batch is kept.
            if let Some(t) = tracked.as_mut() {
                t.extend(producers_seen);
                if t.len() > PRODUCERS_TRACKED_MAX {
                    *tracked = None;
                }
            }
        }

        // 2. and 3. Rewrite and swap each segment the map reaches.
        let mut tombstone_due: Option<i64> = None;
        let clean_end = map_end.max(previous);
        // Each old segment is let go after its swap: it holds its file
        // until dropped (see `rewrite_segment`), and the open-file cache
        // must not stay full of replaced files for the whole pass.
        for segment in sealed.into_iter().filter(|s| s.base() < clean_end) {
            let segment = &segment;
            let horizon = now.0.saturating_sub(config.delete_retention_ms as i64);
            let remove_tombstones = segment.max_timestamp().0 < horizon;
            let before = segment.size();
            let result = self
                .rewrite_segment(
                    segment,
                    &map,
                    clean_end,
                    remove_tombstones,
                    config.delete_retention_ms,
                    &mut throttle,
                    stop,
                )
                .await?;
            let Some(result) = result else {
                outcome.stopped = true;
                break;
            };
            outcome.segments_cleaned += 1;
            outcome.bytes_before += before;
            outcome.records_kept += result.kept;
            outcome.records_removed += result.removed;
            outcome.tombstones_removed += result.tombstones_removed;
            if let Some(due) = result.tombstone_due {
                tombstone_due = Some(tombstone_due.map_or(due, |t: i64| t.min(due)));
            }
            if result.changed {
                outcome.segments_rewritten += 1;
                outcome.bytes_after += result.bytes_after;
            } else {
                outcome.bytes_after += before;
            }
        }
        if !outcome.stopped {
            inner.cleaned_to.set(clean_end);
            inner.tombstone_due.set(tombstone_due);
            let checkpoint = Checkpoint {
                cleaned_to: clean_end,
                tombstone_due,
            };
            // Losing it costs a re-read at the next start, nothing more.
            if let Err(e) = crate::storage::segment::write_whole(
                &inner.disk,
                &inner.dir.join(CHECKPOINT_NAME),
                checkpoint.encode().as_bytes(),
            )
            .await
            {
                tracing::warn!(dir = %inner.dir.display(), error = %e, "writing the cleaner checkpoint failed");
            }
        }
        outcome.cleaned_to = inner.cleaned_to.get();
        tracing::info!(
            dir = %inner.dir.display(),
            segments = outcome.segments_cleaned,
            rewritten = outcome.segments_rewritten,
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            records_kept = outcome.records_kept,
            records_removed = outcome.records_removed,
            tombstones_removed = outcome.tombstones_removed,
            map_keys = outcome.map_keys,
            cleaned_to = %outcome.cleaned_to,
            stopped = outcome.stopped,
            millis = started.elapsed().as_millis() as u64,
            "compaction pass"
        );
        Ok(Some(outcome))
    }

    /// Rewrites one sealed segment without the records `map` supersedes and
    /// swaps it in if anything was removed. `None` if `stop` cut it short
    /// (the segment stays as it was).
    #[allow(clippy::too_many_arguments)]
    async fn rewrite_segment(
        &self,
        segment: &Rc<Segment>,
        map: &HashMap<Box<[u8]>, u64>,
        map_end: Offset,
        remove_tombstones: bool,
        delete_retention_ms: u64,
        throttle: &mut Throttle,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<SegmentResult>> {
        let inner = &self.inner;
        let (base, next) = (segment.base(), segment.next_offset());
        let log_path = segment.log_path().to_path_buf();
        let cleaned = with_suffix(&log_path, ".cleaned");
        let file = inner
            .disk
            .open_file(&cleaned, true)
            .await
            .map_err(|e| StorageError::io("creating", &cleaned, e))?;
        file.truncate(0)
            .await
            .map_err(|e| StorageError::io("truncating", &cleaned, e))?;
        let file = Rc::new(file);
        let mut out = Output {
            appender: Appender::new(file.clone(), inner.settings.write_chunk_bytes, 0, &[]),
            file,
            bytes: 0,
        };
        let written = self
            .write_cleaned(
                segment,
                map,
                map_end,
                remove_tombstones,
                delete_retention_ms,
                throttle,
                stop,
                &mut out,
            )
            .await;
        let result = match written {
            Ok(Some(result)) if result.changed => result,
            other => {
                drop(out);
                remove_if_present(&inner.disk, &cleaned).await?;
                return other;
            }
        };
        // The new version, durable before it can replace the old one.
        let finished = async {
            out.appender
                .write_out()
                .await
                .map_err(|e| StorageError::io("writing", &cleaned, e))?;
            out.file
                .truncate(out.bytes)
                .await
                .map_err(|e| StorageError::io("truncating", &cleaned, e))?;
            out.file
                .sync()
                .await
                .map_err(|e| StorageError::io("syncing", &cleaned, e))
        }
        .await;
        drop(out);
        if let Err(e) = finished {
            remove_if_present(&inner.disk, &cleaned).await?;
            return Err(e);
        }
        crash::point("clean.after_cleaned_synced");
        // Readers that took the old segment before the swap keep reading the
        // file it describes, not the one about to replace it at its path.
        if let Err(e) = segment.hold_file().await {
            remove_if_present(&inner.disk, &cleaned).await?;
            return Err(e);
        }
        // A swap cut short (even by a full disk) is finished by the next
        // open, not by the in-place recovery of a full disk's tail.
        self.swap_in(segment, &cleaned).await.map_err(|e| {
            inner.fail(StorageError::Failed {
                reason: e.to_string(),
            })
        })?;
        tracing::debug!(
            dir = %inner.dir.display(),
            segment = %base,
            next = %next,
            bytes = result.bytes_after,
            "swapped in a compacted segment"
        );
        Ok(Some(result))
    }

    /// Writes the cleaned version of `segment` to `out`.
    #[allow(clippy::too_many_arguments)]
    async fn write_cleaned(
        &self,
        segment: &Rc<Segment>,
        map: &HashMap<Box<[u8]>, u64>,
        map_end: Offset,
        remove_tombstones: bool,
        delete_retention_ms: u64,
        throttle: &mut Throttle,
        stop: &dyn Fn() -> bool,
        out: &mut Output,
    ) -> Result<Option<SegmentResult>> {
        let inner = &self.inner;
        let (base, next) = (segment.base(), segment.next_offset());
        let mut result = SegmentResult::default();
        // A run of dropped batches: its first offset and newest timestamp.
        let mut gap: Option<(Offset, Timestamp)> = None;
        let mut pos = base;
        'segment: while pos < next {
            if stop() {
                return Ok(None);
            }
            let read = self.read_uncounted(pos, READ_STEP_BYTES).await?;
            if read.chunks.is_empty() {
                return Err(StorageError::Corrupt {
                    file: segment.log_path().to_path_buf(),
                    position: 0,
                    reason: format!("no batch readable at offset {pos} while compacting"),
                });
            }
            for bytes in read.batches() {
                let len = bytes.len();
                let batch = parse_batch(&inner.dir, bytes.clone())?;
                if batch.base_offset() >= next {
                    break 'segment;
                }
                let batch_base = batch.base_offset().0;
                let mut kept: Vec<&[u8]> = Vec::new();
                let mut tombstones_here = 0u64;
                for (record, raw) in batch.raw_records() {
                    let offset = batch_base + record.offset_delta as u64;
                    let superseded = record
                        .key
                        .and_then(|k| map.get(k))
                        .is_some_and(|&latest| latest > offset);
                    let tombstone = record.key.is_some() && record.value.is_none();
                    if superseded {
                        continue;
                    } else if tombstone && offset < map_end.0 && remove_tombstones {
                        tombstones_here += 1;
                    } else {
                        if tombstone {
                            let due = segment
                                .max_timestamp()
                                .0
                                .saturating_add(delete_retention_ms as i64)
                                .saturating_add(1);
                            result.tombstone_due =
                                Some(result.tombstone_due.map_or(due, |d| d.min(due)));
                        }
                        kept.push(raw);
                    }
                }
                let count = batch.record_count() as usize;
                let mut removed_here = (count - kept.len()) as u64;
                let producer = batch.producer_id();
                let keep_empty =
                    producer >= 0
                        && inner.producer_last.borrow().as_ref().is_none_or(|t| {
                            t.get(&producer).is_none_or(|&o| o == batch.base_offset())
                        });
                let rewritten: Option<Bytes> = if kept.len() == count {
                    // Nothing removed (an empty batch of an earlier pass
                    // included, unless a gap swallows it below).
                    if count == 0 && !keep_empty {
                        None
                    } else {
                        Some(bytes)
                    }
                } else if !kept.is_empty() || keep_empty {
                    let rewritten = rewrite_batch(&batch, &kept)
                        .map_err(|e| StorageError::io("compressing", segment.log_path(), e))?;
                    if rewritten.len() < len {
                        result.changed = true;
                        Some(rewritten)
                    } else {
                        // Fewer records that compress worse: the batch stays
                        // as appended (a rewrite is never larger).
                        removed_here = 0;
                        tombstones_here = 0;
                        Some(bytes)
                    }
                } else {
                    result.changed = true;
                    None
                };
                result.removed += removed_here;
                result.tombstones_removed += tombstones_here;
                result.kept += count as u64 - removed_here;
                match rewritten {
                    None => {
                        let ts = batch.max_timestamp();
                        gap = Some(match gap {
                            Some((from, t)) => (from, t.max(ts)),
                            None => (batch.base_offset(), ts),
                        });
                    }
                    Some(bytes) => {
                        if let Some((from, ts)) = gap.take() {
                            let span = batch.base_offset().distance_from(from) as u32;
                            out.push(&filler_batch(from, span, ts)).await?;
                        }
                        out.push(&bytes).await?;
                    }
                }
                throttle.account(len * 2).await;
            }
            pos = read.next_offset;
        }
        if let Some((from, ts)) = gap.take() {
            let span = next.distance_from(from) as u32;
            out.push(&filler_batch(from, span, ts)).await?;
        }
        result.bytes_after = out.bytes;
        Ok(Some(result))
    }

    /// Replaces `segment`'s log with the synced file at `cleaned` (see the
    /// module docs for the order) and the segment in the list with one
    /// opened on it.
    async fn swap_in(&self, segment: &Rc<Segment>, cleaned: &Path) -> Result<()> {
        let inner: &Inner = &self.inner;
        let disk = &inner.disk;
        let dir = inner.dir.as_path();
        let (base, next) = (segment.base(), segment.next_offset());
        let (log_path, index_path, time_path) = segment_paths(dir, base);
        let swap = with_suffix(&log_path, ".swap");
        disk.rename(cleaned, &swap)
            .await
            .map_err(|e| StorageError::io("renaming", cleaned, e))?;
        disk.sync_dir(dir)
            .await
            .map_err(|e| StorageError::io("syncing directory", dir, e))?;
        crash::point("clean.after_swap_renamed");
        remove_if_present(disk, &index_path).await?;
        remove_if_present(disk, &time_path).await?;
        crash::point("clean.after_indexes_removed");
        disk.rename(&swap, &log_path)
            .await
            .map_err(|e| StorageError::io("renaming", &swap, e))?;
        disk.sync_dir(dir)
            .await
            .map_err(|e| StorageError::io("syncing directory", dir, e))?;
        crash::point("clean.after_log_replaced");
        let reopened = match Segment::open_sealed(disk, dir, base, next, inner.settings).await? {
            SealedOpen::Ready(s) => Rc::<Segment>::from(s),
            SealedOpen::EndsShort {
                found_end,
                position,
                reason,
            } => {
                return Err(StorageError::Corrupt {
                    file: log_path,
                    position,
                    reason: format!(
                        "a compacted segment ends at offset {found_end} instead of {next}: {reason}"
                    ),
                });
            }
        };
        {
            let mut segments = inner.segments.borrow_mut();
            if let Some(slot) = segments.iter_mut().find(|s| Rc::ptr_eq(s, segment)) {
                *slot = reopened;
            }
        }
        inner.cache.borrow_mut().drop_below(next);
        crash::point("clean.segment_done");
        Ok(())
    }
}
